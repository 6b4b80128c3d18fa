//go:build integration

package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/apiservice/postgres/pgtest"
)

// openWithConn opens and migrates a fresh database with cfg (its URL
// set here), plus a plain connection to it for checks; both are closed
// when the test ends.
func openWithConn(t *testing.T, cfg postgres.Config) (*postgres.DB, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	cfg.URL = pgtest.NewDatabase(t)
	db, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	return db, conn
}

// countFromHistory is TopStocks computed the slow way, straight from history.
func countFromHistory(t *testing.T, conn *pgx.Conn, n int) []postgres.StockCount {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
		SELECT lower(symbol), count(*) FROM history GROUP BY 1
		ORDER BY 2 DESC, lower(symbol) COLLATE "C" LIMIT $1`, n)
	if err != nil {
		t.Fatalf("count history: %v", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (postgres.StockCount, error) {
		var c postgres.StockCount
		err := r.Scan(&c.Stock, &c.TimesRequested)
		return c, err
	})
	if err != nil {
		t.Fatalf("count history: %v", err)
	}
	return out
}

// TestTopStocksCountsStayExact hammers one hot symbol and a few others from
// many goroutines, then deletes a user (cascading to their history), and
// checks the maintained counts equal a full count of history each time.
func TestTopStocksCountsStayExact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, conn := openWithConn(t, postgres.Config{MaxOpenConns: 16})
	alice := mustCreateUser(t, db, "alice")
	bob := mustCreateUser(t, db, "bob")

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			user := alice.ID
			if g%2 == 1 {
				user = bob.ID
			}
			for i := range 25 {
				sym := "HOT.US"
				if i%5 == 0 {
					sym = fmt.Sprintf("t%d.us", (g+i)%7)
				}
				if _, err := db.AddHistory(ctx, user, postgres.HistoryEntry{Symbol: sym}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AddHistory: %v", err)
	}
	check := func(when string) {
		t.Helper()
		got, err := db.TopStocks(ctx, 100)
		if err != nil {
			t.Fatalf("%s: TopStocks: %v", when, err)
		}
		if want := countFromHistory(t, conn, 100); !slices.Equal(got, want) {
			t.Errorf("%s: TopStocks = %v, want %v", when, got, want)
		}
	}
	check("after concurrent inserts")
	if got, _ := db.TopStocks(ctx, 1); len(got) != 1 || got[0] != (postgres.StockCount{Stock: "hot.us", TimesRequested: 640}) {
		t.Errorf("top stock = %v, want hot.us 640", got)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM users WHERE id = $1`, bob.ID); err != nil {
		t.Fatal(err)
	}
	check("after deleting a user")
}

// TestMigrateCountsExistingHistory checks that migration 2 counts the rows
// already in history when it runs (an upgrade of a live database).
func TestMigrateCountsExistingHistory(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	u := mustCreateUser(t, db, "alice")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Go back to a version 1 database holding history rows.
	for _, stmt := range []string{
		`DROP TRIGGER history_count_insert ON history`,
		`DROP TRIGGER history_count_delete ON history`,
		`DROP TABLE stock_counts`,
		`DELETE FROM schema_migrations WHERE version >= 2`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO history (user_id, requested_at, symbol, open, high, low, close)
		SELECT $1, now(), CASE WHEN g % 3 = 0 THEN 'MSFT.US' ELSE 'aapl.us' END, 1, 1, 1, 1
		FROM generate_series(1, 300) g`, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	got, err := db.TopStocks(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []postgres.StockCount{{Stock: "aapl.us", TimesRequested: 200}, {Stock: "msft.us", TimesRequested: 100}}
	if !slices.Equal(got, want) {
		t.Errorf("TopStocks after upgrade = %v, want %v", got, want)
	}
}

// TestAddHistoryGroupsConcurrentCalls: with one writer and many callers,
// rows are saved several per statement, and every caller gets the id of
// its own row.
func TestAddHistoryGroupsConcurrentCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, conn := openWithConn(t, postgres.Config{MaxOpenConns: 4, HistoryWriters: 1})
	users := []postgres.User{mustCreateUser(t, db, "alice"), mustCreateUser(t, db, "bob")}
	type saved struct {
		id     int64
		user   int64
		symbol string
	}
	var (
		mu  sync.Mutex
		all []saved
		wg  sync.WaitGroup
	)
	for g := range 64 {
		wg.Go(func() {
			for i := range 10 {
				u := users[(g+i)%2].ID
				sym := fmt.Sprintf("S%d-%d.US", g, i)
				e, err := db.AddHistory(ctx, u, postgres.HistoryEntry{Symbol: sym})
				if err != nil {
					t.Errorf("AddHistory: %v", err)
					return
				}
				mu.Lock()
				all = append(all, saved{e.ID, u, sym})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, s := range all {
		var user int64
		var sym string
		if err := conn.QueryRow(ctx, `SELECT user_id, symbol FROM history WHERE id = $1`, s.id).Scan(&user, &sym); err != nil {
			t.Fatalf("row %d: %v", s.id, err)
		}
		if user != s.user || sym != s.symbol {
			t.Errorf("id %d holds (%d, %s), its caller saved (%d, %s)", s.id, user, sym, s.user, s.symbol)
		}
	}
	st := db.HistoryWriteStats()
	rows, statements := st.Rows.Load(), st.Statements.Load()
	if rows != 640 || statements >= rows {
		t.Errorf("%d rows in %d statements, want 640 rows in fewer statements", rows, statements)
	}
	t.Logf("640 rows in %d statements", statements)
	if got, want := mustTop(t, db, 1000), countFromHistory(t, conn, 1000); !slices.Equal(got, want) {
		t.Errorf("TopStocks = %v, want %v", got, want)
	}
}

func mustTop(t *testing.T, db *postgres.DB, n int) []postgres.StockCount {
	t.Helper()
	got, err := db.TopStocks(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
