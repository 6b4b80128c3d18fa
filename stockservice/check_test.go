package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// TestRunCheck runs `stockservice check` through run against the fake
// stooq: one line of diagnosis per case, a failure exactly when stooq
// cannot serve quotes, and never the key.
func TestRunCheck(t *testing.T) {
	const key = "the-k3y-of-this-test"
	fake := stooqtest.NewServer(stooqtest.Options{RequireKey: key, SlowDelay: 2 * time.Second})
	defer fake.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + closed.Addr().String()
	closed.Close()

	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantResult string // "" when run fails before fetching
		wantErr    string // "" when the check passes
	}{
		{"quote found", []string{"check"}, map[string]string{"STOOQ_API_KEY": key}, "quote found", ""},
		{"unknown symbol", []string{"check", "nosuch.us"}, map[string]string{"STOOQ_API_KEY": key}, "unknown symbol", ""},
		{"key required", []string{"check"}, nil, "key required", "key required"},
		{"key rejected", []string{"check", "aapl.us"}, map[string]string{"STOOQ_API_KEY": "wrong"}, "key rejected", "key rejected"},
		{"challenge", []string{"check", "challenge.test"}, map[string]string{"STOOQ_API_KEY": key}, "challenge", "challenge"},
		{"daily limit", []string{"check", "ratelimit.test"}, map[string]string{"STOOQ_API_KEY": key}, "daily limit", "daily limit"},
		{"other html", []string{"check", "html.test"}, map[string]string{"STOOQ_API_KEY": key}, "unexpected answer", "unexpected answer"},
		{"timeout", []string{"check", "slow.test"}, map[string]string{"STOOQ_API_KEY": key, "STOOQ_TIMEOUT": "100ms"}, "timeout", "timeout"},
		{"network error", []string{"check"}, map[string]string{"STOOQ_URL": deadURL, "STOOQ_API_KEY": key}, "network error", "network error"},
		{"invalid symbol", []string{"check", "a+b"}, nil, "", "invalid symbol"},
		{"two symbols", []string{"check", "a.us", "b.us"}, nil, "", "at most one symbol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"STOOQ_URL": fake.URL}
			for k, v := range tt.env {
				env[k] = v
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"stockservice"}, tt.args...), envFunc(env), &stdout, &stderr)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("run: %v\n%s", err, stdout.String())
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("run error = %v, want %q\n%s", err, tt.wantErr, stdout.String())
			}
			if tt.wantResult != "" && !strings.Contains(stdout.String(), "result:  "+tt.wantResult+" (") {
				t.Errorf("stdout lacks result %q:\n%s", tt.wantResult, stdout.String())
			}
			if tt.wantResult != "" && tt.wantResult != "quote found" && !strings.Contains(stdout.String(), "action:  ") {
				t.Errorf("stdout says no action:\n%s", stdout.String())
			}
			all := stdout.String() + stderr.String()
			if err != nil {
				all += err.Error()
			}
			if strings.Contains(all, key) {
				t.Errorf("output holds the key:\n%s", all)
			}
		})
	}
	if got := fake.KeyHits(key); got < 5 {
		t.Errorf("requests with the key = %d, want the check to send it", got)
	}
}
