package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/env"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/redact"
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
	r := env.NewReader(getenv)
	cfg := config{
		DatabaseURL: r.Required("DATABASE_URL", "postgres://user:pass@host:5432/db"),
		DBMaxConns:  r.Int("DB_MAX_CONNS", 20, 1, 1000),
		DBWriters:   r.Int("DB_HISTORY_WRITERS", postgres.DefaultHistoryWriters, 1, 1000),
		BcryptCost:  r.Int("BCRYPT_COST", bcrypt.DefaultCost, bcrypt.MinCost, bcrypt.MaxCost),
		LogLevel:    env.Parse(r, "LOG_LEVEL", slog.LevelInfo, logging.ParseLevel),
		LogFormat:   env.Parse(r, "LOG_FORMAT", logging.FormatJSON, logging.ParseFormat),
	}
	if needs == needStore {
		return cfg, r.Err()
	}

	cfg.AMQPURL = r.Required("AMQP_URL", "amqp://user:pass@host:5672/, or several separated by commas")
	if cfg.AMQPURL != "" {
		if _, err := amqprpc.SplitURLs(cfg.AMQPURL); err != nil {
			r.Fail("AMQP_URL", err)
		}
	}
	cfg.RPCQueue = r.String("RPC_QUEUE", stockrpc.QueueName)
	cfg.RPCQueueType = env.Parse(r, "RPC_QUEUE_TYPE", amqprpc.QueueClassic, amqprpc.ParseQueueType)
	cfg.RPCChannels = r.Int("RPC_CHANNELS", 2, 1, 64)
	cfg.RPCTimeout = r.Duration("RPC_TIMEOUT", 5*time.Second, 100*time.Millisecond, 5*time.Minute)
	cfg.HTTPAddr = r.String("HTTP_ADDR", ":8080")
	if r.Required("JWT_SECRET", "at least 32 bytes, e.g. `openssl rand -base64 48`") != "" {
		cfg.JWTSecret = getenv("JWT_SECRET") // not trimmed: every byte of the key counts
		if len(cfg.JWTSecret) < minSecretLen {
			r.Fail("JWT_SECRET", fmt.Errorf("%d bytes, want at least %d", len(cfg.JWTSecret), minSecretLen))
		}
	}
	cfg.JWTIssuer = r.String("JWT_ISSUER", "stockquote-api")
	cfg.JWTAudience = r.String("JWT_AUDIENCE", "stockquote")
	cfg.TokenTTL = r.Duration("TOKEN_TTL", time.Hour, time.Minute, 7*24*time.Hour)
	cfg.ShutdownTimeout = r.Duration("SHUTDOWN_TIMEOUT", 15*time.Second, 0, 10*time.Minute)
	cfg.MetricsAddr = r.String("METRICS_ADDR", "")
	cfg.OTLPEndpoint = r.String("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	if err := tracing.ValidateEndpoint(cfg.OTLPEndpoint); err != nil {
		r.Fail("OTEL_EXPORTER_OTLP_ENDPOINT", err)
	}
	cfg.QuoteCoalesce = r.OnOff("QUOTE_COALESCE", true)
	if r.String("AUTH_CACHE_TTL", "") != "" {
		// Refuse the old setting rather than ignore it silently.
		r.Fail("AUTH_CACHE_TTL", errors.New("removed: every request reads its user from the database"))
	}
	cfg.DebugAddr = r.String("DEBUG_ADDR", "")
	cfg.Security = loadSecurityConfig(r)
	return cfg, r.Err()
}

// LogValue logs the config with secrets masked.
func (c config) LogValue() slog.Value {
	secret := ""
	if c.JWTSecret != "" {
		secret = fmt.Sprintf("[%d bytes masked]", len(c.JWTSecret))
	}
	return slog.GroupValue(
		slog.String("database_url", redact.URL(c.DatabaseURL)),
		slog.Int("db_max_conns", c.DBMaxConns),
		slog.Int("db_history_writers", c.DBWriters),
		slog.Int("bcrypt_cost", c.BcryptCost),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", string(c.LogFormat)),
		slog.String("amqp_url", redact.URLs(c.AMQPURL)),
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
		slog.String("otel_exporter_otlp_endpoint", redact.URL(c.OTLPEndpoint)),
		slog.Bool("quote_coalesce", c.QuoteCoalesce),
		slog.String("debug_addr", c.DebugAddr),
		slog.Any("security", c.Security),
	)
}
