package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/env"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
)

// minSecretLen is the shortest JWT_SECRET accepted: HS256 wants a key at
// least as long as its 256-bit output.
const minSecretLen = 32

// config is the API service's configuration, read once by loadConfig;
// docs/configuration.md describes every variable.
type config struct {
	DatabaseURL       string
	DBMaxConns        int
	DBWriters         int
	BcryptCost        int
	LogLevel          slog.Level
	LogFormat         logging.Format
	AMQPURL           string
	RPCQueue          string
	RPCQueueType      amqprpc.QueueType
	RPCChannels       int
	RPCTimeout        time.Duration
	HTTPAddr          string
	JWTSecret         string
	JWTIssuer         string
	JWTAudience       string
	TokenTTL          time.Duration
	ShutdownTimeout   time.Duration
	MetricsAddr       string // empty: /metrics is served on HTTPAddr
	OTLPEndpoint      string // empty: no spans are exported
	QuoteCoalesce     bool
	DebugAddr         string
	TrustedProxies    []string
	Login             throttleConfig
	StockQuota        quotaConfig
	ReadHeaderTimeout time.Duration
	settings          slog.LogValuer // every setting read, secrets masked, for the startup log
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
	if r.Secret("JWT_SECRET", "at least 32 bytes, e.g. `openssl rand -base64 48`") != "" {
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
	if strings.TrimSpace(getenv("AUTH_CACHE_TTL")) != "" {
		// Refuse the old setting rather than ignore it silently.
		r.Fail("AUTH_CACHE_TTL", errors.New("removed: every request reads its user from the database"))
	}
	cfg.DebugAddr = r.String("DEBUG_ADDR", "")
	for _, p := range strings.Split(r.String("TRUSTED_PROXIES", ""), ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			r.Fail("TRUSTED_PROXIES", fmt.Errorf("%q is neither an IP address nor a CIDR", p))
			continue
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, p)
	}
	cfg.Login = throttleConfig{
		AccountBurst:    r.Int("LOGIN_ACCOUNT_BURST", 5, 1, 1000),
		AccountInterval: r.Duration("LOGIN_ACCOUNT_INTERVAL", time.Minute, time.Millisecond, 24*time.Hour),
		ClientBurst:     r.Int("LOGIN_CLIENT_BURST", 20, 1, 100000),
		ClientInterval:  r.Duration("LOGIN_CLIENT_INTERVAL", 6*time.Second, time.Millisecond, 24*time.Hour),
		MaxKeys:         r.Int("LOGIN_MAX_TRACKED", 65536, 16, 10_000_000),
		TrustedWindow:   r.Duration("LOGIN_TRUSTED_WINDOW", 30*24*time.Hour, 0, 366*24*time.Hour),
	}
	cfg.ReadHeaderTimeout = r.Duration("HTTP_READ_HEADER_TIMEOUT", 5*time.Second, 100*time.Millisecond, time.Minute)
	cfg.StockQuota = quotaConfig{
		RequestsPerMinute: r.Int("STOCK_QUOTA_REQUESTS_PER_MINUTE", 120, 0, 1_000_000),
		MissesPerMinute:   r.Int("STOCK_QUOTA_MISSES_PER_MINUTE", 30, 0, 1_000_000),
	}
	cfg.settings = r
	return cfg, r.Err()
}
