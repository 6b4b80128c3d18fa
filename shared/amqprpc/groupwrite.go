package amqprpc

import (
	"net"
	"sync"
	"time"
)

// maxPendingWrite bounds the bytes a groupWriteConn holds unsent; a Write
// beyond it waits for the socket (back-pressure, as a blocking write).
const maxPendingWrite = 1 << 20

// closeFlushTimeout bounds how long Close waits to send what is buffered.
const closeFlushTimeout = time.Second

// groupWriteConn is a net.Conn whose writes are sent by one goroutine:
// a Write appends to a buffer and returns, and the goroutine sends all
// that is buffered in one write(2). Alone, a frame goes out at once (one
// goroutine hand-off later); under load, every frame written while the
// previous send was in the kernel goes out together.
//
// amqp091 flushes each publish and each ack separately, so a busy program
// made one syscall per frame set, and the broker woke up for each. Grouped,
// both sides do fewer, larger reads and writes.
//
// A failed send closes the connection, which amqp091's reader sees as the
// connection lost, and every later Write returns the error.
type groupWriteConn struct {
	net.Conn

	mu      sync.Mutex
	drained *sync.Cond // signalled when buf was taken or err set
	buf     []byte     // bytes not yet handed to the socket
	spare   []byte     // the previous buffer, reused
	err     error
	kick    chan struct{} // buffered (1): there is something to send
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when the sender goroutine has returned
	once    sync.Once
}

func newGroupWriteConn(c net.Conn) *groupWriteConn {
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

// Write queues p for the sender goroutine.
func (g *groupWriteConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	for g.err == nil && len(g.buf) > 0 && len(g.buf)+len(p) > maxPendingWrite {
		g.drained.Wait()
	}
	if g.err != nil {
		err := g.err
		g.mu.Unlock()
		return 0, err
	}
	g.buf = append(g.buf, p...)
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

// send writes whatever is buffered, in one write each time, until Close
// or a write error.
func (g *groupWriteConn) send() {
	defer close(g.stopped)
	for {
		select {
		case <-g.kick:
		case <-g.done:
			return
		}
		for {
			g.mu.Lock()
			out := g.buf
			if len(out) == 0 || g.err != nil {
				g.mu.Unlock()
				break
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
				_ = g.Conn.Close()
				return
			}
		}
	}
}

// Close sends what is still buffered (amqp091 closes after its last
// frame, connection.close-ok), then closes the socket.
func (g *groupWriteConn) Close() error {
	g.once.Do(func() {
		close(g.done)
		select {
		case <-g.stopped:
		case <-time.After(closeFlushTimeout):
			// The socket does not take our bytes: give up on them.
			_ = g.Conn.Close()
			<-g.stopped
		}
		g.mu.Lock()
		out := g.buf
		g.buf = nil
		if g.err == nil {
			g.err = net.ErrClosed
		}
		g.drained.Broadcast()
		g.mu.Unlock()
		if len(out) > 0 {
			_, _ = g.Conn.Write(out)
		}
	})
	return g.Conn.Close()
}
