package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// TestFreshFlightNeverServesAnOlderRun: callers that arrive while a run is
// in progress all share the next run, and none gets the run that started
// before it asked.
func TestFreshFlightNeverServesAnOlderRun(t *testing.T) {
	var runs atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	fn := func(context.Context) (int64, error) {
		n := runs.Add(1)
		started <- struct{}{}
		if n == 1 {
			<-release
		}
		return n, nil
	}
	f := freshFlight[int64]{fn: fn, timeout: time.Minute}
	first := make(chan int64)
	go func() {
		v, _ := f.do(context.Background())
		first <- v
	}()
	<-started // run 1 is in progress
	var wg sync.WaitGroup
	got := make([]int64, 20)
	for i := range got {
		wg.Go(func() {
			v, err := f.do(context.Background())
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	// Let the 20 callers join the next round, then end run 1.
	for f.waiting() < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	if v := <-first; v != 1 {
		t.Errorf("first caller got run %d, want 1", v)
	}
	wg.Wait()
	for i, v := range got {
		if v != 2 {
			t.Errorf("caller %d, arrived during run 1, got run %d; want the shared run 2", i, v)
		}
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("%d runs for 21 callers, want 2", n)
	}
	// Idle again: the next caller starts a run of its own at once.
	if v, _ := f.do(context.Background()); v != 3 {
		t.Errorf("later caller got run %d, want 3", v)
	}
}

func TestFreshFlightErrorsAndCallerDeadlines(t *testing.T) {
	boom := errors.New("db down")
	var runs atomic.Int64
	gate := make(chan struct{})
	f := freshFlight[int64]{timeout: time.Minute, fn: func(context.Context) (int64, error) {
		n := runs.Add(1)
		if n == 1 {
			return 0, boom
		}
		if n == 2 {
			<-gate
		}
		return n, nil
	}}
	if _, err := f.do(context.Background()); !errors.Is(err, boom) {
		t.Errorf("error = %v, want %v", err, boom)
	}
	// A caller that gives up returns at once; its run (2) goes on.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.do(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller past its deadline: %v", err)
	}
	// A caller arriving while run 2 is still in progress gets run 3.
	got := make(chan int64)
	go func() {
		v, _ := f.do(context.Background())
		got <- v
	}()
	for f.waiting() < 1 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	if v := <-got; v != 3 {
		t.Errorf("caller that arrived during run 2 got run %d, want 3", v)
	}
}

// TestSharedTopStocksTimeoutIs503: a /stats request whose deadline passes
// while it waits for a shared query gets the database's 503.
func TestSharedTopStocksTimeoutIs503(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	env := newTestEnv(t)
	env.store.topStocks = func(ctx context.Context, n int) ([]postgres.StockCount, error) {
		<-release
		return nil, nil
	}
	s := newSharedTopStocks(env.store, statsTop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := s.TopStocks(ctx, statsTop)
	if !errors.Is(err, postgres.ErrUnavailable) {
		t.Fatalf("error = %v, want ErrUnavailable", err)
	}
	if p, _ := problemFor(err); p.Status != 503 {
		t.Errorf("status = %d, want 503", p.Status)
	}
}
