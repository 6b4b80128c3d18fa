package check

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"k8s.io/apimachinery/pkg/api/resource"
)

// parseGoMemLimit parses a GOMEMLIMIT as the Go runtime does
// (runtime.parseByteCount): a non-negative integer, optionally followed by
// B, KiB, MiB, GiB or TiB; "off" is no limit. The runtime refuses to start
// on anything else, so a deployment must never set it.
func parseGoMemLimit(s string) (bytes int64, off bool, ok bool) {
	if s == "off" {
		return 0, true, true
	}
	num, mult := s, int64(1)
	for i, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if n, found := strings.CutSuffix(s, unit); found {
			num, mult = n, int64(1)<<(10*(i+1))
			break
		}
	}
	if mult == 1 {
		num = strings.TrimSuffix(s, "B")
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, false, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, false, false
	}
	return n * mult, false, true
}

func TestParseGoMemLimit(t *testing.T) {
	for s, want := range map[string]int64{"230MiB": 230 << 20, "1GiB": 1 << 30, "1000": 1000, "1000B": 1000, "0": 0} {
		if got, off, ok := parseGoMemLimit(s); !ok || off || got != want {
			t.Errorf("parseGoMemLimit(%q) = %d, %v, %v; want %d", s, got, off, ok, want)
		}
	}
	if _, off, ok := parseGoMemLimit("off"); !ok || !off {
		t.Error(`parseGoMemLimit("off") is not "no limit"`)
	}
	for _, s := range []string{"", "230M", "230MB", "1.5GiB", "-1", "MiB", "230 MiB", "230Mi"} {
		if _, _, ok := parseGoMemLimit(s); ok {
			t.Errorf("parseGoMemLimit(%q) accepted a value the Go runtime refuses", s)
		}
	}
}

// checkDerivedLimit fails unless limit is a GOMEMLIMIT the runtime accepts
// and, for a container memory limit of memBytes, leaves it 5-15% headroom
// (the chart and compose aim at 90%).
func checkDerivedLimit(t *testing.T, where, limit string, memBytes int64) {
	t.Helper()
	n, off, ok := parseGoMemLimit(limit)
	if !ok || off {
		t.Errorf("%s: GOMEMLIMIT %q, want a byte count the Go runtime accepts", where, limit)
		return
	}
	if ratio := float64(n) / float64(memBytes); ratio < 0.85 || ratio > 0.95 {
		t.Errorf("%s: GOMEMLIMIT %s is %.1f%% of the memory limit (%d bytes), want about 90%%", where, limit, 100*ratio, memBytes)
	}
}

// TestChartGoMemLimit checks each program's GOMEMLIMIT: 90% of its
// container's memory limit by default, whatever unit the limit is written
// in, an explicit goMemLimit as given, and none without a memory limit.
func TestChartGoMemLimit(t *testing.T) {
	limits := func(api, worker any) map[string]any {
		return map[string]any{
			"api":    map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": api}}},
			"worker": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": worker}}},
		}
	}
	tests := map[string]struct {
		vals              map[string]any
		api, worker       string // "" = unset
		derived           bool
		apiMem, workerMem string // the memory limits it is derived from
	}{
		"defaults":           {nil, "230MiB", "115MiB", true, "256Mi", "128Mi"},
		"binary units":       {limits("1Gi", "1536Mi"), "921MiB", "1382MiB", true, "1Gi", "1536Mi"},
		"decimal units":      {limits("500M", "1G"), "429MiB", "858MiB", true, "500M", "1G"},
		"fraction and bytes": {limits("1.5Gi", 268435456), "1382MiB", "230MiB", true, "1.5Gi", "268435456"},
		"explicit": {map[string]any{
			"api":    map[string]any{"goMemLimit": "200MiB"},
			"worker": map[string]any{"goMemLimit": "off"},
		}, "200MiB", "off", false, "", ""},
		"no memory limit": {limits(nil, nil), "", "", false, "", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, tc.vals)
			for _, p := range []struct{ component, want, mem string }{{"api", tc.api, tc.apiMem}, {"worker", tc.worker, tc.workerMem}} {
				d := appDeployment(t, r, p.component)
				c := d.Spec.Template.Spec.Containers[0]
				got, set := containerEnv(t, r, c).values["GOMEMLIMIT"]
				if got != p.want || set != (p.want != "") {
					t.Errorf("%s GOMEMLIMIT = %q (set: %v), want %q", p.component, got, set, p.want)
					continue
				}
				if _, _, ok := parseGoMemLimit(got); set && !ok {
					t.Errorf("%s GOMEMLIMIT %q: the Go runtime would refuse to start", p.component, got)
				}
				if !tc.derived {
					continue
				}
				mem, ok := c.Resources.Limits["memory"]
				if !ok || !mem.Equal(resource.MustParse(p.mem)) {
					t.Errorf("%s memory limit = %v, want %s", p.component, c.Resources.Limits, p.mem)
					continue
				}
				checkDerivedLimit(t, "chart "+p.component, got, mem.Value())
			}
		})
	}
}

