package amqprpc

import (
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

// DefaultHandlerTimeout bounds a handler for a request that carries no
// deadline header.
const DefaultHandlerTimeout = 30 * time.Second

// Message is one request as a Server handler sees it.
type Message struct {
	Body          []byte
	Headers       map[string]any
	CorrelationID string
	Redelivered   bool
}

// Handler computes the reply body for a request. ctx ends at the request's
// deadline (or after DefaultHandlerTimeout when it carried none);
// it is not cancelled by Serve's ctx, so a graceful shutdown lets the
// handler finish. A panic is recovered, logged and counted, and the
// request is acked without a reply.
type Handler func(ctx context.Context, m Message) []byte

// ServerOptions tune a Server.
type ServerOptions struct {
	Workers int // concurrent handlers = prefetch; default 1
	// ContentType is set on every reply; empty means none.
	ContentType string
	// QueueType is the type Serve declares the queue with; default
	// QueueClassic.
	QueueType QueueType
}

// ServerStats are counters since the server was created.
type ServerStats struct {
	Deliveries  uint64 // requests received
	Handled     uint64 // requests answered and acked
	Expired     uint64 // requests dropped because their deadline had passed
	Panics      uint64 // handler panics (acked without reply)
	NoReplyTo   uint64 // requests dropped for lack of reply_to
	ReplyErrors uint64 // replies that could not be published (left unacked for redelivery)
}

// Server consumes a queue and replies to each request's reply_to.
//
// It consumes on one channel with Qos(Workers) and handles deliveries in
// Workers goroutines, so at most Workers requests are unacked (and
// handled) at a time.
type Server struct {
	conn        *Conn
	queue       string
	handler     Handler
	workers     int
	contentType string
	queueType   QueueType
	log         *slog.Logger

	serving   atomic.Bool
	consuming atomic.Bool
	slots     chan struct{}  // Workers of them: a handler runs only while holding one
	handlers  sync.WaitGroup // the handler goroutines of every session

	deliveries, handled, expired, panics, noReplyTo, replyErrors atomic.Uint64
}

// NewServer returns a server for queue. Serve declares the queue.
func NewServer(conn *Conn, queue string, h Handler, opts ServerOptions) *Server {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.QueueType == "" {
		opts.QueueType = QueueClassic
	}
	return &Server{
		conn:        conn,
		queue:       queue,
		handler:     h,
		workers:     opts.Workers,
		contentType: opts.ContentType,
		queueType:   opts.QueueType,
		log:         conn.log.With("amqp_role", "server", "queue", queue),
		slots:       make(chan struct{}, opts.Workers),
	}
}

// Serve consumes until ctx is cancelled, then stops consuming, lets the
// handlers in flight finish, replies and acks, and returns nil. It returns
// ErrClosed if the Conn is closed first, and an error wrapping
// ErrQueueMismatch if the queue exists with other arguments (no retry can
// fix that). A Server serves once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("amqprpc: server already serving")
	}
	s.log.Info("amqp server starting", "workers", s.workers, "queue_type", s.queueType)
	err := s.run(ctx)
	s.handlers.Wait() // handlers of a lost channel may still run
	s.log.Info("amqp server stopped")
	switch {
	case err != nil:
		return err
	case ctx.Err() != nil:
		return nil
	}
	return ErrClosed
}

// Ready reports nil when the server is consuming.
func (s *Server) Ready() error {
	if !s.serving.Load() {
		return errors.New("amqprpc: server not serving")
	}
	if err := s.conn.Ready(); err != nil {
		return err
	}
	if !s.consuming.Load() {
		return fmt.Errorf("%w: not consuming %s yet", ErrUnavailable, s.queue)
	}
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Deliveries:  s.deliveries.Load(),
		Handled:     s.handled.Load(),
		Expired:     s.expired.Load(),
		Panics:      s.panics.Load(),
		NoReplyTo:   s.noReplyTo.Load(),
		ReplyErrors: s.replyErrors.Load(),
	}
}

// run keeps the consumer alive across reconnects until ctx ends or the
// Conn is closed; it returns an error only for a queue mismatch.
func (s *Server) run(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		conn, changed, closed := s.conn.session()
		if closed {
			return nil
		}
		if conn != nil {
			consumed, err := s.consume(ctx, conn)
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrQueueMismatch) {
				s.log.Error("amqp request queue mismatch", "error", err)
				return err
			}
			if err != nil {
				s.log.Warn("amqp server channel", "error", err)
			}
			if consumed {
				failures = 0
				continue
			}
			t := time.NewTimer(backoff(failures, minBackoff, maxBackoff, jitter))
			failures++
			select {
			case <-ctx.Done():
			case <-changed:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		select {
		case <-ctx.Done():
		case <-changed:
		}
	}
	return nil
}

