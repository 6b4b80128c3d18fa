// Package amqprpc is request/reply over RabbitMQ with amqp091-go: one
// long-lived connection per process that reconnects by itself, a Client
// that publishes requests and matches replies by correlation id, and a
// Server that consumes a queue with manual acks and bounded concurrency.
//
// THIS FILE IS THE AGREED API, WITH STUB BODIES. The amqprpc implementer
// replaces it; other packages code against these signatures only.
package amqprpc

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Sentinel errors. Call also returns ctx.Err() (wrapped) when its context
// ends first, and a *stockrpc-agnostic* error for anything else.
var (
	// ErrUnavailable: no usable broker connection right now (down,
	// reconnecting, or blocked by a resource alarm). Calls fail fast.
	ErrUnavailable = errors.New("amqprpc: broker unavailable")
	// ErrNoRoute: the broker returned the request as unroutable (mandatory
	// flag): no queue of that name exists, so no worker has ever declared it.
	ErrNoRoute = errors.New("amqprpc: no route to queue")
	// ErrClosed: the client or connection was closed.
	ErrClosed = errors.New("amqprpc: closed")
)

// Config configures a Conn.
type Config struct {
	URL        string        // amqp:// URL, may hold credentials: never logged unmasked
	Name       string        // connection name shown in the management UI
	Logger     *slog.Logger  // required
	MinBackoff time.Duration // first reconnect delay; default 100ms
	MaxBackoff time.Duration // reconnect delay cap; default 5s
}

// Conn is one long-lived AMQP connection that redials with capped,
// jittered exponential backoff whenever the broker goes away.
type Conn struct{}

// Dial validates cfg and starts connecting in the background; it returns
// at once (it does not wait for the broker). It fails only on a bad config.
func Dial(cfg Config) (*Conn, error) { panic("unimplemented") }

// Ready reports nil when the connection is up and not blocked.
func (c *Conn) Ready() error { panic("unimplemented") }

// Close closes the connection and stops reconnecting.
func (c *Conn) Close() error { panic("unimplemented") }

// ClientOptions tune a Client.
type ClientOptions struct {
	Channels int // publishing channels (each owned by one goroutine); default 1
}

// Client sends requests and waits for their replies (direct reply-to).
type Client struct{}

// NewClient returns a client using conn. The client survives reconnects.
func NewClient(conn *Conn, opts ClientOptions) *Client { panic("unimplemented") }

// Call publishes body to queue (default exchange, mandatory) with a fresh
// correlation id, an expiration equal to ctx's remaining time and the given
// headers, and waits for the reply body. It needs a ctx with a deadline.
func (c *Client) Call(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error) {
	panic("unimplemented")
}

// Close fails calls in flight with ErrClosed and releases the channels.
func (c *Client) Close() error { panic("unimplemented") }

// Message is one request as a Server handler sees it.
type Message struct {
	Body          []byte
	Headers       map[string]any
	CorrelationID string
	Redelivered   bool
	Deadline      time.Time // zero when the request carried none
}

// Handler computes the reply body for a request. ctx ends at the request's
// deadline or when the server shuts down hard.
type Handler func(ctx context.Context, m Message) []byte

// ServerOptions tune a Server.
type ServerOptions struct {
	Workers int // concurrent handlers = prefetch; default 1
	Logger  *slog.Logger
}

// Server consumes a queue and replies to each request's reply_to.
type Server struct{}

// NewServer returns a server for queue. Serve declares the queue.
func NewServer(conn *Conn, queue string, h Handler, opts ServerOptions) *Server {
	panic("unimplemented")
}

// Serve consumes until ctx is cancelled, then stops consuming, lets the
// handlers in flight finish, replies and acks, and returns nil.
func (s *Server) Serve(ctx context.Context) error { panic("unimplemented") }

// Ready reports nil when the server is consuming.
func (s *Server) Ready() error { panic("unimplemented") }
