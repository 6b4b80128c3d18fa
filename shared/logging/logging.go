// Package logging builds the programs' log/slog loggers and carries the
// request id through a context, so every line logged about a request
// (with a ...Context method) names it, together with the W3C trace and
// span ids of the current OpenTelemetry span.
package logging

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Format is how log lines are written.
type Format string

// The formats ParseFormat accepts.
const (
	FormatJSON Format = "json" // one JSON object per line (the default)
	FormatText Format = "text" // slog's key=value text
)

// ParseFormat reads LOG_FORMAT: json (also the empty string) or text.
func ParseFormat(s string) (Format, error) {
	switch f := cmp.Or(Format(strings.ToLower(strings.TrimSpace(s))), FormatJSON); f {
	case FormatJSON, FormatText:
		return f, nil
	}
	return "", fmt.Errorf("log format %q: want json or text", s)
}

// ParseLevel reads LOG_LEVEL: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// New returns a logger writing to w in format at level and above.
func New(w io.Writer, format Format, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == FormatText {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(contextHandler{h})
}

// contextHandler adds request_id, trace_id and span_id from a record's context.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	// slog.Logger passes context.Background() for a nil ctx.
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

type requestIDKey struct{}

// WithRequestID returns a copy of ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// MaxRequestIDLen bounds an accepted incoming request id.
const MaxRequestIDLen = 128

var requestIDPattern = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9._:-]{1,%d}$`, MaxRequestIDLen))

// ValidRequestID reports whether s may be used as a request id as it came:
// short and plain enough that it cannot forge log lines or headers.
func ValidRequestID(s string) bool { return requestIDPattern.MatchString(s) }
