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
