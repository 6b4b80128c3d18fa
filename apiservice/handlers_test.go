package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/health"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

func TestLogin(t *testing.T) {
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
	}{
		{"json ok", func() *http.Request {
			return newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"alice","password":"password1"}`), "")
		}, 200},
		{"json username trimmed", func() *http.Request {
			return newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"  alice ","password":"password1"}`), "")
		}, 200},
		{"basic ok", func() *http.Request {
			r := newRequest("POST", "/api/v1/login", nil, "")
			r.SetBasicAuth("alice", "password1")
			return r
		}, 200},
		{"wrong password", func() *http.Request {
			return newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"alice","password":"nope-nope"}`), "")
		}, 401},
		{"unknown user", func() *http.Request {
			return newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"bob","password":"password1"}`), "")
		}, 401},
		{"basic wrong password", func() *http.Request {
			r := newRequest("POST", "/api/v1/login", nil, "")
			r.SetBasicAuth("alice", "x")
			return r
		}, 401},
		{"empty credentials: no user can have an empty name", func() *http.Request {
			return newRequest("POST", "/api/v1/login", strings.NewReader(`{}`), "")
		}, 400},
		{"malformed json", func() *http.Request {
			return newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":`), "")
		}, 400},
		{"no body", func() *http.Request {
			return newRequest("POST", "/api/v1/login", nil, "")
		}, 400},
		{"trailing data", func() *http.Request {
			return newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"alice","password":"password1"} {}`), "")
		}, 400},
		{"body too large", func() *http.Request {
			big := `{"username":"alice","password":"` + strings.Repeat("a", 2<<20) + `"}`
			return newRequest("POST", "/api/v1/login", strings.NewReader(big), "")
		}, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			w := env.serve(t, tt.req())
			if tt.status != 200 {
				checkProblem(t, w, tt.status)
				return
			}
			if w.Code != 200 {
				t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
			}
			got := decodeBody[map[string]any](t, w)
			if got["token_type"] != "Bearer" || got["expires_in"] != float64(3600) {
				t.Errorf("body = %v, want Bearer token expiring in 3600s", got)
			}
			tok, _ := got["access_token"].(string)
			id, err := env.auth.verify(tok)
			if err != nil || id != alice.ID {
				t.Errorf("verify(access_token) = %d, %v; want %d, nil", id, err, alice.ID)
			}
		})
	}
}

// Unknown users and wrong passwords must look the same and cost the same.
func TestLoginBadCredentialsIndistinguishable(t *testing.T) {
	env := newTestEnv(t)
	var compared [][]byte
	realCompare := env.pw.compare
	env.pw.compare = func(hash, pw []byte) error {
		compared = append(compared, hash)
		return realCompare(hash, pw)
	}
	wrong := env.serve(t, newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"alice","password":"bad-password"}`), ""))
	unknown := env.serve(t, newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"nobody","password":"bad-password"}`), ""))
	checkProblem(t, wrong, 401)
	checkProblem(t, unknown, 401)
	if wrong.Body.String() != unknown.Body.String() {
		t.Errorf("bodies differ:\n%s\n%s", wrong.Body, unknown.Body)
	}
	if a, b := wrong.Header().Get("WWW-Authenticate"), unknown.Header().Get("WWW-Authenticate"); a != b || a == "" {
		t.Errorf("WWW-Authenticate = %q and %q, want the same, non-empty", a, b)
	}
	if len(compared) != 2 {
		t.Fatalf("bcrypt comparisons = %d, want 2 (one per login)", len(compared))
	}
	if string(compared[0]) != alice.PasswordHash {
		t.Errorf("known user compared against %q, want the user's hash", compared[0])
	}
	if string(compared[1]) != string(env.pw.dummy) {
		t.Errorf("unknown user compared against %q, want the dummy hash", compared[1])
	}
}

func TestLoginStoreDown(t *testing.T) {
	env := newTestEnv(t)
	env.store.userByName = func(context.Context, string) (postgres.User, error) {
		return postgres.User{}, fmt.Errorf("query: %w", postgres.ErrUnavailable)
	}
	w := env.serve(t, newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"alice","password":"password1"}`), ""))
	checkProblem(t, w, 503)
}

