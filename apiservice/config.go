package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
)

// minSecretLen is the shortest JWT_SECRET accepted: HS256 wants a key at
// least as long as its 256-bit output.
const minSecretLen = 32

// config is the API service's configuration, read once from the
// environment by loadConfig.
type config struct {
	DatabaseURL string         // DATABASE_URL, required
	DBMaxConns  int            // DB_MAX_CONNS, default 20
	DBWriters   int            // DB_HISTORY_WRITERS: concurrent history INSERTs, default 4
	BcryptCost  int            // BCRYPT_COST, default bcrypt.DefaultCost
	LogLevel    slog.Level     // LOG_LEVEL: debug, info, warn, error; default info
	LogFormat   logging.Format // LOG_FORMAT: json (default) or text
	AMQPURL     string         // AMQP_URL, required to serve; several comma-separated for a cluster
	RPCQueue    string         // RPC_QUEUE, request queue; default stockrpc.QueueName (tests set a unique one)
	// RPCQueueType (RPC_QUEUE_TYPE, classic or quorum, default classic)
	// must match the workers'; the API checks the queue at start.
	RPCQueueType    amqprpc.QueueType
	RPCChannels     int           // RPC_CHANNELS, publishing channels; default 2
	RPCTimeout      time.Duration // RPC_TIMEOUT, default 5s
	HTTPAddr        string        // HTTP_ADDR, default :8080
	JWTSecret       string        // JWT_SECRET, required to serve, >= 32 bytes
	JWTIssuer       string        // JWT_ISSUER, default stockquote-api
	JWTAudience     string        // JWT_AUDIENCE, default stockquote
	TokenTTL        time.Duration // TOKEN_TTL, default 1h
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT, default 15s
	// MetricsAddr (METRICS_ADDR) serves /metrics on its own listener; empty
	// (the default) serves it on HTTP_ADDR beside the API.
	MetricsAddr string
	// OTLPEndpoint (OTEL_EXPORTER_OTLP_ENDPOINT) is the OTLP/HTTP collector
	// spans are exported to; empty exports nothing.
	OTLPEndpoint string
	// QuoteCoalesce (QUOTE_COALESCE, on|off, default on): concurrent
	// /stock requests for one symbol share one RPC (coalescedQuotes).
	QuoteCoalesce bool
	DebugAddr     string // DEBUG_ADDR, pprof listener; default "" (off)

	// Security holds TRUSTED_PROXIES, LOGIN_* and HTTP_READ_HEADER_TIMEOUT;
	// see loadSecurityConfig.
	Security securityConfig
}

// configNeeds says which parts of the config a command needs: migrate and
// user add need only the database.
type configNeeds int

const (
	needStore configNeeds = iota
	needAll
)

