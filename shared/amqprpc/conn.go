package amqprpc

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stockquote/stockquote/shared/redact"
)

// Config configures a Conn.
type Config struct {
	// URL is one amqp:// URL, or several separated by commas (the nodes
	// of one cluster). It may hold credentials: it is never logged
	// unmasked.
	URL    string
	Name   string       // connection name shown in the management UI
	Logger *slog.Logger // required
}

const (
	// minBackoff and maxBackoff bound the delay before a redial or a
	// channel reopen.
	minBackoff   = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
	dialTimeout  = 5 * time.Second
	closeTimeout = 5 * time.Second
	heartbeat    = 10 * time.Second
	// stableConn is how long a connection must last for the next loss to
	// start the backoff afresh.
	stableConn = 5 * time.Second
)

// Conn is one long-lived AMQP connection that redials with capped,
// jittered exponential backoff whenever the broker goes away.
//
// Given several addresses, it connects to one, starting at a random one so
// that the replicas of a program spread over a cluster's nodes; when that
// connection is lost it tries the next address first, going round the
// list, and backs off only after a whole round failed.
//
// Owners of channels (Client publishers, Server workers) call session to
// get the live connection and a channel that is closed at the next state
// change, then wait on it to reopen their channel after a reconnect.
type Conn struct {
	cfg   Config
	log   *slog.Logger
	addrs []string // cfg.URL split; next is the index to dial first
	next  int      // owned by the dial loop

	mu      sync.Mutex
	conn    *amqp.Connection // nil while down
	blocked string           // non-empty while the broker blocks publishing
	closed  bool
	changed chan struct{} // closed and replaced on every state change

	done       chan struct{} // closed by Close
	stopped    chan struct{} // closed when the dial loop has exited
	closeOnce  sync.Once
	reconnects atomic.Uint64
}

// Dial validates cfg and starts connecting in the background; it returns
// at once (it does not wait for the broker). It fails only on a bad config.
func Dial(cfg Config) (*Conn, error) {
	if cfg.Logger == nil {
		return nil, errors.New("amqprpc: config: Logger is required")
	}
	addrs, err := SplitURLs(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("amqprpc: config: %w", err)
	}
	c := &Conn{
		cfg:     cfg,
		addrs:   addrs,
		next:    rand.IntN(len(addrs)),
		log:     cfg.Logger.With("amqp_conn", cfg.Name),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go c.loop()
	return c, nil
}

// Ready reports nil when the connection is up and not blocked.
func (c *Conn) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.conn == nil:
		return fmt.Errorf("%w: not connected", ErrUnavailable)
	case c.blocked != "":
		return fmt.Errorf("%w: connection blocked by broker: %s", ErrUnavailable, c.blocked)
	}
	return nil
}

// Reconnects reports how many times the connection has been re-established
// after a loss (the first connection does not count).
func (c *Conn) Reconnects() uint64 { return c.reconnects.Load() }

// Close closes the connection and stops reconnecting. Clients and servers
// built on c see ErrClosed afterwards; close them first for a clean drain.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	<-c.stopped
	return nil
}

// session returns the live connection (nil while down) and a channel that
// is closed at the next state change (connected, lost, blocked, closed).
// closed reports whether Close has been called.
func (c *Conn) session() (conn *amqp.Connection, changed <-chan struct{}, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn, c.changed, c.closed
}

// setState updates the state under the lock and wakes every waiter.
func (c *Conn) setState(f func()) {
	c.mu.Lock()
	f()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// loop dials, watches the connection and redials until Close.
func (c *Conn) loop() {
	defer close(c.stopped)
	defer c.setState(func() { c.closed = true; c.conn = nil })
	attempt := 0
	everUp := false
	for {
		conn, addr, err := c.dialRound()
		if err != nil {
			d := backoff(attempt, minBackoff, maxBackoff, jitter)
			attempt++
			c.log.Warn("amqp dial failed", "amqp_url", redact.URLs(c.cfg.URL), "error", err, "attempt", attempt, "retry_in", d)
			if !c.sleep(d) {
				return
			}
			continue
		}
		if everUp {
			c.reconnects.Add(1)
		}
		everUp = true
		c.log.Info("amqp connected", "amqp_url", redact.URL(addr))
		up := time.Now()
		if !c.watch(conn) {
			return
		}
		// A connection the broker closes soon after accepting it (a
		// cluster node whose queue is electing a leader closes it with
		// INTERNAL_ERROR) counts as a failed attempt, so the backoff
		// grows instead of redialing in a tight loop.
		if time.Since(up) >= stableConn {
			attempt = 0
		} else {
			attempt++
		}
		// Give the broker a moment before redialing, jittered so that
		// many clients cut off together do not come back in step.
		if !c.sleep(backoff(attempt, minBackoff, maxBackoff, jitter)) {
			return
		}
	}
}

// dialRound tries every address once, from c.next on, and returns the
// first connection made and its address. On success c.next moves past
// that address, so a lost connection is redialed elsewhere first.
func (c *Conn) dialRound() (*amqp.Connection, string, error) {
	var errs []error
	for range c.addrs {
		addr := c.addrs[c.next]
		c.next = (c.next + 1) % len(c.addrs)
		conn, err := c.dial(addr)
		if err == nil {
			return conn, addr, nil
		}
		if len(c.addrs) > 1 {
			err = fmt.Errorf("%s: %w", redact.URL(addr), err)
			c.log.Debug("amqp dial failed; trying the next address", "error", err)
		}
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

func (c *Conn) dial(addr string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	if c.cfg.Name != "" {
		props.SetClientConnectionName(c.cfg.Name)
	}
	conn, err := amqp.DialConfig(addr, amqp.Config{
		Heartbeat:  heartbeat,
		Properties: props,
		Dial:       amqp.DefaultDial(dialTimeout),
	})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return conn, nil
}

// watch publishes conn as the live connection and blocks until it is lost
// (returns true: redial) or Close is called (returns false).
func (c *Conn) watch(conn *amqp.Connection) bool {
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	c.setState(func() { c.conn = conn; c.blocked = "" })
	for {
		select {
		case <-c.done:
			c.setState(func() { c.conn = nil; c.blocked = "" })
			if err := conn.CloseDeadline(time.Now().Add(closeTimeout)); err != nil && !errors.Is(err, amqp.ErrClosed) {
				c.log.Warn("amqp close", "error", err)
			}
			c.log.Info("amqp connection closed")
			return false
		case b, ok := <-blocks:
			if !ok {
				blocks = nil
				continue
			}
			c.setBlocked(b)
		case err, ok := <-closes:
			c.setState(func() { c.conn = nil; c.blocked = "" })
			if ok && err != nil {
				c.log.Warn("amqp connection lost", "error", err)
			} else {
				c.log.Warn("amqp connection lost")
			}
			return true
		}
	}
}

// setBlocked records a connection.blocked or connection.unblocked from
// the broker: while blocked (a resource alarm), publishes would stall, so
// Ready reports ErrUnavailable and new calls fail fast.
func (c *Conn) setBlocked(b amqp.Blocking) {
	reason := ""
	if b.Active {
		reason = b.Reason
		if reason == "" {
			reason = "unknown reason"
		}
		c.log.Warn("amqp connection blocked", "reason", b.Reason)
	} else {
		c.log.Info("amqp connection unblocked")
	}
	c.setState(func() { c.blocked = reason })
}

// sleep waits d or until Close; it reports whether to go on.
func (c *Conn) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}
