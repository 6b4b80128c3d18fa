// Command apiservice is the stockquote REST API: users log in, ask for stock
// quotes (from the stock service over RabbitMQ RPC) and read their history,
// kept in PostgreSQL. docs/configuration.md lists its environment.
package main

import (
	"bufio"
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
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/buildinfo"
	"github.com/stockquote/stockquote/shared/debugserver"
	"github.com/stockquote/stockquote/shared/health"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/metrics"
	"github.com/stockquote/stockquote/shared/redact"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
)

// version and commit are set at build time with -ldflags -X.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "apiservice: %v\n", err)
		os.Exit(1)
	}
}

// errUsage reports a bad command line; the usage has been printed.
var errUsage = errors.New("usage error")

// run is the whole program; main only adds signals and the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("apiservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage:
  apiservice                 serve the API
  apiservice migrate         create or update the database schema
  apiservice user add -name NAME [-email EMAIL] [-superuser] < password-file
  apiservice --version
`)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, buildinfo.New("apiservice", version, commit))
		return nil
	}
	rest := fs.Args()
	switch {
	case len(rest) == 0 || rest[0] == "serve":
		return serve(ctx, getenv, stderr)
	case rest[0] == "migrate" && len(rest) == 1:
		return migrate(ctx, getenv, stdout)
	case len(rest) >= 2 && rest[0] == "user" && rest[1] == "add":
		return addUser(ctx, rest[2:], getenv, stdin, stdout, stderr)
	default:
		fs.Usage()
		return fmt.Errorf("%w: unknown command %q", errUsage, strings.Join(rest, " "))
	}
}

// openStore opens the database with a bounded wait.
func openStore(ctx context.Context, cfg config) (*postgres.DB, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Config{URL: cfg.DatabaseURL, MaxOpenConns: cfg.DBMaxConns, HistoryWriters: cfg.DBWriters})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", redact.URL(cfg.DatabaseURL), err)
	}
	return db, nil
}

// migrate creates or updates the schema.
func migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv, needStore)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	db, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintln(stdout, "schema is up to date")
	return nil
}

// addUser creates a user; the password is the first line of stdin, so it
// never shows in the process list or shell history.
func addUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("apiservice user add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "username (required; letters, digits and ._-)")
	email := fs.String("email", "", "email address (optional)")
	superuser := fs.Bool("superuser", false, "make the user a superuser")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password from stdin: %w", err)
	}
	in, err := newUserInput{
		Username:  *name,
		Password:  strings.TrimRight(line, "\r\n"),
		Email:     *email,
		Superuser: *superuser,
	}.validate()
	if err != nil {
		return err
	}

	cfg, err := loadConfig(getenv, needStore)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	pw := &passwords{cost: cfg.BcryptCost}
	hash, err := pw.hash(in.Password)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := db.CreateUser(ctx, postgres.User{Username: in.Username, Email: in.Email, PasswordHash: hash, Superuser: in.Superuser})
	if err != nil {
		return fmt.Errorf("create user %q: %w", in.Username, err)
	}
	role := "user"
	if u.Superuser {
		role = "superuser"
	}
	fmt.Fprintf(stdout, "created %s %q (id %d)\n", role, u.Username, u.ID)
	return nil
}

// serve runs the API until ctx ends, then shuts down the HTTP server and,
// by the defers, the RPC client, the broker connection and the database.
func serve(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(getenv, needAll)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	info := buildinfo.New("apiservice", version, commit)
	logger := logging.New(stderr, cfg.LogFormat, cfg.LogLevel).With("service", "apiservice")
	logger.Info("starting", "version", info.Version, "commit", info.Commit, "go", info.GoVersion, "config", cfg.settings)

	tp, shutdownTracing, err := tracing.Setup(ctx, tracing.Config{ServiceName: "apiservice", ServiceVersion: info.Version, Endpoint: cfg.OTLPEndpoint})
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		closeLogged(logger, "tracing", func() error { return shutdownTracing(ctx) })
	}()
	reg := metrics.NewRegistry(info)

	pw, err := newPasswords(cfg.BcryptCost)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeLogged(logger, "database", db.Close)
	defer sweepRates(ctx, db.SweepRates, logger)()
	reg.MustRegister(collectors.NewDBStatsCollector(db.SQL(), "stockquote"))
	registerHistoryWriteMetrics(reg, db.HistoryWriteStats())

	conn, err := amqprpc.Dial(amqprpc.Config{URL: cfg.AMQPURL, Name: "apiservice", Logger: logger})
	if err != nil {
		return fmt.Errorf("amqp: %w", err)
	}
	defer closeLogged(logger, "amqp connection", conn.Close)
	client := amqprpc.NewClient(conn, amqprpc.ClientOptions{Channels: cfg.RPCChannels, ContentType: stockrpc.ContentType})
	defer closeLogged(logger, "rpc client", client.Close)
	registerRPCClientMetrics(reg, client.Stats())
	var quotes quoteRequester = newRPCQuotes(client, cfg.RPCQueue, cfg.RPCTimeout, tp, reg)
	if cfg.QuoteCoalesce {
		quotes = newCoalescedQuotes(quotes, reg)
	}

	if cfg.DebugAddr != "" {
		stopDebug, err := debugserver.Start("debug", cfg.DebugAddr, debugserver.Pprof(), logger)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	deps := serverDeps{
		logger:         logger,
		auth:           &tokenAuth{secret: []byte(cfg.JWTSecret), issuer: cfg.JWTIssuer, audience: cfg.JWTAudience, ttl: cfg.TokenTTL, now: time.Now},
		pw:             pw,
		store:          db,
		quotes:         quotes,
		login:          newLoginThrottle(cfg.Login, time.Now, db),
		quota:          newStockQuota(db, cfg.StockQuota, logger),
		checks:         []health.Check{{Name: "database", Ready: db.Ping}, {Name: "broker", Ready: func(context.Context) error { return client.Ready() }}},
		now:            time.Now,
		trustedProxies: cfg.TrustedProxies,
		metrics:        newHTTPMetrics(reg),
	}
	if cfg.MetricsAddr == "" {
		deps.metricsHandler = metrics.Handler(reg)
	} else {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler(reg))
		stopMetrics, err := debugserver.Start("metrics", cfg.MetricsAddr, mux, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	handler := traceRequests(newServer(deps), tp)
	return serveHTTP(ctx, newHTTPServer(ctx, handler, cfg, logger), conn, cfg, logger)
}

// serveHTTP serves srv on cfg.HTTPAddr until ctx ends, then shuts it down.
// It also stops when the request queue's type is not RPC_QUEUE_TYPE, which
// would otherwise show only in the workers' logs.
func serveHTTP(ctx context.Context, srv *http.Server, conn *amqprpc.Conn, cfg config, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("http listening", "addr", ln.Addr().String())

	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		switch err := amqprpc.CheckQueue(ctx, conn, cfg.RPCQueue, cfg.RPCQueueType); {
		case errors.Is(err, amqprpc.ErrQueueMismatch):
			logger.Error("request queue does not match RPC_QUEUE_TYPE; stopping", "rpc_queue", cfg.RPCQueue, "rpc_queue_type", cfg.RPCQueueType, "error", err)
			stop(fmt.Errorf("RPC_QUEUE_TYPE=%s: %w", cfg.RPCQueueType, err))
		case err == nil:
			logger.Info("request queue checked", "rpc_queue", cfg.RPCQueue, "rpc_queue_type", cfg.RPCQueueType)
		}
	}()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown http: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	logger.Info("stopped")
	if err := context.Cause(ctx); errors.Is(err, amqprpc.ErrQueueMismatch) {
		return err
	}
	return nil
}

// closeLogged closes a resource at shutdown, logging a failure.
func closeLogged(logger *slog.Logger, what string, close func() error) {
	if err := close(); err != nil {
		logger.Warn("close failed", "what", what, "error", err)
	}
}
