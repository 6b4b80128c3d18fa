package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// signed returns a token with the given claims, algorithm and key.
func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goodClaims() jwt.RegisteredClaims {
	return jwt.RegisteredClaims{
		Subject:   "1",
		Issuer:    "stockquote-api",
		Audience:  jwt.ClaimStrings{"stockquote"},
		IssuedAt:  jwt.NewNumericDate(testNow.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(testNow.Add(time.Hour)),
	}
}

func TestBearerAccepted(t *testing.T) {
	tests := []struct {
		name   string
		header string
	}{
		{"issued token", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, goodClaims())},
		{"scheme case-insensitive", "bearer " + signed(t, jwt.SigningMethodHS256, testSecret, goodClaims())},
		{"expired within leeway", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, func() jwt.RegisteredClaims {
			c := goodClaims()
			c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-10 * time.Second))
			return c
		}())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.store.history = func(_ context.Context, userID int64, _ int, _ *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
				if userID != alice.ID {
					t.Errorf("user = %d, want %d", userID, alice.ID)
				}
				return nil, nil
			}
			r := newRequest("GET", "/api/v1/history", nil, "")
			r.Header.Set("Authorization", tt.header)
			if w := env.serve(t, r); w.Code != 200 {
				t.Errorf("status = %d, want 200; body %s", w.Code, w.Body)
			}
		})
	}
}

func TestTokenRoundTrip(t *testing.T) {
	now := testNow
	a := &tokenAuth{secret: testSecret, issuer: "iss", audience: "aud", ttl: time.Hour, now: func() time.Time { return now }}
	tok, err := a.issue(12345)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := a.verify(tok); err != nil || id != 12345 {
		t.Fatalf("verify = %d, %v; want 12345, nil", id, err)
	}
	now = now.Add(time.Hour + tokenLeeway + time.Second)
	if _, err := a.verify(tok); err == nil {
		t.Error("verify accepted an expired token")
	}
}

func TestBearerStoreDown(t *testing.T) {
	env := newTestEnv(t)
	env.store.userByID = func(context.Context, int64) (postgres.User, error) {
		return postgres.User{}, postgres.ErrUnavailable
	}
	checkProblem(t, env.serve(t, newRequest("GET", "/api/v1/history", nil, env.token(t, alice.ID))), 503)
}

// FuzzBearer feeds arbitrary Authorization headers through the bearer
// middleware: it must answer 401 (or 200 for alice's real token), never
// panic or anything else.
func FuzzBearer(f *testing.F) {
	a := &tokenAuth{secret: testSecret, issuer: "stockquote-api", audience: "stockquote", ttl: time.Hour, now: func() time.Time { return testNow }}
	good, err := a.issue(alice.ID)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("Bearer " + good)
	f.Add("Bearer " + good[:len(good)-2])
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")
	f.Add("Basic Zm9vOmJhcg==")
	f.Add("Bearer " + strings.Repeat("a.", 50))
	f.Add("")
	env := newTestEnv(f)
	env.auth = a
	env.store.history = func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
		return nil, nil
	}
	env.quotes = func(context.Context, string) (stockrpc.Quote, error) { return stockrpc.Quote{}, nil }
	f.Fuzz(func(t *testing.T, header string) {
		env.logs.Reset()
		r := newRequest("GET", "/api/v1/history", nil, "")
		r.Header["Authorization"] = []string{header}
		w := env.serve(t, r)
		switch w.Code {
		case 200:
			if tok, ok := bearerToken(header); !ok || tok != good {
				t.Errorf("header %q accepted", header)
			}
		case 401:
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		default:
			t.Errorf("header %q: status %d", header, w.Code)
		}
	})
}
