package amqprpc

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestBackoff: the delay for retry n is in [d/2, d] where d is 100ms*2^n
// capped at 5s, so it grows, caps, and is never zero.
func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		d       time.Duration
	}{
		{-3, 100 * time.Millisecond},
		{0, 100 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{5, 3200 * time.Millisecond},
		{6, 5 * time.Second},
		{63, 5 * time.Second},
		{1000, 5 * time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			if got := backoff(tt.attempt); got < tt.d/2 || got > tt.d {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tt.attempt, got, tt.d/2, tt.d)
			}
		}
	}
}

func TestSplitURLs(t *testing.T) {
	const list = "amqp://u:s3cret@a:5672/, amqps://v:p%2Css@b:5671/vh ,,amqp://c/"
	urls, err := SplitURLs(list)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"amqp://u:s3cret@a:5672/", "amqps://v:p%2Css@b:5671/vh", "amqp://c/"}
	if strings.Join(urls, "|") != strings.Join(want, "|") {
		t.Errorf("SplitURLs = %q, want %q", urls, want)
	}
}

func TestParseQueueType(t *testing.T) {
	for in, want := range map[string]QueueType{"": QueueClassic, "classic": QueueClassic, "quorum": QueueQuorum} {
		if got, err := ParseQueueType(in); err != nil || got != want {
			t.Errorf("ParseQueueType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"stream", "Quorum", "x"} {
		if _, err := ParseQueueType(in); err == nil {
			t.Errorf("ParseQueueType(%q) succeeded, want an error", in)
		}
	}
}

func TestParseDeadline(t *testing.T) {
	const ms = int64(1_790_000_000_123)
	want := time.UnixMilli(ms)
	tests := []struct {
		name    string
		headers map[string]any
		want    time.Time
		wantOK  bool
	}{
		{"int64", map[string]any{deadlineHeader: ms}, want, true},
		{"absent", map[string]any{"other": ms}, time.Time{}, false},
		{"nil headers", nil, time.Time{}, false},
		{"garbage string", map[string]any{deadlineHeader: "soon"}, time.Time{}, false},
		{"zero", map[string]any{deadlineHeader: int64(0)}, time.Time{}, false},
		{"negative", map[string]any{deadlineHeader: int64(-5)}, time.Time{}, false},
		{"wrong type", map[string]any{deadlineHeader: []byte("1")}, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseDeadline(tt.headers)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("parseDeadline(%v) = %v, %v; want %v, %v", tt.headers, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestExpiration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "1"},
		{-time.Second, "1"},
		{time.Microsecond, "1"},
		{time.Millisecond, "1"},
		{1500 * time.Microsecond, "2"},
		{3 * time.Second, "3000"},
	}
	for _, tt := range tests {
		if got := expiration(tt.in); got != tt.want {
			t.Errorf("expiration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDialValidatesConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no logger", Config{URL: "amqp://localhost/"}},
		{"bad scheme", Config{URL: "http://u:s3cret@localhost/", Logger: log}},
		{"bad second address", Config{URL: "amqp://u:s3cret@a/,http://u:s3cret@b/", Logger: log}},
		{"empty list", Config{URL: " , ", Logger: log}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded, want error")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestCallWithoutBrokerFailsFast(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Port 1 on loopback refuses at once; the Conn stays down.
	conn, err := Dial(Config{URL: "amqp://guest:guest@127.0.0.1:1/", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := NewClient(conn, ClientOptions{})
	defer c.Close()
	start := time.Now()
	_, err = c.Call(t.Context(), "q", []byte("x"), nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Call error = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Call took %v, want fast failure", d)
	}
	if err := conn.Ready(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ready = %v, want ErrUnavailable", err)
	}
	c.Close()
	if _, err := c.Call(t.Context(), "q", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after Close = %v, want ErrClosed", err)
	}
}

func TestBlockedConnIsUnavailable(t *testing.T) {
	c := &Conn{
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		changed: make(chan struct{}),
		conn:    new(amqp.Connection), // only its presence matters to Ready
	}
	if err := c.Ready(); err != nil {
		t.Fatalf("Ready = %v, want nil", err)
	}
	_, changed, _ := c.session()
	c.setBlocked(amqp.Blocking{Active: true, Reason: "low on memory"})
	select {
	case <-changed:
	default:
		t.Error("blocking did not signal a state change")
	}
	if err := c.Ready(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "low on memory") {
		t.Errorf("Ready while blocked = %v, want ErrUnavailable with the reason", err)
	}
	c.setBlocked(amqp.Blocking{Active: false})
	if err := c.Ready(); err != nil {
		t.Errorf("Ready after unblock = %v, want nil", err)
	}
}
