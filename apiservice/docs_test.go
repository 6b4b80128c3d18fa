package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockquote/stockquote/apiservice/openapitest"
	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/health"
	"github.com/stockquote/stockquote/shared/metrics"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// openAPISpec is the embedded OpenAPI description.
var openAPISpec, _ = staticFS.ReadFile("openapi.yaml")

func TestOpenAPIDocumentIsValid(t *testing.T) {
	if _, err := openapitest.Load(context.Background(), openAPISpec); err != nil {
		t.Fatal(err)
	}
}

// The repository root's openapi.yaml is a symlink to the embedded file;
// a copy there could drift.
func TestOpenAPIRootCopyIsTheEmbeddedFile(t *testing.T) {
	root, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatalf("read the root openapi.yaml: %v", err)
	}
	if !bytes.Equal(root, openAPISpec) {
		t.Fatal("../openapi.yaml differs from apiservice/openapi.yaml: make it a symlink again (ln -sf apiservice/openapi.yaml openapi.yaml)")
	}
	fi, err := os.Lstat("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		t.Error("../openapi.yaml is a copy, want a symlink to apiservice/openapi.yaml")
	}
}

// Every route the server has is an operation of the document, and every
// operation is a route: neither can be added without the other.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	env := newTestEnv(t)
	// Built as run builds it by default: /metrics on the API port.
	reg := prometheus.NewRegistry()
	env.metrics, env.metricsHandler = newHTTPMetrics(reg), metrics.Handler(reg)
	h := newServer(env.deps(slog.New(slog.DiscardHandler), time.Now))
	engine, ok := h.(*gin.Engine)
	if !ok {
		t.Fatalf("newServer returned %T, want *gin.Engine", h)
	}
	var served []string
	for _, r := range engine.Routes() {
		path := r.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				path = strings.Replace(path, seg, "{"+seg[1:]+"}", 1)
			}
		}
		served = append(served, r.Method+" "+path)
	}
	doc, err := openapitest.Load(context.Background(), openAPISpec)
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	sort.Strings(served)
	sort.Strings(documented)
	if !slices.Equal(served, documented) {
		t.Errorf("routes and operations differ:\nserved     %q\ndocumented %q", served, documented)
	}
}

func TestDocsAssetsMatchTheDocument(t *testing.T) {
	entries, err := staticFS.ReadDir("docs")
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, e := range entries {
		if e.Name() != "index.html" {
			served = append(served, e.Name())
		}
	}
	doc, err := openapitest.Load(context.Background(), openAPISpec)
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, v := range doc.Paths.Find("/docs/{asset}").Get.Parameters.GetByInAndName("path", "asset").Schema.Value.Enum {
		documented = append(documented, v.(string))
	}
	sort.Strings(served)
	sort.Strings(documented)
	if !slices.Equal(served, documented) {
		t.Errorf("docs files %q, document lists %q", served, documented)
	}
}

func TestDocsAndSpecServing(t *testing.T) {
	env := newTestEnv(t)
	tests := []struct {
		path        string
		status      int
		contentType string
		csp         bool
		contains    string
	}{
		{"/openapi.yaml", 200, "application/yaml", false, "openapi: 3.0.3"},
		{"/docs", 200, "text/html; charset=utf-8", true, `<script src="/docs/init.js">`},
		{"/docs/init.js", 200, "text/javascript; charset=utf-8", true, "SwaggerUIBundle("},
		{"/docs/swagger-ui-bundle.js", 200, "text/javascript; charset=utf-8", true, "SwaggerUIBundle"},
		{"/docs/swagger-ui.css", 200, "text/css; charset=utf-8", true, ".swagger-ui"},
		{"/docs/LICENSE", 200, "text/plain; charset=utf-8", true, "Apache License"},
		{"/docs/index.html", 404, problemContentType, false, ""},
		{"/docs/README.md", 404, problemContentType, false, ""},
		{"/docs/", 404, problemContentType, false, ""},
		{"/docs/..%2Fdocs.go", 404, problemContentType, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			w := env.serve(t, httptest.NewRequest("GET", tc.path, nil))
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d: %.200s", w.Code, tc.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", ct, tc.contentType)
			}
			if got := w.Header().Get("Content-Security-Policy"); tc.csp && got != docsCSP {
				t.Errorf("Content-Security-Policy = %q, want %q", got, docsCSP)
			}
			if !strings.Contains(w.Body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			if tc.status != 200 {
				return
			}
			etag := w.Header().Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			r := httptest.NewRequest("GET", tc.path, nil)
			r.Header.Set("If-None-Match", etag)
			if w := env.serve(t, r); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
				t.Errorf("revalidation = %d with %d bytes, want 304 and no body", w.Code, w.Body.Len())
			}
		})
	}
	if w := env.serve(t, httptest.NewRequest("GET", "/openapi.yaml", nil)); !bytes.Equal(w.Body.Bytes(), openAPISpec) {
		t.Error("/openapi.yaml is not the embedded document")
	}
	// The page must not need inline script, which the CSP forbids.
	w := env.serve(t, httptest.NewRequest("GET", "/docs", nil))
	if strings.Contains(strings.ReplaceAll(w.Body.String(), `<script src=`, ""), "<script") {
		t.Errorf("/docs has an inline script:\n%s", w.Body)
	}
}

