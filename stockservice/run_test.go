package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stockquote/stockquote/shared/leaktest"
)

// TestRunBrokerDown starts the service against a port where no broker
// listens: it must serve /healthz, refuse /readyz, and shut down promptly.
func TestRunBrokerDown(t *testing.T) {
	leaktest.Check(t)
	s := startRun(t, map[string]string{
		"AMQP_URL":         "amqp://guest:guest@127.0.0.1:1/",
		"HTTP_ADDR":        "127.0.0.1:0",
		"SHUTDOWN_TIMEOUT": "2s",
		"STOOQ_URL":        "http://127.0.0.1:1",
	})
	if got := s.probe(t, "/healthz"); got != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", got)
	}
	if got := s.probe(t, "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d, want 503", got)
	}
	start := time.Now()
	if err := s.stop(t, 5*time.Second); err != nil {
		t.Errorf("run = %v, want nil after cancel", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v, want within SHUTDOWN_TIMEOUT", d)
	}
}
