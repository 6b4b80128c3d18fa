// Package amqprpc is request/reply over RabbitMQ with amqp091-go: a Conn
// that redials by itself, a Client that publishes requests and matches
// replies by correlation id (direct reply-to), and a Server that consumes
// a queue with manual acks and bounded concurrency.
//
// Calls fail at once with ErrUnavailable while the broker is down or the
// call's channel is lost; unacked server deliveries are redelivered.
// Every request carries its caller's deadline twice: as the AMQP
// expiration, so the broker drops it once stale, and as the x-deadline
// header, so the server drops it unhandled or bounds the handler with it.
//
// The connection's socket is a groupWriteConn: one goroutine sends what
// all channels wrote meanwhile in one system call, which saves the broker
// and both programs a write per frame under load.
package amqprpc

import (
	"errors"
	"time"
)

// Sentinel errors. Call also returns a wrapped ctx.Err() when its context
// ends first.
var (
	// ErrUnavailable: no usable broker connection or channel right now
	// (down, reconnecting, or blocked by a resource alarm).
	ErrUnavailable = errors.New("amqprpc: broker unavailable")
	// ErrNoRoute: the broker returned the request as unroutable: no worker
	// has ever declared a queue of that name.
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

const (
	replyToQueue = "amq.rabbitmq.reply-to" // RabbitMQ's direct reply-to pseudo-queue
	// defaultTimeout bounds a call or a handler without a deadline: a
	// request always carries one on the wire.
	defaultTimeout = 30 * time.Second
)
