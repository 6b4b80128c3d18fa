//go:build integration

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/apiservice/postgres/pgtest"
)

// openDB opens a migrated store on a fresh database of its own.
func openDB(t testing.TB) (*postgres.DB, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxOpenConns: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db, url
}

func mustCreateUser(t testing.TB, db *postgres.DB, name string) postgres.User {
	t.Helper()
	u, err := db.CreateUser(context.Background(), postgres.User{Username: name, Email: name + "@example.com", PasswordHash: "$2a$10$hash"})
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	db, url := openDB(t) // migrated once
	ctx := context.Background()
	for i := range 2 {
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("Migrate again (%d): %v", i+1, err)
		}
	}
	assertSchema(t, url)
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Separate pools stand in for separate processes starting at once.
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxOpenConns: 2})
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			errs[i] = db.Migrate(ctx)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	assertSchema(t, url)
}

// assertSchema checks the tables and indexes Migrate promises, and that
// the schema version was recorded once.
func assertSchema(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		t.Fatalf("list indexes: %v", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list indexes: %v", err)
	}
	for _, want := range []string{"history_lower_symbol_idx", "history_pkey", "history_user_requested_idx", "rate_limits_pkey", "schema_migrations_pkey", "stock_counts_pkey", "users_pkey", "users_username_key", "users_username_lower_key"} {
		if !slices.Contains(got, want) {
			t.Errorf("index %s missing; have %v", want, got)
		}
	}
	var versions int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatalf("count versions: %v", err)
	}
	if versions != 7 {
		t.Errorf("schema_migrations has %d rows, want 7", versions)
	}
	// Migration 3 created them, migration 7 dropped them again.
	var notify int
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'users_notify%')
		+ (SELECT count(*) FROM pg_proc WHERE proname = 'users_notify_change')`).Scan(&notify)
	if err != nil {
		t.Fatalf("count notify triggers: %v", err)
	}
	if notify != 0 {
		t.Errorf("%d users_notify triggers/functions left, want none", notify)
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()

	before := time.Now().Add(-time.Second)
	in := postgres.User{Username: "alice", Email: "alice@example.com", PasswordHash: "$2a$10$abc", Superuser: true}
	alice, err := db.CreateUser(ctx, in)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if alice.ID == 0 {
		t.Error("CreateUser: ID not set")
	}
	if alice.CreatedAt.Location() != time.UTC || alice.CreatedAt.Before(before) || alice.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreateUser: CreatedAt = %v, want about now in UTC", alice.CreatedAt)
	}
	in.ID, in.CreatedAt = alice.ID, alice.CreatedAt
	if alice != in {
		t.Errorf("CreateUser = %+v, want %+v", alice, in)
	}

	for _, name := range []string{"alice", "Alice", "ALICE"} {
		if _, err := db.CreateUser(ctx, postgres.User{Username: name, PasswordHash: "x"}); !errors.Is(err, postgres.ErrDuplicate) {
			t.Errorf("CreateUser(%q) after alice: error = %v, want ErrDuplicate", name, err)
		}
	}
	bob := mustCreateUser(t, db, "bob")

	tests := []struct {
		name    string
		lookup  func() (postgres.User, error)
		want    postgres.User
		wantErr error
	}{
		{"by name", func() (postgres.User, error) { return db.UserByName(ctx, "alice") }, alice, nil},
		{"by name other", func() (postgres.User, error) { return db.UserByName(ctx, "bob") }, bob, nil},
		{"by name is exact", func() (postgres.User, error) { return db.UserByName(ctx, "Alice") }, postgres.User{}, postgres.ErrNotFound},
		{"by name missing", func() (postgres.User, error) { return db.UserByName(ctx, "carol") }, postgres.User{}, postgres.ErrNotFound},
		{"by id", func() (postgres.User, error) { return db.UserByID(ctx, alice.ID) }, alice, nil},
		{"by id missing", func() (postgres.User, error) { return db.UserByID(ctx, bob.ID+1000) }, postgres.User{}, postgres.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.lookup()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHistoryPagination(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	alice := mustCreateUser(t, db, "alice")
	bob := mustCreateUser(t, db, "bob")

	// 23 entries for alice over 8 distinct request times (so most times
	// are shared and ID must break ties), interleaved with bob's, inserted
	// out of time order, some given in a non-UTC zone.
	base := time.Date(2026, 11, 27, 10, 20, 30, 123456789, time.UTC)
	zone := time.FixedZone("X", 5*3600)
	var want []postgres.HistoryEntry
	for i := range 23 {
		at := base.Add(time.Duration((i*5)%8) * time.Minute)
		if i%3 == 0 {
			at = at.In(zone)
		}
		e, err := db.AddHistory(ctx, alice.ID, postgres.HistoryEntry{
			RequestedAt: at, Symbol: fmt.Sprintf("S%d.US", i), Name: "NAME", Open: 1.5, High: 2.25, Low: 0.125, Close: float64(i), Volume: int64(i) * 1000,
			QuotedAt: time.Date(2026, 11, 26, 22, 0, 0, 0, zone),
		})
		if err != nil {
			t.Fatalf("AddHistory: %v", err)
		}
		if e.ID == 0 || e.RequestedAt.Location() != time.UTC || !e.RequestedAt.Equal(at.Truncate(time.Microsecond)) {
			t.Fatalf("AddHistory returned %+v", e)
		}
		want = append(want, e)
		if _, err := db.AddHistory(ctx, bob.ID, postgres.HistoryEntry{RequestedAt: at, Symbol: "BOB.US"}); err != nil {
			t.Fatalf("AddHistory(bob): %v", err)
		}
	}
	slices.SortFunc(want, func(a, b postgres.HistoryEntry) int {
		if c := b.RequestedAt.Compare(a.RequestedAt); c != 0 {
			return c
		}
		return int(b.ID - a.ID)
	})

	for _, limit := range []int{1, 5, 7, 23, 100} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			var got []postgres.HistoryEntry
			var cursor *postgres.HistoryCursor
			for pages := 0; ; pages++ {
				if pages > 30 {
					t.Fatal("pagination does not end")
				}
				page, err := db.History(ctx, alice.ID, limit, cursor)
				if err != nil {
					t.Fatalf("History: %v", err)
				}
				if len(page) > limit {
					t.Fatalf("page of %d entries, limit %d", len(page), limit)
				}
				got = append(got, page...)
				if len(page) < limit {
					break
				}
				last := page[len(page)-1]
				cursor = &postgres.HistoryCursor{RequestedAt: last.RequestedAt, ID: last.ID}
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged history differs:\ngot  %v\nwant %v", ids(got), ids(want))
			}
		})
	}

	t.Run("fields round-trip in UTC", func(t *testing.T) {
		page, err := db.History(ctx, alice.ID, 1, nil)
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		e := page[0]
		if e.QuotedAt.Location() != time.UTC || !e.QuotedAt.Equal(time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)) {
			t.Errorf("QuotedAt = %v", e.QuotedAt)
		}
		if e.Name != "NAME" || e.Open != 1.5 || e.High != 2.25 || e.Low != 0.125 {
			t.Errorf("entry = %+v", e)
		}
	})

	t.Run("other users never seen", func(t *testing.T) {
		page, err := db.History(ctx, bob.ID, 100, nil)
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		if len(page) != 23 {
			t.Errorf("bob has %d entries, want 23", len(page))
		}
		for _, e := range page {
			if e.Symbol != "BOB.US" || !e.QuotedAt.IsZero() {
				t.Errorf("bob sees %+v", e)
			}
		}
		none, err := db.History(ctx, bob.ID+alice.ID+100, 10, nil)
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("History(unknown user) = %v, %v; want empty non-nil", none, err)
		}
	})

	t.Run("quote times with and without a value in one page", func(t *testing.T) {
		carol := mustCreateUser(t, db, "carol")
		quoted := time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)
		for i := range 4 {
			e := postgres.HistoryEntry{RequestedAt: base.Add(time.Duration(i) * time.Second), Symbol: "C.US"}
			if i%2 == 0 {
				e.QuotedAt = quoted
			}
			if _, err := db.AddHistory(ctx, carol.ID, e); err != nil {
				t.Fatalf("AddHistory: %v", err)
			}
		}
		page, err := db.History(ctx, carol.ID, 10, nil)
		if err != nil || len(page) != 4 {
			t.Fatalf("History = %d entries, %v; want 4", len(page), err)
		}
		for _, e := range page { // newest first: i = 3, 2, 1, 0
			i := int(e.RequestedAt.Sub(base).Round(time.Second) / time.Second) // base has nanoseconds; stored at µs
			if want := i%2 == 0; !e.QuotedAt.IsZero() != want || (want && !e.QuotedAt.Equal(quoted)) {
				t.Errorf("entry %d: QuotedAt = %v, want set: %v", i, e.QuotedAt, want)
			}
		}
	})

	t.Run("bad limit", func(t *testing.T) {
		if _, err := db.History(ctx, alice.ID, 0, nil); err == nil {
			t.Error("History(limit 0) succeeded")
		}
	})

	t.Run("unknown user cannot get history", func(t *testing.T) {
		_, err := db.AddHistory(ctx, bob.ID+alice.ID+100, postgres.HistoryEntry{Symbol: "X"})
		if !errors.Is(err, postgres.ErrNotFound) || errors.Is(err, postgres.ErrUnavailable) {
			t.Errorf("AddHistory(unknown user) error = %v, want ErrNotFound", err)
		}
	})
}

func ids(es []postgres.HistoryEntry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func TestTopStocks(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()

	empty, err := db.TopStocks(ctx, 5)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("TopStocks on empty history = %v, %v; want empty non-nil", empty, err)
	}

	alice := mustCreateUser(t, db, "alice")
	bob := mustCreateUser(t, db, "bob")
	adds := []struct {
		user   int64
		symbol string
	}{
		{alice.ID, "AAPL.US"}, {bob.ID, "aapl.us"}, {alice.ID, "Aapl.Us"}, {bob.ID, "AAPL.US"},
		{alice.ID, "ZZZ.US"}, {bob.ID, "zzz.us"}, {alice.ID, "ZZZ.US"},
		{alice.ID, "MSFT.US"}, {bob.ID, "MSFT.US"}, {bob.ID, "msft.us"},
		{alice.ID, "B.US"}, {bob.ID, "A.US"}, {alice.ID, "_X"},
		{bob.ID, "^SPX"}, {bob.ID, "^spx"},
	}
	for _, a := range adds {
		if _, err := db.AddHistory(ctx, a.user, postgres.HistoryEntry{Symbol: a.symbol}); err != nil {
			t.Fatalf("AddHistory: %v", err)
		}
	}
	// Ties go by byte order: "^" (0x5e) < "_" (0x5f) < "a".
	all := []postgres.StockCount{
		{"aapl.us", 4}, {"msft.us", 3}, {"zzz.us", 3}, {"^spx", 2}, {"_x", 1}, {"a.us", 1}, {"b.us", 1},
	}
	tests := []struct {
		n    int
		want []postgres.StockCount
	}{
		{1, all[:1]},
		{2, all[:2]},
		{3, all[:3]},
		{5, all[:5]},
		{100, all},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			got, err := db.TopStocks(ctx, tt.n)
			if err != nil {
				t.Fatalf("TopStocks: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("TopStocks(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
	if _, err := db.TopStocks(ctx, 0); err == nil {
		t.Error("TopStocks(0) succeeded")
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("nothing listening", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		url := "postgres://postgres:s3cret@" + addr + "/x?sslmode=disable"
		db, err := postgres.Open(ctx, postgres.Config{URL: url})
		if err == nil {
			db.Close()
			t.Fatal("Open succeeded with nothing listening")
		}
		if !errors.Is(err, postgres.ErrUnavailable) {
			t.Errorf("Open error = %v, want ErrUnavailable", err)
		}
		if msg := err.Error(); strings.Contains(msg, "s3cret") {
			t.Errorf("error %q leaks the password", msg)
		}
	})

	t.Run("login refused", func(t *testing.T) {
		u, err := neturl.Parse(pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		u.User = neturl.UserPassword("no_such_role_x7", "s3cret")
		url := u.String()
		db, err := postgres.Open(ctx, postgres.Config{URL: url})
		if err == nil {
			db.Close()
			t.Fatalf("Open(%s) succeeded with an unknown role", u.Redacted())
		}
		if !errors.Is(err, postgres.ErrUnavailable) {
			t.Errorf("Open error = %v, want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error %q leaks the password", err)
		}
	})

	t.Run("closed pool", func(t *testing.T) {
		db, err := postgres.Open(ctx, postgres.Config{URL: pgtest.NewDatabase(t)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := db.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		db.Close()
		if err := db.Ping(ctx); !errors.Is(err, postgres.ErrUnavailable) {
			t.Errorf("Ping after Close error = %v, want ErrUnavailable", err)
		}
		if _, err := db.UserByName(ctx, "alice"); !errors.Is(err, postgres.ErrUnavailable) {
			t.Errorf("UserByName after Close error = %v, want ErrUnavailable", err)
		}
	})

	t.Run("deadline passed", func(t *testing.T) {
		db, _ := openDB(t)
		expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel()
		if _, err := db.TopStocks(expired, 5); !errors.Is(err, postgres.ErrUnavailable) {
			t.Errorf("TopStocks with expired deadline error = %v, want ErrUnavailable", err)
		}
	})
}

func BenchmarkAddHistory(b *testing.B) {
	db, _ := openDB(b)
	ctx := context.Background()
	u := mustCreateUser(b, db, "bench")
	e := postgres.HistoryEntry{Symbol: "AAPL.US", Name: "APPLE", Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 1000, QuotedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.AddHistory(ctx, u.ID, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHistoryPage(b *testing.B) {
	db, _ := openDB(b)
	ctx := context.Background()
	u := mustCreateUser(b, db, "bench")
	e := postgres.HistoryEntry{Symbol: "AAPL.US", Name: "APPLE", Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 1000, QuotedAt: time.Now()}
	for range 101 {
		if _, err := db.AddHistory(ctx, u.ID, e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if es, err := db.History(ctx, u.ID, 101, nil); err != nil || len(es) != 101 {
			b.Fatal(len(es), err)
		}
	}
}

// TestMigrateRefusesUsernamesClashingByCase: a database holding "Bob" and
// "bob" (possible before migration 5) is not changed; the error names
// both, and once one is renamed the migration goes through.
func TestMigrateRefusesUsernamesClashingByCase(t *testing.T) {
	t.Parallel()
	db, url := openDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		`DROP INDEX users_username_lower_key`,
		`DELETE FROM schema_migrations WHERE version >= 5`,
		`INSERT INTO users (username, password_hash) VALUES ('Bob', 'x'), ('bob', 'x'), ('carol', 'x')`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	err = db.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "Bob (id") || !strings.Contains(err.Error(), "bob (id") {
		t.Fatalf("Migrate with Bob and bob: %v, want an error naming both", err)
	}
	if _, err := conn.Exec(ctx, `UPDATE users SET username = 'bob2' WHERE username = 'Bob'`); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after the rename: %v", err)
	}
	assertSchema(t, url)
}
