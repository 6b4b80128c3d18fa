package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Defaults of the history writers (Config.HistoryWriters, maxHistoryBatch).
const (
	DefaultHistoryWriters = 4
	maxHistoryBatch       = 32
	// historyBatchTimeout bounds one batch statement when no caller in it
	// has a deadline (every request-path caller has one).
	historyBatchTimeout = 5 * time.Second
)

// historyWriters turns concurrent AddHistory calls into multi-row INSERTs:
// group commit in the application. Each of n goroutines takes the next
// waiting call and every call queued behind it (up to maxHistoryBatch)
// and saves them in one statement, so under load one round trip, one
// commit and one WAL flush serve many requests; alone, a call is inserted
// at once, exactly as before. No call waits for company.
//
// Every caller still gets its own outcome: a statement that fails for a
// reason of one row (a user removed meanwhile: foreign key) is retried
// row by row, and a caller whose context ended before its row was sent is
// dropped from the batch, so its row is not saved.
type historyWriters struct {
	db    *DB
	queue chan *historyCall
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	statements, rows, split atomic.Uint64
}

// HistoryWriteStats count the statements that saved history rows, since
// the store was opened. Rows / Statements is about the mean batch size
// (failed statements count in Statements only).
type HistoryWriteStats struct {
	Statements uint64 // INSERT statements run (successful or not)
	Rows       uint64 // rows saved
	Split      uint64 // batches that failed for one row's sake and were retried row by row
}

// HistoryWriteStats returns the history writers' counters.
func (db *DB) HistoryWriteStats() HistoryWriteStats {
	w := db.writers
	return HistoryWriteStats{Statements: w.statements.Load(), Rows: w.rows.Load(), Split: w.split.Load()}
}

type historyCall struct {
	ctx  context.Context
	row  historyRow
	done chan historyResult // buffered 1
}

type historyResult struct {
	id  int64
	err error
}

func newHistoryWriters(db *DB, n int) *historyWriters {
	w := &historyWriters{db: db, queue: make(chan *historyCall), stop: make(chan struct{})}
	for range n {
		w.wg.Go(w.run)
	}
	return w
}

// close stops the writers after the batches in flight; calls still
// waiting fail.
func (w *historyWriters) close() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// errStoreClosed answers calls made after Close: the database is gone
// for this process, a 503 like any other unavailable database.
var errStoreClosed = fmt.Errorf("%w: store closed", ErrUnavailable)

// add saves row through a writer and returns its id.
func (w *historyWriters) add(ctx context.Context, row historyRow) (int64, error) {
	c := &historyCall{ctx: ctx, row: row, done: make(chan historyResult, 1)}
	select {
	case w.queue <- c:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-w.stop:
		return 0, errStoreClosed
	}
	select {
	case r := <-c.done:
		return r.id, r.err
	case <-ctx.Done():
		// The row may still be saved by the batch in flight: the same
		// ambiguity as a statement cancelled after it reached the server.
		return 0, ctx.Err()
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

// save inserts the live calls of batch and answers every call.
func (w *historyWriters) save(batch []*historyCall) {
	live := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.done <- historyResult{err: err}
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := batchContext(live)
	defer cancel()
	if len(live) == 1 {
		id, err := w.insert(ctx, []historyRow{live[0].row})
		live[0].done <- first(id, err)
		return
	}
	rows := make([]historyRow, len(live))
	for i, c := range live {
		rows[i] = c.row
	}
	ids, err := w.insert(ctx, rows)
	if err == nil {
		for i, c := range live {
			c.done <- historyResult{id: ids[i]}
		}
		return
	}
	if isUnavailable(err) {
		for _, c := range live {
			c.done <- historyResult{err: err}
		}
		return
	}
	// A row made the statement fail: give each call its own outcome.
	w.split.Add(1)
	for _, c := range live {
		if err := c.ctx.Err(); err != nil {
			c.done <- historyResult{err: err}
			continue
		}
		ctx, cancel := batchContext([]*historyCall{c})
		id, err := w.insert(ctx, []historyRow{c.row})
		cancel()
		c.done <- first(id, err)
	}
}

// insert runs one statement and counts it.
func (w *historyWriters) insert(ctx context.Context, rows []historyRow) ([]int64, error) {
	w.statements.Add(1)
	ids, err := w.db.insertHistory(ctx, rows)
	if err == nil {
		w.rows.Add(uint64(len(rows)))
	}
	return ids, err
}

func first(ids []int64, err error) historyResult {
	if err != nil {
		return historyResult{err: err}
	}
	return historyResult{id: ids[0]}
}

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

// insertSQL[n-1] inserts n history rows; built once.
var insertSQL = func() []string {
	out := make([]string, maxHistoryBatch)
	var sb strings.Builder
	sb.WriteString(`INSERT INTO history (user_id, requested_at, symbol, name, open, high, low, close, volume, quoted_at) VALUES `)
	for n := range maxHistoryBatch {
		if n > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(")
		for c := range insertColumns {
			if c > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "$%d", n*insertColumns+c+1)
		}
		sb.WriteString(")")
		out[n] = sb.String() + " RETURNING id"
	}
	return out
}()

// insertColumns is the number of values insertSQL takes per row.
const insertColumns = 10

// insertHistory inserts rows in one statement and returns their ids in the
// order of rows. The ids come from the column's sequence as the VALUES
// rows are inserted, in order, so the ascending ids returned belong to the
// rows in order.
//
// It runs on pgx directly, under database/sql's pool, because this is the
// one statement of every /stock request and GORM's callbacks and
// database/sql's wrappers cost a large share of it; pgx prepares each
// batch size once per connection.
func (db *DB) insertHistory(ctx context.Context, rows []historyRow) ([]int64, error) {
	args := make([]any, 0, insertColumns*len(rows))
	for _, r := range rows {
		args = append(args, r.UserID, r.RequestedAt, r.Symbol, r.Name, r.Open, r.High, r.Low, r.Close, r.Volume, r.QuotedAt)
	}
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ids := make([]int64, 0, len(rows))
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("history insert: driver connection is %T, want pgx's", dc)
		}
		res, err := pc.Conn().Query(ctx, insertSQL[len(rows)-1], args...)
		if err != nil {
			return err
		}
		defer res.Close()
		for res.Next() {
			var id int64
			if err := res.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return res.Err()
	})
	if err != nil {
		return nil, err
	}
	if len(ids) != len(rows) {
		return nil, fmt.Errorf("insert %d history rows: %d ids returned", len(rows), len(ids))
	}
	slices.Sort(ids)
	return ids, nil
}
