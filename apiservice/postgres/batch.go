package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// DefaultHistoryWriters is the default of Config.HistoryWriters.
const DefaultHistoryWriters = 4

const (
	maxHistoryBatch = 32
	// historyBatchTimeout bounds a statement whose callers have no deadline.
	historyBatchTimeout = 5 * time.Second
)

// historyWriters saves concurrent AddHistory calls several rows per
// INSERT (group commit): each of n goroutines takes the next call and those
// queued behind it, so a lone call is saved at once. Each caller still gets
// its own outcome: a batch that fails for one row's sake is retried row by
// row, and a caller that left before its batch was sent is dropped from it.
type historyWriters struct {
	sql   *sql.DB
	queue chan *historyCall
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	stats HistoryWriteStats
}

// HistoryWriteStats count history INSERTs since Open; Rows / Statements is the mean batch.
type HistoryWriteStats struct {
	Statements atomic.Uint64 // INSERT statements run (successful or not)
	Rows       atomic.Uint64 // rows saved
	Split      atomic.Uint64 // batches that failed for one row's sake and were retried row by row
}

// HistoryWriteStats returns the history writers' counters.
func (db *DB) HistoryWriteStats() *HistoryWriteStats { return &db.writers.stats }

// historyCall is one AddHistory waiting for a writer.
type historyCall struct {
	ctx  context.Context
	row  *historyRow
	done chan error // buffered 1
}

func newHistoryWriters(db *sql.DB, n int) *historyWriters {
	w := &historyWriters{sql: db, queue: make(chan *historyCall), stop: make(chan struct{})}
	for range n {
		w.wg.Go(w.run)
	}
	return w
}

// close stops the writers after the batches in flight; waiting calls fail.
func (w *historyWriters) close() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// errStoreClosed answers calls made after Close: a 503, like any unavailable database.
var errStoreClosed = fmt.Errorf("%w: store closed", ErrUnavailable)

// add saves row through a writer, setting its ID.
func (w *historyWriters) add(ctx context.Context, row *historyRow) error {
	c := &historyCall{ctx: ctx, row: row, done: make(chan error, 1)}
	select {
	case w.queue <- c:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.stop:
		return errStoreClosed
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		// The batch in flight may still save the row, as a cancelled statement may.
		return ctx.Err()
	}
}

func (w *historyWriters) run() {
	batch := make([]*historyCall, 0, maxHistoryBatch)
	for {
		select {
		case c := <-w.queue:
			batch = append(batch[:0], c)
		case <-w.stop:
			return
		}
	more:
		for len(batch) < maxHistoryBatch {
			select {
			case c := <-w.queue:
				batch = append(batch, c)
			default:
				break more
			}
		}
		w.save(batch)
	}
}

// save inserts the rows of the calls still waiting and answers every call.
func (w *historyWriters) save(batch []*historyCall) {
	live := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.done <- err
		} else {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return
	}
	err := w.insert(live)
	if err == nil || len(live) == 1 || isUnavailable(err) {
		for _, c := range live {
			c.done <- err
		}
		return
	}
	// A row made the statement fail: give each call its own outcome.
	w.stats.Split.Add(1)
	for _, c := range live {
		c.done <- w.insert([]*historyCall{c})
	}
}

// insert saves the calls' rows in one statement and sets their IDs. It
// runs on pgx directly: through GORM this hot statement measured slower
// (docs/performance.md).
func (w *historyWriters) insert(calls []*historyCall) error {
	ctx, cancel := batchContext(calls)
	defer cancel()
	w.stats.Statements.Add(1)
	args := make([]any, 0, historyColumns*len(calls))
	for _, c := range calls {
		r := c.row
		args = append(args, r.UserID, r.RequestedAt, r.Symbol, r.Name, r.Open, r.High, r.Low, r.Close, r.Volume, r.QuotedAt)
	}
	conn, err := w.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var ids []int64
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("history insert: driver connection is %T, want pgx's", dc)
		}
		rows, err := pc.Conn().Query(ctx, insertSQL[len(calls)-1], args...)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err != nil {
		return err
	}
	if len(ids) != len(calls) {
		return fmt.Errorf("insert %d history rows: %d ids returned", len(calls), len(ids))
	}
	// The sequence hands out ids in VALUES order, whatever order RETURNING uses.
	slices.Sort(ids)
	for i, c := range calls {
		c.row.ID = ids[i]
	}
	w.stats.Rows.Add(uint64(len(calls)))
	return nil
}

// historyColumns is the number of values insertSQL takes per row.
const historyColumns = 10

// insertSQL[n-1] inserts n history rows and returns their ids.
var insertSQL = func() []string {
	out := make([]string, maxHistoryBatch)
	var rows []string
	for n := range maxHistoryBatch {
		params := make([]string, historyColumns)
		for c := range params {
			params[c] = fmt.Sprintf("$%d", n*historyColumns+c+1)
		}
		rows = append(rows, "("+strings.Join(params, ", ")+")")
		out[n] = "INSERT INTO history (user_id, requested_at, symbol, name, open, high, low, close, volume, quoted_at) VALUES " +
			strings.Join(rows, ", ") + " RETURNING id"
	}
	return out
}()

// batchContext lasts until the latest deadline of the calls: no caller's
// own cancellation aborts a statement that also carries other rows.
func batchContext(calls []*historyCall) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range calls {
		d, ok := c.ctx.Deadline()
		if !ok {
			latest = time.Now().Add(historyBatchTimeout)
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}
