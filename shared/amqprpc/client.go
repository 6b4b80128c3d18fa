package amqprpc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	amqp "github.com/rabbitmq/amqp091-go"
)

// ClientOptions tune a Client.
type ClientOptions struct {
	Channels    int    // channels calls are spread over; default 1
	ContentType string // set on every request; empty means none
}

// ClientStats are counters since the client was created.
type ClientStats struct {
	Calls            atomic.Uint64 // Call invocations
	Replies          atomic.Uint64 // replies handed to their caller
	LateReplies      atomic.Uint64 // replies whose caller had already given up (dropped)
	DuplicateReplies atomic.Uint64 // second and later replies to one request (dropped)
	UnknownReplies   atomic.Uint64 // replies with a correlation id never seen or long forgotten (dropped)
	Returns          atomic.Uint64 // requests returned unroutable (ErrNoRoute)
	Unavailable      atomic.Uint64 // calls failed with ErrUnavailable
	Expired          atomic.Uint64 // calls ended by their context
}

// Client sends requests and waits for their replies. A goroutine per
// channel reopens it after a loss and consumes its replies and returns.
type Client struct {
	conn        *Conn
	log         *slog.Logger
	contentType string
	lanes       []*channel
	next        atomic.Uint64

	mu      sync.Mutex
	pending map[string]*call
	// recent remembers finished correlation ids and whether a reply was
	// seen, so a reply to one can be told late (caller gone) from duplicate.
	recent *lru.Cache[string, bool]

	done      chan struct{} // closed by Close, under mu
	closeOnce sync.Once
	wg        sync.WaitGroup

	stats ClientStats
}

type call struct {
	lane   *channel
	result chan result // buffered 1; written once, by whoever removes the call from pending
}

type result struct {
	body []byte
	err  error
}

// NewClient returns a client using conn. The client survives reconnects.
func NewClient(conn *Conn, opts ClientOptions) *Client {
	recent, _ := lru.New[string, bool](1 << 14) // fails only for a size <= 0
	c := &Client{
		conn:        conn,
		log:         conn.log.With("amqp_role", "client"),
		contentType: opts.ContentType,
		pending:     make(map[string]*call),
		recent:      recent,
		done:        make(chan struct{}),
	}
	for range max(opts.Channels, 1) {
		l := &channel{}
		c.lanes = append(c.lanes, l)
		c.wg.Go(func() {
			_ = conn.hold(c.done, c.log, func(conn *amqp.Connection) (bool, error) { return c.serveLane(l, conn) })
		})
	}
	return c
}

// Ready reports nil when a Call can be sent right now: the connection is
// usable and every channel is open.
func (c *Client) Ready() error {
	if isClosed(c.done) {
		return ErrClosed
	}
	if err := c.conn.Ready(); err != nil {
		return err
	}
	for _, l := range c.lanes {
		if !l.open() {
			return fmt.Errorf("%w: channel not open yet", ErrUnavailable)
		}
	}
	return nil
}

// Stats returns the client's counters, live.
func (c *Client) Stats() *ClientStats { return &c.stats }

// Call publishes body to queue with headers and waits for the reply, for at
// most ctx's life (30s without a deadline). It fails at once with
// ErrUnavailable while the broker or the call's channel is down (or when the
// channel is lost while waiting), with ErrNoRoute when no queue of that
// name exists, with ErrClosed after Close, and with ctx.Err() wrapped.
func (c *Client) Call(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error) {
	c.stats.Calls.Add(1)
	body, err := c.call(ctx, queue, body, headers)
	switch {
	case err == nil:
		c.stats.Replies.Add(1)
		return body, nil
	case errors.Is(err, ErrUnavailable):
		c.stats.Unavailable.Add(1)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		c.stats.Expired.Add(1)
	}
	return nil, fmt.Errorf("amqprpc: call %s: %w", queue, err)
}

