package buildinfo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInfo(t *testing.T) {
	i := New("apiservice", "v1.2.3", "abc1234")
	if got, want := i.String(), "apiservice v1.2.3 (commit abc1234, "+runtime.Version()+")"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if d := New("x", "", ""); d.Version != "dev" || d.Commit == "" {
		t.Errorf("defaults = %+v, want version dev and some commit", d)
	}
	want := `
# HELP stockquote_build_info Build information of the running binary; the value is always 1.
# TYPE stockquote_build_info gauge
stockquote_build_info{commit="abc1234",goversion="` + runtime.Version() + `",program="apiservice",version="v1.2.3"} 1
`
	if err := testutil.CollectAndCompare(i.Collector(), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
