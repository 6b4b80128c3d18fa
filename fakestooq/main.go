// Command fakestooq serves the stooqtest fake of stooq.com's quote
// endpoint, for local offline runs (make run), end-to-end tests and
// benchmarks. Point STOOQ_URL at it, e.g. STOOQ_URL=http://127.0.0.1:8089.
// Magic symbols (ratelimit.test, html.test, slow.test, challenge.test,
// keypage.test, badkey.test, ...) provoke each failure; see the stooqtest
// package doc. -require-key KEY answers the key page to requests without
// apikey=KEY (the invalid-key page to a wrong key), as stooq does since
// 2026; -challenge answers the bot-challenge interstitial to every request.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fakestooq:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakestooq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8089", "listen address")
	latency := fs.Duration("latency", 0, "delay added to every answer")
	slow := fs.Duration("slow", 30*time.Second, "how long slow.test waits")
	requireKey := fs.String("require-key", "", "the only apikey= accepted (empty: no key needed)")
	challenge := fs.Bool("challenge", false, "answer every request with the bot-challenge interstitial")
	probe := fs.String("probe", "", "GET this URL, exit 0 on a 200 and 1 otherwise (a container healthcheck; the image has no curl)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h asked for the usage, which Parse printed
		}
		return err
	}
	if *probe != "" {
		return get(ctx, *probe)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	h := stooqtest.NewHandler(stooqtest.Options{Latency: *latency, SlowDelay: *slow, RequireKey: *requireKey, Challenge: *challenge})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
	}
	fmt.Fprintf(stdout, "fakestooq listening on http://%s\n", ln.Addr())
	logger.Info("listening", "addr", ln.Addr().String(), "latency", latency.String(),
		"key_required", *requireKey != "", "challenge", *challenge)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// get fetches url within 2s and fails unless it answers 200.
func get(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: status %d", url, resp.StatusCode)
	}
	return nil
}
