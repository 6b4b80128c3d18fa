package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"", FormatJSON, false},
		{"json", FormatJSON, false},
		{" TEXT ", FormatText, false},
		{"logfmt", "", true},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseLevel(t *testing.T) {
	if l, err := ParseLevel("WARN"); err != nil || l != slog.LevelWarn {
		t.Errorf("ParseLevel(WARN) = %v, %v; want warn", l, err)
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Error("ParseLevel(loud): want an error")
	}
}

func TestContextAttrs(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, FormatJSON, slog.LevelDebug).With("service", "x")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(WithRequestID(context.Background(), "req-1"),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	log.InfoContext(ctx, "with")
	log.Info("without")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var with, without map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &with); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &without); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"request_id": "req-1", "trace_id": tid.String(), "span_id": sid.String(), "service": "x"} {
		if with[k] != want {
			t.Errorf("line with context: %s = %v, want %q", k, with[k], want)
		}
	}
	for _, k := range []string{"request_id", "trace_id", "span_id"} {
		if _, ok := without[k]; ok {
			t.Errorf("line without context has %s: %s", k, lines[1])
		}
	}
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, FormatText, slog.LevelInfo).InfoContext(WithRequestID(context.Background(), "abc"), "hello")
	if got := buf.String(); !strings.Contains(got, "msg=hello") || !strings.Contains(got, "request_id=abc") {
		t.Errorf("text line = %q, want msg=hello and request_id=abc", got)
	}
}

func TestValidRequestID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"abc-123_X.y:z", true},
		{strings.Repeat("a", MaxRequestIDLen), true},
		{strings.Repeat("a", MaxRequestIDLen+1), false},
		{"has space", false},
		{"line\nbreak", false},
		{`quote"`, false},
		{"ünïcode", false},
	}
	for _, tt := range tests {
		if got := ValidRequestID(tt.in); got != tt.want {
			t.Errorf("ValidRequestID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
