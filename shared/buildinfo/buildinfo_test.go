package buildinfo

import (
	"runtime"
	"testing"
)

func TestInfo(t *testing.T) {
	i := New("apiservice", "v1.2.3", "abc1234")
	if got, want := i.String(), "apiservice v1.2.3 (commit abc1234, "+runtime.Version()+")"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if d := New("x", "", ""); d.Version != "dev" || d.Commit == "" {
		t.Errorf("defaults = %+v, want version dev and some commit", d)
	}
}
