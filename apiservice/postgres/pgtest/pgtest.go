// Package pgtest gives tests their own PostgreSQL database. It is for
// tests only: it fails the test (never skips it) when the server cannot be
// reached, because a test that needs PostgreSQL and silently does not run
// proves nothing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockquote/stockquote/shared/redact"
)

// EnvURL names the environment variable holding the URL of the server (and
// of a database on it that can run CREATE DATABASE) tests use.
const EnvURL = "TEST_DATABASE_URL"

// DefaultURL is used when EnvURL is unset: the local server with trust auth.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the admin URL tests use: $TEST_DATABASE_URL or DefaultURL.
func ServerURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabase creates a fresh, uniquely named, empty database on the
// server at ServerURL and returns a postgres:// URL for it. The database
// is dropped (with any connections still open to it) when the test and
// its subtests finish. An unreachable server fails the test.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := ServerURL()
	name := databaseName(t.Name())

	dbURL, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %s=%s: %v", EnvURL, redact.URL(admin), err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: cannot reach PostgreSQL at %s (set %s): %v", redact.URL(admin), EnvURL, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s at %s: %v", name, redact.URL(admin), err)
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("pgtest: drop database %s: connect to %s: %v", name, redact.URL(admin), err)
			return
		}
		defer conn.Close(ctx)
		// FORCE terminates connections the test left open (PostgreSQL 13+).
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dbURL
}

// databaseName is "pgtest_", a readable piece of the test name and a
// random suffix, within PostgreSQL's 63-byte identifier limit.
func databaseName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 32 {
			break
		}
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	return "pgtest_" + b.String() + "_" + hex.EncodeToString(rnd[:])
}

// withDatabase returns serverURL with its database replaced by name.
func withDatabase(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("want a postgres:// URL")
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}
