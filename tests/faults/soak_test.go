//go:build integration

package faults

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// soakDuration is how long TestSoak sends traffic: SOAK_DURATION, or 30s.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("SOAK_DURATION")
	if s == "" {
		return 30 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 5*time.Second {
		t.Fatalf("SOAK_DURATION=%q: want a duration of at least 5s", s)
	}
	return d
}

// soakSymbols are what the clients ask for: five, so /stats (the top
// five) lists every one of them.
var soakSymbols = []string{"aapl.us", "msft.us", "googl.us", "t1.us", "t2.us"}

// TestSoak runs concurrent clients for SOAK_DURATION while the harness
// kills and restarts a worker and cuts the API's and the workers' broker
// links, over and over. Then: every 200 has exactly one history row, no
// row exists without a 200, /stats counts equal the rows, and no request
// stayed unanswered past its bound. Run it longer with
// make soak SOAK_DURATION=5m
func TestSoak(t *testing.T) {
	const (
		rpcTimeout = 5 * time.Second
		clients    = 8
		// The longest a request may take: the RPC timeout plus two
		// database calls at their 5s bound, plus slack for a loaded host.
		answerBound = rpcTimeout + 10*time.Second + 5*time.Second
	)
	duration := soakDuration(t)
	s := newSystem(t, options{workers: 2, rpcTimeout: rpcTimeout, stooqTimeout: 2 * time.Second})
	tok := s.Login(t, "alice", "alice-password-1")
	admin := s.Login(t, "admin", "admin-password-1")
	s.Stooq.SetLatency(20 * time.Millisecond)

	var (
		mu        sync.Mutex
		sent      int
		statuses  = map[int]int{}
		ok        = map[string]int{} // 200s per symbol, as stooq names it
		transport int
		slowest   time.Duration
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sym := soakSymbols[(c+i)%len(soakSymbols)]
				start := time.Now()
				r, err := s.Try(http.MethodGet, "/api/v1/stock?q="+sym, tok, nil)
				took := time.Since(start)
				mu.Lock()
				sent++
				slowest = max(slowest, took)
				switch {
				case err != nil:
					transport++
					t.Errorf("%s: %v", sym, err)
				case r.Status == http.StatusOK:
					ok[strings.ToUpper(sym)]++
				default:
					if msg := checkProblem(r, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusBadGateway); msg != "" {
						t.Errorf("%s: %s", sym, msg)
					}
				}
				statuses[r.Status]++
				mu.Unlock()
				if took > answerBound {
					t.Errorf("%s answered after %v, bound %v", sym, took, answerBound)
				}
			}
		})
	}

	// The chaos: one fault every period, in turn.
	faults := map[string]int{}
	period := duration / 9
	deadline := time.Now().Add(duration)
	for i := 0; time.Now().Add(period).Before(deadline); i++ {
		time.Sleep(period / 2)
		switch i % 3 {
		case 0: // a worker dies without warning; another one replaces it
			victim := s.workers[len(s.workers)-1]
			victim.Kill()
			s.startWorker(t)
			faults["worker killed (SIGKILL) and restarted"]++
		case 1: // the API loses the broker for a second
			s.broker.down()
			time.Sleep(time.Second)
			s.broker.up()
			faults["API broker link cut for 1s"]++
		case 2: // every worker loses the broker for a second
			for _, w := range s.workers {
				if !isExited(w.Proc) {
					w.broker.down()
				}
			}
			time.Sleep(time.Second)
			for _, w := range s.workers {
				if !isExited(w.Proc) {
					w.broker.up()
				}
			}
			faults["worker broker links cut for 1s"]++
		}
		time.Sleep(period / 2)
	}
	time.Sleep(time.Until(deadline))
	close(stop)
	wg.Wait()

	// Every answer is in; now count what is kept.
	total200 := statuses[http.StatusOK]
	rows := s.CountRows(t, "")
	for _, sym := range soakSymbols {
		want := ok[strings.ToUpper(sym)]
		if got := s.CountRows(t, "symbol = $1", strings.ToUpper(sym)); got != want {
			t.Errorf("%s: %d history rows, %d answers 200", sym, got, want)
		}
	}
	if rows != total200 {
		t.Errorf("history rows = %d, answers 200 = %d", rows, total200)
	}
	waitStatus(t, s.API+"/readyz", http.StatusOK, 20*time.Second)
	r := s.Do(t, http.MethodGet, "/api/v1/stats", admin, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("/stats: %d %s", r.Status, r.Body)
	}
	var stats []struct {
		Stock          string `json:"stock"`
		TimesRequested int    `json:"times_requested"`
	}
	if err := json.Unmarshal(r.Body, &stats); err != nil {
		t.Fatalf("/stats %s: %v", r.Body, err)
	}
	statsTotal := 0
	for _, st := range stats {
		statsTotal += st.TimesRequested
		if want := ok[strings.ToUpper(st.Stock)]; st.TimesRequested != want {
			t.Errorf("/stats %s = %d, answers 200 = %d", st.Stock, st.TimesRequested, want)
		}
	}
	if statsTotal != rows {
		t.Errorf("/stats total = %d, history rows = %d", statsTotal, rows)
	}
	nFaults := 0
	for _, n := range faults {
		nFaults += n
	}
	lost := total200 - rows
	if lost < 0 {
		lost = -lost
	}
	t.Logf("soak %v: %d clients, %d requests sent, statuses %v, transport errors %d, slowest answer %v",
		duration, clients, sent, statuses, transport, slowest)
	t.Logf("faults injected: %d %v", nFaults, faults)
	t.Logf("answers 200 = %d, history rows = %d, /stats total = %d, answers lost = %d", total200, rows, statsTotal, lost+transport)
	if total200 == 0 {
		t.Error("no request succeeded during the soak")
	}
	if nFaults < 3 {
		t.Errorf("only %d faults injected; give SOAK_DURATION more time", nFaults)
	}
}

// isExited reports whether p has exited.
func isExited(p *proc) bool {
	select {
	case <-p.Exited():
		return true
	default:
		return false
	}
}
