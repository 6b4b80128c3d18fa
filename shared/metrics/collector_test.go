package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type stats struct{ a, b uint64 }

func TestCollectorReadsOneSnapshotPerScrape(t *testing.T) {
	var snapshots int
	s := stats{a: 1, b: 2}
	c := NewCollector(func() stats { snapshots++; return s },
		Counter[stats]{Name: "x_a_total", Help: "A.", Value: func(s stats) uint64 { return s.a }},
		Counter[stats]{Name: "x_b_total", Help: "B.", Value: func(s stats) uint64 { return s.b }},
	)
	want := `
# HELP x_a_total A.
# TYPE x_a_total counter
x_a_total 1
# HELP x_b_total B.
# TYPE x_b_total counter
x_b_total 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if snapshots != 1 {
		t.Errorf("stats read %d times in one scrape, want 1", snapshots)
	}
	s = stats{a: 5, b: 7}
	want = strings.NewReplacer("x_a_total 1", "x_a_total 5", "x_b_total 2", "x_b_total 7").Replace(want)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Errorf("second scrape: %v", err)
	}
}
