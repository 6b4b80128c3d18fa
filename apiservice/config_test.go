package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stockquote/stockquote/shared/stockrpc"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func validEnv() map[string]string {
	return map[string]string{
		"DATABASE_URL": "postgres://app:pa55word@127.0.0.1:5432/test",
		"AMQP_URL":     "amqp://guest:guest@127.0.0.1:5672/",
		"JWT_SECRET":   strings.Repeat("s", 32),
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(envFunc(validEnv()), needAll)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8080" || cfg.TokenTTL != time.Hour || cfg.RPCTimeout != 5*time.Second ||
		cfg.ShutdownTimeout != 15*time.Second || cfg.JWTIssuer != "stockquote-api" || cfg.JWTAudience != "stockquote" ||
		cfg.BcryptCost != bcrypt.DefaultCost || cfg.DBMaxConns != 20 || cfg.RPCChannels != 2 || cfg.RPCQueue != stockrpc.QueueName {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		needs   configNeeds
		wantErr string // "" means valid
	}{
		{"valid", nil, needAll, ""},
		{"missing secret", map[string]string{"JWT_SECRET": ""}, needAll, "JWT_SECRET is required"},
		{"short secret", map[string]string{"JWT_SECRET": strings.Repeat("s", 31)}, needAll, "JWT_SECRET: 31 bytes"},
		{"missing database", map[string]string{"DATABASE_URL": ""}, needAll, "DATABASE_URL is required"},
		{"missing amqp", map[string]string{"AMQP_URL": ""}, needAll, "AMQP_URL is required"},
		{"several amqp urls, quorum", map[string]string{"AMQP_URL": "amqp://a:5672/,amqp://b:5672/", "RPC_QUEUE_TYPE": "quorum"}, needAll, ""},
		{"bad second amqp url", map[string]string{"AMQP_URL": "amqp://a:5672/,http://b/"}, needAll, "AMQP_URL"},
		{"bad queue type", map[string]string{"RPC_QUEUE_TYPE": "stream"}, needAll, "RPC_QUEUE_TYPE"},
		{"bad ttl", map[string]string{"TOKEN_TTL": "an hour"}, needAll, "TOKEN_TTL"},
		{"ttl too short", map[string]string{"TOKEN_TTL": "1s"}, needAll, "TOKEN_TTL"},
		{"bad rpc timeout", map[string]string{"RPC_TIMEOUT": "5"}, needAll, "RPC_TIMEOUT"},
		{"negative shutdown", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, needAll, "SHUTDOWN_TIMEOUT"},
		{"bad bcrypt cost", map[string]string{"BCRYPT_COST": "99"}, needAll, "BCRYPT_COST"},
		{"bad pool", map[string]string{"DB_MAX_CONNS": "zero"}, needAll, "DB_MAX_CONNS"},
		{"bad log level", map[string]string{"LOG_LEVEL": "loud"}, needAll, "LOG_LEVEL"},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, needAll, "LOG_FORMAT"},
		{"bad otlp endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, needAll, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"observability set", map[string]string{"LOG_FORMAT": "text", "METRICS_ADDR": ":9090", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, needAll, ""},
		{"custom values", map[string]string{"TOKEN_TTL": "15m", "RPC_TIMEOUT": "2s", "LOG_LEVEL": "debug", "HTTP_ADDR": "127.0.0.1:0"}, needAll, ""},
		{"debug listener", map[string]string{"DEBUG_ADDR": "127.0.0.1:6060"}, needAll, ""},
		{"quote coalescing off", map[string]string{"QUOTE_COALESCE": "off"}, needAll, ""},
		{"bad quote coalescing", map[string]string{"QUOTE_COALESCE": "sometimes"}, needAll, "QUOTE_COALESCE"},
		{"removed auth cache ttl", map[string]string{"AUTH_CACHE_TTL": "2s"}, needAll, "AUTH_CACHE_TTL: removed"},
		{"store only needs no secret", map[string]string{"JWT_SECRET": "", "AMQP_URL": ""}, needStore, ""},
		{"store only needs database", map[string]string{"DATABASE_URL": ""}, needStore, "DATABASE_URL is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := validEnv()
			for k, v := range tt.set {
				env[k] = v
			}
			_, err := loadConfig(envFunc(env), tt.needs)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := loadConfig(envFunc(map[string]string{"TOKEN_TTL": "x"}), needAll)
	for _, want := range []string{"DATABASE_URL", "AMQP_URL", "JWT_SECRET", "TOKEN_TTL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %s", err, want)
		}
	}
}

func TestConfigLogMasksSecrets(t *testing.T) {
	env := validEnv()
	env["JWT_SECRET"] = "super-secret-value-that-is-long-enough"
	env["AMQP_URL"] = env["AMQP_URL"] + ",amqp://other:pa55word@127.0.0.2:5672/"
	cfg, err := loadConfig(envFunc(env), needAll)
	if err != nil {
		t.Fatal(err)
	}
	logged := fmt.Sprint(cfg.settings.LogValue())
	for _, secret := range []string{"pa55word", "guest:guest", "super-secret"} {
		if strings.Contains(logged, secret) {
			t.Errorf("logged config %s contains %q", logged, secret)
		}
	}
	if !strings.Contains(logged, "127.0.0.1:5432") {
		t.Errorf("logged config %s lacks the database host", logged)
	}
}
