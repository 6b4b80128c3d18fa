//go:build integration

package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres/pgtest"
)

func openInternal(t *testing.T) (*DB, int64) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, Config{URL: pgtest.NewDatabase(t), MaxOpenConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := db.CreateUser(ctx, User{Username: "alice", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return db, u.ID
}

func newCall(ctx context.Context, user int64, symbol string) *historyCall {
	return &historyCall{ctx: ctx, row: &historyRow{UserID: user, RequestedAt: now(), Symbol: symbol}, done: make(chan error, 1)}
}

// symbolOf reads back the row saved under id.
func symbolOf(t *testing.T, db *DB, id int64) (string, int64) {
	t.Helper()
	var r historyRow
	if err := db.gorm.Where("id = ?", id).Take(&r).Error; err != nil {
		t.Fatalf("row %d: %v", id, err)
	}
	return r.Symbol, r.UserID
}

// TestBatchIDsBelongToTheirRows: the ids a multi-row INSERT hands back go
// to the calls whose rows they are, even while other batches take ids
// from the same sequence at the same time.
func TestBatchIDsBelongToTheirRows(t *testing.T) {
	db, alice := openInternal(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 10 {
				calls := make([]*historyCall, maxHistoryBatch)
				for i := range calls {
					calls[i] = newCall(context.Background(), alice, fmt.Sprintf("G%dR%dI%d", g, round, i))
				}
				db.writers.save(calls)
				for i, c := range calls {
					if err := <-c.done; err != nil {
						t.Errorf("%d/%d/%d: %v", g, round, i, err)
						continue
					}
					if sym, _ := symbolOf(t, db, c.row.ID); sym != c.row.Symbol {
						t.Errorf("call for %s got id %d, which holds %s", c.row.Symbol, c.row.ID, sym)
					}
				}
			}
		})
	}
	wg.Wait()
	if s := db.HistoryWriteStats(); s.Statements.Load() != 40 || s.Rows.Load() != 40*maxHistoryBatch {
		t.Errorf("stats = %s, want 40 statements, %d rows", statsText(s), 40*maxHistoryBatch)
	}
}

// TestBatchSplitsOnOneBadRow: a row for a user that does not exist fails
// the statement; the batch is then saved row by row, so only that call
// fails (foreign key, which AddHistory reports as ErrNotFound).
func TestBatchSplitsOnOneBadRow(t *testing.T) {
	db, alice := openInternal(t)
	calls := []*historyCall{
		newCall(context.Background(), alice, "A.US"),
		newCall(context.Background(), alice+1000, "GONE.US"),
		newCall(context.Background(), alice, "B.US"),
	}
	db.writers.save(calls)
	for i, c := range calls {
		err := <-c.done
		switch {
		case i == 1:
			if err := wrapErr("add", err); !errors.Is(err, ErrNotFound) {
				t.Errorf("row of the missing user: %v, want ErrNotFound", err)
			}
		case err != nil:
			t.Errorf("row %s: %v", c.row.Symbol, err)
		default:
			if sym, _ := symbolOf(t, db, c.row.ID); sym != c.row.Symbol {
				t.Errorf("%s got id %d holding %s", c.row.Symbol, c.row.ID, sym)
			}
		}
	}
	if s := db.HistoryWriteStats(); s.Split.Load() != 1 || s.Rows.Load() != 2 || s.Statements.Load() != 4 {
		t.Errorf("stats = %s, want 1 split, 2 rows, 4 statements (the batch, then 3 alone)", statsText(s))
	}
}

// TestBatchDropsCallersThatLeft: a call whose context ended before its
// batch was sent is answered with that error and its row is not saved.
func TestBatchDropsCallersThatLeft(t *testing.T) {
	db, alice := openInternal(t)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	calls := []*historyCall{
		newCall(context.Background(), alice, "A.US"),
		newCall(gone, alice, "LEFT.US"),
		newCall(context.Background(), alice, "B.US"),
	}
	db.writers.save(calls)
	if err := <-calls[1].done; !errors.Is(err, context.Canceled) {
		t.Errorf("call that left: %v, want context.Canceled", err)
	}
	for _, i := range []int{0, 2} {
		if err := <-calls[i].done; err != nil {
			t.Errorf("%s: %v", calls[i].row.Symbol, err)
		}
	}
	var n int64
	if err := db.gorm.Model(&historyRow{}).Where("symbol = ?", "LEFT.US").Count(&n).Error; err != nil || n != 0 {
		t.Errorf("rows of the call that left: %d, %v; want 0", n, err)
	}
	if s := db.HistoryWriteStats(); s.Statements.Load() != 1 || s.Rows.Load() != 2 {
		t.Errorf("stats = %s, want one statement of 2 rows", statsText(s))
	}
}

// TestBatchContextOutlivesOneCaller: a statement carrying several rows
// runs until the latest caller deadline, not the first caller's.
func TestBatchContextOutlivesOneCaller(t *testing.T) {
	short, cancel1 := context.WithTimeout(context.Background(), time.Second)
	defer cancel1()
	long, cancel2 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel2()
	ctx, cancel := batchContext([]*historyCall{{ctx: short}, {ctx: long}})
	defer cancel()
	d, _ := ctx.Deadline()
	if want, _ := long.Deadline(); !d.Equal(want) {
		t.Errorf("batch deadline %v, want the latest %v", d, want)
	}
	ctx, cancel3 := batchContext([]*historyCall{{ctx: short}, {ctx: context.Background()}})
	defer cancel3()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > historyBatchTimeout {
		t.Errorf("batch with an unbounded caller: deadline %v, %v; want within %v", d, ok, historyBatchTimeout)
	}
}

// TestAddHistoryAfterClose fails fast instead of waiting for a writer.
func TestAddHistoryAfterClose(t *testing.T) {
	db, alice := openInternal(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := db.AddHistory(ctx, alice, HistoryEntry{Symbol: "A.US"})
	if !errors.Is(err, errStoreClosed) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("AddHistory after Close: %v, want errStoreClosed, an ErrUnavailable (503)", err)
	}
}

func statsText(s *HistoryWriteStats) string {
	return fmt.Sprintf("%d statements, %d rows, %d split", s.Statements.Load(), s.Rows.Load(), s.Split.Load())
}
