package metrics

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stockquote/stockquote/shared/buildinfo"
)

func TestNewRegistryBuildInfo(t *testing.T) {
	reg := NewRegistry(buildinfo.New("apiservice", "v1.2.3", "abc1234"))
	want := `
# HELP stockquote_build_info Build information of the running binary; the value is always 1.
# TYPE stockquote_build_info gauge
stockquote_build_info{commit="abc1234",goversion="` + runtime.Version() + `",program="apiservice",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "stockquote_build_info"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "go_goroutines", "process_start_time_seconds"); err != nil || n != 2 {
		t.Errorf("runtime and process collectors: %d metrics, %v; want 2", n, err)
	}
}
