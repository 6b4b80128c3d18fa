// Package tracing sets up OpenTelemetry tracing for a program and carries
// W3C trace context in AMQP message headers, without touching the otel
// global state.
package tracing

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config says where spans go.
type Config struct {
	ServiceName    string
	ServiceVersion string
	// Endpoint is the OTLP/HTTP collector base URL; spans are posted to
	// Endpoint/v1/traces. Empty means a no-op provider, which still passes
	// incoming trace context on.
	Endpoint string
}

// ValidateEndpoint checks an OTLP/HTTP endpoint URL; "" is valid (off).
func ValidateEndpoint(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("OTLP endpoint %q: want http(s)://host:port", s)
	}
	return nil
}

// Setup returns the tracer provider for cfg (its Endpoint checked with
// ValidateEndpoint) and a shutdown function that flushes buffered spans;
// call it at exit with a bounded context.
func Setup(ctx context.Context, cfg Config) (trace.TracerProvider, func(context.Context) error, error) {
	if cfg.Endpoint == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimRight(cfg.Endpoint, "/")+"/v1/traces"))
	if err != nil {
		return nil, nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceVersion(cfg.ServiceVersion),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	)
	return tp, tp.Shutdown, nil
}

// Propagator is the W3C trace context propagator both programs use over
// HTTP and AMQP. Baggage is left out on purpose: neither program reads
// any, and it would carry a client's baggage header on to stooq.
func Propagator() propagation.TextMapPropagator {
	return propagation.TraceContext{}
}

// HeaderCarrier adapts AMQP message headers (amqp091 Table values) to a
// propagation.TextMapCarrier. Set writes strings; Get also reads []byte
// values, which some clients send for string headers.
type HeaderCarrier map[string]any

// Get returns the header key as a string, or "".
func (c HeaderCarrier) Get(key string) string {
	switch v := c[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	default:
		return ""
	}
}

// Set stores value under key.
func (c HeaderCarrier) Set(key, value string) { c[key] = value }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	return slices.Collect(maps.Keys(c))
}