var appleQuote = stockrpc.Quote{
	Symbol: "AAPL.US", Name: "APPLE", Open: 123.66, High: 123.66, Low: 122.49, Close: 123, Volume: 1000,
	QuotedAt: time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC),
}

func TestStock(t *testing.T) {
	env := newTestEnv(t)
	var gotSymbol string
	env.quotes = func(_ context.Context, s string) (stockrpc.Quote, error) {
		gotSymbol = s
		return appleQuote, nil
	}
	var saved []postgres.HistoryEntry
	env.store.addHistory = func(_ context.Context, userID int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		if userID != alice.ID {
			t.Errorf("AddHistory user = %d, want %d", userID, alice.ID)
		}
		saved = append(saved, e)
		e.ID = 7
		return e, nil
	}
	w := env.serve(t, newRequest("GET", "/api/v1/stock?q=%20AAPL.us", nil, env.token(t, alice.ID)))
	if w.Code != 200 {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	if want := `{"symbol":"AAPL.US","company_name":"APPLE","quote":123}`; w.Body.String() != want {
		t.Errorf("body = %s, want %s", w.Body, want)
	}
	if gotSymbol != "aapl.us" {
		t.Errorf("requested symbol = %q, want normalized %q", gotSymbol, "aapl.us")
	}
	want := postgres.HistoryEntry{
		RequestedAt: testNow, Symbol: "AAPL.US", Name: "APPLE", Open: 123.66, High: 123.66, Low: 122.49, Close: 123,
		Volume: 1000, QuotedAt: appleQuote.QuotedAt,
	}
	if len(saved) != 1 || saved[0] != want {
		t.Errorf("saved = %+v, want [%+v]", saved, want)
	}
}

func TestStockErrors(t *testing.T) {
	rpcErr := func(code stockrpc.Code) error { return &stockrpc.Error{Code: code, Message: "m"} }
	tests := []struct {
		name     string
		query    string
		quoteErr error
		saveErr  error
		status   int
	}{
		{"missing q", "", nil, nil, 400},
		{"empty q", "?q=", nil, nil, 400},
		{"two q", "?q=aapl.us&q=msft.us", nil, nil, 400},
		{"plus", "?q=aapl%2Bmsft", nil, nil, 400},
		{"ampersand", "?q=a%26b", nil, nil, 400},
		{"too long", "?q=" + strings.Repeat("a", 33), nil, nil, 400},
		{"invalid", "?q=x", rpcErr(stockrpc.CodeInvalid), nil, 400},
		{"not found", "?q=x", rpcErr(stockrpc.CodeNotFound), nil, 404},
		{"upstream error", "?q=x", rpcErr(stockrpc.CodeUpstreamError), nil, 502},
		{"rate limited", "?q=x", rpcErr(stockrpc.CodeRateLimited), nil, 503},
		{"key required", "?q=x", rpcErr(stockrpc.CodeKeyRequired), nil, 503},
		{"key rejected", "?q=x", rpcErr(stockrpc.CodeKeyRejected), nil, 503},
		{"challenge", "?q=x", rpcErr(stockrpc.CodeChallenge), nil, 503},
		{"over budget", "?q=x", rpcErr(stockrpc.CodeOverBudget), nil, 503},
		{"upstream timeout", "?q=x", rpcErr(stockrpc.CodeUpstreamTimeout), nil, 504},
		{"unsupported version", "?q=x", rpcErr(stockrpc.CodeUnsupportedVersion), nil, 502},
		{"internal", "?q=x", rpcErr(stockrpc.CodeInternal), nil, 502},
		{"future code", "?q=x", rpcErr("brand_new"), nil, 502},
		{"bad reply", "?q=x", fmt.Errorf("%w: junk", errBadReply), nil, 502},
		{"broker down", "?q=x", fmt.Errorf("call: %w", amqprpc.ErrUnavailable), nil, 503},
		{"no route", "?q=x", fmt.Errorf("call: %w", amqprpc.ErrNoRoute), nil, 503},
		{"client closed", "?q=x", fmt.Errorf("call: %w", amqprpc.ErrClosed), nil, 503},
		{"rpc timeout", "?q=x", fmt.Errorf("call: %w", context.DeadlineExceeded), nil, 504},
		{"no worker answered", "?q=x", fmt.Errorf("call: %w: %w", errNoAnswer, context.DeadlineExceeded), nil, 503},
		{"unknown rpc failure", "?q=x", errors.New("boom"), nil, 500},
		{"save db down", "?q=x", nil, fmt.Errorf("insert: %w", postgres.ErrUnavailable), 503},
		{"save fails", "?q=x", nil, errors.New("constraint violated"), 500},
		// The store classifies its own deadline as unavailable: not the RPC's 504.
		{"save deadline", "?q=x", nil, fmt.Errorf("insert: %w: %w", postgres.ErrUnavailable, context.DeadlineExceeded), 503},
		{"user removed since the token was issued", "?q=x", nil, fmt.Errorf("add history: %w", postgres.ErrNotFound), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.quotes = func(context.Context, string) (stockrpc.Quote, error) {
				if tt.quoteErr != nil {
					return stockrpc.Quote{}, tt.quoteErr
				}
				return appleQuote, nil
			}
			env.store.addHistory = func(_ context.Context, _ int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
				if tt.quoteErr != nil {
					t.Error("history saved for a failed quote")
				}
				return e, tt.saveErr
			}
			w := env.serve(t, newRequest("GET", "/api/v1/stock"+tt.query, nil, env.token(t, alice.ID)))
			p := checkProblem(t, w, tt.status)
			if strings.Contains(w.Body.String(), "APPLE") {
				t.Errorf("error body leaks the quote: %s", w.Body)
			}
			if tt.status == 500 && p.Detail != "internal error" {
				t.Errorf("500 detail = %q, want a generic one", p.Detail)
			}
		})
	}
}

