package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// newDebugServer returns the opt-in debug endpoints (DEBUG_ADDR): pprof
// under /debug/pprof/ and the quote cache counters at /debug/quotecache.
// It is a separate listener so that profiles are never reachable through
// the probe port; bind it to localhost.
func newDebugServer(cache *quoteCache, log *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/quotecache", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, cache.Stats())
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveDebug starts the debug server on addr and returns a function that
// stops it. The listening address is logged as "debug listening".
func serveDebug(addr string, cache *quoteCache, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := newDebugServer(cache, log)
	go func() { _ = srv.Serve(ln) }()
	log.Info("debug listening", "debug_addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
