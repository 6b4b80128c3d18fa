// Package health serves the probe endpoints both programs answer:
// /healthz (the process runs) and /readyz (every dependency is usable).
package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// Check is one dependency /readyz checks; Ready returns nil when it is usable.
type Check struct {
	Name  string
	Ready func(context.Context) error
}

// checkTimeout bounds each check, so a hung dependency fails the probe
// instead of hanging it.
const checkTimeout = 2 * time.Second

// Live answers 200 while the process runs.
func Live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// Ready returns the /readyz handler: 200 when every check passes, else
// 503. The body says "ok" or "fail" per check; why one failed goes to the
// log only, since probes may be reachable from outside.
func Ready(log *slog.Logger, checks ...Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		results := make(map[string]string, len(checks))
		status, overall := http.StatusOK, "ok"
		for _, c := range checks {
			ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
			err := c.Ready(ctx)
			cancel()
			if err != nil {
				status, overall = http.StatusServiceUnavailable, "unavailable"
				results[c.Name] = "fail"
				log.Warn("readiness check failed", "check", c.Name, "error", err)
				continue
			}
			results[c.Name] = "ok"
		}
		writeJSON(w, status, map[string]any{"status": overall, "checks": results})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
