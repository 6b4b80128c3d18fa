package amqprpc

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
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
	got := readAllAsync(s)
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

// gatedConn blocks its first Write until gate is closed.
type gatedConn struct {
	net.Conn
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (c *gatedConn) Write(p []byte) (int, error) {
	c.once.Do(func() {
		close(c.entered)
		<-c.gate
	})
	return c.Conn.Write(p)
}

// TestGroupWriteCloseSendsWhatIsQueued: bytes queued while a send is in
// the kernel still go out when Close comes before that send returns.
func TestGroupWriteCloseSendsWhatIsQueued(t *testing.T) {
	c, s := tcpPair(t)
	gated := &gatedConn{Conn: c, gate: make(chan struct{}), entered: make(chan struct{})}
	g := newGroupWriteConn(gated)
	got := readAllAsync(s)
	g.Write([]byte("a"))
	<-gated.entered // the sender is in its first send
	g.Write([]byte("b"))
	g.Write([]byte("c"))
	closed := make(chan error, 1)
	go func() { closed <- g.Close() }()
	time.Sleep(50 * time.Millisecond)
	close(gated.gate)
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
	if b := <-got; string(b) != "abc" {
		t.Errorf("peer got %q, want abc", b)
	}
	if _, err := g.Write([]byte("d")); err == nil {
		t.Error("Write after Close = nil, want an error")
	}
}

// failingConn fails every Write without touching the socket.
type failingConn struct{ net.Conn }

func (failingConn) Write([]byte) (int, error) { return 0, errors.New("injected write failure") }

// TestGroupWriteFailedSendClosesSocket: a failed send closes the socket,
// so amqp091's reader (blocked in Read) learns the connection is lost,
// and later Writes return the error.
func TestGroupWriteFailedSendClosesSocket(t *testing.T) {
	c, _ := tcpPair(t) // a healthy peer that never writes
	g := newGroupWriteConn(failingConn{c})
	readErr := make(chan error, 1)
	go func() {
		_, err := g.Read(make([]byte, 1))
		readErr <- err
	}()
	g.Write([]byte("x"))
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("Read = nil error after a failed send")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Read still blocked after a failed send: the socket was not closed")
	}
	var err error
	for deadline := time.Now().Add(time.Second); err == nil && time.Now().Before(deadline); {
		_, err = g.Write([]byte("y"))
	}
	if err == nil || !strings.Contains(err.Error(), "injected") {
		t.Errorf("Write after the failure = %v, want the send's error", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close after a failed send = %v, want nil", err)
	}
}

// TestGroupWriteUnderTLS: amqps wraps this conn in tls.Client, whose Close
// queues a close_notify and then sets a write deadline of now; the
// close_notify and the data before it must still arrive.
func TestGroupWriteUnderTLS(t *testing.T) {
	cert := selfSigned(t)
	for i := range 20 {
		c, s := tcpPair(t)
		srv := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{cert}})
		got := make(chan []byte, 1)
		gotErr := make(chan error, 1)
		go func() {
			b, err := io.ReadAll(srv)
			got <- b
			gotErr <- err
		}()
		cli := tls.Client(newGroupWriteConn(c), &tls.Config{InsecureSkipVerify: true})
		msg := fmt.Sprintf("frame %d", i)
		if _, err := cli.Write([]byte(msg)); err != nil {
			t.Fatalf("TLS Write: %v", err)
		}
		if err := cli.Close(); err != nil {
			t.Errorf("TLS Close: %v", err)
		}
		if b, err := <-got, <-gotErr; string(b) != msg || err != nil {
			t.Fatalf("run %d: peer read %q, %v; want %q and a clean close_notify", i, b, err, msg)
		}
	}
}

// selfSigned returns a throwaway certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestGroupWriteWriteThenClose: a Write right before Close is sent, however
// the sender goroutine is scheduled between the two.
func TestGroupWriteWriteThenClose(t *testing.T) {
	for i := range 100 {
		c, s := tcpPair(t)
		g := newGroupWriteConn(c)
		got := readAllAsync(s)
		msg := fmt.Sprintf("last words %d", i)
		g.Write([]byte(msg))
		if err := g.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if b := <-got; string(b) != msg {
			t.Fatalf("run %d: peer got %q, want %q", i, b, msg)
		}
	}
}

// TestGroupWriteOutlivesDialDeadline: amqp091's DefaultDial sets a
// deadline on the socket for the handshake and clears it afterwards
// through the wrapper; writes after the handshake's deadline must still
// go out (they once failed after 5 s, cutting every connection).
func TestGroupWriteOutlivesDialDeadline(t *testing.T) {
	c, s := tcpPair(t)
	if err := c.SetDeadline(time.Now().Add(100 * time.Millisecond)); err != nil { // as DefaultDial does
		t.Fatal(err)
	}
	g := newGroupWriteConn(c)
	if err := g.SetDeadline(time.Time{}); err != nil { // as amqp091's openComplete does
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := g.Write([]byte("late")); err != nil {
		t.Fatalf("Write = %v", err)
	}
	buf := make([]byte, 4)
	s.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "late" {
		t.Fatalf("peer read %q, %v; want late", buf, err)
	}
	// A read deadline still reaches the socket.
	if err := g.SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Read(buf); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past the deadline = %v, want a deadline error", err)
	}
	g.Close()
}

// readAllAsync reads c until EOF in the background; the bytes arrive on
// the returned channel.
func readAllAsync(c net.Conn) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c)
		got <- b
	}()
	return got
}
