package amqprpc

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Message is one request as a Server handler sees it.
type Message struct {
	Body          []byte
	Headers       map[string]any
	CorrelationID string
	Redelivered   bool
}

// Handler computes the reply body for a request. ctx ends at the request's
// deadline (or after 30s), not with Serve's ctx, so a graceful shutdown
// lets the handler finish. A panic is logged, counted, and the request
// acked without a reply.
type Handler func(ctx context.Context, m Message) []byte

// ServerOptions tune a Server.
type ServerOptions struct {
	Workers     int       // concurrent handlers = prefetch; default 1
	ContentType string    // set on every reply; empty means none
	QueueType   QueueType // the type Serve declares the queue with; default QueueClassic
}

// ServerStats are counters since the server was created.
type ServerStats struct {
	Deliveries  atomic.Uint64 // requests received
	Handled     atomic.Uint64 // requests answered and acked
	Expired     atomic.Uint64 // requests dropped because their deadline had passed
	Panics      atomic.Uint64 // handler panics (acked without reply)
	NoReplyTo   atomic.Uint64 // requests dropped for lack of reply_to
	ReplyErrors atomic.Uint64 // replies that could not be published (left unacked for redelivery)
}

// Server consumes a queue on one channel with prefetch Workers and
// replies to each request's reply_to from Workers handler goroutines.
type Server struct {
	conn    *Conn
	queue   string
	handler Handler
	opts    ServerOptions
	log     *slog.Logger

	consuming atomic.Bool
	// slots bounds the handlers running at once across sessions: the
	// handlers of a lost channel may still run while the next consumes.
	slots    chan struct{}
	handlers sync.WaitGroup

	stats ServerStats
}

// NewServer returns a server for queue. Serve declares the queue.
func NewServer(conn *Conn, queue string, h Handler, opts ServerOptions) *Server {
	opts.Workers = max(opts.Workers, 1)
	opts.QueueType = cmp.Or(opts.QueueType, QueueClassic)
	return &Server{
		conn:    conn,
		queue:   queue,
		handler: h,
		opts:    opts,
		log:     conn.log.With("amqp_role", "server", "queue", queue),
		slots:   make(chan struct{}, opts.Workers),
	}
}

// Serve consumes until ctx is cancelled, lets the handlers finish what the
// channel holds, and returns nil; ErrClosed if the Conn is closed first, or
// an error wrapping ErrQueueMismatch.
func (s *Server) Serve(ctx context.Context) error {
	s.log.Info("amqp server starting", "workers", s.opts.Workers, "queue_type", s.opts.QueueType)
	err := s.conn.hold(ctx.Done(), s.log, func(conn *amqp.Connection) (bool, error) { return s.consume(ctx, conn) })
	s.handlers.Wait()
	s.log.Info("amqp server stopped")
	switch {
	case err != nil:
		s.log.Error("amqp request queue mismatch", "error", err)
		return err
	case ctx.Err() != nil:
		return nil
	}
	return ErrClosed
}

// Ready reports nil when the server is consuming.
func (s *Server) Ready() error {
	if err := s.conn.Ready(); err != nil {
		return err
	}
	if !s.consuming.Load() {
		return fmt.Errorf("%w: not consuming %s yet", ErrUnavailable, s.queue)
	}
	return nil
}

// Stats returns the server's counters, live.
func (s *Server) Stats() *ServerStats { return &s.stats }

