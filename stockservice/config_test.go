package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfig(t *testing.T) {
	defaults := config{
		AMQPURL:         "amqp://guest:guest@localhost:5672/",
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
	tests := []struct {
		name    string
		env     map[string]string
		want    func(c *config)
		wantErr []string // substrings of the error
	}{
		{name: "defaults", env: map[string]string{"AMQP_URL": "amqp://guest:guest@localhost:5672/"}, want: func(*config) {}},
		{
			name: "everything set",
			env: map[string]string{
				"AMQP_URL": "amqps://u:p@broker:5671/vh", "RPC_QUEUE": "q.test", "STOOQ_URL": "http://127.0.0.1:8089/",
				"STOOQ_TIMEOUT": "1500ms", "WORKERS": "4", "HTTP_ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug", "SHUTDOWN_TIMEOUT": "2s",
				"LOG_FORMAT": "text", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "RPC_QUEUE_TYPE": "quorum",
			},
			want: func(c *config) {
				*c = config{AMQPURL: "amqps://u:p@broker:5671/vh", Queue: "q.test", QueueType: amqprpc.QueueQuorum, StooqURL: "http://127.0.0.1:8089", StooqTimeout: 1500 * time.Millisecond,
					Workers: 4, HTTPAddr: "127.0.0.1:0", LogLevel: slog.LevelDebug, ShutdownTimeout: 2 * time.Second,
					LogFormat: logging.FormatText, OTLPEndpoint: "http://collector:4318", QuoteCacheTTL: 5 * time.Second}
			},
		},
		{name: "log level warn upper case", env: map[string]string{"AMQP_URL": "amqp://localhost", "LOG_LEVEL": "WARN"},
			want: func(c *config) { c.AMQPURL = "amqp://localhost"; c.LogLevel = slog.LevelWarn }},
		{name: "cache off and debug on", env: map[string]string{"AMQP_URL": "amqp://h", "QUOTE_CACHE_TTL": "0", "DEBUG_ADDR": "127.0.0.1:6061"},
			want: func(c *config) { c.AMQPURL = "amqp://h"; c.QuoteCacheTTL = 0; c.DebugAddr = "127.0.0.1:6061" }},
		{name: "short cache", env: map[string]string{"AMQP_URL": "amqp://h", "QUOTE_CACHE_TTL": "250ms"},
			want: func(c *config) { c.AMQPURL = "amqp://h"; c.QuoteCacheTTL = 250 * time.Millisecond }},
		{name: "stooq key and budget", env: map[string]string{"AMQP_URL": "amqp://h", "STOOQ_API_KEY": " k-123\n", "STOOQ_MAX_RPS": "2.5"},
			want: func(c *config) { c.AMQPURL = "amqp://h"; c.StooqAPIKey = "k-123"; c.StooqMaxRPS = 2.5 }},
		{name: "budget off", env: map[string]string{"AMQP_URL": "amqp://h", "STOOQ_MAX_RPS": "0"},
			want: func(c *config) { c.AMQPURL = "amqp://h" }},
		{name: "negative STOOQ_MAX_RPS", env: map[string]string{"AMQP_URL": "amqp://h", "STOOQ_MAX_RPS": "-1"}, wantErr: []string{"STOOQ_MAX_RPS"}},
		{name: "NaN STOOQ_MAX_RPS", env: map[string]string{"AMQP_URL": "amqp://h", "STOOQ_MAX_RPS": "NaN"}, wantErr: []string{"STOOQ_MAX_RPS"}},
		{name: "bad STOOQ_MAX_RPS", env: map[string]string{"AMQP_URL": "amqp://h", "STOOQ_MAX_RPS": "5/s"}, wantErr: []string{"STOOQ_MAX_RPS"}},
		{name: "negative QUOTE_CACHE_TTL", env: map[string]string{"AMQP_URL": "amqp://h", "QUOTE_CACHE_TTL": "-1s"}, wantErr: []string{"QUOTE_CACHE_TTL"}},
		{name: "bad QUOTE_CACHE_TTL", env: map[string]string{"AMQP_URL": "amqp://h", "QUOTE_CACHE_TTL": "5"}, wantErr: []string{"QUOTE_CACHE_TTL"}},
		{name: "missing AMQP_URL", env: map[string]string{}, wantErr: []string{"AMQP_URL is required"}},
		{name: "cluster: several AMQP URLs, quorum queue", env: map[string]string{"AMQP_URL": "amqp://a:5672/,amqp://b:5672/", "RPC_QUEUE_TYPE": "quorum"},
			want: func(c *config) { c.AMQPURL = "amqp://a:5672/,amqp://b:5672/"; c.QueueType = amqprpc.QueueQuorum }},
		{name: "bad RPC_QUEUE_TYPE", env: map[string]string{"AMQP_URL": "amqp://h", "RPC_QUEUE_TYPE": "stream"}, wantErr: []string{"RPC_QUEUE_TYPE"}},
		{name: "bad second AMQP URL masks passwords", env: map[string]string{"AMQP_URL": "amqp://u:secret@a/,http://u:secret@b/"}, wantErr: []string{"AMQP_URL", "xxxxx"}},
		{name: "bad AMQP_URL scheme masks password", env: map[string]string{"AMQP_URL": "http://u:secret@host"}, wantErr: []string{"AMQP_URL", "xxxxx"}},
		{name: "bad STOOQ_URL", env: map[string]string{"AMQP_URL": "amqp://h", "STOOQ_URL": "stooq.com"}, wantErr: []string{"STOOQ_URL"}},
		{name: "bad STOOQ_TIMEOUT", env: map[string]string{"AMQP_URL": "amqp://h", "STOOQ_TIMEOUT": "5"}, wantErr: []string{"STOOQ_TIMEOUT"}},
		{name: "negative SHUTDOWN_TIMEOUT", env: map[string]string{"AMQP_URL": "amqp://h", "SHUTDOWN_TIMEOUT": "-1s"}, wantErr: []string{"SHUTDOWN_TIMEOUT"}},
		{name: "zero WORKERS", env: map[string]string{"AMQP_URL": "amqp://h", "WORKERS": "0"}, wantErr: []string{"WORKERS"}},
		{name: "huge WORKERS", env: map[string]string{"AMQP_URL": "amqp://h", "WORKERS": "100000"}, wantErr: []string{"WORKERS"}},
		{name: "bad LOG_LEVEL", env: map[string]string{"AMQP_URL": "amqp://h", "LOG_LEVEL": "loud"}, wantErr: []string{"LOG_LEVEL"}},
		{name: "bad LOG_FORMAT", env: map[string]string{"AMQP_URL": "amqp://h", "LOG_FORMAT": "xml"}, wantErr: []string{"LOG_FORMAT"}},
		{name: "bad OTEL_EXPORTER_OTLP_ENDPOINT", env: map[string]string{"AMQP_URL": "amqp://h", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, wantErr: []string{"OTEL_EXPORTER_OTLP_ENDPOINT"}},
		{name: "every error at once", env: map[string]string{"WORKERS": "x", "LOG_LEVEL": "loud"}, wantErr: []string{"AMQP_URL", "WORKERS", "LOG_LEVEL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadConfig(envFunc(tt.env))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("loadConfig = %+v, want error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q leaks the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			want := defaults
			tt.want(&want)
			got.settings = nil // its own tests below
			if got != want {
				t.Errorf("loadConfig = %+v, want %+v", got, want)
			}
		})
	}
}

func TestConfigLogValueMasksPassword(t *testing.T) {
	cfg, err := loadConfig(envFunc(map[string]string{"AMQP_URL": "amqp://user:s3cr3t@broker:5672/,amqp://user:s3cr3t2@broker2:5672/", "STOOQ_URL": "https://a:b4d@stooq.com",
		"STOOQ_API_KEY": "k3yk3y"}))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("start", "config", cfg.settings)
	got := b.String()
	for _, secret := range []string{"s3cr3t", "b4d", "k3yk3y"} {
		if strings.Contains(got, secret) {
			t.Errorf("log %s contains %q", got, secret)
		}
	}
	if !strings.Contains(got, "amqp://user:xxxxx@broker:5672/,amqp://user:xxxxx@broker2:5672/") {
		t.Errorf("log %s lacks the masked AMQP URL", got)
	}
	if !strings.Contains(got, `"STOOQ_API_KEY":"(set)"`) {
		t.Errorf("log %s does not say the stooq key is set", got)
	}
}
