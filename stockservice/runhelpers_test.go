package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// started is a run in the background.
type started struct {
	cancel context.CancelFunc
	done   chan error
	stderr *syncBuffer
	addr   string // HTTP address the probes listen on
}

// startRun starts run with env and waits until it logs its HTTP address.
func startRun(t *testing.T, env map[string]string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{cancel: cancel, done: make(chan error, 1), stderr: &syncBuffer{}}
	go func() { s.done <- run(ctx, []string{"stockservice"}, envFunc(env), io.Discard, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Errorf("run did not return after cancel")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if addr := logged(s.stderr.String(), "http listening", "addr"); addr != "" {
			s.addr = addr
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err // for Cleanup, and for a caller that expects run to stop
			// run may log its address and stop a moment later (e.g. a
			// refused queue): that is a started run, for the caller to judge.
			if addr := logged(s.stderr.String(), "http listening", "addr"); addr != "" {
				s.addr = addr
				return s
			}
			t.Fatalf("run returned early: %v\n%s", err, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("run never logged its address:\n%s", s.stderr)
	return nil
}

// stop cancels the run and returns its error.
func (s *started) stop(t *testing.T, within time.Duration) error {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // for Cleanup
		return err
	case <-time.After(within):
		t.Fatalf("run did not stop within %v", within)
		return nil
	}
}

// logged returns the string attribute key of the first JSON log line with msg.
func logged(logs, msg, key string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			s, _ := line[key].(string)
			return s
		}
	}
	return ""
}

// probe GETs path on the run's HTTP address and returns the status code.
func (s *started) probe(t *testing.T, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
