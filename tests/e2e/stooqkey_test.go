//go:build integration

package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stockquote/stockquote/tests/e2e/systemtest"
)

// TestStooqAPIKey runs the pair against a fake stooq that requires an API
// key, as stooq does since 2026: without STOOQ_API_KEY every quote is a
// 503 naming it and `stockservice check` fails saying a key is required;
// with it, quotes and history as before. A challenge page gets its own 503
// and its own check result either way. Nothing of the run (log lines,
// metrics, answers, check output) holds the key.
func TestStooqAPIKey(t *testing.T) {
	key := "e2e-stooq-key-" + randomHex(12)
	s := &system{System: systemtest.New(t, programs, systemtest.Options{QueuePrefix: "e2e", Check: checkSpec})}
	s.Stooq.SetRequireKey(key)
	w := s.StartWorker(t, systemtest.AMQPURL())
	s.API, s.APIProc = s.StartAPI(t)
	alice := s.Login(t, "alice", "alice-password-1")

	var seen []string // every answer, metrics page and check output of the run
	get := func(path string) response {
		t.Helper()
		r := s.Do(t, http.MethodGet, path, alice, nil)
		seen = append(seen, string(r.Body))
		return r
	}
	metrics := func(url string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		r, err := systemtest.Fetch(req)
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("GET %s = %d, %v", url, r.Status, err)
		}
		seen = append(seen, string(r.Body))
		return string(r.Body)
	}
	check := func(extra []string, args ...string) (string, int) {
		t.Helper()
		out, code := s.CheckStooq(t, extra, args...)
		seen = append(seen, out)
		return out, code
	}
	wantRefusal := func(path, detail string) {
		t.Helper()
		p := wantProblem(t, get(path), http.StatusServiceUnavailable)
		if !strings.Contains(p.Detail, detail) {
			t.Errorf("GET %s: detail %q, want it to name %q", path, p.Detail, detail)
		}
	}
	challengeDetail := "bot challenge"

	t.Run("without key", func(t *testing.T) {
		rows := s.CountRows(t, "")
		for _, sym := range []string{"aapl.us", "msft.us", "t7.us", "aapl.us"} {
			wantRefusal("/api/v1/stock?q="+sym, "STOOQ_API_KEY")
		}
		wantRefusal("/api/v1/stock?q=challenge.test", challengeDetail)
		if n := s.CountRows(t, ""); n != rows {
			t.Errorf("history rows %d after refusals, want %d", n, rows)
		}
		if out, code := check(nil); code == 0 || !strings.Contains(out, "result:  key required") || !strings.Contains(out, "STOOQ_API_KEY") {
			t.Errorf("check without key: exit %d, want non-zero saying a key is required:\n%s", code, out)
		}
		if out, code := check(nil, "challenge.test"); code == 0 || !strings.Contains(out, "result:  challenge") {
			t.Errorf("check of a challenge: exit %d, want non-zero saying challenge:\n%s", code, out)
		}
		page := metrics("http://" + w.Addr + "/metrics")
		for _, want := range []string{`stockquote_stooq_refusals_total{reason="key_required"} 4`, `stockquote_stooq_refusals_total{reason="challenge"} 1`} {
			if !strings.Contains(page, want) {
				t.Errorf("worker metrics lack %s", want)
			}
		}
		// One warning per change of reason, not one per request.
		warns := waitWarnings(t, w.Proc, 2)
		if warns[0] != "key_required" || warns[1] != "challenge" {
			t.Errorf("refusal warnings %q, want [key_required challenge]", warns)
		}
	})
	metrics(s.API + "/metrics")
	if _, err := w.Terminate(30 * time.Second); err != nil {
		t.Fatalf("stop the worker without key: %v", err)
	}

	keyed := s.StartWorker(t, systemtest.AMQPURL(), "STOOQ_API_KEY="+key)
	t.Run("with key", func(t *testing.T) {
		rows := s.CountRows(t, "")
		for _, sym := range []string{"aapl.us", "msft.us"} {
			if r := get("/api/v1/stock?q=" + sym); r.Status != http.StatusOK {
				t.Errorf("GET /stock?q=%s = %d: %s", sym, r.Status, r.Body)
			}
		}
		if n := s.CountRows(t, ""); n != rows+2 {
			t.Errorf("history rows %d, want %d", n, rows+2)
		}
		wantRefusal("/api/v1/stock?q=challenge.test", challengeDetail)
		if out, code := check([]string{"STOOQ_API_KEY=" + key}); code != 0 || !strings.Contains(out, "result:  quote found") {
			t.Errorf("check with key: exit %d, want 0 and a quote:\n%s", code, out)
		}
		if out, code := check([]string{"STOOQ_API_KEY=" + key}, "challenge.test"); code == 0 || !strings.Contains(out, "result:  challenge") {
			t.Errorf("check of a challenge with key: exit %d, want non-zero saying challenge:\n%s", code, out)
		}
		if out, code := check([]string{"STOOQ_API_KEY=not-" + key}); code == 0 || !strings.Contains(out, "result:  key rejected") {
			t.Errorf("check with a wrong key: exit %d, want non-zero saying the key is rejected:\n%s", code, out)
		}
		metrics("http://" + keyed.Addr + "/metrics")
		metrics(s.API + "/metrics")
		if n := s.Stooq.KeyHits(key); n < 3 {
			t.Errorf("stooq saw the key %d times, want it sent (the grep below would prove nothing)", n)
		}
	})

	if _, err := keyed.Terminate(30 * time.Second); err != nil {
		t.Errorf("stop the worker with key: %v", err)
	}
	logs := map[string]string{"worker without key": w.Logs(), "worker with key": keyed.Logs(), "api": s.APIProc.Logs()}
	if !strings.Contains(logs["worker with key"], `"STOOQ_API_KEY":"(set)"`) {
		t.Errorf("the keyed worker's config line does not say the key is set")
	}
	for name, text := range logs {
		if strings.Contains(text, key) {
			t.Errorf("%s logs hold the key", name)
		}
	}
	for i, text := range seen {
		if strings.Contains(text, key) {
			t.Errorf("answer, metrics or check output %d holds the key:\n%s", i, text)
		}
	}
}

// waitWarnings waits until p has logged n "stooq refuses quotes" warnings
// and returns their reasons.
func waitWarnings(t *testing.T, p *proc, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var reasons []string
		for _, line := range strings.Split(p.Logs(), "\n") {
			var rec struct{ Msg, Reason string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "stooq refuses quotes" {
				reasons = append(reasons, rec.Reason)
			}
		}
		if len(reasons) >= n || time.Now().After(deadline) {
			if len(reasons) != n {
				t.Errorf("refusal warnings %q, want %d", reasons, n)
				for len(reasons) < n {
					reasons = append(reasons, "")
				}
			}
			return reasons
		}
		time.Sleep(20 * time.Millisecond)
	}
}