// TestResponsesMatchTheDocument drives every operation into each of its
// outcomes, including failures the end-to-end suite cannot provoke (a
// database or broker that is down, a provider error of each kind), and
// checks each exchange against the document.
func TestResponsesMatchTheDocument(t *testing.T) {
	v, err := openapitest.New(context.Background(), openAPISpec)
	if err != nil {
		t.Fatal(err)
	}
	okQuote := func(_ context.Context, s string) (stockrpc.Quote, error) {
		return stockrpc.Quote{Symbol: strings.ToUpper(s), Name: "APPLE", Open: 1, High: 2, Low: 0.5, Close: 1.5, QuotedAt: testNow}, nil
	}
	failQuote := func(err error) fakeQuotes {
		return func(context.Context, string) (stockrpc.Quote, error) { return stockrpc.Quote{}, err }
	}
	rpcErr := func(code stockrpc.Code) fakeQuotes { return failQuote(&stockrpc.Error{Code: code, Message: "m"}) }
	dbDown := fmt.Errorf("query: %w", postgres.ErrUnavailable)
	saveOK := func(_ context.Context, _ int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		return e, nil
	}
	entries := func(n int) func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
		return func(_ context.Context, _ int64, limit int, _ *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
			var out []postgres.HistoryEntry
			for i := 0; i < n && i < limit; i++ {
				out = append(out, postgres.HistoryEntry{ID: int64(100 - i), RequestedAt: testNow, Symbol: "AAPL.US", Name: "APPLE", Open: 1, High: 2, Low: 0.5, Close: 1.5})
			}
			return out, nil
		}
	}

	type scenario struct {
		name   string
		method string
		target string
		body   string
		basic  [2]string
		header [2]string // one extra request header
		userID int64     // bearer token for this user; 0 for none
		setup  func(*testEnv)
		status int
	}
	tests := []scenario{
		{name: "login json", method: "POST", target: "/api/v1/login", body: `{"username":"alice","password":"password1"}`, status: 200},
		{name: "login basic", method: "POST", target: "/api/v1/login", basic: [2]string{"alice", "password1"}, status: 200},
		{name: "login wrong", method: "POST", target: "/api/v1/login", body: `{"username":"alice","password":"nope"}`, status: 401},
		{name: "login malformed", method: "POST", target: "/api/v1/login", body: `{"username":`, status: 400},
		{name: "login unknown field", method: "POST", target: "/api/v1/login", body: `{"username":"a","password":"b","x":1}`, status: 400},
		{name: "login too large", method: "POST", target: "/api/v1/login", body: `{"username":"alice","password":"` + strings.Repeat("a", 2<<20) + `"}`, status: 413},
		{name: "login db down", method: "POST", target: "/api/v1/login", body: `{"username":"alice","password":"password1"}`, setup: func(e *testEnv) {
			e.store.userByName = func(context.Context, string) (postgres.User, error) { return postgres.User{}, dbDown }
		}, status: 503},
		{name: "login internal", method: "POST", target: "/api/v1/login", body: `{"username":"alice","password":"password1"}`, setup: func(e *testEnv) {
			e.store.userByName = func(context.Context, string) (postgres.User, error) { return postgres.User{}, errors.New("boom") }
		}, status: 500},

		{name: "stock ok", method: "GET", target: "/api/v1/stock?q=aapl.us", userID: 1, setup: func(e *testEnv) { e.quotes = okQuote; e.store.addHistory = saveOK }, status: 200},
		{name: "stock no token", method: "GET", target: "/api/v1/stock?q=aapl.us", status: 401},
		{name: "stock bad symbol", method: "GET", target: "/api/v1/stock?q=a%20b", userID: 1, status: 400},
		{name: "stock two symbols", method: "GET", target: "/api/v1/stock?q=a&q=b", userID: 1, status: 400},
		{name: "stock unknown", method: "GET", target: "/api/v1/stock?q=zz.us", userID: 1, setup: func(e *testEnv) { e.quotes = rpcErr(stockrpc.CodeNotFound) }, status: 404},
		{name: "stock over quota", method: "GET", target: "/api/v1/stock?q=zz.us", userID: 1, setup: func(e *testEnv) {
			e.store.rates.tat[requestsKey(1)] = testNow.Add(time.Hour)
		}, status: 429},
		{name: "stock upstream", method: "GET", target: "/api/v1/stock?q=zz.us", userID: 1, setup: func(e *testEnv) { e.quotes = rpcErr(stockrpc.CodeUpstreamError) }, status: 502},
		{name: "stock garbage reply", method: "GET", target: "/api/v1/stock?q=zz.us", userID: 1, setup: func(e *testEnv) { e.quotes = failQuote(errBadReply) }, status: 502},
		{name: "stock rate limited", method: "GET", target: "/api/v1/stock?q=zz.us", userID: 1, setup: func(e *testEnv) { e.quotes = rpcErr(stockrpc.CodeRateLimited) }, status: 503},
		{name: "stock broker down", method: "GET", target: "/api/v1/stock?q=zz.us", userID: 1, setup: func(e *testEnv) { e.quotes = failQuote(amqprpc.ErrUnavailable) }, status: 503},
		{name: "stock timeout", method: "GET", target: "/api/v1/stock?q=zz.us", userID: 1, setup: func(e *testEnv) { e.quotes = failQuote(context.DeadlineExceeded) }, status: 504},
		{name: "stock upstream timeout", method: "GET", target: "/api/v1/stock?q=zz.us", userID: 1, setup: func(e *testEnv) { e.quotes = rpcErr(stockrpc.CodeUpstreamTimeout) }, status: 504},
		{name: "stock save fails", method: "GET", target: "/api/v1/stock?q=aapl.us", userID: 1, setup: func(e *testEnv) {
			e.quotes = okQuote
			e.store.addHistory = func(context.Context, int64, postgres.HistoryEntry) (postgres.HistoryEntry, error) {
				return postgres.HistoryEntry{}, errors.New("disk full")
			}
		}, status: 500},
		{name: "stock save db down", method: "GET", target: "/api/v1/stock?q=aapl.us", userID: 1, setup: func(e *testEnv) {
			e.quotes = okQuote
			e.store.addHistory = func(context.Context, int64, postgres.HistoryEntry) (postgres.HistoryEntry, error) {
				return postgres.HistoryEntry{}, dbDown
			}
		}, status: 503},
		{name: "stock user removed", method: "GET", target: "/api/v1/stock?q=aapl.us", userID: 1, setup: func(e *testEnv) {
			e.quotes = okQuote
			e.store.addHistory = func(context.Context, int64, postgres.HistoryEntry) (postgres.HistoryEntry, error) {
				return postgres.HistoryEntry{}, postgres.ErrNotFound
			}
		}, status: 401},

		{name: "history page with next", method: "GET", target: "/api/v1/history?limit=2", userID: 1, setup: func(e *testEnv) { e.store.history = entries(10) }, status: 200},
		{name: "history last page", method: "GET", target: "/api/v1/history", userID: 1, setup: func(e *testEnv) { e.store.history = entries(3) }, status: 200},
		{name: "history cursor", method: "GET", target: "/api/v1/history?cursor=" + encodeCursor(postgres.HistoryCursor{RequestedAt: testNow, ID: 7}), userID: 1, setup: func(e *testEnv) { e.store.history = entries(1) }, status: 200},
		{name: "history limit 0", method: "GET", target: "/api/v1/history?limit=0", userID: 1, status: 400},
		{name: "history limit 501", method: "GET", target: "/api/v1/history?limit=501", userID: 1, status: 400},
		{name: "history bad cursor", method: "GET", target: "/api/v1/history?cursor=xx", userID: 1, status: 400},
		{name: "history db down", method: "GET", target: "/api/v1/history", userID: 1, setup: func(e *testEnv) {
			e.store.history = func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
				return nil, dbDown
			}
		}, status: 503},

		{name: "stats ok", method: "GET", target: "/api/v1/stats", userID: 2, setup: func(e *testEnv) {
			e.store.topStocks = func(context.Context, int) ([]postgres.StockCount, error) {
				return []postgres.StockCount{{Stock: "AAPL.US", TimesRequested: 3}}, nil
			}
		}, status: 200},
		{name: "stats not superuser", method: "GET", target: "/api/v1/stats", userID: 1, status: 403},
		{name: "stats db down", method: "GET", target: "/api/v1/stats", userID: 2, setup: func(e *testEnv) {
			e.store.topStocks = func(context.Context, int) ([]postgres.StockCount, error) { return nil, dbDown }
		}, status: 503},

		{name: "create user", method: "POST", target: "/api/v1/users", userID: 2, body: `{"username":"bob","password":"password-1","email":"bob@example.com"}`, setup: func(e *testEnv) {
			e.store.createUser = func(_ context.Context, u postgres.User) (postgres.User, error) {
				u.ID = 3
				u.CreatedAt = testNow
				return u, nil
			}
		}, status: 201},
		{name: "create user taken", method: "POST", target: "/api/v1/users", userID: 2, body: `{"username":"bob","password":"password-1"}`, setup: func(e *testEnv) {
			e.store.createUser = func(context.Context, postgres.User) (postgres.User, error) {
				return postgres.User{}, postgres.ErrDuplicate
			}
		}, status: 409},
		{name: "create user invalid", method: "POST", target: "/api/v1/users", userID: 2, body: `{"username":"x y","password":"short"}`, status: 400},
		{name: "create user forbidden", method: "POST", target: "/api/v1/users", userID: 1, body: `{"username":"bob","password":"password-1"}`, status: 403},
		{name: "create user too large", method: "POST", target: "/api/v1/users", userID: 2, body: `{"username":"bob","password":"` + strings.Repeat("a", 2<<20) + `"}`, status: 413},

		{name: "healthz", method: "GET", target: "/healthz", status: 200},
		{name: "readyz ok", method: "GET", target: "/readyz", setup: func(e *testEnv) {
			e.checks = []health.Check{{Name: "database", Ready: func(context.Context) error { return nil }}}
		}, status: 200},
		{name: "readyz failing", method: "GET", target: "/readyz", setup: func(e *testEnv) {
			e.checks = []health.Check{{Name: "database", Ready: func(context.Context) error { return errors.New("down") }}}
		}, status: 503},
		{name: "spec", method: "GET", target: "/openapi.yaml", status: 200},
		{name: "docs", method: "GET", target: "/docs", status: 200},
		{name: "docs asset", method: "GET", target: "/docs/swagger-ui.css", status: 200},
		{name: "docs unknown asset", method: "GET", target: "/docs/nope.js", status: 404},
		{name: "query too long", method: "GET", target: "/api/v1/stock?q=" + strings.Repeat("a", 17<<10), userID: 1, status: 414},
		{name: "headers too large", method: "GET", target: "/api/v1/history", userID: 1, header: [2]string{"X-Padding", strings.Repeat("a", 33<<10)}, status: 431},
		{name: "unknown route", method: "GET", target: "/api/v2/stock", status: 404},
		{name: "wrong method", method: "PUT", target: "/api/v1/stock", status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			if tc.setup != nil {
				tc.setup(env)
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := newRequest(tc.method, tc.target, body, "")
			if tc.userID != 0 {
				r.Header.Set("Authorization", "Bearer "+env.token(t, tc.userID))
			}
			if tc.basic[0] != "" {
				r.SetBasicAuth(tc.basic[0], tc.basic[1])
			}
			if tc.header[0] != "" {
				r.Header.Set(tc.header[0], tc.header[1])
			}
			w := env.serve(t, r.Clone(context.Background()))
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d: %.300s", w.Code, tc.status, w.Body)
			}
			err := v.Check(context.Background(), openapitest.Exchange{
				Request:     r,
				RequestBody: []byte(tc.body),
				Status:      w.Code,
				Header:      w.Header(),
				Body:        w.Body.Bytes(),
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
}

// A throttled login (429 with Retry-After) matches the document too; it
// needs one server across requests, so it is not in the table above.
func TestThrottledLoginMatchesTheDocument(t *testing.T) {
	v, err := openapitest.New(context.Background(), openAPISpec)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t)
	now := testNow
	clock := func() time.Time { return now }
	cfg := throttleConfig{AccountBurst: 1, AccountInterval: time.Minute, ClientBurst: 10, ClientInterval: time.Minute, MaxKeys: 100}
	h := env.handler(t, &now, withLoginThrottle(newLoginThrottle(cfg, clock, env.store)))
	const body = `{"username":"alice","password":"wrong-wrong"}`
	var w *httptest.ResponseRecorder
	for range 2 {
		w = serveWith(h, newRequest("POST", "/api/v1/login", strings.NewReader(body), ""))
	}
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("second wrong login = %d, want 429", w.Code)
	}
	err = v.Check(context.Background(), openapitest.Exchange{
		Request:     newRequest("POST", "/api/v1/login", strings.NewReader(body), ""),
		RequestBody: []byte(body),
		Status:      w.Code,
		Header:      w.Header(),
		Body:        w.Body.Bytes(),
	})
	if err != nil {
		t.Error(err)
	}
}
