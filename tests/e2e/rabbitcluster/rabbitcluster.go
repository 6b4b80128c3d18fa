// Package rabbitcluster starts a RabbitMQ cluster of its own for a test:
// several nodes of the machine's rabbitmq-server (Debian's package), each
// with its own node name, AMQP and distribution ports, data and log
// directories under a temporary directory, sharing an Erlang cookie kept
// in a temporary HOME, joined with rabbitmqctl join_cluster. It never
// touches the machine's own broker (only epmd, which every Erlang node on
// the machine shares). The nodes are killed and their files removed when
// the test ends; nodes left behind by a test binary that died are killed
// by the next Start.
package rabbitcluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Where Debian's rabbitmq-server package puts the programs. The wrappers
// in /usr/sbin switch to the rabbitmq user, whose HOME (and cookie) is the
// machine broker's, so the harness runs these directly.
var (
	serverPaths = []string{"/usr/lib/rabbitmq/bin/rabbitmq-server"}
	ctlPaths    = []string{"/usr/lib/rabbitmq/bin/rabbitmqctl"}
)

// Timeouts. Starting an Erlang node takes seconds on a quiet machine and
// much longer on a busy two-core one; these bound a stuck start, not a
// slow one.
const (
	nodeStartTimeout = 3 * time.Minute
	ctlTimeout       = 2 * time.Minute
)

// Cluster is a running test cluster.
type Cluster struct {
	Nodes []*Node

	t      testing.TB
	dir    string // the run's directory: home/, node directories
	home   string
	server string
	ctl    string
	prefix string // node name prefix, unique to the run
}

