package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

func TestWrapErr(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		wantSentinel error // nil: none of the sentinels
	}{
		{"record not found", gorm.ErrRecordNotFound, ErrNotFound},
		{"unique violation", &pgconn.PgError{Code: "23505"}, ErrDuplicate},
		{"wrapped unique violation", fmt.Errorf("x: %w", &pgconn.PgError{Code: "23505"}), ErrDuplicate},
		{"foreign key violation (the referenced user is gone)", &pgconn.PgError{Code: "23503"}, ErrNotFound},
		{"syntax error", &pgconn.PgError{Code: "42601"}, nil},
		{"connection exception", &pgconn.PgError{Code: "08006"}, ErrUnavailable},
		{"too many connections", &pgconn.PgError{Code: "53300"}, ErrUnavailable},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, ErrUnavailable},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, ErrUnavailable},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, ErrUnavailable},
		{"deadline", fmt.Errorf("acquire: %w", context.DeadlineExceeded), ErrUnavailable},
		{"conn closed", pgconn.ErrConnClosed, ErrUnavailable},
		{"unexpected EOF", io.ErrUnexpectedEOF, ErrUnavailable},
		{"pool closed", errors.New("sql: database is closed"), ErrUnavailable},
		{"canceled by caller", context.Canceled, nil},
		{"other", errors.New("boom"), nil},
	}
	sentinels := []error{ErrNotFound, ErrDuplicate, ErrUnavailable}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wrapErr("do thing", tt.err)
			if got == nil {
				t.Fatal("wrapErr returned nil")
			}
			for _, s := range sentinels {
				if is, want := errors.Is(got, s), s == tt.wantSentinel; is != want {
					t.Errorf("errors.Is(%q, %v) = %v, want %v", got, s, is, want)
				}
			}
			if tt.wantSentinel != ErrNotFound && !errors.Is(got, tt.err) {
				t.Errorf("wrapped error %q lost the original %q", got, tt.err)
			}
			if msg := got.Error(); len(msg) < 9 || msg[:9] != "do thing:" {
				t.Errorf("error %q does not start with the operation", msg)
			}
		})
	}
	if err := wrapErr("x", nil); err != nil {
		t.Errorf("wrapErr(nil) = %v, want nil", err)
	}
}