// consume opens one channel on conn with prefetch Workers, declares the
// queue, and runs Workers goroutines that take deliveries from its one
// consumer and handle them, until ctx ends or the channel is lost.
// consumed reports whether the consumer got started at all.
//
// A handler runs only while it holds one of the server's Workers slots,
// taken before its delivery, so at most Workers run at once across
// sessions: when a channel is lost, consume returns at once and the next
// session starts while the old handlers finish (their replies and acks
// fail; the broker redelivers those requests).
func (s *Server) consume(ctx context.Context, conn *amqp.Connection) (consumed bool, err error) {
	amqpCh, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	ch := &replyChannel{Channel: amqpCh}
	closes := amqpCh.NotifyClose(make(chan *amqp.Error, 1))
	if err := amqpCh.Qos(s.workers, 0, false); err != nil {
		_ = ch.close()
		return false, fmt.Errorf("qos: %w", err)
	}
	if err := declareQueue(amqpCh, s.queue, s.queueType); err != nil {
		_ = ch.close()
		return false, err
	}
	tag := fmt.Sprintf("%s.%s", s.queue, rand.Text()[:8])
	deliveries, err := amqpCh.Consume(s.queue, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.close()
		return false, fmt.Errorf("consume %s: %w", s.queue, err)
	}
	s.consuming.Store(true)

	stop := make(chan struct{})   // closed: handlers take no new delivery
	failed := make(chan error, 1) // the first handler error (channel unusable)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	for range s.workers {
		s.handlers.Go(func() { s.work(ctx, ch, deliveries, stop, fail) })
	}

	select {
	case <-ctx.Done():
		s.consuming.Store(false)
		// Cancel first so the broker sends nothing new, let the handlers
		// in flight reply and ack, then close: a delivery the broker
		// already pushed but no handler started is requeued.
		if err := ch.cancel(tag); err != nil && !amqpCh.IsClosed() {
			s.log.Warn("amqp cancel consumer", "error", err)
		}
		close(stop)
		s.handlers.Wait()
		if err := ch.close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			s.log.Warn("amqp close channel", "error", err)
		}
		return true, nil
	case e, ok := <-closes:
		err = errors.New("channel closed")
		if ok && e != nil {
			err = fmt.Errorf("channel closed: %w", e)
		}
	case err = <-failed:
		_ = ch.close()
	}
	s.consuming.Store(false)
	close(stop)
	return true, err
}

// work is one of a session's handler goroutines: it takes a slot, then a
// delivery, handles it and gives the slot back, until stop is closed or
// the channel fails.
func (s *Server) work(ctx context.Context, ch *replyChannel, deliveries <-chan amqp.Delivery, stop <-chan struct{}, fail func(error)) {
	for {
		select {
		case s.slots <- struct{}{}:
		case <-stop:
			return
		}
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		case <-stop:
		}
		// A delivery taken after the session began to stop is not
		// started; it is requeued when the channel closes.
		if !ok || isClosed(stop) || ctx.Err() != nil {
			<-s.slots
			if !ok && !isClosed(stop) {
				fail(errors.New("consumer closed"))
			}
			return
		}
		err := s.handle(ctx, ch, d)
		<-s.slots
		if err != nil {
			fail(err)
			return
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// replyChannel is a session's channel. amqp091 sends a publish as several
// frames under the channel's lock, but sends Cancel and Close without it,
// so their frame could land between a reply's frames (the broker then
// closes the connection: UNEXPECTED_FRAME). Replies publish under mu's
// read lock; cancel and close take it exclusively. Acks are one frame.
type replyChannel struct {
	*amqp.Channel
	mu sync.RWMutex
}

func (c *replyChannel) publish(key string, msg amqp.Publishing) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.Publish("", key, false, false, msg)
}

func (c *replyChannel) cancel(tag string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Cancel(tag, false)
}

func (c *replyChannel) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Close()
}

// handle answers one delivery: drop it if it cannot or need not be
// answered, else run the handler, publish the reply, then ack. An error
// means the channel is unusable; the delivery is then left unacked and
// the broker redelivers it.
func (s *Server) handle(ctx context.Context, ch *replyChannel, d amqp.Delivery) error {
	s.deliveries.Add(1)
	// Built only when something is logged: slog's With formats its
	// attributes at once, a cost per delivery for a line rarely written.
	log := func() *slog.Logger { return s.log.With("correlation_id", d.CorrelationId) }
	ack := func() error {
		if err := d.Ack(false); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		return nil
	}
	if d.ReplyTo == "" {
		s.noReplyTo.Add(1)
		log().Warn("amqp request without reply_to dropped")
		return ack()
	}
	deadline, hasDeadline := parseDeadline(d.Headers)
	now := time.Now()
	if hasDeadline && !now.Before(deadline) {
		s.expired.Add(1)
		log().Info("expired amqp request dropped", "late_by", now.Sub(deadline))
		return ack()
	}
	if !hasDeadline {
		deadline = now.Add(DefaultHandlerTimeout)
	}
	hctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	body, ok := s.call(hctx, log, Message{
		Body:          d.Body,
		Headers:       d.Headers,
		CorrelationID: d.CorrelationId,
		Redelivered:   d.Redelivered,
	})
	cancel()
	if !ok {
		s.panics.Add(1)
		return ack()
	}
	err := ch.publish(d.ReplyTo, amqp.Publishing{
		ContentType:   s.contentType,
		DeliveryMode:  amqp.Transient,
		CorrelationId: d.CorrelationId,
		Body:          body,
	})
	if err != nil {
		s.replyErrors.Add(1)
		return fmt.Errorf("publish reply: %w", err)
	}
	s.handled.Add(1)
	return ack()
}

// call runs the handler, turning a panic into ok == false.
func (s *Server) call(ctx context.Context, log func() *slog.Logger, m Message) (body []byte, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			log().Error("amqp handler panicked; request acked without reply", "panic", r, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	return s.handler(ctx, m), true
}