// Node is one RabbitMQ node of a Cluster.
type Node struct {
	Name string // Erlang node name, e.g. sq-ab12cd-1@localhost
	Port int    // AMQP port on 127.0.0.1
	URL  string // amqp://guest:guest@127.0.0.1:Port/

	index int
	dist  int
	dir   string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Addr is the node's AMQP host:port.
func (n *Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// baseDir holds one directory per run, so a later run can find and kill
// the nodes of a run whose test binary died without cleaning up.
func baseDir() string { return filepath.Join(os.TempDir(), "stockquote-rabbitcluster") }

// Start starts an n-node cluster and waits until every node runs in it.
// It fails the test with the node's own output when a node does not come
// up. Timings are logged.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var err error
	if c.server, err = findProgram(serverPaths, "rabbitmq-server"); err != nil {
		t.Fatalf("rabbitcluster: %v (install Debian's rabbitmq-server package)", err)
	}
	if c.ctl, err = findProgram(ctlPaths, "rabbitmqctl"); err != nil {
		t.Fatalf("rabbitcluster: %v (install Debian's rabbitmq-server package)", err)
	}
	killLeftovers(t)
	if err := os.MkdirAll(baseDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	tag := strings.ToLower(rand.Text()[:6])
	c.prefix = "sqtest-" + tag
	c.dir = filepath.Join(baseDir(), fmt.Sprintf("run-%d-%s", os.Getpid(), tag))
	c.home = filepath.Join(c.dir, "home")
	if err := os.MkdirAll(c.home, 0o700); err != nil {
		t.Fatal(err)
	}
	// The cookie every node and rabbitmqctl read from $HOME: nodes of one
	// cluster must share it, and it must differ from the machine broker's.
	if err := os.WriteFile(filepath.Join(c.home, ".erlang.cookie"), []byte("SQTEST"+strings.ToUpper(rand.Text())), 0o400); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)

	for i := range n {
		node, err := c.newNode(i + 1)
		if err != nil {
			t.Fatalf("rabbitcluster: node %d: %v", i+1, err)
		}
		c.Nodes = append(c.Nodes, node)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, node := range c.Nodes {
		wg.Go(func() { errs[i] = c.boot(node) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("rabbitcluster: %v", err)
	}
	booted := time.Since(start)
	for _, node := range c.Nodes[1:] {
		if err := c.join(node, c.Nodes[0]); err != nil {
			t.Fatalf("rabbitcluster: %v", err)
		}
	}
	if err := c.waitRunning(n); err != nil {
		t.Fatalf("rabbitcluster: %v", err)
	}
	t.Logf("rabbitcluster: %d nodes booted in %v, joined into one cluster in %v more (%v in all)",
		n, booted.Round(100*time.Millisecond), (time.Since(start) - booted).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	return c
}

func findProgram(paths []string, name string) (string, error) {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %v", name, paths)
}

// newNode prepares node i's directory, ports and configuration.
func (c *Cluster) newNode(i int) (*Node, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dist, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &Node{
		Name:  fmt.Sprintf("%s-%d@localhost", c.prefix, i),
		Port:  port,
		URL:   fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port),
		index: i,
		dist:  dist,
		dir:   filepath.Join(c.dir, fmt.Sprintf("node%d", i)),
	}
	for _, d := range []string{"mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		// Only our listener, on loopback; no plugins, so no management
		// or Prometheus port to collide with the machine broker's.
		"rabbitmq.conf":   fmt.Sprintf("listeners.tcp.1 = 127.0.0.1:%d\n", port),
		"enabled_plugins": "[].\n",
		"env.conf":        "", // instead of /etc/rabbitmq/rabbitmq-env.conf (the machine broker's)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(n.dir, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// env is what the server and rabbitmqctl see: the node's own files and
// the run's HOME (the cookie), nothing of the machine broker's.
func (c *Cluster) env(n *Node) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.home,
		"LANG=C.UTF-8",
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_NODENAME=" + n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(n.Port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(n.dist),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(n.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(n.dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(n.dir, "env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(n.dir, "log"),
		"RABBITMQ_PID_FILE=" + filepath.Join(n.dir, "pid"),
		// The start script then execs the Erlang VM instead of running it
		// as a child behind a signal-forwarding shell, so the process we
		// start is the node and SIGKILL kills the node.
		"RUNNING_UNDER_SYSTEMD=true",
	}
}

// boot starts n's process and waits until the node has started.
func (c *Cluster) boot(n *Node) error {
	out, err := os.OpenFile(filepath.Join(n.dir, "output.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.server)
	cmd.Env = c.env(n)
	cmd.Dir = n.dir
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that a kill takes every helper process
	// of the VM too; and killed if the test binary's thread dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()

	// The AMQP listener opens last in the boot; dialing it is cheap,
	// where every rabbitmqctl run starts an Erlang VM.
	start := time.Now()
	deadline := start.Add(nodeStartTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("node %s exited while starting; its output:\n%s", n.Name, c.tail(n))
		default:
		}
		if conn, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: AMQP port %d not open after %v; its output:\n%s", n.Name, n.Port, nodeStartTimeout, c.tail(n))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := c.Ctl(n, "await_startup", "--timeout", "60"); err != nil {
		return fmt.Errorf("node %s: %w; its output:\n%s", n.Name, err, c.tail(n))
	}
	c.t.Logf("rabbitcluster: %s up in %v (AMQP %d)", n.Name, time.Since(start).Round(100*time.Millisecond), n.Port)
	return nil
}

// join makes n a member of seed's cluster.
func (c *Cluster) join(n, seed *Node) error {
	for _, args := range [][]string{{"stop_app"}, {"join_cluster", seed.Name}, {"start_app"}} {
		if _, err := c.Ctl(n, args...); err != nil {
			return fmt.Errorf("join %s to %s: %w", n.Name, seed.Name, err)
		}
	}
	return nil
}

// waitRunning waits until a running node reports want running nodes.
func (c *Cluster) waitRunning(want int) error {
	deadline := time.Now().Add(ctlTimeout)
	var last string
	for time.Now().Before(deadline) {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			out, err := c.Ctl(n, "cluster_status", "--formatter", "json")
			if err != nil {
				last = err.Error()
				continue
			}
			var st struct {
				Running []string `json:"running_nodes"`
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				last = fmt.Sprintf("cluster_status: %v: %s", err, out)
				continue
			}
			if len(st.Running) == want {
				return nil
			}
			last = fmt.Sprintf("running nodes %v", st.Running)
			break
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("cluster did not reach %d running nodes in %v: %s", want, ctlTimeout, last)
}

// Ctl runs rabbitmqctl against node n and returns its standard output.
func (c *Cluster) Ctl(n *Node, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.ctl, append([]string{"-n", n.Name, "-q"}, args...)...)
	cmd.Env = c.env(n)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("rabbitmqctl -n %s %s: %w: %s", n.Name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	return stdout.String(), nil
}

// Running reports whether n's process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to n (no shutdown of any kind) and waits for it to
// be gone.
func (c *Cluster) Kill(n *Node) {
	c.t.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("rabbitcluster: %s still running 30s after SIGKILL", n.Name)
	}
}

// Restart starts a killed node again on its data directory, so it rejoins
// the cluster by itself, and waits until every node runs in the cluster.
// It returns how long that took.
func (c *Cluster) Restart(n *Node) time.Duration {
	c.t.Helper()
	start := time.Now()
	if err := c.boot(n); err != nil {
		c.t.Fatalf("rabbitcluster: restart: %v", err)
	}
	if err := c.waitRunning(len(c.Nodes)); err != nil {
		c.t.Fatalf("rabbitcluster: after restarting %s: %v", n.Name, err)
	}
	return time.Since(start)
}

// QuorumLeader returns the node that holds the leader of quorum queue
// name, asking a running node; it waits while an election is going on.
func (c *Cluster) QuorumLeader(name string) *Node {
	c.t.Helper()
	deadline := time.Now().Add(ctlTimeout)
	var last string
	for time.Now().Before(deadline) {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			out, err := c.Ctl(n, "list_queues", "--no-table-headers", "name", "leader")
			if err != nil {
				last = err.Error()
				continue
			}
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) == 2 && f[0] == name {
					if leader := c.byName(f[1]); leader != nil {
						return leader
					}
					last = "leader " + f[1]
				}
			}
			if last == "" {
				last = "queue not listed"
			}
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.t.Fatalf("rabbitcluster: no leader for queue %s: %s", name, last)
	return nil
}

func (c *Cluster) byName(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// ByAddr returns the node listening on host:port, or nil.
func (c *Cluster) ByAddr(addr string) *Node {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// tail returns the end of n's output and log, for a failure message.
func (c *Cluster) tail(n *Node) string {
	var b strings.Builder
	for _, f := range []string{filepath.Join(n.dir, "output.log"), filepath.Join(n.dir, "log", n.Name+".log")} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", f, data)
	}
	return b.String()
}

// stop kills every node and removes the run's files, unless
// RABBITCLUSTER_KEEP is set (to read the nodes' logs after a run).
func (c *Cluster) stop() {
	for _, n := range c.Nodes {
		if n.Running() {
			c.Kill(n)
		}
	}
	if c.t.Failed() {
		for _, n := range c.Nodes {
			c.t.Logf("rabbitcluster: %s:\n%s", n.Name, c.tail(n))
		}
	}
	if os.Getenv("RABBITCLUSTER_KEEP") != "" {
		c.t.Logf("rabbitcluster: RABBITCLUSTER_KEEP is set: the nodes' files stay in %s", c.dir)
		return
	}
	if err := os.RemoveAll(c.dir); err != nil {
		c.t.Errorf("rabbitcluster: remove %s: %v", c.dir, err)
	}
}

// killLeftovers kills the nodes of earlier runs whose test binary is gone
// (a run killed by go test's timeout skips its cleanup) and removes their
// files. A node is killed only if its command line names that run's
// directory, so a recycled pid is left alone.
func killLeftovers(t testing.TB) {
	runs, _ := filepath.Glob(filepath.Join(baseDir(), "run-*"))
	for _, run := range runs {
		f := strings.SplitN(filepath.Base(run), "-", 3)
		if len(f) != 3 {
			continue
		}
		owner, err := strconv.Atoi(f[1])
		if err != nil || owner == os.Getpid() || syscall.Kill(owner, 0) == nil {
			continue // its test binary still runs
		}
		pids, _ := filepath.Glob(filepath.Join(run, "node*", "pid"))
		for _, pf := range pids {
			b, err := os.ReadFile(pf)
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				continue
			}
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err == nil && strings.Contains(string(cmdline), run) {
				t.Logf("rabbitcluster: killing node pid %d left by %s", pid, run)
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = os.RemoveAll(run)
	}
}
