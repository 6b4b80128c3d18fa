package stooq_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockquote/stockquote/stockservice/stooq"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// TestParseRefusalPages: each refusal page is recognised by its markers,
// in whatever words, and any other HTML stays an upstream error.
func TestParseRefusalPages(t *testing.T) {
	loc := warsaw(t)
	tests := []struct {
		name string
		body string
		want error
	}{
		{"fake key page", stooqtest.KeyPage, stooq.ErrKeyRequired},
		{"fake invalid-key page", stooqtest.BadKeyPage, stooq.ErrKeyRejected},
		{"fake challenge", stooqtest.ChallengePage, stooq.ErrChallenge},
		{"key page, other words", `<html><body>Please <a href="/q/d/?s=spy.us&get_apikey">get an API key</a> to download data.</body></html>`, stooq.ErrKeyRequired},
		{"key page, api_key", `<!doctype html><title>x</title><p>Parameter API_KEY missing</p>`, stooq.ErrKeyRequired},
		{"key page, leading blank lines", "\r\n\r\n<HTML><BODY>Your Api-Key goes here</BODY></HTML>", stooq.ErrKeyRequired},
		{"invalid key, other words", `<html><body>The apikey you gave is not valid.</body></html>`, stooq.ErrKeyRejected},
		{"expired key", `<html><body>API key expired</body></html>`, stooq.ErrKeyRejected},
		{"challenge: __verify form only", `<html><body><form method="post" action="/__verify"><input name="t"></form></body></html>`, stooq.ErrChallenge},
		{"challenge: script only", `<html><head><script>/* Proof-of-Work */ var d=crypto.subtle.digest("SHA-256",b)</script></head></html>`, stooq.ErrChallenge},
		{"challenge mentioning a key", `<html><body>apikey <form action="/__verify"></form></body></html>`, stooq.ErrChallenge},
		{"other html", `<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>`, stooq.ErrUpstream},
		{"plain text mentioning apikey", "no apikey here, not html\r\n", stooq.ErrUpstream},
		{"php warning mentioning apikey", "<br />\n<b>Warning</b>: apikey undefined in <b>x.php</b><br />\n" + hdr + "A.US,2022-07-01,10:00:00,1,2,0.5,1,7,A\r\n", stooq.ErrUpstream},
		{"csv whose name says api key", hdr + "A.US,2022-07-01,10:00:00,1,2,0.5,abc,7,<html> API KEY\r\n", stooq.ErrUpstream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := stooq.Parse([]byte(tt.body), loc)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
			for _, other := range []error{stooq.ErrKeyRequired, stooq.ErrKeyRejected, stooq.ErrChallenge, stooq.ErrUpstream} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("Parse error = %v, also %v", err, other)
				}
			}
		})
	}
}

// keyFake is a fake stooq that requires key, for the client tests.
func keyFake(t *testing.T, key string) *stooqtest.Server {
	t.Helper()
	fake := stooqtest.NewServer(stooqtest.Options{RequireKey: key})
	t.Cleanup(fake.Close)
	return fake
}

func TestQuoteAPIKey(t *testing.T) {
	const key = "k3y/with+odd&chars"
	fake := keyFake(t, key)
	tests := []struct {
		name    string
		key     string
		symbol  string
		wantErr error
	}{
		{"no key", "", "aapl.us", stooq.ErrKeyRequired},
		{"wrong key", "other", "aapl.us", stooq.ErrKeyRejected},
		{"right key", key, "aapl.us", nil},
		{"right key, not found", key, "nosuch.us", stooq.ErrNotFound},
		{"right key, challenge", key, "challenge.test", stooq.ErrChallenge},
		{"no key, challenge first", "", "challenge.test", stooq.ErrChallenge},
		// A key page although a key was sent means stooq does not take it.
		{"right key, key page", key, "keypage.test", stooq.ErrKeyRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, fake.URL, stooq.Options{APIKey: tt.key})
			_, err := c.Quote(context.Background(), tt.symbol)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Quote(%q) error = %v, want %v", tt.symbol, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), key) {
				t.Errorf("error %q holds the key", err)
			}
		})
	}
	if got := fake.KeyHits(key); got != 4 {
		t.Errorf("requests with the key = %d, want 4", got)
	}
	if got := fake.KeyHits(""); got != 2 {
		t.Errorf("requests without a key = %d, want 2", got)
	}
}

