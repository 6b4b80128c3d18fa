package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestCarrierRoundTrip(t *testing.T) {
	prop := Propagator()
	in := HeaderCarrier{"traceparent": []byte(parent), "x-deadline": int64(5)}
	ctx := prop.Extract(context.Background(), in)
	sc := trace.SpanContextFromContext(ctx)
	if got, want := sc.TraceID().String(), "4bf92f3577b34da6a3ce929d0e0e4736"; got != want {
		t.Fatalf("extracted trace id %s, want %s", got, want)
	}
	out := HeaderCarrier{}
	prop.Inject(ctx, out)
	if got := out.Get("traceparent"); got != parent {
		t.Errorf("injected traceparent %q, want %q", got, parent)
	}
	if _, ok := out["traceparent"].(string); !ok {
		t.Errorf("injected traceparent is %T, want string", out["traceparent"])
	}
	if got := in.Get("x-deadline"); got != "" {
		t.Errorf("Get of a non-string header = %q, want empty", got)
	}
}

// TestNoopKeepsParent: without an endpoint, spans are not recorded, but a
// child of an incoming trace keeps its trace id, so it reaches the worker.
func TestNoopKeepsParent(t *testing.T) {
	tp, shutdown, err := Setup(context.Background(), Config{ServiceName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	ctx := Propagator().Extract(context.Background(), HeaderCarrier{"traceparent": parent})
	ctx, span := tp.Tracer("t").Start(ctx, "child")
	defer span.End()
	if span.IsRecording() {
		t.Error("no-op span is recording")
	}
	out := HeaderCarrier{}
	Propagator().Inject(ctx, out)
	if got := out.Get("traceparent"); got[:35] != parent[:35] {
		t.Errorf("propagated traceparent %q, want trace id of %q", got, parent)
	}
}

// TestExport: with an endpoint, ended spans are posted to /v1/traces.
func TestExport(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	tp, shutdown, err := Setup(context.Background(), Config{ServiceName: "t", ServiceVersion: "v0", Endpoint: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "op")
	if !span.IsRecording() {
		t.Error("span is not recording with an endpoint set")
	}
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if posts.Load() == 0 {
		t.Error("no spans posted to /v1/traces")
	}
}

func TestValidateEndpoint(t *testing.T) {
	for _, ok := range []string{"", "http://c:4318", "https://c.example.com"} {
		if err := ValidateEndpoint(ok); err != nil {
			t.Errorf("ValidateEndpoint(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"c:4318", "grpc://c:4317", "http://"} {
		if err := ValidateEndpoint(bad); err == nil {
			t.Errorf("ValidateEndpoint(%q) = nil, want an error", bad)
		}
	}
}

// TestNoBaggage: a client's baggage is neither taken in (HTTP, AMQP) nor
// sent on (AMQP, stooq), even when the context carries some.
func TestNoBaggage(t *testing.T) {
	prop := Propagator()
	in := HeaderCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"baggage":     "user=mallory,secret=leak",
	}
	ctx := prop.Extract(context.Background(), in)
	if m := baggage.FromContext(ctx).Members(); len(m) != 0 {
		t.Errorf("extracted baggage %v, want none", m)
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		t.Error("the traceparent was not taken in")
	}
	m, err := baggage.NewMember("secret", "leak")
	if err != nil {
		t.Fatal(err)
	}
	b, err := baggage.New(m)
	if err != nil {
		t.Fatal(err)
	}
	out := HeaderCarrier{}
	prop.Inject(baggage.ContextWithBaggage(ctx, b), out)
	if _, ok := out["baggage"]; ok {
		t.Errorf("injected headers %v carry baggage", out)
	}
	if out["traceparent"] == nil {
		t.Error("the trace context was not sent on")
	}
}
