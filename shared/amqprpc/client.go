package amqprpc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultCallTimeout bounds a Call whose ctx has no deadline. A request
// always carries a deadline on the wire, so an unbounded call is never sent.
const DefaultCallTimeout = 30 * time.Second

// ClientOptions tune a Client.
type ClientOptions struct {
	Channels    int    // channels calls are spread over; default 1
	ContentType string // set on every request; empty means none
}

// ClientStats are counters since the client was created.
type ClientStats struct {
	Calls            uint64 // Call invocations
	Replies          uint64 // replies handed to their caller
	LateReplies      uint64 // replies whose caller had already given up (dropped)
	DuplicateReplies uint64 // second and later replies to one request (dropped)
	UnknownReplies   uint64 // replies with a correlation id never seen or long forgotten (dropped)
	Returns          uint64 // requests returned unroutable (ErrNoRoute)
	Unavailable      uint64 // calls failed with ErrUnavailable
	Expired          uint64 // calls ended by their context
}

// Client sends requests and waits for their replies (direct reply-to).
type Client struct {
	conn        *Conn
	log         *slog.Logger
	contentType string
	lanes       []*lane
	next        atomic.Uint64

	mu      sync.Mutex
	pending map[string]*call
	recent  recentSet
	closed  bool

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	calls, replies, late, dups, unknown, returns, unavailable, expired atomic.Uint64
}

// lane is one channel: Calls publish on it, and its goroutine reopens it
// after a loss and consumes its replies (direct reply-to answers on the
// channel that published) and returns. Publishes hold mu shared and
// closing holds it alone, since amqp091 sends Close without the lock that
// keeps a publish's frames together (see replyChannel).
type lane struct {
	idx int
	mu  sync.RWMutex
	ch  *amqp.Channel // nil while down
}

func (l *lane) channel() *amqp.Channel {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.ch
}

func (l *lane) set(ch *amqp.Channel) {
	l.mu.Lock()
	l.ch = ch
	l.mu.Unlock()
}

// call is one request waiting for its reply.
type call struct {
	id     string
	queue  string
	lane   int
	result chan result // buffered 1; written once, by whoever removes the call from pending
}

type result struct {
	body []byte
	err  error
}

// NewClient returns a client using conn. The client survives reconnects.
func NewClient(conn *Conn, opts ClientOptions) *Client {
	if opts.Channels <= 0 {
		opts.Channels = 1
	}
	c := &Client{
		conn:        conn,
		log:         conn.log.With("amqp_role", "client"),
		contentType: opts.ContentType,
		pending:     make(map[string]*call),
		recent:      newRecentSet(1 << 14),
		done:        make(chan struct{}),
	}
	for i := range opts.Channels {
		l := &lane{idx: i}
		c.lanes = append(c.lanes, l)
		c.wg.Go(func() { c.runLane(l) })
	}
	return c
}

// Ready reports nil when the connection is usable and every channel is
// open, so a Call can be sent right now.
func (c *Client) Ready() error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := c.conn.Ready(); err != nil {
		return err
	}
	for _, l := range c.lanes {
		if l.channel() == nil {
			return fmt.Errorf("%w: channel %d not open yet", ErrUnavailable, l.idx)
		}
	}
	return nil
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	return ClientStats{
		Calls:            c.calls.Load(),
		Replies:          c.replies.Load(),
		LateReplies:      c.late.Load(),
		DuplicateReplies: c.dups.Load(),
		UnknownReplies:   c.unknown.Load(),
		Returns:          c.returns.Load(),
		Unavailable:      c.unavailable.Load(),
		Expired:          c.expired.Load(),
	}
}

