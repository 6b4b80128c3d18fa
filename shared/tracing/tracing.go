// Package tracing sets up OpenTelemetry tracing for a program and carries
// W3C trace context (traceparent, tracestate) in AMQP message headers.
// Baggage is not propagated at all (see Propagator).
//
// Nothing here touches the otel global state: the tracer provider and the
// propagator are values the programs pass to the parts that need them.
package tracing

import (
	"context"
	"fmt"
	"net/url"
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
	// Endpoint is the OTLP/HTTP collector base URL
	// (OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://otel-collector:4318);
	// spans are posted to Endpoint/v1/traces. Empty means no export: a
	// no-op provider, which still passes incoming trace context on.
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

// Setup returns the tracer provider for cfg and a shutdown function that
// flushes buffered spans; call it at exit with a bounded context.
func Setup(ctx context.Context, cfg Config) (trace.TracerProvider, func(context.Context) error, error) {
	if cfg.Endpoint == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	if err := ValidateEndpoint(cfg.Endpoint); err != nil {
		return nil, nil, err
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
// HTTP and AMQP. It carries traceparent and tracestate only, both parsed
// strictly (a malformed traceparent starts a new trace). W3C baggage is
// left out on purpose: neither program reads any, and a propagator that
// carried it would take a client's baggage header into the API and on to
// the stock service and, with tracing on, to stooq.
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
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
