package amqprpc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestGroupWriteKeepsEveryWriteWhole: concurrent writers (amqp091
// serialises its own, this is harsher) each see their bytes arrive
// contiguous and complete, and Close sends what is still buffered.
func TestGroupWriteKeepsEveryWriteWhole(t *testing.T) {
	c, s := tcpPair(t)
	g := newGroupWriteConn(c)
	const writers, each = 8, 500
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(s)
		got <- b
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				msg := fmt.Sprintf("<%d:%d:%s>", w, i, bytes.Repeat([]byte{'x'}, i%97))
				if n, err := g.Write([]byte(msg)); err != nil || n != len(msg) {
					t.Errorf("Write = %d, %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := g.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	b := <-got
	next := make([]int, writers)
	for len(b) > 0 {
		end := bytes.IndexByte(b, '>')
		if b[0] != '<' || end < 0 {
			t.Fatalf("torn write at %q", b[:min(len(b), 40)])
		}
		parts := bytes.SplitN(b[1:end], []byte(":"), 3)
		if len(parts) != 3 {
			t.Fatalf("bad record %q", b[:end+1])
		}
		var w, i int
		if _, err := fmt.Sscanf(string(parts[0])+" "+string(parts[1]), "%d %d", &w, &i); err != nil || w < 0 || w >= writers {
			t.Fatalf("bad record %q: %v", b[:end+1], err)
		}
		pad := parts[2]
		if i != next[w] || len(pad) != i%97 {
			t.Fatalf("writer %d: record %d (pad %d) arrived, want %d in order", w, i, len(pad), next[w])
		}
		next[w]++
		b = b[end+1:]
	}
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d records arrived, want %d", w, n, each)
		}
	}
}

// TestGroupWriteGroupsUnderLoad: writes made while a send is in the
// kernel go out together, so there are fewer sends than writes.
func TestGroupWriteGroupsUnderLoad(t *testing.T) {
	c, s := tcpPair(t)
	counter := &countingConn{Conn: c}
	g := newGroupWriteConn(counter)
	go io.Copy(io.Discard, s)
	const writes = 20000
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range writes / 4 {
				if _, err := g.Write(make([]byte, 64)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	g.Close()
	n := counter.writes()
	if n == 0 || n >= writes {
		t.Errorf("%d socket writes for %d Writes, want fewer", n, writes)
	}
	t.Logf("%d socket writes for %d Writes", n, writes)
}

type countingConn struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestGroupWriteErrorSurfaces: once the socket fails, Write returns the
// error (amqp091 then treats the connection as lost), and it never hangs.
func TestGroupWriteErrorSurfaces(t *testing.T) {
	c, s := tcpPair(t)
	g := newGroupWriteConn(c)
	s.(*net.TCPConn).SetLinger(0)
	s.Close() // peer resets
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = g.Write(make([]byte, 4096))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("Write kept succeeding after the peer reset the connection")
	}
	if err := g.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("Close = %v", err)
	}
}

// TestGroupWriteBackPressureAndStuckClose: a peer that does not read
// makes Write block once maxPendingWrite is buffered (memory stays
// bounded), and Close still returns, after closeFlushTimeout, unblocking
// the writer.
func TestGroupWriteBackPressureAndStuckClose(t *testing.T) {
	c, _ := tcpPair(t) // the server end never reads
	g := newGroupWriteConn(c)
	blocked := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := g.Write(chunk); err != nil {
				blocked <- err
				return
			}
		}
	}()
	// The socket buffers fill, then the pending buffer; the writer blocks.
	time.Sleep(300 * time.Millisecond)
	g.mu.Lock()
	pending := len(g.buf)
	g.mu.Unlock()
	if pending > maxPendingWrite {
		t.Errorf("%d bytes pending, want at most %d", pending, maxPendingWrite)
	}
	select {
	case err := <-blocked:
		t.Fatalf("writer stopped early: %v", err)
	default:
	}
	start := time.Now()
	g.Close()
	if d := time.Since(start); d > closeFlushTimeout+time.Second {
		t.Errorf("Close took %v", d)
	}
	select {
	case err := <-blocked:
		if err == nil {
			t.Error("blocked Write returned nil after Close")
		}
	case <-time.After(2 * time.Second):
		t.Error("a Write blocked on back-pressure did not return after Close")
	}
}
