// Command stockservice is the stock worker: it consumes quote requests
// from RabbitMQ (stockrpc.QueueName, or RPC_QUEUE), fetches each quote from stooq and
// replies with the quote or a typed error. HTTP_ADDR serves /healthz and
// /readyz for probes. Configuration comes from the environment; see
// config.go and the README.
//
// `stockservice check [SYMBOL]` fetches one quote with the configured
// stooq URL and key, prints a diagnosis, and exits non-zero when stooq
// cannot serve quotes: run it first against the real stooq.
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
	"sync/atomic"
	"syscall"
	"time"
	_ "time/tzdata" // stooq reports Europe/Warsaw times; distroless images have no tz database

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/buildinfo"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

// version and commit are set at build time:
// -ldflags "-X main.version=v1.2.3 -X main.commit=abc1234".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "stockservice:", err)
		os.Exit(1)
	}
}

// run wires the service and blocks until ctx ends or a part fails, then
// shuts down: stop consuming and finish the requests in flight, close the
// broker connection, stop the HTTP server, all within SHUTDOWN_TIMEOUT.
// `stockservice check [SYMBOL]` runs runCheck instead.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stockservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h asked for the usage, which Parse printed
		}
		return err
	}
	if fs.Arg(0) == "check" {
		return runCheck(ctx, fs.Args()[1:], getenv, stdout)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (the only command is check [SYMBOL])", fs.Args())
	}
	info := buildinfo.New("stockservice", version, commit)
	if *showVersion {
		fmt.Fprintln(stdout, info)
		return nil
	}

	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel).With("service", "stockservice")
	log.Info("starting", "version", info.Version, "commit", info.Commit, "go", info.GoVersion, "config", cfg)

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
	reg := newRegistry(info)

	stooqOpts := stooq.Options{BaseURL: cfg.StooqURL, Timeout: cfg.StooqTimeout, UserAgent: "stockquote-stockservice/" + version,
		APIKey: cfg.StooqAPIKey, MaxRPS: cfg.StooqMaxRPS}
	if cfg.OTLPEndpoint != "" {
		// A client span per stooq request, child of the consume span. Only
		// when spans are exported: with tracing off the wrapper would cost
		// about a tenth of this program's CPU per request (measured, see
		// BENCHMARKS.md) and tell stooq nothing it needs.
		stooqOpts.WrapTransport = traceTransport(tp, prop)
	}
	quotes, err := stooq.New(stooqOpts)
	if err != nil {
		return fmt.Errorf("stooq client: %w", err)
	}
	measured := measuredQuoter{next: quotes, m: newStooqMetrics(reg)}
	// The cache sits in front of the measured client, so the stooq metrics
	// and the refusal watch count real fetches only.
	cache := newQuoteCache(newRefusalWatch(measured, reg, log), cfg.QuoteCacheTTL, time.Now)
	registerCacheMetrics(reg, cache.Stats)
	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(cfg.DebugAddr, cache, log)
		if err != nil {
			return fmt.Errorf("debug listen on %s: %w", cfg.DebugAddr, err)
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
	handler := observeHandler(handleQuote(cache, log), newHandlerMetrics(reg), tp, prop, log)
	server := amqprpc.NewServer(conn, cfg.Queue, handler, amqprpc.ServerOptions{Workers: cfg.Workers, Logger: log, QueueType: cfg.QueueType, ContentType: stockrpc.ContentType})
	reg.MustRegister(newRPCServerCollector(server))

	var draining atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", newHealthServer(&draining, map[string]readier{"amqp": conn, "consumer": server}))
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
	draining.Store(true)
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
	quotes.CloseIdleConnections()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "error", err)
		httpServer.Close()
	}
	if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("http server: %w", err)
	}
	log.Info("stopped", "error", runErr, "quote_cache", cache.Stats())
	return runErr
}
