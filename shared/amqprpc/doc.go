// Package amqprpc is request/reply over RabbitMQ with amqp091-go: one
// long-lived connection per process that reconnects by itself, a Client
// that publishes requests and matches replies by correlation id, and a
// Server that consumes a queue with manual acks and bounded concurrency.
//
// # Channel ownership
//
// Calls publish straight on one of the Client's channels; one goroutine
// per channel reopens it after a loss and consumes its direct reply-to
// pseudo-queue and basic.return notifications. The Server consumes on one
// channel with Qos(Workers) and runs Workers handler goroutines on it.
// amqp091 sends Cancel and Close without the lock it holds for a
// publish's frames, so both sides take a lock around them (an interleaved
// frame makes the broker close the connection).
//
// # Reconnection
//
// A Conn redials with capped, jittered exponential backoff. Channel owners
// wait for the next connection and reopen, re-declare and re-consume.
// Calls in flight on a lost channel fail at once with ErrUnavailable;
// unacked server deliveries are redelivered by the broker.
//
// # Deadlines
//
// Every request carries its caller's deadline twice: as the AMQP
// expiration, so the broker drops it once stale, and as the x-deadline
// header (Unix milliseconds), so the server drops it unhandled or bounds
// the handler's context.
package amqprpc

import "errors"

// Sentinel errors. Call also returns ctx.Err() (wrapped) when its context
// ends first, and other wrapped errors for anything else.
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

// Message headers beside the AMQP properties.
const (
	// DeadlineHeader carries the caller's deadline in Unix milliseconds.
	DeadlineHeader = "x-deadline"
	// RequestIDHeader carries the id of the HTTP request a call was made
	// for, so both programs' log lines about it can be matched.
	RequestIDHeader = "x-request-id"
)

// replyToQueue is RabbitMQ's direct reply-to pseudo-queue.
const replyToQueue = "amq.rabbitmq.reply-to"
