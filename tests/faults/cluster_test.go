//go:build integration

package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockquote/stockquote/tests/e2e/rabbitcluster"
	"github.com/stockquote/stockquote/tests/e2e/systemtest"
)

// clusterRounds is how long TestCluster repeats its round of faults:
// CLUSTER_SOAK_DURATION (make soak-cluster), or one round.
func clusterSoak(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("CLUSTER_SOAK_DURATION")
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		t.Fatalf("CLUSTER_SOAK_DURATION=%q: want a duration", s)
	}
	return d
}

// clusterProgram is one program of the cluster test and its own link to
// every node, so that one program can be cut from one node.
type clusterProgram struct {
	name  string
	proc  *proc
	base  string                         // API base URL; "" for a worker
	links map[string]*link               // by node name
	nodes map[string]*rabbitcluster.Node // by link address
}

// newClusterProgram makes name's links to every node of rc and returns
// them with the AMQP_URL list that goes through them.
func newClusterProgram(t *testing.T, rc *rabbitcluster.Cluster, name string) (*clusterProgram, string) {
	t.Helper()
	p := &clusterProgram{name: name, links: map[string]*link{}, nodes: map[string]*rabbitcluster.Node{}}
	var urls []string
	for _, n := range rc.Nodes {
		l := newLink(t, name+"-"+n.Name, n.Addr())
		p.links[n.Name] = l
		p.nodes[l.addr()] = n
		urls = append(urls, viaLink(t, n.URL, l))
	}
	return p, strings.Join(urls, ",")
}

