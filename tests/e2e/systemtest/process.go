package systemtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Programs are the apiservice and stockservice binaries, built once for a
// whole suite by Build.
type Programs struct {
	dir string
}

// Build compiles apiservice and stockservice (with -race when the caller
// runs with it) into a new temporary directory named after prefix. Call
// Remove when the suite is done.
func Build(prefix string) (*Programs, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("build binaries: %w", err)
	}
	// Build inside the services' own module, so the binaries carry the
	// dependency versions its go.mod ships, not this test module's.
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/stockquote/stockquote").Output()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build binaries: find the services' module: %w", err)
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./apiservice", "./stockservice")
	cmd := exec.Command("go", args...)
	cmd.Dir = strings.TrimSpace(string(root))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build binaries: %w", err)
	}
	return &Programs{dir: dir}, nil
}

// Remove deletes the built binaries.
func (p *Programs) Remove() { os.RemoveAll(p.dir) }

// Path is the file name of the built program name.
func (p *Programs) Path(name string) string { return filepath.Join(p.dir, name) }

// Proc is a running program under test.
type Proc struct {
	Name    string
	cmd     *exec.Cmd
	addr    chan string
	exited  chan struct{} // closed when the process has exited
	exitErr error         // set before exited is closed
	mu      sync.Mutex
	logs    bytes.Buffer
}

// Start runs the program name with env, capturing its JSON log lines so
// that ListenAddr can find the line that reports its listening address.
// At the end of the test a program still running gets SIGTERM and must
// exit cleanly within 30s; its logs are printed if the test failed.
func (p *Programs) Start(t *testing.T, name string, env []string) *Proc {
	t.Helper()
	pr := &Proc{Name: name, addr: make(chan string, 1), exited: make(chan struct{})}
	pr.cmd = exec.Command(p.Path(name))
	pr.cmd.Env = env
	stderr, err := pr.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.cmd.Stdout = io.Discard
	if err := pr.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go pr.capture(stderr)
	t.Cleanup(func() {
		select {
		case <-pr.exited:
		default:
			if _, err := pr.Terminate(30 * time.Second); err != nil && !t.Failed() {
				t.Errorf("%s: %v\n%s", name, err, pr.Logs())
			}
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, pr.Logs())
		}
	})
	return pr
}

// capture keeps every log line and reports the first listening address,
// then records the exit.
func (p *Proc) capture(stderr io.Reader) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		p.mu.Lock()
		p.logs.Write(line)
		p.logs.WriteByte('\n')
		p.mu.Unlock()
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &rec) == nil && strings.Contains(rec.Msg, "listening") && rec.Addr != "" {
			select {
			case p.addr <- rec.Addr:
			default:
			}
		}
	}
	p.exitErr = p.cmd.Wait()
	close(p.exited)
}

// Logs returns everything the program logged so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Exited is closed once the program has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// ListenAddr waits for the program's listening address.
func (p *Proc) ListenAddr(t *testing.T) string {
	t.Helper()
	select {
	case a := <-p.addr:
		return a
	case <-p.exited:
		t.Fatalf("%s exited before listening: %v\n%s", p.Name, p.exitErr, p.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not report a listening address in 30s\n%s", p.Name, p.Logs())
	}
	return ""
}

// Terminate sends SIGTERM and waits up to limit for the exit; it reports
// how long the exit took and an error unless the program exited 0 in time
// (in which case it is killed).
func (p *Proc) Terminate(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		took := time.Since(start)
		if p.exitErr != nil {
			return took, fmt.Errorf("exited with %v after SIGTERM", p.exitErr)
		}
		return took, nil
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return time.Since(start), fmt.Errorf("did not exit within %v of SIGTERM", limit)
	}
}

// Kill sends SIGKILL (no chance to clean up) and waits for the exit.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// WaitStatus polls url until it answers want, failing the test after d.
func WaitStatus(t *testing.T, url string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := 0
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			last = resp.StatusCode
			if resp.StatusCode == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still %d, not %d, after %v", url, last, want, d)
}

// WaitReady polls url until it answers 200, for up to 30s.
func WaitReady(t *testing.T, url string) {
	t.Helper()
	WaitStatus(t, url, http.StatusOK, 30*time.Second)
}

// Main is a suite's TestMain body: it builds the programs once into
// *programs, runs the tests and removes the binaries, returning the exit
// code. suite names the suite in errors and in the build directory.
func Main(m *testing.M, suite string, programs **Programs) int {
	p, err := Build("stockquote-" + suite + "-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", suite, err)
		return 1
	}
	defer p.Remove()
	*programs = p
	return m.Run()
}
