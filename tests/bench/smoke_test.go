//go:build integration

package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestQuickRun runs the whole benchmark at its smallest (make bench-quick)
// against the real PostgreSQL and RabbitMQ, so the harness cannot rot: it
// fails if any scenario cannot run or any correctness check fails.
func TestQuickRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	err := run(ctx, []string{"-quick", "-root", "../.."}, os.Getenv, &out, &log)
	if err != nil {
		t.Fatalf("run: %v\nlog:\n%s\nreport:\n%s", err, log.String(), out.String())
	}
	report := out.String()
	for _, want := range []string{
		"bare amqp091 request/reply", "bare GORM single-row INSERT", "bare Gin + JWT verify", "bare stooq fetch",
		"/stock, stooq instant, cache off", "/history", "/stats", "/login",
		"Correctness: every /stock answer has its history row",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}