// Call publishes body to queue (default exchange, mandatory) with a fresh
// correlation id, an expiration equal to ctx's remaining time and the given
// headers, and waits for the reply body.
//
// A ctx without a deadline gets DefaultCallTimeout. Call fails at
// once with ErrUnavailable when the broker is not usable or the call's
// channel is not open yet (Ready says when every one is), also when the
// connection drops while waiting, with ErrNoRoute when no queue of that
// name exists, with ErrClosed after Close, and with an error wrapping
// ctx.Err() when ctx ends first.
func (c *Client) Call(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error) {
	c.calls.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	if err := ctx.Err(); err != nil {
		c.expired.Add(1)
		return nil, fmt.Errorf("amqprpc: call %s: %w", queue, err)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("amqprpc: call %s: %w", queue, ErrClosed)
	}
	if err := c.conn.Ready(); err != nil {
		if errors.Is(err, ErrUnavailable) {
			c.unavailable.Add(1)
		}
		return nil, fmt.Errorf("amqprpc: call %s: %w", queue, err)
	}
	tbl := amqp.Table(maps.Clone(headers))
	if tbl == nil {
		tbl = amqp.Table{}
	}
	tbl[DeadlineHeader] = deadline.UnixMilli()
	if err := tbl.Validate(); err != nil {
		return nil, fmt.Errorf("amqprpc: call %s: headers: %w", queue, err)
	}
	l := c.lanes[int(c.next.Add(1)%uint64(len(c.lanes)))]
	cl := &call{id: rand.Text(), queue: queue, lane: l.idx, result: make(chan result, 1)}
	if err := c.publish(l, cl, amqp.Publishing{
		Headers:       tbl,
		ContentType:   c.contentType,
		DeliveryMode:  amqp.Transient,
		CorrelationId: cl.id,
		ReplyTo:       replyToQueue,
		Expiration:    expiration(time.Until(deadline)),
		Body:          body,
	}); err != nil {
		if errors.Is(err, ErrUnavailable) {
			c.unavailable.Add(1)
		}
		return nil, fmt.Errorf("amqprpc: call %s: %w", queue, err)
	}
	select {
	case r := <-cl.result:
		return c.outcome(cl, r)
	case <-ctx.Done():
		return c.giveUp(cl, ctx.Err())
	}
}

// publish registers cl as pending and publishes msg on l's channel. On
// an error cl is not pending.
func (c *Client) publish(l *lane, cl *call, msg amqp.Publishing) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.ch == nil {
		return fmt.Errorf("%w: channel %d not open", ErrUnavailable, l.idx)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.pending[cl.id] = cl
	c.mu.Unlock()
	if err := l.ch.Publish("", cl.queue, true, false, msg); err != nil {
		c.mu.Lock()
		delete(c.pending, cl.id)
		c.mu.Unlock()
		return fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
	}
	return nil
}

// giveUp ends cl with err unless a result beat it, in which case that
// result wins (it is already in cl.result).
func (c *Client) giveUp(cl *call, err error) ([]byte, error) {
	c.mu.Lock()
	_, still := c.pending[cl.id]
	if still {
		delete(c.pending, cl.id)
		c.recent.put(cl.id, idGone)
	}
	c.mu.Unlock()
	if still {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			c.expired.Add(1)
		}
		return nil, fmt.Errorf("amqprpc: call %s: %w", cl.queue, err)
	}
	return c.outcome(cl, <-cl.result)
}

func (c *Client) outcome(cl *call, r result) ([]byte, error) {
	if r.err != nil {
		if errors.Is(r.err, ErrUnavailable) {
			c.unavailable.Add(1)
		}
		return nil, fmt.Errorf("amqprpc: call %s: %w", cl.queue, r.err)
	}
	c.replies.Add(1)
	return r.body, nil
}

// resolve hands r to the caller of id if it is still waiting and reports
// whether it was.
func (c *Client) resolve(id string, r result, mark uint8) bool {
	c.mu.Lock()
	cl, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
		c.recent.put(id, mark)
	}
	c.mu.Unlock()
	if ok {
		cl.result <- r
	}
	return ok
}

// failWhere fails every pending call that match selects with err.
func (c *Client) failWhere(match func(*call) bool, err error) {
	c.mu.Lock()
	var failed []*call
	for id, cl := range c.pending {
		if match(cl) {
			delete(c.pending, id)
			c.recent.put(id, idGone)
			failed = append(failed, cl)
		}
	}
	c.mu.Unlock()
	for _, cl := range failed {
		cl.result <- result{err: err}
	}
}

// Close fails calls in flight with ErrClosed and releases the channels.
// It does not close the Conn.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.done)
		c.failWhere(func(*call) bool { return true }, ErrClosed)
	})
	c.wg.Wait()
	return nil
}