func TestUnexpectedErrorsAreLoggedNotShown(t *testing.T) {
	env := newTestEnv(t)
	env.quotes = func(context.Context, string) (stockrpc.Quote, error) {
		return stockrpc.Quote{}, errors.New("secret internal detail")
	}
	w := env.serve(t, newRequest("GET", "/api/v1/stock?q=aapl.us", nil, env.token(t, alice.ID)))
	checkProblem(t, w, 500)
	if strings.Contains(w.Body.String(), "secret") {
		t.Errorf("body leaks the error: %s", w.Body)
	}
	if !strings.Contains(env.logs.String(), "secret internal detail") {
		t.Errorf("log lacks the error:\n%s", env.logs)
	}
}

func historyEntries(n int) []postgres.HistoryEntry {
	var es []postgres.HistoryEntry
	for i := n; i >= 1; i-- { // newest first
		es = append(es, postgres.HistoryEntry{
			ID: int64(i), RequestedAt: testNow.Add(time.Duration(i) * time.Second), Symbol: "AAPL.US", Name: "APPLE",
			Open: 1.5, High: 2, Low: 1, Close: float64(i),
		})
	}
	return es
}

// fakeHistory pages through es as the store would.
func fakeHistory(t *testing.T, es []postgres.HistoryEntry) func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
	return func(_ context.Context, userID int64, limit int, after *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
		if userID != alice.ID {
			t.Errorf("History user = %d, want %d", userID, alice.ID)
		}
		var out []postgres.HistoryEntry
		for _, e := range es {
			if after != nil && !(e.RequestedAt.Before(after.RequestedAt) || e.RequestedAt.Equal(after.RequestedAt) && e.ID < after.ID) {
				continue
			}
			if len(out) == limit {
				break
			}
			out = append(out, e)
		}
		return out, nil
	}
}