// TestChartGoMemLimitRejected: a GOMEMLIMIT the Go runtime would refuse
// (it does not start) and a memory limit the chart cannot derive one from
// fail the install, naming what to set.
func TestChartGoMemLimitRejected(t *testing.T) {
	checkRenderRejects(t, map[string]renderReject{
		"decimal unit":      {map[string]any{"api": map[string]any{"goMemLimit": "200MB"}}, "schema"},
		"kubernetes unit":   {map[string]any{"worker": map[string]any{"goMemLimit": "100Mi"}}, "schema"},
		"fraction":          {map[string]any{"api": map[string]any{"goMemLimit": "1.5GiB"}}, "schema"},
		"exponent limit":    {map[string]any{"api": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "1e9"}}}}, "set api.goMemLimit"},
		"milli limit":       {map[string]any{"worker": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "128974848000m"}}}}, "set worker.goMemLimit"},
		"tiny memory limit": {map[string]any{"api": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "1Ki"}}}}, "set api.goMemLimit"},
	})
}

// benchGoMemLimit finds the GOMEMLIMIT the benchmark gives a program.
func benchGoMemLimit(t *testing.T, constName string) string {
	t.Helper()
	m := regexp.MustCompile(constName + `\s*=\s*"([^"]*)"`).FindStringSubmatch(readFile(t, "tests/bench/main.go"))
	if m == nil {
		t.Fatalf("tests/bench/main.go: no %s constant; the benchmark must run the programs with production's GOMEMLIMIT", constName)
	}
	return m[1]
}

// TestComposeGoMemLimit checks compose gives both programs a memory limit
// and a GOMEMLIMIT 90% of it, the same as the chart's defaults, and that
// the benchmark runs the programs with those same limits, so the peak RSS
// it reports is what a deployment gets.
func TestComposeGoMemLimit(t *testing.T) {
	p := mustLoadCompose(t)
	chart := mustRender(t, nil)
	for _, s := range []struct{ service, component, benchConst string }{
		{"apiservice", "api", "apiGoMemLimit"},
		{"stockservice", "worker", "workerGoMemLimit"},
	} {
		svc := composeService(t, p, s.service)
		limit := svc.Environment["GOMEMLIMIT"]
		if limit == nil {
			t.Errorf("compose %s: no GOMEMLIMIT", s.service)
			continue
		}
		var mem types.UnitBytes
		if svc.Deploy != nil && svc.Deploy.Resources.Limits != nil {
			mem = svc.Deploy.Resources.Limits.MemoryBytes
		}
		if mem <= 0 {
			t.Errorf("compose %s: no deploy.resources.limits.memory for GOMEMLIMIT to stay under", s.service)
			continue
		}
		checkDerivedLimit(t, "compose "+s.service, *limit, int64(mem))

		c := appDeployment(t, chart, s.component).Spec.Template.Spec.Containers[0]
		chartLimit := containerEnv(t, chart, c).values["GOMEMLIMIT"]
		if *limit != chartLimit || int64(mem) != c.Resources.Limits.Memory().Value() {
			t.Errorf("compose %s: memory %d, GOMEMLIMIT %s; the chart's %s: memory %s, GOMEMLIMIT %s; want the same",
				s.service, mem, *limit, s.component, c.Resources.Limits.Memory(), chartLimit)
		}
		if got := benchGoMemLimit(t, s.benchConst); got != chartLimit {
			t.Errorf("bench/main.go %s = %q, but production (chart, compose) sets GOMEMLIMIT=%s", s.benchConst, got, chartLimit)
		}
	}
}
