package pgtest

import (
	"regexp"
	"strings"
	"testing"
)

func TestDatabaseName(t *testing.T) {
	valid := regexp.MustCompile(`^pgtest_[a-z0-9_]*_[0-9a-f]{16}$`)
	for _, name := range []string{"TestX", "TestX/sub case#01", strings.Repeat("Long", 40), ""} {
		got := databaseName(name)
		if !valid.MatchString(got) || len(got) > 63 {
			t.Errorf("databaseName(%q) = %q, want a valid identifier of at most 63 bytes", name, got)
		}
	}
	if a, b := databaseName("T"), databaseName("T"); a == b {
		t.Errorf("databaseName gave %q twice", a)
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", want: "postgres://postgres@127.0.0.1:5432/db1?sslmode=disable"},
		{in: "postgresql://u:p@h/", want: "postgresql://u:p@h/db1"},
		{in: "postgres://u@h", want: "postgres://u@h/db1"},
		{in: "host=h user=u", wantErr: true},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.in, "db1")
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