func TestHistoryPagination(t *testing.T) {
	env := newTestEnv(t)
	env.store.history = fakeHistory(t, historyEntries(5))
	tok := env.token(t, alice.ID)

	var closes []float64
	target := "/api/v1/history?limit=2"
	for pages := 0; target != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		w := env.serve(t, newRequest("GET", target, nil, tok))
		if w.Code != 200 {
			t.Fatalf("GET %s: status = %d; body %s", target, w.Code, w.Body)
		}
		for _, e := range decodeBody[[]historyEntryJSON](t, w) {
			closes = append(closes, e.Close)
		}
		target = ""
		if link := w.Header().Get("Link"); link != "" {
			u, rel, ok := strings.Cut(link, ">; ")
			if !ok || rel != `rel="next"` || !strings.HasPrefix(u, "</api/v1/history?limit=2&cursor=") {
				t.Fatalf("Link = %q", link)
			}
			target = strings.TrimPrefix(u, "<")
		}
	}
	if got, want := fmt.Sprint(closes), "[5 4 3 2 1]"; got != want {
		t.Errorf("closes over all pages = %s, want %s", got, want)
	}
}

func TestHistoryBody(t *testing.T) {
	env := newTestEnv(t)
	env.store.history = fakeHistory(t, historyEntries(1))
	w := env.serve(t, newRequest("GET", "/api/v1/history", nil, env.token(t, alice.ID)))
	want := `[{"date":"2026-11-27T10:20:31Z","name":"APPLE","symbol":"AAPL.US","open":1.5,"high":2,"low":1,"close":1}]`
	if w.Code != 200 || w.Body.String() != want {
		t.Errorf("got %d %s, want 200 %s", w.Code, w.Body, want)
	}
	if link := w.Header().Get("Link"); link != "" {
		t.Errorf("Link = %q on the last page", link)
	}
}

func TestHistoryEmptyIsArray(t *testing.T) {
	env := newTestEnv(t)
	env.store.history = func(_ context.Context, _ int64, limit int, _ *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
		if limit != defaultHistoryLimit+1 {
			t.Errorf("limit = %d, want %d", limit, defaultHistoryLimit+1)
		}
		return nil, nil
	}
	w := env.serve(t, newRequest("GET", "/api/v1/history", nil, env.token(t, alice.ID)))
	if w.Code != 200 || w.Body.String() != "[]" {
		t.Errorf("got %d %s, want 200 []", w.Code, w.Body)
	}
}

func TestHistoryErrors(t *testing.T) {
	valid := encodeCursor(postgres.HistoryCursor{RequestedAt: testNow, ID: 3})
	tests := []struct {
		name, query string
		storeErr    error
		status      int
	}{
		{"limit zero", "?limit=0", nil, 400},
		{"limit too big", "?limit=501", nil, 400},
		{"limit not a number", "?limit=ten", nil, 400},
		{"limit empty", "?limit=", nil, 400},
		{"cursor garbage", "?cursor=!!!", nil, 400},
		{"cursor empty", "?cursor=", nil, 400},
		{"cursor wrong length", "?cursor=" + valid[:len(valid)-1], nil, 400},
		{"cursor wrong version", "?cursor=" + base64.RawURLEncoding.EncodeToString(append([]byte{9}, make([]byte, 16)...)), nil, 400},
		{"db down", "", fmt.Errorf("select: %w", postgres.ErrUnavailable), 503},
		{"db error", "", errors.New("bad sql"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.store.history = func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
				return nil, tt.storeErr
			}
			w := env.serve(t, newRequest("GET", "/api/v1/history"+tt.query, nil, env.token(t, alice.ID)))
			checkProblem(t, w, tt.status)
		})
	}
}

