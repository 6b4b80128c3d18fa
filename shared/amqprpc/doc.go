// Package amqprpc is request/reply over RabbitMQ with amqp091-go: a Conn
// that redials by itself, a Client that publishes requests and matches
// replies by correlation id (direct reply-to), and a Server that consumes
// a queue with manual acks and bounded concurrency.
//
// Calls fail at once with ErrUnavailable while the broker is down or the
// call's channel is lost; unacked server deliveries are redelivered.
// docs/reliability.md tells how each fault is met.
package amqprpc

import (
	"errors"
	"time"
)

// Sentinel errors. Call also returns a wrapped ctx.Err() when its context
// ends first.
var (
	// ErrUnavailable: no usable broker connection or channel right now.
	ErrUnavailable = errors.New("amqprpc: broker unavailable")
	// ErrNoRoute: the broker returned the request as unroutable: no
	// worker has declared the queue.
	ErrNoRoute = errors.New("amqprpc: no route to queue")
	// ErrClosed: the client or connection was closed.
	ErrClosed = errors.New("amqprpc: closed")
)

// Message headers beside the AMQP properties.
const (
	// DeadlineHeader carries the caller's deadline in Unix milliseconds,
	// so the server drops a stale request or bounds its handler; the AMQP
	// expiration lets the broker drop it too.
	DeadlineHeader = "x-deadline"
	// RequestIDHeader carries the id of the HTTP request a call was
	// made for, so both programs' log lines about it match.
	RequestIDHeader = "x-request-id"
)

const (
	replyToQueue = "amq.rabbitmq.reply-to" // RabbitMQ's direct reply-to pseudo-queue
	// defaultTimeout bounds a call or a handler without a deadline.
	defaultTimeout = 30 * time.Second
)
