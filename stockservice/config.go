package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/env"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/redact"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
)

// config is the stock service's configuration, read once from the
// environment by loadConfig; docs/configuration.md describes each variable.
type config struct {
	AMQPURL         string // may hold a password; several comma-separated for a cluster
	Queue           string
	QueueType       amqprpc.QueueType
	StooqURL        string
	StooqTimeout    time.Duration
	StooqAPIKey     string  // a secret; empty sends none
	StooqMaxRPS     float64 // 0: no cap
	Workers         int     // concurrent requests = prefetch
	HTTPAddr        string  // health and readiness probes, /metrics
	DebugAddr       string  // pprof; empty: off
	LogLevel        slog.Level
	LogFormat       logging.Format
	ShutdownTimeout time.Duration
	OTLPEndpoint    string         // empty: no spans exported
	QuoteCacheTTL   time.Duration  // 0: no reuse (coalescing stays)
	settings        slog.LogValuer // every setting read, secrets masked, for the startup log
}

// loadConfig reads and validates the configuration, reporting every
// problem at once.
func loadConfig(getenv func(string) string) (config, error) {
	r := env.NewReader(getenv)
	cfg := config{
		AMQPURL:   r.Required("AMQP_URL", "amqp://user:pass@host:port/vhost, or several separated by commas"),
		Queue:     r.String("RPC_QUEUE", stockrpc.QueueName),
		QueueType: env.Parse(r, "RPC_QUEUE_TYPE", amqprpc.QueueClassic, amqprpc.ParseQueueType),
		StooqURL: env.Parse(r, "STOOQ_URL", "https://stooq.com", func(s string) (string, error) {
			if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return "", fmt.Errorf("%q: want http(s)://host", redact.URL(s))
			}
			return s, nil
		}),
		StooqTimeout: r.Duration("STOOQ_TIMEOUT", 4*time.Second, time.Millisecond, time.Minute),
		StooqAPIKey:  r.Secret("STOOQ_API_KEY", ""),
		// A larger cap is no cap.
		StooqMaxRPS: r.Float("STOOQ_MAX_RPS", 0, 0, 10000),
		// Each worker holds an AMQP channel slot and may hold a connection to stooq.
		Workers:         r.Int("WORKERS", 64, 1, 1024),
		HTTPAddr:        r.String("HTTP_ADDR", ":8081"),
		DebugAddr:       r.String("DEBUG_ADDR", ""),
		LogLevel:        env.Parse(r, "LOG_LEVEL", slog.LevelInfo, logging.ParseLevel),
		LogFormat:       env.Parse(r, "LOG_FORMAT", logging.FormatJSON, logging.ParseFormat),
		ShutdownTimeout: r.Duration("SHUTDOWN_TIMEOUT", 15*time.Second, time.Millisecond, 10*time.Minute),
		OTLPEndpoint:    r.String("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
		QuoteCacheTTL:   r.Duration("QUOTE_CACHE_TTL", 5*time.Second, 0, time.Hour),
	}
	cfg.StooqURL = strings.TrimRight(cfg.StooqURL, "/")
	if cfg.AMQPURL != "" {
		if _, err := amqprpc.SplitURLs(cfg.AMQPURL); err != nil {
			r.Fail("AMQP_URL", err)
		}
	}
	if len(cfg.Queue) > 255 {
		r.Fail("RPC_QUEUE", errors.New("longer than 255 bytes"))
	}
	if err := tracing.ValidateEndpoint(cfg.OTLPEndpoint); err != nil {
		r.Fail("OTEL_EXPORTER_OTLP_ENDPOINT", err)
	}
	if err := r.Err(); err != nil {
		return config{}, fmt.Errorf("config: %w", err)
	}
	cfg.settings = r
	return cfg, nil
}