func TestStats(t *testing.T) {
	env := newTestEnv(t)
	env.store.topStocks = func(_ context.Context, n int) ([]postgres.StockCount, error) {
		if n != 5 {
			t.Errorf("TopStocks(%d), want 5", n)
		}
		return []postgres.StockCount{{Stock: "aapl.us", TimesRequested: 5}, {Stock: "msft.us", TimesRequested: 2}}, nil
	}
	w := env.serve(t, newRequest("GET", "/api/v1/stats", nil, env.token(t, admin.ID)))
	want := `[{"stock":"aapl.us","times_requested":5},{"stock":"msft.us","times_requested":2}]`
	if w.Code != 200 || w.Body.String() != want {
		t.Errorf("got %d %s, want 200 %s", w.Code, w.Body, want)
	}

	env.store.topStocks = func(context.Context, int) ([]postgres.StockCount, error) { return nil, nil }
	w = env.serve(t, newRequest("GET", "/api/v1/stats", nil, env.token(t, admin.ID)))
	if w.Code != 200 || w.Body.String() != "[]" {
		t.Errorf("empty stats: got %d %s, want 200 []", w.Code, w.Body)
	}

	env.store.topStocks = func(context.Context, int) ([]postgres.StockCount, error) {
		return nil, postgres.ErrUnavailable
	}
	checkProblem(t, env.serve(t, newRequest("GET", "/api/v1/stats", nil, env.token(t, admin.ID))), 503)
}

func TestSuperuserOnly(t *testing.T) {
	for _, r := range []struct{ method, target, body string }{
		{"GET", "/api/v1/stats", ""},
		{"POST", "/api/v1/users", `{"username":"bob","password":"password2"}`},
	} {
		t.Run(r.method+" "+r.target, func(t *testing.T) {
			env := newTestEnv(t)
			var body *strings.Reader
			if r.body != "" {
				body = strings.NewReader(r.body)
			}
			req := newRequest(r.method, r.target, nil, env.token(t, alice.ID))
			if body != nil {
				req = newRequest(r.method, r.target, body, env.token(t, alice.ID))
			}
			checkProblem(t, env.serve(t, req), 403)
		})
	}
}

// A superuser demoted after the token was issued loses the right at once.
func TestDemotedUserLosesSuperuser(t *testing.T) {
	env := newTestEnv(t)
	tok := env.token(t, admin.ID)
	env.store.userByID = func(context.Context, int64) (postgres.User, error) {
		u := admin
		u.Superuser = false
		return u, nil
	}
	checkProblem(t, env.serve(t, newRequest("GET", "/api/v1/stats", nil, tok)), 403)
}

func TestCreateUser(t *testing.T) {
	env := newTestEnv(t)
	var created postgres.User
	env.store.createUser = func(_ context.Context, u postgres.User) (postgres.User, error) {
		created = u
		u.ID, u.CreatedAt = 42, testNow
		return u, nil
	}
	body := `{"username":"bob","password":"password2","email":"bob@example.com","superuser":true}`
	w := env.serve(t, newRequest("POST", "/api/v1/users", strings.NewReader(body), env.token(t, admin.ID)))
	if w.Code != 201 {
		t.Fatalf("status = %d, want 201; body %s", w.Code, w.Body)
	}
	want := `{"id":42,"username":"bob","email":"bob@example.com","superuser":true,"created_at":"2026-11-27T10:20:30Z"}`
	if w.Body.String() != want {
		t.Errorf("body = %s, want %s", w.Body, want)
	}
	// No Location: there is no route to GET a single user.
	if loc := w.Header().Get("Location"); loc != "" {
		t.Errorf("Location = %q, want none", loc)
	}
	if err := env.pw.compare([]byte(created.PasswordHash), []byte("password2")); err != nil {
		t.Errorf("stored hash does not match the password: %v", err)
	}
	if created.Username != "bob" || created.Email != "bob@example.com" || !created.Superuser {
		t.Errorf("created = %+v", created)
	}
}