// runLane keeps l's channel open whenever the connection is up.
func (c *Client) runLane(l *lane) {
	failures := 0
	for {
		conn, changed, _ := c.conn.session()
		var retry <-chan time.Time
		if conn != nil {
			opened, err := c.serveLane(l, conn)
			select {
			case <-c.done:
				return
			default:
			}
			if err != nil {
				c.log.Warn("amqp client channel", "channel", l.idx, "error", err)
			}
			if opened {
				failures = 0
				continue
			}
			// Opening failed on a connection that looks up: back off
			// rather than spin, but wake early if the state changes.
			retry = time.After(backoff(failures, minBackoff, maxBackoff, jitter))
			failures++
		}
		select {
		case <-c.done:
			return
		case <-changed:
		case <-retry:
		}
	}
}

// serveLane opens a channel on conn and consumes its replies and returns
// until the channel is lost or the client is closed; then it fails the
// calls in flight on it. opened reports whether the channel was set up.
func (c *Client) serveLane(l *lane, conn *amqp.Connection) (opened bool, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	replies, err := ch.Consume(replyToQueue, "", true, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return false, fmt.Errorf("consume %s: %w", replyToQueue, err)
	}
	l.set(ch)
	defer func() {
		l.set(nil)
		c.failWhere(func(cl *call) bool { return cl.lane == l.idx }, fmt.Errorf("%w: channel lost", ErrUnavailable))
	}()
	for {
		select {
		case <-c.done:
			l.mu.Lock()
			l.ch = nil
			err := ch.Close()
			l.mu.Unlock()
			if err != nil && !errors.Is(err, amqp.ErrClosed) {
				c.log.Warn("amqp client channel close", "channel", l.idx, "error", err)
			}
			return true, nil
		case d, ok := <-replies:
			if !ok {
				return true, errors.New("reply consumer closed")
			}
			c.deliver(d)
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			// Count before resolving: the caller may read Stats as soon as
			// its Call returns.
			c.returns.Add(1)
			c.resolve(r.CorrelationId, result{err: fmt.Errorf("%w %q: %d %s", ErrNoRoute, r.RoutingKey, r.ReplyCode, r.ReplyText)}, idGone)
		case e, ok := <-closes:
			if ok && e != nil {
				return true, fmt.Errorf("channel closed: %w", e)
			}
			return true, errors.New("channel closed")
		}
	}
}

// deliver routes a reply to its caller, or drops and counts it.
func (c *Client) deliver(d amqp.Delivery) {
	if c.resolve(d.CorrelationId, result{body: d.Body}, idAnswered) {
		return
	}
	c.mu.Lock()
	mark, seen := c.recent.get(d.CorrelationId)
	if seen && mark == idGone {
		c.recent.put(d.CorrelationId, idAnswered)
	}
	c.mu.Unlock()
	switch {
	case !seen:
		c.unknown.Add(1)
		c.log.Warn("amqp reply with unknown correlation id dropped", "correlation_id", d.CorrelationId)
	case mark == idGone:
		c.late.Add(1)
		c.log.Debug("late amqp reply dropped", "correlation_id", d.CorrelationId)
	default:
		c.dups.Add(1)
		c.log.Warn("duplicate amqp reply dropped", "correlation_id", d.CorrelationId)
	}
}

// Marks kept in recentSet for finished calls.
const (
	idGone     uint8 = iota + 1 // the caller stopped waiting without a reply
	idAnswered                  // a reply has been seen
)

// recentSet remembers the last n finished correlation ids, so a reply to
// one of them can be told late (caller gone) from duplicate. It is not
// safe for concurrent use; Client.mu guards it.
type recentSet struct {
	marks map[string]uint8
	ring  []string
	pos   int
}

func newRecentSet(n int) recentSet {
	return recentSet{marks: make(map[string]uint8, n), ring: make([]string, n)}
}

func (s *recentSet) put(id string, mark uint8) {
	if _, ok := s.marks[id]; !ok {
		if old := s.ring[s.pos]; old != "" {
			delete(s.marks, old)
		}
		s.ring[s.pos] = id
		s.pos = (s.pos + 1) % len(s.ring)
	}
	s.marks[id] = mark
}

func (s *recentSet) get(id string) (uint8, bool) {
	m, ok := s.marks[id]
	return m, ok
}
