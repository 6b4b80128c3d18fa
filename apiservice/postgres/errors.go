package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

var (
	// ErrNotFound reports that the requested row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate reports a unique constraint violation, e.g. a taken username.
	ErrDuplicate = errors.New("already exists")
	// ErrUnavailable wraps failures to reach or use the database at all,
	// so the API can answer 503 instead of 500.
	ErrUnavailable = errors.New("database unavailable")
)

// wrapErr classifies a driver or GORM error as one of the sentinels and
// adds op as context; the original error stays in the chain.
func wrapErr(op string, err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case isUnavailable(err):
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	case errors.As(err, &pgErr) && pgErr.Code == "23503": // foreign_key_violation
		// The row refers to a user (the only foreign key) that does not exist.
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return fmt.Errorf("%s: %w: %w", op, ErrDuplicate, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unavailableCodes are the SQLSTATEs of a server refusing all work for
// now (too many connections, shutting down, starting up), besides class
// 08 (connection exception).
var unavailableCodes = []string{"53300", "57P01", "57P02", "57P03"}

// isUnavailable reports whether err means the database could not be
// reached or used at all, as opposed to rejecting a particular statement.
func isUnavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr):
		// Any failure to set up a connection, a refused login included:
		// no query can run either way.
		return true
	case errors.As(err, &pgErr):
		return strings.HasPrefix(pgErr.Code, "08") || slices.Contains(unavailableCodes, pgErr.Code)
	case errors.As(err, &netErr),
		// Waiting for a pooled connection or for the server past the
		// caller's deadline: the database did not answer in time.
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	// database/sql's "database is closed" error is unexported.
	msg := err.Error()
	return strings.Contains(msg, "sql: database is closed") || strings.Contains(msg, "conn closed")
}
