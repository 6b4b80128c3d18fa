package amqprpc

import (
	"errors"
	"net"
	"sync"
	"time"
)

const (
	maxPendingWrite   = 1 << 20     // unsent bytes beyond which a Write waits (back-pressure)
	closeFlushTimeout = time.Second // how long Close waits to send what is buffered
)

// groupWriteConn is a net.Conn whose writes are sent by one goroutine: a
// Write appends to a buffer and returns, and the goroutine sends all that
// is buffered in one write(2). amqp091 flushes each publish and ack on its
// own; grouped, both sides do fewer, larger reads and writes under load.
// A failed send closes the socket (amqp091's reader sees the connection
// lost) and every later Write returns the error.
type groupWriteConn struct {
	net.Conn

	mu       sync.Mutex
	drained  *sync.Cond // signalled when buf was taken or err set
	buf      []byte     // bytes not yet handed to the socket
	spare    []byte     // the previous buffer, reused
	err      error
	kick     chan struct{} // buffered (1): there is something to send
	done     chan struct{} // closed by Close
	stopped  chan struct{} // closed when the sender goroutine has returned
	once     sync.Once
	closeErr error // of the first Close
}

// newGroupWriteConn wraps c, clearing the write deadline amqp091's
// DefaultDial set for the handshake (see SetWriteDeadline).
func newGroupWriteConn(c net.Conn) *groupWriteConn {
	_ = c.SetWriteDeadline(time.Time{})
	g := &groupWriteConn{
		Conn:    c,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	g.drained = sync.NewCond(&g.mu)
	go g.send()
	return g
}

func (g *groupWriteConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.err == nil && len(g.buf) > 0 && len(g.buf)+len(p) > maxPendingWrite {
		g.drained.Wait()
	}
	if g.err != nil {
		return 0, g.err
	}
	g.buf = append(g.buf, p...)
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

// send writes whatever is buffered until Close (after sending what is
// left) or a write error.
func (g *groupWriteConn) send() {
	defer close(g.stopped)
	for {
		select {
		case <-g.kick:
			if !g.flush() {
				return
			}
		case <-g.done:
			g.flush()
			return
		}
	}
}

// flush sends the buffer until it is empty; false after a write error.
func (g *groupWriteConn) flush() bool {
	for {
		g.mu.Lock()
		out := g.buf
		if len(out) == 0 || g.err != nil {
			g.mu.Unlock()
			return g.err == nil
		}
		g.buf = g.spare[:0]
		g.spare = nil
		g.drained.Broadcast()
		g.mu.Unlock()

		_, err := g.Conn.Write(out)

		g.mu.Lock()
		if cap(out) <= 64<<10 {
			g.spare = out[:0] // keep a small buffer, let a big one go
		}
		if err != nil && g.err == nil {
			g.err = err
			g.drained.Broadcast()
		}
		g.mu.Unlock()
		if err != nil {
			_ = g.Conn.Close() // amqp091's reader sees the connection lost
			return false
		}
	}
}

// SetDeadline applies t to reads only; see SetWriteDeadline.
func (g *groupWriteConn) SetDeadline(t time.Time) error {
	return g.Conn.SetReadDeadline(t)
}

// SetWriteDeadline is ignored: Write only queues, and the sender's writes
// are bounded by Close. On the socket, a deadline set after a Write (as
// tls.Conn's Close does) would fail the send of bytes already accepted.
func (g *groupWriteConn) SetWriteDeadline(time.Time) error { return nil }

// Close lets the sender send what is still buffered (amqp091's last frame,
// TLS's close_notify) for at most closeFlushTimeout, then closes the
// socket. Later Writes fail.
func (g *groupWriteConn) Close() error {
	g.once.Do(func() {
		close(g.done)
		select {
		case <-g.stopped:
		case <-time.After(closeFlushTimeout):
			_ = g.Conn.Close() // the socket does not take our bytes
			<-g.stopped
		}
		g.mu.Lock()
		g.buf = nil
		if g.err == nil {
			g.err = net.ErrClosed
		}
		g.drained.Broadcast()
		g.mu.Unlock()
		// The socket may be closed already (a failed send, the timeout).
		if err := g.Conn.Close(); !errors.Is(err, net.ErrClosed) {
			g.closeErr = err
		}
	})
	return g.closeErr
}