func TestCreateUserErrors(t *testing.T) {
	tests := []struct {
		name, body string
		storeErr   error
		status     int
	}{
		{"duplicate", `{"username":"alice","password":"password2"}`, fmt.Errorf("insert: %w", postgres.ErrDuplicate), 409},
		{"db down", `{"username":"bob","password":"password2"}`, postgres.ErrUnavailable, 503},
		{"malformed", `{"username":`, nil, 400},
		{"unknown field", `{"username":"bob","password":"password2","admin":true}`, nil, 400},
		{"no username", `{"password":"password2"}`, nil, 400},
		{"bad username", `{"username":"bob smith","password":"password2"}`, nil, 400},
		{"long username", `{"username":"` + strings.Repeat("b", 65) + `","password":"password2"}`, nil, 400},
		{"short password", `{"username":"bob","password":"short"}`, nil, 400},
		{"long password", `{"username":"bob","password":"` + strings.Repeat("p", 73) + `"}`, nil, 400},
		{"bad email", `{"username":"bob","password":"password2","email":"bob"}`, nil, 400},
		{"email with name", `{"username":"bob","password":"password2","email":"Bob <bob@example.com>"}`, nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.store.createUser = func(_ context.Context, u postgres.User) (postgres.User, error) {
				if tt.storeErr == nil {
					t.Error("CreateUser called for invalid input")
				}
				return postgres.User{}, tt.storeErr
			}
			w := env.serve(t, newRequest("POST", "/api/v1/users", strings.NewReader(tt.body), env.token(t, admin.ID)))
			checkProblem(t, w, tt.status)
		})
	}
}

func TestHealthz(t *testing.T) {
	env := newTestEnv(t)
	w := env.serve(t, newRequest("GET", "/healthz", nil, ""))
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ok"}` {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	tests := []struct {
		name       string
		db, broker func(context.Context) error
		status     int
		body       string
	}{
		{"all ok", ok, ok, 200, `{"checks":{"broker":"ok","database":"ok"},"status":"ok"}`},
		{"db down", down, ok, 503, `{"checks":{"broker":"ok","database":"fail"},"status":"unavailable"}`},
		{"broker down", ok, down, 503, `{"checks":{"broker":"fail","database":"ok"},"status":"unavailable"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.checks = []health.Check{{Name: "database", Ready: tt.db}, {Name: "broker", Ready: tt.broker}}
			w := env.serve(t, newRequest("GET", "/readyz", nil, ""))
			if w.Code != tt.status || strings.TrimSpace(w.Body.String()) != tt.body {
				t.Errorf("got %d %s, want %d %s", w.Code, w.Body, tt.status, tt.body)
			}
		})
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	env := newTestEnv(t)
	for _, target := range []string{"/nope", "/api/v1/stock/", "/api/v2/stock"} {
		checkProblem(t, env.serve(t, newRequest("GET", target, nil, "")), 404)
	}
	w := env.serve(t, newRequest("DELETE", "/api/v1/login", nil, ""))
	checkProblem(t, w, 405)
	if allow := w.Header().Get("Allow"); allow != "POST" {
		t.Errorf("Allow = %q, want POST", allow)
	}
	w = env.serve(t, newRequest("POST", "/api/v1/stock", nil, ""))
	checkProblem(t, w, 405)
	if allow := w.Header().Get("Allow"); allow != "GET" {
		t.Errorf("Allow = %q, want GET", allow)
	}
}

func TestPanicIsProblem(t *testing.T) {
	env := newTestEnv(t)
	env.quotes = func(context.Context, string) (stockrpc.Quote, error) { panic("kaboom") }
	w := env.serve(t, newRequest("GET", "/api/v1/stock?q=aapl.us", nil, env.token(t, alice.ID)))
	p := checkProblem(t, w, 500)
	if strings.Contains(w.Body.String(), "kaboom") || p.Detail != "internal error" {
		t.Errorf("body = %s, want a generic 500", w.Body)
	}
	if !strings.Contains(env.logs.String(), "kaboom") {
		t.Errorf("panic not logged:\n%s", env.logs)
	}
}

func TestProblemInstanceIsPath(t *testing.T) {
	env := newTestEnv(t)
	p := checkProblem(t, env.serve(t, newRequest("GET", "/api/v1/history?limit=0", nil, env.token(t, alice.ID))), 400)
	if p.Instance != "/api/v1/history" {
		t.Errorf("instance = %q", p.Instance)
	}
	if _, err := url.Parse(p.Type); err != nil {
		t.Errorf("type %q is not a URI: %v", p.Type, err)
	}
}