// node returns the node p is connected to now, from its last "amqp
// connected" log line; nil if it has not connected.
func (p *clusterProgram) node() *rabbitcluster.Node {
	var addr string
	sc := bufio.NewScanner(strings.NewReader(p.proc.Logs()))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var rec struct {
			Msg string `json:"msg"`
			URL string `json:"amqp_url"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "amqp connected" {
			if u, err := url.Parse(rec.URL); err == nil {
				addr = u.Host
			}
		}
	}
	return p.nodes[addr]
}

// clusterEvent is one thing the harness did, at a time.
type clusterEvent struct {
	at   time.Time
	what string
}

// clusterAnswer is one /stock request's outcome.
type clusterAnswer struct {
	start, end time.Time
	api        string
	status     int
	detail     string // the problem's detail, for a failure
	err        error
}

// TestCluster runs the pair on a 3-node RabbitMQ cluster of its own with
// a quorum request queue: 2 API processes and 3 workers, every program
// given all three nodes' addresses (each through a toxiproxy link of its
// own), under steady /stock load from 6 clients. In turn it kills -9 the
// node that holds the queue's leader and restarts it (it rejoins), kills
// -9 the node one API is connected to and restarts it, and cuts one API
// and one worker from their node for 3s. Then the soak's accounting: every
// 200 has exactly one history row, /stats agrees, no answer took longer
// than RPC_TIMEOUT (plus a second for HTTP and the database), the only
// errors are 503s and they come within the failover window after a
// fault, whose length it reports.
//
// make test runs one round; make soak-cluster repeats it for
// CLUSTER_SOAK_DURATION.
func TestCluster(t *testing.T) {
	const (
		rpcTimeout = 5 * time.Second
		clients    = 6
		// The longest an answer may take: RPC_TIMEOUT, plus the history
		// write and HTTP on a loaded two-core machine.
		answerBound = rpcTimeout + 2*time.Second
		// The longest a run of errors may last after a fault.
		windowBound = 20 * time.Second
		settle      = 4 * time.Second // load between faults
	)
	soak := clusterSoak(t)
	rc := rabbitcluster.Start(t, 3)

	var progs []*clusterProgram
	api1, api1URLs := newClusterProgram(t, rc, "api1")
	s := systemtest.New(t, programs, systemtest.Options{
		QueuePrefix:  "cluster",
		RPCTimeout:   rpcTimeout,
		StooqTimeout: 2 * time.Second,
		Env:          []string{"RPC_QUEUE_TYPE=quorum"},
		Route: func(service, rawURL string) string {
			if service == "broker" {
				return api1URLs
			}
			return rawURL
		},
	})
	var workers []*clusterProgram
	for i := range 3 {
		w, urls := newClusterProgram(t, rc, fmt.Sprintf("worker%d", i+1))
		w.proc = s.StartWorker(t, urls).Proc
		workers = append(workers, w)
	}
	api1.base, api1.proc = s.StartAPI(t)
	s.API, s.APIProc = api1.base, api1.proc
	api2, api2URLs := newClusterProgram(t, rc, "api2")
	api2.base, api2.proc = s.StartAPI(t, "AMQP_URL="+api2URLs)
	apis := []*clusterProgram{api1, api2}
	progs = append(append(progs, apis...), workers...)
	for _, p := range progs {
		if p.node() == nil {
			t.Fatalf("%s logged no broker connection", p.name)
		}
	}
	tok := s.Login(t, "alice", "alice-password-1")
	admin := s.Login(t, "admin", "admin-password-1")
	s.Stooq.SetLatency(20 * time.Millisecond)

	var (
		mu      sync.Mutex
		answers []clusterAnswer
		ok      = map[string]int{}
		events  []clusterEvent
	)
	event := func(format string, args ...any) {
		mu.Lock()
		events = append(events, clusterEvent{at: time.Now(), what: fmt.Sprintf(format, args...)})
		mu.Unlock()
		t.Logf("cluster: %s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
	where := func() string {
		var b []string
		for _, p := range progs {
			if n := p.node(); n != nil {
				b = append(b, p.name+"@"+n.Name)
			}
		}
		return strings.Join(b, " ")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			api := apis[c%len(apis)]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sym := soakSymbols[(c+i)%len(soakSymbols)]
				a := clusterAnswer{start: time.Now(), api: api.name}
				req, err := systemtest.NewRequest(http.MethodGet, api.base+"/api/v1/stock?q="+sym, tok, nil)
				var r response
				if err == nil {
					r, err = systemtest.Fetch(req)
				}
				a.end, a.status, a.err = time.Now(), r.Status, err
				if err == nil && r.Status != http.StatusOK {
					if msg := checkProblem(r, http.StatusServiceUnavailable); msg != "" {
						t.Errorf("%s via %s: %s", sym, api.name, msg)
					}
					var p struct {
						Detail string `json:"detail"`
					}
					_ = json.Unmarshal(r.Body, &p)
					a.detail = p.Detail
				}
				mu.Lock()
				answers = append(answers, a)
				if err == nil && r.Status == http.StatusOK {
					ok[strings.ToUpper(sym)]++
				}
				mu.Unlock()
				if a.status != http.StatusOK {
					time.Sleep(20 * time.Millisecond) // no busy loop on fast 503s
				}
			}
		})
	}

	event("load on; connections: %s", where())
	time.Sleep(settle / 2)
	deadline := time.Now().Add(soak)
	for round := 1; ; round++ {
		leader := rc.QuorumLeader(s.Queue)
		event("round %d: kill -9 %s (quorum queue leader)", round, leader.Name)
		rc.Kill(leader)
		time.Sleep(settle)
		took := rc.Restart(leader)
		event("%s restarted and rejoined in %v; connections: %s", leader.Name, took.Round(100*time.Millisecond), where())
		time.Sleep(settle / 2)

		victim := api1.node()
		event("round %d: kill -9 %s (api1's node)", round, victim.Name)
		rc.Kill(victim)
		time.Sleep(settle)
		took = rc.Restart(victim)
		event("%s restarted and rejoined in %v; connections: %s", victim.Name, took.Round(100*time.Millisecond), where())
		time.Sleep(settle / 2)

		for _, p := range []*clusterProgram{api2, workers[round%len(workers)]} {
			n := p.node()
			l := p.links[n.Name]
			event("round %d: cut %s from %s for 3s", round, p.name, n.Name)
			l.down()
			time.Sleep(3 * time.Second)
			l.up()
			event("%s's link to %s healed; connections: %s", p.name, n.Name, where())
			time.Sleep(settle / 2)
		}
		if !time.Now().Before(deadline) {
			break
		}
	}
	close(stop)
	wg.Wait()

	// Accounting, as TestSoak's.
	total200, failed, slowest := 0, 0, time.Duration(0)
	for _, a := range answers {
		slowest = max(slowest, a.end.Sub(a.start))
		switch {
		case a.err != nil:
			t.Errorf("transport error: %v", a.err)
		case a.status == http.StatusOK:
			total200++
		default:
			failed++
		}
		if d := a.end.Sub(a.start); d > answerBound {
			t.Errorf("an answer (%d) took %v, bound %v", a.status, d, answerBound)
		}
	}
	rows := s.CountRows(t, "")
	for _, sym := range soakSymbols {
		want := ok[strings.ToUpper(sym)]
		if got := s.CountRows(t, "symbol = $1", strings.ToUpper(sym)); got != want {
			t.Errorf("%s: %d history rows, %d answers 200", sym, got, want)
		}
	}
	if rows != total200 {
		t.Errorf("history rows = %d, answers 200 = %d", rows, total200)
	}
	waitStatus(t, api1.base+"/readyz", http.StatusOK, 20*time.Second)
	req, err := systemtest.NewRequest(http.MethodGet, api2.base+"/api/v1/stats", admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := systemtest.Fetch(req)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("/stats: %v %d %s", err, r.Status, r.Body)
	}
	var stats []struct {
		Stock          string `json:"stock"`
		TimesRequested int    `json:"times_requested"`
	}
	if err := json.Unmarshal(r.Body, &stats); err != nil {
		t.Fatalf("/stats %s: %v", r.Body, err)
	}
	statsTotal := 0
	for _, st := range stats {
		statsTotal += st.TimesRequested
	}
	if statsTotal != rows {
		t.Errorf("/stats total = %d, history rows = %d", statsTotal, rows)
	}

	// The failover window of each event: from the event to the end of the
	// last failed request that ended after it (and before the next event):
	// a call in flight when a node dies started before the fault.
	sort.Slice(answers, func(i, j int) bool { return answers[i].end.Before(answers[j].end) })
	for i, e := range events {
		next := time.Now().Add(time.Hour)
		if i+1 < len(events) {
			next = events[i+1].at
		}
		n, last := 0, e.at
		why := map[string]int{}
		for _, a := range answers {
			if a.status != http.StatusOK && !a.end.Before(e.at) && a.end.Before(next) {
				n++
				last = a.end
				why[fmt.Sprintf("%s %d %q", a.api, a.status, a.detail)]++
			}
		}
		window := last.Sub(e.at)
		if i == 0 && n > 0 {
			t.Errorf("%d errors before any fault", n)
		}
		if window > windowBound {
			t.Errorf("%s: errors went on for %v, bound %v", e.what, window, windowBound)
		}
		t.Logf("cluster: %s: %d 503s, window %v %v", e.what, n, window.Round(10*time.Millisecond), why)
	}
	t.Logf("cluster: %d requests, %d answered 200, %d 503, slowest answer %v; history rows %d, /stats total %d, answers lost %d",
		len(answers), total200, failed, slowest.Round(time.Millisecond), rows, statsTotal, abs(total200-rows))
	if total200 == 0 {
		t.Error("no request succeeded")
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
