package amqprpc

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stockquote/stockquote/shared/redact"
)

// Config configures a Conn.
type Config struct {
	// URL is one amqp:// URL, or several separated by commas (the nodes
	// of one cluster). It may hold credentials: it is logged masked.
	URL    string
	Name   string       // connection name shown in the management UI
	Logger *slog.Logger // required
}

const (
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
	dialTimeout = 5 * time.Second
	heartbeat   = 10 * time.Second
	stableConn  = 5 * time.Second // a connection lost sooner (a cluster node electing a queue leader) counts as a failed dial
)

// Conn is one long-lived AMQP connection that redials with capped,
// jittered exponential backoff whenever the broker goes away. It starts at
// a random address (replicas spread over a cluster's nodes) and after a
// loss tries the next one first. amqp091-go's own recovery dials one
// address, gives up after a fixed number of tries and needs the broker up.
type Conn struct {
	log   *slog.Logger
	addrs []string
	next  int // the address to dial first; owned by the dial loop

	mu      sync.Mutex
	conn    *amqp.Connection // nil while down
	blocked string           // non-empty while the broker blocks publishing
	closed  bool
	changed chan struct{} // closed and replaced on every state change

	done      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the dial loop has exited
	closeOnce sync.Once
}

// Dial validates cfg and starts connecting in the background; it does not wait for the broker.
func Dial(cfg Config) (*Conn, error) {
	if cfg.Logger == nil {
		return nil, errors.New("amqprpc: config: Logger is required")
	}
	addrs, err := SplitURLs(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("amqprpc: config: %w", err)
	}
	c := &Conn{
		log:     cfg.Logger.With("amqp_conn", cfg.Name),
		addrs:   addrs,
		next:    rand.IntN(len(addrs)),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go c.loop(cfg.Name)
	return c, nil
}

// SplitURLs splits a comma-separated list of amqp:// URLs (a comma in a
// password is written %2C) and checks each; errors never echo a password.
func SplitURLs(s string) ([]string, error) {
	var urls []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if _, err := amqp.ParseURI(u); err != nil {
			return nil, fmt.Errorf("URL %s: %w", redact.URL(u), err)
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return nil, errors.New("no AMQP URL given")
	}
	return urls, nil
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

// Close closes the connection and stops redialing. Close the clients and
// servers built on c first for a clean drain.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	<-c.stopped
	return nil
}

// session returns the live connection (nil while down), a channel closed
// at the next state change, and whether c is closed.
func (c *Conn) session() (conn *amqp.Connection, changed <-chan struct{}, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn, c.changed, c.closed
}

func (c *Conn) setState(f func()) {
	c.mu.Lock()
	f()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// loop dials, watches the connection and redials until Close.
func (c *Conn) loop(name string) {
	defer close(c.stopped)
	defer c.setState(func() { c.closed = true; c.conn = nil })
	props := amqp.NewConnectionProperties()
	if name != "" {
		props.SetClientConnectionName(name)
	}
	cfg := amqp.Config{Heartbeat: heartbeat, Properties: props, Dial: func(network, addr string) (net.Conn, error) {
		nc, err := amqp.DefaultDial(dialTimeout)(network, addr)
		if err != nil {
			return nil, err
		}
		return newGroupWriteConn(nc), nil
	}}
	for attempt := 0; ; attempt++ {
		if conn, err := c.dialRound(cfg); err != nil {
			c.log.Warn("amqp dial failed", "error", err, "attempt", attempt+1)
		} else {
			up := time.Now()
			if !c.watch(conn) {
				return
			}
			if time.Since(up) >= stableConn {
				attempt = 0
			}
		}
		select {
		case <-time.After(backoff(attempt)):
		case <-c.done:
			return
		}
	}
}

// dialRound tries every address once, from c.next on.
func (c *Conn) dialRound(cfg amqp.Config) (*amqp.Connection, error) {
	var errs []error
	for range c.addrs {
		addr := c.addrs[c.next]
		c.next = (c.next + 1) % len(c.addrs)
		conn, err := amqp.DialConfig(addr, cfg)
		if err == nil {
			c.log.Info("amqp connected", "amqp_url", redact.URL(addr))
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("dial %s: %w", redact.URL(addr), err))
	}
	return nil, errors.Join(errs...)
}

// watch publishes conn as the live connection and blocks until it is lost
// (true: redial) or Close is called (false).
func (c *Conn) watch(conn *amqp.Connection) bool {
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	c.setState(func() { c.conn = conn; c.blocked = "" })
	down := func() { c.setState(func() { c.conn = nil; c.blocked = "" }) }
	for {
		select {
		case <-c.done:
			down()
			if err := conn.CloseDeadline(time.Now().Add(dialTimeout)); err != nil && !errors.Is(err, amqp.ErrClosed) {
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
		case err := <-closes:
			down()
			c.log.Warn("amqp connection lost", "error", err)
			return true
		}
	}
}

// setBlocked records connection.blocked/unblocked: while a resource alarm
// blocks publishing, calls fail fast rather than stall.
func (c *Conn) setBlocked(b amqp.Blocking) {
	reason := ""
	if b.Active {
		reason = cmp.Or(b.Reason, "unknown reason")
		c.log.Warn("amqp connection blocked", "reason", b.Reason)
	} else {
		c.log.Info("amqp connection unblocked")
	}
	c.setState(func() { c.blocked = reason })
}

// backoff is the delay before retry n (0-based): minBackoff*2^n capped at
// maxBackoff, half of it random so processes cut off together do not retry in step.
func backoff(n int) time.Duration {
	d := min(minBackoff<<min(max(n, 0), 16), maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// hold calls session with every live connection until stop is closed or
// Close is called. session returns when its channel is lost; if it could
// not set its channel up (opened false), hold backs off before the next
// try. An error wrapping ErrQueueMismatch ends hold: no retry can fix it.
func (c *Conn) hold(stop <-chan struct{}, log *slog.Logger, session func(*amqp.Connection) (opened bool, err error)) error {
	failures := 0
	for {
		conn, changed, closed := c.session()
		if closed || isClosed(stop) {
			return nil
		}
		var retry <-chan time.Time
		if conn != nil {
			opened, err := session(conn)
			switch {
			case isClosed(stop):
				return nil
			case errors.Is(err, ErrQueueMismatch):
				return err
			case err != nil:
				log.Warn("amqp channel", "error", err)
			}
			if opened {
				failures = 0
				continue
			}
			retry = time.After(backoff(failures))
			failures++
		}
		select {
		case <-stop:
		case <-changed:
		case <-retry:
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

// channel is an AMQP channel that may be swapped or closed while others
// publish on it. amqp091 sends a publish as several frames under the
// channel's lock but Cancel and Close without it, and a frame between a
// publish's frames makes the broker close the connection; so publishes
// hold mu shared and Cancel and Close hold it alone.
type channel struct {
	mu sync.RWMutex
	ch *amqp.Channel // nil while closed
}

func (c *channel) set(ch *amqp.Channel) {
	c.mu.Lock()
	c.ch = ch
	c.mu.Unlock()
}

func (c *channel) open() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ch != nil
}

func (c *channel) publish(key string, mandatory bool, msg amqp.Publishing) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ch == nil {
		return fmt.Errorf("%w: channel closed", ErrUnavailable)
	}
	return c.ch.Publish("", key, mandatory, false, msg)
}

func (c *channel) cancel(tag string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		return nil
	}
	return c.ch.Cancel(tag, false)
}

// close closes the channel; one the broker already closed is no error.
func (c *channel) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.ch
	c.ch = nil
	if ch == nil {
		return nil
	}
	if err := ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return err
	}
	return nil
}

func closeError(e *amqp.Error) error {
	if e == nil {
		return errors.New("channel closed")
	}
	return fmt.Errorf("channel closed: %w", e)
}