// consume declares the queue on a new channel and handles its deliveries
// until ctx ends or the channel is lost; then it returns at once, while the
// handlers in flight finish (their replies and acks fail: redelivered).
func (s *Server) consume(ctx context.Context, conn *amqp.Connection) (consumed bool, err error) {
	raw, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	ch := &channel{ch: raw}
	closes := raw.NotifyClose(make(chan *amqp.Error, 1))
	tag := s.queue + "." + rand.Text()[:8]
	var deliveries <-chan amqp.Delivery
	err = raw.Qos(s.opts.Workers, 0, false)
	if err == nil {
		err = declareQueue(raw, s.queue, s.opts.QueueType)
	}
	if err == nil {
		deliveries, err = raw.Consume(s.queue, tag, false, false, false, false, nil)
	}
	if err != nil {
		_ = ch.close()
		return false, fmt.Errorf("consume %s: %w", s.queue, err)
	}
	s.consuming.Store(true)
	defer s.consuming.Store(false)

	var workers sync.WaitGroup
	for range s.opts.Workers {
		workers.Go(func() {
			// deliveries ends when the channel closes, when the broker
			// cancels the consumer, or after Cancel once what the broker
			// had pushed is taken.
			for d := range deliveries {
				s.slots <- struct{}{}
				err := s.handle(ctx, ch, d)
				<-s.slots
				if err != nil {
					s.log.Warn("amqp server channel unusable", "error", err)
					_ = ch.close()
				}
			}
		})
	}
	workersDone := make(chan struct{})
	s.handlers.Go(func() { workers.Wait(); close(workersDone) })
	select {
	case <-ctx.Done():
		s.consuming.Store(false)
		if err := ch.cancel(tag); err != nil && !raw.IsClosed() {
			s.log.Warn("amqp cancel consumer", "error", err)
		}
		<-workersDone
		if err := ch.close(); err != nil {
			s.log.Warn("amqp close channel", "error", err)
		}
		return true, nil
	case e := <-closes:
		return true, closeError(e)
	case <-workersDone:
		_ = ch.close()
		return true, errors.New("deliveries ended: consumer cancelled by the broker or channel closed")
	}
}

// handle answers and acks one delivery. An error means the channel is
// unusable; the delivery is left unacked for the broker to redeliver.
func (s *Server) handle(ctx context.Context, ch *channel, d amqp.Delivery) error {
	s.stats.Deliveries.Add(1)
	deadline, hasDeadline := parseDeadline(d.Headers)
	switch {
	case d.ReplyTo == "":
		s.stats.NoReplyTo.Add(1)
		s.log.Warn("amqp request without reply_to dropped", "correlation_id", d.CorrelationId)
		return ack(d)
	case !hasDeadline:
		deadline = time.Now().Add(defaultTimeout)
	case !time.Now().Before(deadline):
		s.stats.Expired.Add(1)
		s.log.Info("expired amqp request dropped", "correlation_id", d.CorrelationId, "late_by", time.Since(deadline))
		return ack(d)
	}
	body, ok := s.call(ctx, deadline, d)
	if !ok {
		s.stats.Panics.Add(1)
		return ack(d)
	}
	err := ch.publish(d.ReplyTo, false, amqp.Publishing{
		ContentType:   s.opts.ContentType,
		DeliveryMode:  amqp.Transient,
		CorrelationId: d.CorrelationId,
		Body:          body,
	})
	if err != nil {
		s.stats.ReplyErrors.Add(1)
		return fmt.Errorf("publish reply: %w", err)
	}
	s.stats.Handled.Add(1)
	return ack(d)
}

// parseDeadline reads deadlineHeader, an int64 as Client writes it.
func parseDeadline(h map[string]any) (deadline time.Time, ok bool) {
	if ms, ok := h[deadlineHeader].(int64); ok && ms > 0 {
		return time.UnixMilli(ms), true
	}
	return time.Time{}, false
}

func ack(d amqp.Delivery) error {
	if err := d.Ack(false); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// call runs the handler until deadline; ok is false if it panicked.
func (s *Server) call(ctx context.Context, deadline time.Time, d amqp.Delivery) (body []byte, ok bool) {
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("amqp handler panicked; request acked without reply", "correlation_id", d.CorrelationId, "panic", r, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	return s.handler(ctx, Message{Body: d.Body, Headers: d.Headers, CorrelationID: d.CorrelationId, Redelivered: d.Redelivered}), true
}
