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

var (
	// ErrUnavailable: no usable broker connection or channel right now.
	ErrUnavailable = errors.New("amqprpc: broker unavailable")
	// ErrNoRoute: the broker returned the request: no worker has declared the queue.
	ErrNoRoute = errors.New("amqprpc: no route to queue")
	// ErrClosed: the client or connection was closed.
	ErrClosed = errors.New("amqprpc: closed")
	// ErrQueueMismatch: the request queue exists with other arguments than
	// this program declares (say classic, not quorum); no retry can help.
	ErrQueueMismatch = errors.New("amqprpc: request queue exists with other arguments")
)

// RequestIDHeader carries the HTTP request's id, so both programs' logs match.
const RequestIDHeader = "x-request-id"

const (
	replyToQueue   = "amq.rabbitmq.reply-to" // RabbitMQ's direct reply-to pseudo-queue
	defaultTimeout = 30 * time.Second        // for a call or a handler without a deadline
	// deadlineHeader carries the caller's deadline in Unix milliseconds, so
	// the server drops a stale request or bounds its handler.
	deadlineHeader = "x-deadline"
)