// TestQuoteKeyHiddenFromWrappers: the key is added below WrapTransport,
// so tracing never records it, and redacted from errors that could carry
// the URL (a redirect's Location, a transport error).
func TestQuoteKeyHiddenFromWrappers(t *testing.T) {
	const key = "s3cr3t-key"
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("apikey"); got != key {
			t.Errorf("apikey = %q, want the key", got)
		}
		// Echo the whole query, key included, in a redirect.
		http.Redirect(w, r, "/elsewhere/?"+r.URL.RawQuery, http.StatusFound)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, stooq.Options{APIKey: key, WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			seen = append(seen, r.URL.String())
			mu.Unlock()
			return rt.RoundTrip(r)
		})
	}})
	_, err := c.Quote(context.Background(), "aapl.us")
	if !errors.Is(err, stooq.ErrUpstream) || !strings.Contains(err.Error(), "/elsewhere/") {
		t.Fatalf("error = %v, want ErrUpstream naming the redirect", err)
	}
	if strings.Contains(err.Error(), key) {
		t.Errorf("error %q holds the key", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || strings.Contains(seen[0], key) || strings.Contains(seen[0], "apikey") {
		t.Errorf("wrapper saw %q, want one URL without the key", seen)
	}

	// A transport error whose text carries the URL (as *url.Error does).
	c = newClient(t, srv.URL, stooq.Options{APIKey: key, WrapTransport: func(http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return nil, errors.New("dial " + r.URL.String() + "?apikey=" + key + ": refused")
		})
	}})
	if _, err := c.Quote(context.Background(), "aapl.us"); !errors.Is(err, stooq.ErrNetwork) || strings.Contains(err.Error(), key) {
		t.Errorf("transport error = %v, want ErrNetwork without the key", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestQuoteRefusalWithErrorStatus: a refusal page that comes with an
// error status is still named.
func TestQuoteRefusalWithErrorStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(stooqtest.ChallengePage))
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, stooq.Options{})
	if _, err := c.Quote(context.Background(), "aapl.us"); !errors.Is(err, stooq.ErrChallenge) {
		t.Errorf("error = %v, want ErrChallenge", err)
	}
}

func TestQuoteBudget(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{})
	defer fake.Close()
	// 2 per second, a bucket of 2: two requests at once, then one per 500ms.
	c := newClient(t, fake.URL, stooq.Options{MaxRPS: 2})
	for i := range 2 {
		if _, err := c.Quote(context.Background(), "aapl.us"); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Quote(ctx, "aapl.us")
	if !errors.Is(err, stooq.ErrOverBudget) {
		t.Fatalf("over budget with a short deadline: error = %v, want ErrOverBudget", err)
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Errorf("over budget took %v, want an immediate answer (the token comes after the deadline)", took)
	}
	if got := fake.TotalHits(); got != 2 {
		t.Errorf("stooq hits = %d, want 2 (the refused request is never sent)", got)
	}
	// With time enough, the request waits for its token.
	if _, err := c.Quote(context.Background(), "aapl.us"); err != nil {
		t.Fatalf("over budget with time to wait: %v", err)
	}
	if got := fake.TotalHits(); got != 3 {
		t.Errorf("stooq hits = %d, want 3", got)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Quote(ctx, "aapl.us"); !errors.Is(err, context.Canceled) || errors.Is(err, stooq.ErrOverBudget) {
		t.Errorf("cancelled: error = %v, want context.Canceled only", err)
	}
}
