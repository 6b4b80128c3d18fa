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
		manyGroup, "| many symbols | 4 |", "| minimal chain, after the pair | 4 |", "Many symbols at 4 clients: the pair",
		"Correctness: every /stock answer has its history row",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestQuickABBA compares the tree with itself at the smallest size, so the
// ABBA mode (-root-b) cannot rot.
func TestQuickABBA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	err := run(ctx, []string{"-quick", "-root", "../..", "-root-b", "../.."}, os.Getenv, &out, &log)
	if err != nil {
		t.Fatalf("run: %v\nlog:\n%s\nreport:\n%s", err, log.String(), out.String())
	}
	report := out.String()
	for _, want := range []string{
		"| many symbols, defaults, A (1) |", "| many symbols, defaults, B (2) |", "| zipf 1000, cache off, A (2) |",
		"ABBA at 4 clients, many symbols, defaults (means of 2 runs each): A ", "ABBA at 4 clients, zipf 1000, cache off",
		"Correctness: every /stock answer has its history row",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "### /history") {
		t.Errorf("the ABBA run ran more than its two scenarios:\n%s", report)
	}
}
