// Command stockservice is the stock worker: it consumes quote requests
// from RabbitMQ, fetches each quote from stooq and replies with the quote
// or a typed error; HTTP_ADDR serves /healthz, /readyz and /metrics.
// `stockservice check [SYMBOL]` fetches one quote and prints a diagnosis.
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
	_ "time/tzdata" // stooq reports Europe/Warsaw times; distroless images have no tz database

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/buildinfo"
	"github.com/stockquote/stockquote/shared/debugserver"
	"github.com/stockquote/stockquote/shared/health"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/metrics"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

// version and commit are set with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "stockservice: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole program; main only adds signals and the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stockservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, buildinfo.New("stockservice", version, commit))
		return nil
	}
	rest := fs.Args()
	switch {
	case len(rest) == 0:
		return serve(ctx, getenv, stderr)
	case rest[0] == "check":
		return runCheck(ctx, rest[1:], getenv, stdout)
	default:
		return fmt.Errorf("unexpected arguments %q (the only command is check [SYMBOL])", rest)
	}
}

// serve runs the worker until ctx ends or a part fails, then, within
// SHUTDOWN_TIMEOUT, stops consuming and finishes the requests in flight,
// closes the broker connection and stops the HTTP server.
func serve(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	info := buildinfo.New("stockservice", version, commit)
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel).With("service", "stockservice")
	log.Info("starting", "version", info.Version, "commit", info.Commit, "go", info.GoVersion, "config", cfg.settings)

	tp, shutdownTracing, err := tracing.Setup(ctx, tracing.Config{ServiceName: "stockservice", ServiceVersion: info.Version, Endpoint: cfg.OTLPEndpoint})
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(ctx); err != nil {
			log.Warn("flush traces", "error", err)
		}
	}()
	prop := tracing.Propagator()
	reg := metrics.NewRegistry(info)

	stooqOpts := newStooqOptions(cfg)
	if cfg.OTLPEndpoint != "" { // a span per stooq request costs CPU: only when exported
		stooqOpts.WrapTransport = traceTransport(tp, prop)
	}
	client, err := stooq.New(stooqOpts)
	if err != nil {
		return fmt.Errorf("stooq client: %w", err)
	}
	defer client.CloseIdleConnections()
	cache := newQuoteCache(newStooqWatch(client, reg, log), cfg.QuoteCacheTTL, time.Now, reg)

	if cfg.DebugAddr != "" {
		stopDebug, err := debugserver.Start("debug", cfg.DebugAddr, debugserver.Pprof(), log)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	conn, err := amqprpc.Dial(amqprpc.Config{URL: cfg.AMQPURL, Name: "stockservice", Logger: log})
	if err != nil {
		ln.Close()
		return fmt.Errorf("amqp: %w", err)
	}
	server := amqprpc.NewServer(conn, cfg.Queue, observeHandler(handleQuote(cache, log), reg, tp, prop, log),
		amqprpc.ServerOptions{Workers: cfg.Workers, QueueType: cfg.QueueType, ContentType: stockrpc.ContentType})
	registerRPCServerMetrics(reg, server.Stats())

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.HandleFunc("GET /healthz", health.Live)
	// Not ready while the broker link is down, or once shutdown stops consuming.
	mux.Handle("GET /readyz", health.Ready(log, health.Check{Name: "consumer", Ready: func(context.Context) error { return server.Ready() }}))
	httpServer := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	serveDone := make(chan error, 1)
	go func() { serveDone <- server.Serve(serveCtx) }()
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpServer.Serve(ln) }()
	log.Info("http listening", "addr", ln.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
	case err := <-serveDone:
		serveDone <- err // read again below
		runErr = fmt.Errorf("amqp server stopped: %w", err)
	case err := <-httpDone:
		httpDone <- err
		runErr = fmt.Errorf("http server: %w", err)
	}

	// A fresh deadline: ctx is already done.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	stopServing()
	select {
	case err := <-serveDone:
		if err != nil && runErr == nil {
			runErr = fmt.Errorf("amqp server: %w", err)
		}
	case <-shutdownCtx.Done():
		log.Warn("requests still in flight at the shutdown timeout; closing anyway")
	}
	if err := conn.Close(); err != nil {
		log.Warn("close amqp connection", "error", err)
	}
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "error", err)
		httpServer.Close()
	}
	if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("http server: %w", err)
	}
	log.Info("stopped", "error", runErr)
	return runErr
}

// newStooqOptions returns the stooq client options serve and check share.
func newStooqOptions(cfg config) stooq.Options {
	return stooq.Options{BaseURL: cfg.StooqURL, Timeout: cfg.StooqTimeout, APIKey: cfg.StooqAPIKey,
		MaxRPS: cfg.StooqMaxRPS, UserAgent: "stockquote-stockservice/" + version}
}
