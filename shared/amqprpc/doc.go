// Package amqprpc is request/reply over RabbitMQ with amqp091-go: one
// long-lived connection per process that reconnects by itself, a Client
// that publishes requests and matches replies by correlation id, and a
// Server that consumes a queue with manual acks and bounded concurrency.
//
// # Channel ownership
//
// The Client runs one publisher goroutine per channel
// (ClientOptions.Channels) and never shares that channel; callers hand it
// publish requests over a Go channel, and the same goroutine consumes the
// direct reply-to pseudo-queue (amq.rabbitmq.reply-to, auto-ack) and the
// basic.return notifications of that channel. The Server opens one channel
// with Qos(Workers) and one consumer, and ServerOptions.Workers goroutines
// take its deliveries, each publishing its reply and acking on that
// channel. amqp091 serialises publishes and acks on a channel, but sends
// Cancel and Close without that lock, so the server publishes under a
// read lock that Cancel and Close take exclusively (a frame between a
// publish's frames makes the broker close the connection). A handler runs
// only while it holds one of Workers slots, so prefetch and concurrency
// both equal Workers, also while the handlers of a lost channel finish. The broker runs one channel
// process per channel: one with prefetch N cost it about 13% less CPU per
// request than N with prefetch 1.
//
// # Writes
//
// amqp091 flushes every publish and every ack to the socket on its own.
// Conn gives amqp091 a socket whose writes one goroutine sends
// (groupWriteConn): what is written while a send is in the kernel goes
// out with the next one, in order. Under load the program and the broker
// each make far fewer, larger writes and reads; alone, a frame leaves at
// once. It cut RabbitMQ's CPU per /stock by about a fifth (BENCHMARKS.md).
//
// # Reconnection
//
// A Conn redials with capped, jittered exponential backoff after the
// broker goes away. Every owner goroutine waits for the next connection
// (Conn publishes state changes by closing a broadcast channel) and then
// reopens its channel, re-declares and re-consumes. Calls in flight on a
// lost channel fail at once with ErrUnavailable; unacked server deliveries
// are redelivered by the broker.
//
// # Deadlines
//
// Every request carries its caller's deadline twice: as the AMQP expiration
// (remaining milliseconds, at least 1) so the broker drops it once stale,
// and as the header x-deadline (Unix milliseconds) so the server can drop
// it without calling the handler and bound the handler's context.
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

// DeadlineHeader is the message header carrying the caller's deadline in
// Unix milliseconds.
const DeadlineHeader = "x-deadline"

// replyToQueue is RabbitMQ's direct reply-to pseudo-queue.
const replyToQueue = "amq.rabbitmq.reply-to"
