// Package pgtest gives each test its own PostgreSQL database. An
// unreachable server fails the test, never skips it: a test that needs
// PostgreSQL and silently does not run proves nothing.
package pgtest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockquote/stockquote/shared/redact"
)

// NewDatabase creates an empty, uniquely named database on the server at
// $TEST_DATABASE_URL (default: the local server with trust auth; a role
// that may CREATE DATABASE) and returns a postgres:// URL for it. The
// database is dropped, with any connections still open to it, when the
// test finishes.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := cmp.Or(os.Getenv("TEST_DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: TEST_DATABASE_URL=%s: want a postgres:// URL", redact.URL(admin))
	}
	name := databaseName(t.Name())
	if err := exec(admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v (set TEST_DATABASE_URL)", err)
	}
	t.Cleanup(func() {
		// FORCE ends the connections the test left open.
		if err := exec(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	u.Path, u.RawPath = "/"+name, ""
	return u.String()
}

// databaseName is "pgtest_", a readable piece of the test name and a
// random suffix: a valid identifier (no quoting needed) within
// PostgreSQL's 63-byte limit.
func databaseName(testName string) string {
	readable := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(testName))
	return fmt.Sprintf("pgtest_%.32s_%016x", readable, rand.Uint64())
}

// exec runs one statement on the server at adminURL.
func exec(adminURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("cannot reach PostgreSQL at %s: %w", redact.URL(adminURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s at %s: %w", sql, redact.URL(adminURL), err)
	}
	return nil
}
