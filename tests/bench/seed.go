package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// createDatabase creates a uniquely named database on the server at admin
// and returns its URL and a function that drops it.
func createDatabase(ctx context.Context, admin string) (dbURL string, drop func() error, err error) {
	name := "bench_" + randomHex(6)
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("parse -pg: %w", err)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u.Path = "/" + name
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		return err
	}
	return u.String(), drop, nil
}

// seedHistory fills history server-side: userRows rows for the user
// heavyID, and total-userRows more spread over the other users ids, all
// over 1,000 symbols (t0.us ... t999.us). Triggers are off while it runs,
// and stock_counts is rebuilt the way migration 2 does, so the load is one
// INSERT ... SELECT generate_series per user group, not 10M trigger calls.
func seedHistory(ctx context.Context, dbURL string, heavyID int64, others []int64, userRows, total int) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE history DISABLE TRIGGER USER`); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	const insert = `INSERT INTO history (user_id, requested_at, symbol, name, open, high, low, close, volume, quoted_at)
		SELECT $1::bigint, now() - g * interval '1 second', 'T' || (g % 1000) || '.US', 'TEST' || (g % 1000),
		       10, 11, 9, 10.5, 1000 + g, now() - g * interval '1 second'
		FROM generate_series(1, $2::bigint) g`
	if _, err := conn.Exec(ctx, insert, heavyID, userRows); err != nil {
		return fmt.Errorf("seed heavy user: %w", err)
	}
	if rest := total - userRows; rest > 0 && len(others) > 0 {
		per := rest / len(others)
		for i, id := range others {
			n := per
			if i == 0 {
				n += rest - per*len(others)
			}
			if _, err := conn.Exec(ctx, insert, id, n); err != nil {
				return fmt.Errorf("seed user %d: %w", id, err)
			}
		}
	}
	for _, stmt := range []string{
		`ALTER TABLE history ENABLE TRIGGER USER`,
		`DELETE FROM stock_counts`,
		`INSERT INTO stock_counts (stock, shard, n) SELECT lower(symbol), id % 16, count(*) FROM history GROUP BY 1, 2`,
		`VACUUM ANALYZE history`,
		`VACUUM ANALYZE stock_counts`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("seed: %s: %w", stmt, err)
		}
	}
	return nil
}

// maxHistoryID returns the largest history id; rows added later have larger ids.
func maxHistoryID(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM history`).Scan(&n)
	return n, err
}

// rowsAfter counts history rows with an id above id.
func rowsAfter(ctx context.Context, conn *pgx.Conn, id int64) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, `SELECT count(*) FROM history WHERE id > $1`, id).Scan(&n)
	return n, err
}
