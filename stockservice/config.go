package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
)

// config is the stock service's configuration, read once from the
// environment by loadConfig.
type config struct {
	AMQPURL         string            // AMQP_URL, required; may hold a password; several comma-separated for a cluster
	Queue           string            // RPC_QUEUE: request queue; tests set a unique one
	QueueType       amqprpc.QueueType // RPC_QUEUE_TYPE: classic (default) or quorum
	StooqURL        string            // STOOQ_URL
	StooqTimeout    time.Duration     // STOOQ_TIMEOUT
	Workers         int               // WORKERS: concurrent requests = prefetch
	HTTPAddr        string            // HTTP_ADDR: health and readiness probes
	LogLevel        slog.Level        // LOG_LEVEL: debug, info, warn, error
	ShutdownTimeout time.Duration     // SHUTDOWN_TIMEOUT
	// LogFormat (LOG_FORMAT) is json (the default) or text.
	LogFormat logging.Format
	// OTLPEndpoint (OTEL_EXPORTER_OTLP_ENDPOINT) is the OTLP/HTTP collector
	// spans are exported to; empty exports nothing.
	OTLPEndpoint  string
	QuoteCacheTTL time.Duration // QUOTE_CACHE_TTL: reuse a quote this long; 0 disables
	DebugAddr     string        // DEBUG_ADDR: pprof and cache counters; empty (default) = off
	// StooqAPIKey (STOOQ_API_KEY, a secret) is sent as apikey= to stooq;
	// empty sends none.
	StooqAPIKey string
	// StooqMaxRPS (STOOQ_MAX_RPS) caps this process's stooq requests per
	// second; 0 (the default) is no cap.
	StooqMaxRPS float64
}

// maxStooqRPS bounds STOOQ_MAX_RPS: a larger cap is no cap.
const maxStooqRPS = 10000

// maxWorkers bounds WORKERS: each worker holds an AMQP channel and may
// hold a connection to stooq.
const maxWorkers = 1024

// loadConfig reads and validates the configuration. It reports every
// problem at once.
func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{
		AMQPURL:         strings.TrimSpace(getenv("AMQP_URL")),
		Queue:           stockrpc.QueueName,
		QueueType:       amqprpc.QueueClassic,
		StooqURL:        "https://stooq.com",
		StooqTimeout:    4 * time.Second,
		Workers:         64,
		HTTPAddr:        ":8081",
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: 15 * time.Second,
		LogFormat:       logging.FormatJSON,
		QuoteCacheTTL:   5 * time.Second,
	}
	var errs []error
	if cfg.AMQPURL == "" {
		errs = append(errs, errors.New("AMQP_URL is required"))
	} else if _, err := amqprpc.SplitURLs(cfg.AMQPURL); err != nil {
		errs = append(errs, fmt.Errorf("AMQP_URL %q: want amqp://user:pass@host:port/vhost, or several separated by commas: %w", amqprpc.RedactURLs(cfg.AMQPURL), err))
	}
	if t, err := amqprpc.ParseQueueType(strings.TrimSpace(getenv("RPC_QUEUE_TYPE"))); err != nil {
		errs = append(errs, fmt.Errorf("RPC_QUEUE_TYPE: %w", err))
	} else {
		cfg.QueueType = t
	}
	if v := strings.TrimSpace(getenv("RPC_QUEUE")); v != "" {
		if len(v) > 255 {
			errs = append(errs, errors.New("RPC_QUEUE: longer than 255 bytes"))
		}
		cfg.Queue = v
	}
	if v := strings.TrimSpace(getenv("STOOQ_URL")); v != "" {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("STOOQ_URL %q: want http(s)://host", maskURL(v)))
		}
		cfg.StooqURL = strings.TrimRight(v, "/")
	}
	duration := func(name string, dst *time.Duration) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s %q: want a positive duration such as 5s", name, v))
			return
		}
		*dst = d
	}
	duration("STOOQ_TIMEOUT", &cfg.StooqTimeout)
	duration("SHUTDOWN_TIMEOUT", &cfg.ShutdownTimeout)
	if v := strings.TrimSpace(getenv("QUOTE_CACHE_TTL")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Hour {
			errs = append(errs, fmt.Errorf("QUOTE_CACHE_TTL %q: want a duration from 0 (off) to 1h, such as 5s", v))
		} else {
			cfg.QuoteCacheTTL = d
		}
	}
	cfg.DebugAddr = strings.TrimSpace(getenv("DEBUG_ADDR"))
	// Trimmed: a key pasted into a file or a Secret often ends in a newline.
	cfg.StooqAPIKey = strings.TrimSpace(getenv("STOOQ_API_KEY"))
	if v := strings.TrimSpace(getenv("STOOQ_MAX_RPS")); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= maxStooqRPS) {
			errs = append(errs, fmt.Errorf("STOOQ_MAX_RPS %q: want a number from 0 (no cap) to %d, such as 5 or 0.5", v, maxStooqRPS))
		} else {
			cfg.StooqMaxRPS = f
		}
	}
	if v := strings.TrimSpace(getenv("WORKERS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxWorkers {
			errs = append(errs, fmt.Errorf("WORKERS %q: want an integer from 1 to %d", v, maxWorkers))
		} else {
			cfg.Workers = n
		}
	}
	if v := strings.TrimSpace(getenv("HTTP_ADDR")); v != "" {
		cfg.HTTPAddr = v
	}
	if v := strings.TrimSpace(getenv("LOG_LEVEL")); v != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", v))
		}
	}
	if f, err := logging.ParseFormat(getenv("LOG_FORMAT")); err != nil {
		errs = append(errs, fmt.Errorf("LOG_FORMAT: %w", err))
	} else {
		cfg.LogFormat = f
	}
	cfg.OTLPEndpoint = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	if err := tracing.ValidateEndpoint(cfg.OTLPEndpoint); err != nil {
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// LogValue logs the configuration with the AMQP password masked.
func (c config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("amqp_url", amqprpc.RedactURLs(c.AMQPURL)),
		slog.String("rpc_queue", c.Queue),
		slog.String("rpc_queue_type", string(c.QueueType)),
		slog.String("stooq_url", maskURL(c.StooqURL)),
		slog.String("stooq_timeout", c.StooqTimeout.String()),
		slog.Int("workers", c.Workers),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", string(c.LogFormat)),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.String("otel_exporter_otlp_endpoint", maskURL(c.OTLPEndpoint)),
		slog.String("quote_cache_ttl", c.QuoteCacheTTL.String()),
		slog.String("debug_addr", c.DebugAddr),
		slog.String("stooq_api_key", maskSecret(c.StooqAPIKey)),
		slog.Float64("stooq_max_rps", c.StooqMaxRPS),
	)
}

// maskSecret tells whether a secret is set without showing any of it.
func maskSecret(s string) string {
	if s == "" {
		return "(unset)"
	}
	return "(set)"
}

// maskURL hides the password of a URL; an unparsable URL is hidden whole,
// since it may still hold one.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable url>"
	}
	return u.Redacted()
}
