package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// readyFunc is a hand-written fake readier.
type readyFunc func() error

func (f readyFunc) Ready() error { return f() }

func TestHealthServer(t *testing.T) {
	ok := readyFunc(func() error { return nil })
	down := readyFunc(func() error { return errors.New("broker unavailable") })
	tests := []struct {
		name       string
		path       string
		draining   bool
		checks     map[string]readier
		wantStatus int
		wantFailed []string
	}{
		{name: "healthz", path: "/healthz", checks: map[string]readier{"amqp": down}, wantStatus: 200},
		{name: "ready", path: "/readyz", checks: map[string]readier{"amqp": ok, "consumer": ok}, wantStatus: 200},
		{name: "amqp down", path: "/readyz", checks: map[string]readier{"amqp": down, "consumer": ok}, wantStatus: 503, wantFailed: []string{"amqp"}},
		{name: "both down", path: "/readyz", checks: map[string]readier{"amqp": down, "consumer": down}, wantStatus: 503, wantFailed: []string{"amqp", "consumer"}},
		{name: "draining", path: "/readyz", draining: true, checks: map[string]readier{"amqp": ok}, wantStatus: 503, wantFailed: []string{"shutdown"}},
		{name: "unknown", path: "/nope", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var draining atomic.Bool
			draining.Store(tt.draining)
			rec := httptest.NewRecorder()
			newHealthServer(&draining, tt.checks).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var body struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if tt.wantStatus == 200 && body.Status != "ok" {
				t.Errorf("status field = %q, want ok", body.Status)
			}
			if len(body.Checks) != len(tt.wantFailed) {
				t.Errorf("checks = %v, want failures %v", body.Checks, tt.wantFailed)
			}
			for _, name := range tt.wantFailed {
				if body.Checks[name] == "" {
					t.Errorf("checks = %v, want %s failed", body.Checks, name)
				}
			}
		})
	}
}