func (c *Client) call(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tbl := amqp.Table{}
	maps.Copy(tbl, headers)
	tbl[deadlineHeader] = deadline.UnixMilli()
	if err := tbl.Validate(); err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}

	id := rand.Text()
	cl := &call{lane: c.lanes[c.next.Add(1)%uint64(len(c.lanes))], result: make(chan result, 1)}
	c.mu.Lock()
	if isClosed(c.done) {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending[id] = cl
	c.mu.Unlock()
	// A lane that goes down after this registration fails cl (the lane is
	// marked closed before its calls are failed), so no call waits on a
	// dead channel.
	err := c.conn.Ready()
	if err == nil {
		err = cl.lane.publish(queue, true, amqp.Publishing{
			Headers:       tbl,
			ContentType:   c.contentType,
			DeliveryMode:  amqp.Transient,
			CorrelationId: id,
			ReplyTo:       replyToQueue,
			Expiration:    expiration(time.Until(deadline)),
			Body:          body,
		})
		if err != nil && !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
		}
	}
	if err != nil {
		c.take(id, false)
		return nil, err
	}
	select {
	case r := <-cl.result:
		return r.body, r.err
	case <-ctx.Done():
		if c.take(id, false) != nil {
			return nil, ctx.Err()
		}
		r := <-cl.result // a result beat the deadline
		return r.body, r.err
	}
}

// expiration is the AMQP expiration (decimal milliseconds) for a deadline
// remaining from now: rounded up and at least 1, since "0" means "deliver
// now or drop".
func expiration(remaining time.Duration) string {
	return strconv.FormatInt(max(int64((remaining+time.Millisecond-1)/time.Millisecond), 1), 10)
}

// take removes the call id from pending and returns it; nil if it was not pending.
func (c *Client) take(id string, answered bool) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
		c.recent.Add(id, answered)
	}
	return cl
}

func (c *Client) failWhere(match func(*call) bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, cl := range c.pending {
		if match(cl) {
			delete(c.pending, id)
			c.recent.Add(id, false)
			cl.result <- result{err: err}
		}
	}
}

// Close fails calls in flight with ErrClosed and closes the channels. It
// does not close the Conn.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		close(c.done)
		c.mu.Unlock()
		c.failWhere(func(*call) bool { return true }, ErrClosed)
	})
	c.wg.Wait()
	return nil
}

// serveLane opens l's channel on conn and consumes its replies and
// returns; when the channel is lost it fails the calls in flight on it.
func (c *Client) serveLane(l *channel, conn *amqp.Connection) (opened bool, err error) {
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
		if err := l.close(); err != nil {
			c.log.Warn("amqp client channel close", "error", err)
		}
		c.failWhere(func(cl *call) bool { return cl.lane == l }, fmt.Errorf("%w: channel lost", ErrUnavailable))
	}()
	for {
		select {
		case <-c.done:
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
			// Counted before the caller can see its error and read Stats.
			c.stats.Returns.Add(1)
			if cl := c.take(r.CorrelationId, false); cl != nil {
				cl.result <- result{err: fmt.Errorf("%w %q: %d %s", ErrNoRoute, r.RoutingKey, r.ReplyCode, r.ReplyText)}
			}
		case e := <-closes:
			return true, closeError(e)
		}
	}
}

// deliver hands a reply to its caller, or drops and counts it.
func (c *Client) deliver(d amqp.Delivery) {
	if cl := c.take(d.CorrelationId, true); cl != nil {
		cl.result <- result{body: d.Body}
		return
	}
	answered, seen := c.recent.Peek(d.CorrelationId)
	switch {
	case !seen:
		c.stats.UnknownReplies.Add(1)
		c.log.Warn("amqp reply with unknown correlation id dropped", "correlation_id", d.CorrelationId)
	case !answered:
		c.recent.Add(d.CorrelationId, true)
		c.stats.LateReplies.Add(1)
		c.log.Debug("late amqp reply dropped", "correlation_id", d.CorrelationId)
	default:
		c.stats.DuplicateReplies.Add(1)
		c.log.Warn("duplicate amqp reply dropped", "correlation_id", d.CorrelationId)
	}
}