// loadConfig reads the configuration through getenv, applies defaults and
// validates it, reporting every problem at once.
func loadConfig(getenv func(string) string, needs configNeeds) (config, error) {
	cfg := config{
		DatabaseURL: strings.TrimSpace(getenv("DATABASE_URL")),
		AMQPURL:     strings.TrimSpace(getenv("AMQP_URL")),
		RPCQueue:    strings.TrimSpace(getenv("RPC_QUEUE")),
		HTTPAddr:    strings.TrimSpace(getenv("HTTP_ADDR")),
		JWTSecret:   getenv("JWT_SECRET"),
		JWTIssuer:   strings.TrimSpace(getenv("JWT_ISSUER")),
		JWTAudience: strings.TrimSpace(getenv("JWT_AUDIENCE")),
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	if cfg.DatabaseURL == "" {
		add(errors.New("DATABASE_URL is required"))
	}
	cfg.DBMaxConns = intEnv(getenv, "DB_MAX_CONNS", 20, 1, 1000, add)
	cfg.DBWriters = intEnv(getenv, "DB_HISTORY_WRITERS", postgres.DefaultHistoryWriters, 1, 1000, add)
	cfg.BcryptCost = intEnv(getenv, "BCRYPT_COST", bcrypt.DefaultCost, bcrypt.MinCost, bcrypt.MaxCost, add)
	if s := strings.TrimSpace(getenv("LOG_LEVEL")); s != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(s)); err != nil {
			add(fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", s))
		}
	}
	if f, err := logging.ParseFormat(getenv("LOG_FORMAT")); err != nil {
		add(fmt.Errorf("LOG_FORMAT: %w", err))
	} else {
		cfg.LogFormat = f
	}
	if needs == needStore {
		return cfg, errors.Join(errs...)
	}

	if cfg.AMQPURL == "" {
		add(errors.New("AMQP_URL is required"))
	} else if _, err := amqprpc.SplitURLs(cfg.AMQPURL); err != nil {
		add(fmt.Errorf("AMQP_URL: %w", err))
	}
	if t, err := amqprpc.ParseQueueType(strings.TrimSpace(getenv("RPC_QUEUE_TYPE"))); err != nil {
		add(fmt.Errorf("RPC_QUEUE_TYPE: %w", err))
	} else {
		cfg.RPCQueueType = t
	}
	if cfg.RPCQueue == "" {
		cfg.RPCQueue = stockrpc.QueueName
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = ":8080"
	}
	switch {
	case cfg.JWTSecret == "":
		add(errors.New("JWT_SECRET is required (at least 32 bytes, e.g. `openssl rand -base64 48`)"))
	case len(cfg.JWTSecret) < minSecretLen:
		add(fmt.Errorf("JWT_SECRET is %d bytes, want at least %d", len(cfg.JWTSecret), minSecretLen))
	}
	if cfg.JWTIssuer == "" {
		cfg.JWTIssuer = "stockquote-api"
	}
	if cfg.JWTAudience == "" {
		cfg.JWTAudience = "stockquote"
	}
	cfg.RPCChannels = intEnv(getenv, "RPC_CHANNELS", 2, 1, 64, add)
	cfg.TokenTTL = durationEnv(getenv, "TOKEN_TTL", time.Hour, time.Minute, 7*24*time.Hour, add)
	cfg.RPCTimeout = durationEnv(getenv, "RPC_TIMEOUT", 5*time.Second, 100*time.Millisecond, 5*time.Minute, add)
	cfg.ShutdownTimeout = durationEnv(getenv, "SHUTDOWN_TIMEOUT", 15*time.Second, 0, 10*time.Minute, add)
	cfg.MetricsAddr = strings.TrimSpace(getenv("METRICS_ADDR"))
	cfg.OTLPEndpoint = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	if err := tracing.ValidateEndpoint(cfg.OTLPEndpoint); err != nil {
		add(fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err))
	}
	cfg.QuoteCoalesce = onOffEnv(getenv, "QUOTE_COALESCE", true, add)
	if strings.TrimSpace(getenv("AUTH_CACHE_TTL")) != "" {
		// The TTL cache traded away "a removed user loses access at
		// once"; its replacement keeps that promise. Refuse the old
		// setting rather than ignore it silently.
		add(errors.New("AUTH_CACHE_TTL was removed: every request reads its user from the database"))
	}
	cfg.DebugAddr = strings.TrimSpace(getenv("DEBUG_ADDR"))
	cfg.Security = loadSecurityConfig(getenv, add)
	return cfg, errors.Join(errs...)
}

func intEnv(getenv func(string) string, name string, def, lo, hi int, add func(error)) int {
	s := strings.TrimSpace(getenv(name))
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		add(fmt.Errorf("%s %q: want an integer in %d..%d", name, s, lo, hi))
		return def
	}
	return n
}

// onOffEnv reads a switch: on, true or 1; off, false or 0; def if unset.
func onOffEnv(getenv func(string) string, name string, def bool, add func(error)) bool {
	switch v := strings.ToLower(strings.TrimSpace(getenv(name))); v {
	case "":
		return def
	case "on", "true", "1":
		return true
	case "off", "false", "0":
		return false
	default:
		add(fmt.Errorf("%s: %q is neither on nor off", name, v))
		return def
	}
}

func durationEnv(getenv func(string) string, name string, def, lo, hi time.Duration, add func(error)) time.Duration {
	s := strings.TrimSpace(getenv(name))
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		add(fmt.Errorf("%s %q: want a duration (like 30s or 1h) in %v..%v", name, s, lo, hi))
		return def
	}
	return d
}

// LogValue logs the config with secrets masked.
func (c config) LogValue() slog.Value {
	secret := ""
	if c.JWTSecret != "" {
		secret = fmt.Sprintf("[%d bytes masked]", len(c.JWTSecret))
	}
	return slog.GroupValue(
		slog.String("database_url", maskURL(c.DatabaseURL)),
		slog.Int("db_max_conns", c.DBMaxConns),
		slog.Int("db_history_writers", c.DBWriters),
		slog.Int("bcrypt_cost", c.BcryptCost),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", string(c.LogFormat)),
		slog.String("amqp_url", amqprpc.RedactURLs(c.AMQPURL)),
		slog.String("rpc_queue", c.RPCQueue),
		slog.String("rpc_queue_type", string(c.RPCQueueType)),
		slog.Int("rpc_channels", c.RPCChannels),
		slog.String("rpc_timeout", c.RPCTimeout.String()),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("jwt_secret", secret),
		slog.String("jwt_issuer", c.JWTIssuer),
		slog.String("jwt_audience", c.JWTAudience),
		slog.String("token_ttl", c.TokenTTL.String()),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("otel_exporter_otlp_endpoint", maskURL(c.OTLPEndpoint)),
		slog.Bool("quote_coalesce", c.QuoteCoalesce),
		slog.String("debug_addr", c.DebugAddr),
		slog.Any("security", c.Security),
	)
}

// dsnPassword matches the password in a key=value DSN.
var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// maskURL hides the password of a URL or key=value DSN, and the whole
// value when it cannot be parsed (better too little in the log than a leak).
func maskURL(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable, masked]"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
