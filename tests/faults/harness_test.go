//go:build integration

package faults

// The harness is e2e's (systemtest: build the real binaries once, run them
// with a JSON log capture, walk the API over HTTP) plus what breaking
// things needs: toxiproxy links in front of the broker and the database,
// workers that can be killed and restarted, and queue checks.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/stockquote/stockquote/tests/e2e/systemtest"
)

// programs are the binaries TestMain builds once for the whole suite.
var programs *systemtest.Programs

func TestMain(m *testing.M) {
	os.Exit(systemtest.Main(m, "faults", &programs))
}

// The suite's names for the shared harness.
type (
	proc     = systemtest.Proc
	response = systemtest.Response
)

var (
	amqpURL      = systemtest.AMQPURL
	randomHex    = systemtest.RandomHex
	deleteQueue  = systemtest.DeleteQueue
	waitStatus   = systemtest.WaitStatus
	checkProblem = systemtest.CheckProblem
)

// ---- toxiproxy links ----

// toxiServer is the in-process toxiproxy every link belongs to.
var toxiServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())

// link is a toxiproxy proxy between a program and the broker or the
// database: down cuts every connection and refuses new ones (what a
// restart looks like from outside), up heals it, slow adds latency.
type link struct {
	t     *testing.T
	proxy *toxiproxy.Proxy
}

// newLink starts a proxy on a loopback port in front of upstream
// (host:port) and stops it when the test ends.
func newLink(t *testing.T, name, upstream string) *link {
	t.Helper()
	p := toxiproxy.NewProxy(toxiServer, name+"-"+randomHex(4), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy to %s: %v", upstream, err)
	}
	t.Cleanup(p.Stop)
	return &link{t: t, proxy: p}
}

// addr is the proxy's listening address.
func (l *link) addr() string {
	l.proxy.Lock()
	defer l.proxy.Unlock()
	return l.proxy.Listen
}

// down closes every connection through the link and refuses new ones.
func (l *link) down() { l.proxy.Stop() }

// up accepts connections again, on the same address.
func (l *link) up() {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := l.proxy.Start()
		if err == nil || err == toxiproxy.ErrProxyAlreadyStarted {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("restart proxy on %s: %v", l.addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slow delays everything sent through the link in the given direction
// ("upstream": towards the server, "downstream": back) by d.
func (l *link) slow(stream string, d time.Duration) {
	l.t.Helper()
	body := fmt.Sprintf(`{"name":"slow-%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`, stream, stream, d.Milliseconds())
	if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
		l.t.Fatalf("add latency toxic: %v", err)
	}
}

// fast removes the latency added by slow.
func (l *link) fast(stream string) {
	l.t.Helper()
	if err := l.proxy.Toxics.RemoveToxic(context.Background(), "slow-"+stream); err != nil {
		l.t.Fatalf("remove latency toxic: %v", err)
	}
}

// viaLink returns rawURL with its host replaced by l's address.
func viaLink(t *testing.T, rawURL string, l *link) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %s: %v", rawURL, err)
	}
	u.Host = l.addr()
	return u.String()
}

// hostOf returns the host:port of rawURL.
func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %s: %v", rawURL, err)
	}
	return u.Host
}

// ---- the system under test ----

// system is one isolated deployment (see systemtest.System), the API
// reaching the broker and the database through links.
type system struct {
	*systemtest.System
	workers []*worker
	broker  *link // between the API and RabbitMQ
	db      *link // between the API and PostgreSQL
}

// options tune a system.
type options struct {
	workers      int           // stock services to start (default 1; -1 for none)
	rpcTimeout   time.Duration // API RPC_TIMEOUT (default 5s)
	stooqTimeout time.Duration // worker STOOQ_TIMEOUT (default 1s)
	slowDelay    time.Duration // how long slow.test waits (default 20s)
}

// newSystem migrates a fresh database, creates the users admin
// (superuser) and alice, and starts the workers and the API service.
func newSystem(t *testing.T, o options) *system {
	t.Helper()
	if o.rpcTimeout == 0 {
		o.rpcTimeout = 5 * time.Second
	}
	if o.workers == 0 {
		o.workers = 1
	}
	s := &system{}
	s.System = systemtest.New(t, programs, systemtest.Options{
		QueuePrefix:  "faults",
		RPCTimeout:   o.rpcTimeout,
		StooqTimeout: o.stooqTimeout,
		SlowDelay:    o.slowDelay,
		Route: func(service, rawURL string) string {
			l := newLink(t, "api-"+service, hostOf(t, rawURL))
			if service == "database" {
				s.db = l
			} else {
				s.broker = l
			}
			return viaLink(t, rawURL, l)
		},
	})
	for range max(o.workers, 0) {
		s.startWorker(t)
	}
	s.API, s.APIProc = s.StartAPI(t)
	return s
}

// worker is one running stock service and its own link to the broker.
type worker struct {
	*systemtest.Worker
	broker *link
	health string // base URL of its probes
}

// startWorker starts a stock service on the system's queue, reaching the
// broker through a link of its own, and waits until it consumes.
func (s *system) startWorker(t *testing.T) *worker {
	t.Helper()
	l := newLink(t, "worker-broker", hostOf(t, amqpURL()))
	w := s.StartWorker(t, viaLink(t, amqpURL(), l))
	fw := &worker{Worker: w, broker: l, health: "http://" + w.Addr}
	s.workers = append(s.workers, fw)
	return fw
}

// withChannel runs f on a channel of a fresh, short-lived broker
// connection; an unreachable broker fails the test.
func withChannel(t *testing.T, f func(ch *amqp.Channel) error) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatalf("RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("RabbitMQ channel: %v", err)
	}
	defer ch.Close()
	if err := f(ch); err != nil {
		t.Fatal(err)
	}
}

// declareQueue declares an RPC queue with the arguments amqprpc uses.
func declareQueue(t *testing.T, name string) {
	t.Helper()
	withChannel(t, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic})
		return err
	})
}

// queueDepth reports the messages ready in queue (unacked ones are not
// counted by the broker until their consumer goes away) and its consumers.
func queueDepth(t *testing.T, name string) (messages, consumers int) {
	t.Helper()
	withChannel(t, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic})
		messages, consumers = q.Messages, q.Consumers
		return err
	})
	return messages, consumers
}

// ---- HTTP ----

// wantProblem fails the test unless r is a problem+json answer with one
// of the given statuses.
func wantProblem(t *testing.T, r response, statuses ...int) {
	t.Helper()
	systemtest.WantProblem(t, r, statuses...)
}
