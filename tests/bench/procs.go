package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a program the benchmark started.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan error
	mu      sync.Mutex
	tail    bytes.Buffer // last log output, for error messages
	stopped bool         // stop succeeded
}

// startProc runs bin with env (nothing inherited but PATH), sending its
// output to logPath.
func startProc(name, bin string, args, env []string, logPath string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	w := io.MultiWriter(logFile, &tailWriter{p: p})
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.done <- p.cmd.Wait(); logFile.Close() }()
	return p, nil
}

type tailWriter struct{ p *proc }

func (w *tailWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.tail.Write(b)
	if w.p.tail.Len() > 8192 {
		rest := w.p.tail.Bytes()[w.p.tail.Len()-4096:]
		w.p.tail = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return len(b), nil
}

// Tail returns the end of the program's output.
func (p *proc) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tail.String()
}

// stop sends SIGTERM and waits up to 30s, then kills.
func (p *proc) stop() error {
	if p.stopped {
		return nil
	}
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s had already exited: %v\n%s", p.name, err, p.Tail())
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			return fmt.Errorf("%s exited with %v after SIGTERM\n%s", p.name, err, p.Tail())
		}
		p.stopped = true
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
}

// procSample is a process's CPU time so far and memory.
type procSample struct {
	cpu    time.Duration // user + system
	rssKB  int64         // VmRSS
	peakKB int64         // VmHWM: peak resident set since start
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// sample reads /proc/PID/stat and /proc/PID/status.
func (p *proc) sample() (procSample, error) {
	return readProc(p.cmd.Process.Pid)
}

func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procSample{}, err
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return procSample{}, err
	}
	return parseProc(stat, status)
}

// parseProc extracts utime+stime (fields 14 and 15 of stat; the command
// name in field 2 may hold spaces, so count from its closing parenthesis)
// and VmRSS and VmHWM from status.
func parseProc(stat, status []byte) (procSample, error) {
	var s procSample
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return s, errors.New("stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("stat: %w", err)
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			s.rssKB = n
		case "VmHWM":
			s.peakKB = n
		}
	}
	if s.peakKB == 0 {
		return s, errors.New("status: no VmHWM")
	}
	return s, nil
}

// freeAddrs returns n distinct 127.0.0.1 addresses with ports free right
// now, so the benchmark knows the programs' addresses whatever their
// LOG_LEVEL. The n listeners are open together: one at a time, the kernel
// may hand the port just closed out again.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// waitOK polls url until it answers 200, the process exits, or ctx ends.
func waitOK(ctx context.Context, p *proc, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("%s exited before %s answered: %v\n%s", p.name, url, err, p.Tail())
		case <-ctx.Done():
			return fmt.Errorf("%s: %s not ready: %w\n%s", p.name, url, ctx.Err(), p.Tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
