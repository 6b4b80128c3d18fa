package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestReady(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("broker unavailable") }
	tests := []struct {
		name       string
		checks     []Check
		wantStatus int
		want       map[string]string
	}{
		{"ready", []Check{{"amqp", ok}, {"consumer", ok}}, 200, map[string]string{"amqp": "ok", "consumer": "ok"}},
		{"one down", []Check{{"amqp", down}, {"consumer", ok}}, 503, map[string]string{"amqp": "fail", "consumer": "ok"}},
		{"both down", []Check{{"amqp", down}, {"consumer", down}}, 503, map[string]string{"amqp": "fail", "consumer": "fail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Ready(slog.New(slog.NewTextHandler(io.Discard, nil)), tt.checks...).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			var body struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if wantOverall := map[int]string{200: "ok", 503: "unavailable"}[tt.wantStatus]; body.Status != wantOverall {
				t.Errorf("status field = %q, want %q", body.Status, wantOverall)
			}
			if !maps.Equal(body.Checks, tt.want) {
				t.Errorf("checks = %v, want %v", body.Checks, tt.want)
			}
		})
	}
}

func TestLive(t *testing.T) {
	rec := httptest.NewRecorder()
	Live(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "{\"status\":\"ok\"}\n" {
		t.Errorf("Live = %d %q, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body)
	}
}
