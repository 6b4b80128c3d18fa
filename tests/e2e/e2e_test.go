//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockquote/stockquote/tests/e2e/systemtest"
)

// stockAnswer is the body of a 200 from /api/v1/stock.
type stockAnswer struct {
	Symbol      string  `json:"symbol"`
	CompanyName string  `json:"company_name"`
	Quote       float64 `json:"quote"`
}

// historyRow is one element of /api/v1/history.
type historyRow struct {
	Date   string  `json:"date"`
	Name   string  `json:"name"`
	Symbol string  `json:"symbol"`
	Open   float64 `json:"open"`
	High   float64 `json:"high"`
	Low    float64 `json:"low"`
	Close  float64 `json:"close"`
}

// TestWalkthrough walks the API as a client would, on one system.
func TestWalkthrough(t *testing.T) {
	s := newSystem(t, options{})

	t.Run("probes", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			r := s.Do(t, http.MethodGet, p, "", nil)
			if r.Status != http.StatusOK {
				t.Errorf("GET %s = %d: %s", p, r.Status, r.Body)
			}
		}
	})

	t.Run("login", func(t *testing.T) {
		s.Login(t, "admin", "admin-password-1")

		req, _ := http.NewRequest(http.MethodPost, s.API+"/api/v1/login", nil)
		req.SetBasicAuth("alice", "alice-password-1")
		if r := send(t, req); r.Status != http.StatusOK {
			t.Errorf("basic-auth login = %d: %s", r.Status, r.Body)
		}

		// Wrong passwords and unknown users: TestLoginThrottled/per_account;
		// missing, forged and expired tokens: TestHostile.
		req, _ = http.NewRequest(http.MethodPost, s.API+"/api/v1/login", strings.NewReader(`{"username":`))
		req.Header.Set("Content-Type", "application/json")
		wantProblem(t, send(t, req), http.StatusBadRequest)
	})

	admin := s.Login(t, "admin", "admin-password-1")
	alice := s.Login(t, "alice", "alice-password-1")

	t.Run("stock", func(t *testing.T) {
		before := s.CountRows(t, "")
		r := s.Do(t, http.MethodGet, "/api/v1/stock?q=aapl.us", alice, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /stock = %d: %s", r.Status, r.Body)
		}
		var got stockAnswer
		decode(t, r, &got)
		want, _ := s.Stooq.Want("aapl.us")
		if got.Symbol != "AAPL.US" || got.CompanyName != "APPLE" || got.Quote != want.Close {
			t.Errorf("GET /stock = %+v, want AAPL.US APPLE %v", got, want.Close)
		}
		if n := s.CountRows(t, ""); n != before+1 {
			t.Errorf("history rows = %d after one quote, want %d", n, before+1)
		}
	})

	t.Run("stock errors", func(t *testing.T) {
		before := s.CountRows(t, "")
		hitsBefore := s.Stooq.TotalHits()
		invalid := []string{
			"", "?q=", "?q=aapl.us%2Bmsft.us", "?q=aapl.us%26f%3Dx", "?q=" + strings.Repeat("a", 100),
			"?q=%00", "?q=%C4%85", "?q=aapl.us&q=msft.us", "?q=..%2F..%2Fetc", "?q=%27%20OR%201%3D1",
		}
		for _, qs := range invalid {
			wantProblem(t, s.Do(t, http.MethodGet, "/api/v1/stock"+qs, alice, nil), http.StatusBadRequest)
		}
		if h := s.Stooq.TotalHits(); h != hitsBefore {
			t.Errorf("invalid symbols reached stooq: %d hits", h-hitsBefore)
		}
		cases := []struct {
			q      string
			status int
		}{
			{"zzzz.us", http.StatusNotFound},
			{"notfound.test", http.StatusNotFound},
			{"html.test", http.StatusBadGateway},
			{"garbage.test", http.StatusBadGateway},
			{"truncated.test", http.StatusBadGateway},
			{"phpwarning.test", http.StatusBadGateway},
			{"huge.test", http.StatusBadGateway},
			{"error.test", http.StatusBadGateway},
			{"ratelimit.test", http.StatusServiceUnavailable},
			{"slow.test", http.StatusGatewayTimeout},
		}
		for _, tc := range cases {
			t.Run(tc.q, func(t *testing.T) {
				start := time.Now()
				wantProblem(t, s.Do(t, http.MethodGet, "/api/v1/stock?q="+tc.q, alice, nil), tc.status)
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("answer took %v", d)
				}
			})
		}
		if n := s.CountRows(t, ""); n != before {
			t.Errorf("failed requests wrote %d history rows", n-before)
		}
	})

	t.Run("history order and pagination", func(t *testing.T) {
		var want []string
		for i := 1; i <= 7; i++ {
			sym := fmt.Sprintf("t%d.us", i)
			if r := s.Do(t, http.MethodGet, "/api/v1/stock?q="+sym, alice, nil); r.Status != http.StatusOK {
				t.Fatalf("GET /stock?q=%s = %d: %s", sym, r.Status, r.Body)
			}
			want = append([]string{strings.ToUpper(sym)}, want...)
		}
		want = append(want, "AAPL.US") // from the stock subtest
		var got []string
		next := "/api/v1/history?limit=3"
		pages := 0
		for next != "" {
			pages++
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			r := s.Do(t, http.MethodGet, next, alice, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("GET %s = %d: %s", next, r.Status, r.Body)
			}
			var rows []historyRow
			decode(t, r, &rows)
			if len(rows) > 3 {
				t.Fatalf("page of %d rows, limit 3", len(rows))
			}
			for _, row := range rows {
				if _, err := time.Parse(time.RFC3339, row.Date); err != nil || !strings.HasSuffix(row.Date, "Z") {
					t.Errorf("date %q is not RFC 3339 UTC", row.Date)
				}
				if row.Close <= 0 || row.High < row.Low {
					t.Errorf("implausible row %+v", row)
				}
				got = append(got, row.Symbol)
			}
			next = nextLink(t, r.Header.Get("Link"))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("history = %v, want %v", got, want)
		}
		// The admin's history is separate.
		r := s.Do(t, http.MethodGet, "/api/v1/history", admin, nil)
		if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != "[]" {
			t.Errorf("admin history = %d %s, want 200 []", r.Status, r.Body)
		}
		wantProblem(t, s.Do(t, http.MethodGet, "/api/v1/history?limit=0", alice, nil), http.StatusBadRequest)
		wantProblem(t, s.Do(t, http.MethodGet, "/api/v1/history?limit=100000", alice, nil), http.StatusBadRequest)
		wantProblem(t, s.Do(t, http.MethodGet, "/api/v1/history?cursor=%21%21", alice, nil), http.StatusBadRequest)
	})

	t.Run("stats", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			s.Do(t, http.MethodGet, "/api/v1/stock?q=MSFT.us", admin, nil)
		}
		s.Do(t, http.MethodGet, "/api/v1/stock?q=msft.US", alice, nil)
		wantProblem(t, s.Do(t, http.MethodGet, "/api/v1/stats", alice, nil), http.StatusForbidden)
		r := s.Do(t, http.MethodGet, "/api/v1/stats", admin, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /stats = %d: %s", r.Status, r.Body)
		}
		var got []struct {
			Stock          string `json:"stock"`
			TimesRequested int    `json:"times_requested"`
		}
		decode(t, r, &got)
		// msft 4; aapl, t1..t7 once each: ties sorted by name.
		want := "msft.us:4,aapl.us:1,t1.us:1,t2.us:1,t3.us:1"
		var parts []string
		for _, g := range got {
			parts = append(parts, fmt.Sprintf("%s:%d", g.Stock, g.TimesRequested))
		}
		if strings.Join(parts, ",") != want {
			t.Errorf("stats = %v, want %s", parts, want)
		}
	})

	t.Run("users", func(t *testing.T) {
		body := map[string]any{"username": "bob", "password": "bob-password-1", "email": "bob@example.com"}
		wantProblem(t, s.Do(t, http.MethodPost, "/api/v1/users", alice, body), http.StatusForbidden)
		r := s.Do(t, http.MethodPost, "/api/v1/users", admin, body)
		if r.Status != http.StatusCreated {
			t.Fatalf("POST /users = %d: %s", r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), "bob-password-1") || strings.Contains(string(r.Body), "$2a$") {
			t.Errorf("created user answer leaks the password: %s", r.Body)
		}
		wantProblem(t, s.Do(t, http.MethodPost, "/api/v1/users", admin, body), http.StatusConflict)
		wantProblem(t, s.Do(t, http.MethodPost, "/api/v1/users", admin, map[string]any{"username": "x y", "password": "short"}), http.StatusBadRequest)
		s.Login(t, "bob", "bob-password-1")
	})

	t.Run("unknown route and wrong method", func(t *testing.T) {
		wantProblem(t, s.Do(t, http.MethodGet, "/nope", "", nil), http.StatusNotFound)
		r := s.Do(t, http.MethodDelete, "/api/v1/login", "", nil)
		wantProblem(t, r, http.StatusMethodNotAllowed)
		if r.Header.Get("Allow") == "" {
			t.Error("405 without an Allow header")
		}
	})

	t.Run("concurrent symbols", func(t *testing.T) {
		const n = 64
		var wg sync.WaitGroup
		errs := make(chan string, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				sym := fmt.Sprintf("t%d.us", 100+i)
				req, _ := http.NewRequest(http.MethodGet, s.API+"/api/v1/stock?q="+sym, nil)
				req.Header.Set("Authorization", "Bearer "+alice)
				r := send(t, req)
				if r.Status != http.StatusOK {
					errs <- fmt.Sprintf("%s: %d %s", sym, r.Status, r.Body)
					return
				}
				var got stockAnswer
				if err := json.Unmarshal(r.Body, &got); err != nil {
					errs <- err.Error()
					return
				}
				want, _ := s.Stooq.Want(sym)
				if got.Symbol != strings.ToUpper(sym) || math.Abs(got.Quote-want.Close) > 1e-9 {
					errs <- fmt.Sprintf("%s: got %+v, want close %v", sym, got, want.Close)
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if n := s.CountRows(t, "symbol LIKE 'T1__.US'"); n != 64 {
			t.Errorf("history rows for the concurrent symbols = %d, want 64", n)
		}
	})
}

// TestNoWorker: with nobody consuming the queue, /stock fails fast with 503
// (the request is unroutable) and saves nothing.
func TestNoWorker(t *testing.T) {
	s := newSystem(t, options{noWorker: true, rpcTimeout: 2 * time.Second})
	// Without a worker the harness waits for /healthz only; the broker
	// connection may still be coming up (on a loaded machine it took
	// over 0.5s), and then the 503 would be for that, not for the queue.
	systemtest.WaitStatus(t, s.API+"/readyz", http.StatusOK, 20*time.Second)
	tok := s.Login(t, "alice", "alice-password-1")
	start := time.Now()
	wantProblem(t, s.Do(t, http.MethodGet, "/api/v1/stock?q=aapl.us", tok, nil), http.StatusServiceUnavailable)
	if d := time.Since(start); d > time.Second {
		t.Errorf("503 took %v, want fast failure", d)
	}
	if n := s.CountRows(t, ""); n != 0 {
		t.Errorf("history rows = %d, want 0", n)
	}
	// The API itself is fine (database and broker usable): it stays ready;
	// the missing worker shows up per request as 503, not as unreadiness
	// that would take every API replica out of its Service.
	r := s.Do(t, http.MethodGet, "/readyz", "", nil)
	if r.Status != http.StatusOK {
		t.Errorf("readyz = %d %s, want 200", r.Status, r.Body)
	}
}

var linkNext = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// nextLink extracts the rel="next" target of a Link header as a path.
func nextLink(t *testing.T, h string) string {
	t.Helper()
	if h == "" {
		return ""
	}
	m := linkNext.FindStringSubmatch(h)
	if m == nil {
		t.Fatalf("Link header %q has no rel=next", h)
	}
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatalf("Link target %q: %v", m[1], err)
	}
	return u.RequestURI()
}
