package main

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
)

// readier reports nil when a dependency is ready. *amqprpc.Conn and
// *amqprpc.Server implement it.
type readier interface {
	Ready() error
}

// newHealthServer returns the probe endpoints: /healthz answers while the
// process runs, /readyz only while every check passes and the service is
// not shutting down.
func newHealthServer(draining *atomic.Bool, checks map[string]readier) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		failed := map[string]string{}
		if draining.Load() {
			failed["shutdown"] = "shutting down"
		}
		for name, c := range checks {
			if err := c.Ready(); err != nil {
				failed[name] = err.Error()
			}
		}
		if len(failed) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "checks": failed})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"status": "not found"})
	})
	return mux
}

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
