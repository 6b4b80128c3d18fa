//go:build integration

package postgres_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// TestRateLimitConcurrent: many attempts at once from several pools (as
// several API replicas would) admit exactly the burst, never more.
func TestRateLimitConcurrent(t *testing.T) {
	t.Parallel()
	_, url := openDB(t)
	ctx := context.Background()
	const replicas, perReplica, burst = 3, 40, 5
	limit := postgres.Limit{Burst: burst, Interval: time.Hour}
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for range replicas {
		db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxOpenConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for range perReplica {
			wg.Go(func() {
				ok, retry, err := db.TakeRate(ctx, "k", limit)
				switch {
				case err != nil:
					t.Error(err)
				case ok:
					admitted.Add(1)
				default:
					refused.Add(1)
					if retry <= 0 || retry > time.Hour {
						t.Errorf("refused with retry after %v, want within (0, 1h]", retry)
					}
				}
			})
		}
	}
	wg.Wait()
	if admitted.Load() != burst || refused.Load() != replicas*perReplica-burst {
		t.Errorf("admitted %d, refused %d; want %d and %d", admitted.Load(), refused.Load(), burst, replicas*perReplica-burst)
	}
}

// TestRateLimitRefillPeekSweep: a bucket refills one attempt per
// interval; PeekRate tells the same as TakeRate without writing; swept
// rows are the full buckets only.
func TestRateLimitRefillPeekSweep(t *testing.T) {
	t.Parallel()
	db, url := openDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// An interval long enough that a loaded machine does not refill the
	// bucket between two statements.
	limit := postgres.Limit{Burst: 2, Interval: 2 * time.Second}

	if n, _, err := db.PeekRate(ctx, "a", limit); n != 2 || err != nil {
		t.Fatalf("peek of a new key = %d, %v; want the burst, 2", n, err)
	}
	xmin := func() string {
		var x string
		if err := conn.QueryRow(ctx, `SELECT coalesce((SELECT xmin::text FROM rate_limits WHERE key = 'a'), '')`).Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	for i := range 2 {
		if ok, _, err := db.TakeRate(ctx, "a", limit); !ok || err != nil {
			t.Fatalf("take %d = %v, %v; want ok", i+1, ok, err)
		}
		if n, _, err := db.PeekRate(ctx, "a", limit); n != 1-i || err != nil {
			t.Fatalf("peek after take %d = %d, %v; want %d", i+1, n, err, 1-i)
		}
	}
	before := xmin()
	n, peekRetry, err := db.PeekRate(ctx, "a", limit)
	if n != 0 || err != nil || peekRetry <= 0 || peekRetry > limit.Interval {
		t.Fatalf("peek of an empty bucket = %d, %v, %v; want 0 within one interval", n, peekRetry, err)
	}
	if after := xmin(); after != before {
		t.Errorf("PeekRate wrote the row (xmin %s -> %s)", before, after)
	}
	ok, retry, err := db.TakeRate(ctx, "a", limit)
	if ok || err != nil || retry <= 0 || retry > limit.Interval {
		t.Fatalf("third take = %v, %v, %v; want refused within one interval", ok, retry, err)
	}
	time.Sleep(retry + 20*time.Millisecond)
	if ok, _, err := db.TakeRate(ctx, "a", limit); !ok || err != nil {
		t.Fatalf("take after the refill = %v, %v; want ok", ok, err)
	}
	if ok, _, _ := db.TakeRate(ctx, "a", limit); ok {
		t.Fatal("a second take after one interval was admitted")
	}

	if _, _, err := db.TakeRate(ctx, "b", postgres.Limit{Burst: 1, Interval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	swept, err := db.SweepRates(ctx)
	if err != nil || swept != 1 {
		t.Fatalf("SweepRates = %d, %v; want 1 (b is full again, a is not)", swept, err)
	}
	if n, _, _ := db.PeekRate(ctx, "a", limit); n != 0 {
		t.Error("sweep forgot a bucket that was still in use")
	}
}

// TestRateLimitCharge: charges beyond the burst are owed: the bucket
// admits nothing until the debt is repaid.
func TestRateLimitCharge(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	limit := postgres.Limit{Burst: 2, Interval: time.Hour}
	for range 4 {
		if err := db.ChargeRate(ctx, "c", limit); err != nil {
			t.Fatal(err)
		}
	}
	n, retry, err := db.PeekRate(ctx, "c", limit)
	if n != 0 || err != nil || retry < 2*time.Hour || retry > 3*time.Hour {
		t.Fatalf("peek after 4 charges of a burst of 2 = %d, %v, %v; want 0, about 3h", n, retry, err)
	}
	if ok, _, _ := db.TakeRate(ctx, "c", limit); ok {
		t.Error("a bucket in debt admitted an attempt")
	}
}

// TestRateLimitTakeMany: taking k attempts at once is one attempt of the
// same key under {Burst/k, Interval*k} (how the /stock quota leases
// attempts); it shares the bucket with single attempts under the plain
// limit, and neither overshoots the burst.
func TestRateLimitTakeMany(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	plain := postgres.Limit{Burst: 100, Interval: time.Hour}
	const k = 20
	many := postgres.Limit{Burst: plain.Burst / k, Interval: plain.Interval * k}
	if ok, _, err := db.TakeRate(ctx, "many", plain); !ok || err != nil {
		t.Fatalf("single attempt: %v %v", ok, err)
	}
	// 99 left: four leases of 20, then not a fifth.
	for i := range 4 {
		if ok, _, err := db.TakeRate(ctx, "many", many); !ok || err != nil {
			t.Fatalf("lease %d: %v %v", i+1, ok, err)
		}
	}
	if ok, retry, err := db.TakeRate(ctx, "many", many); ok || err != nil || retry <= 0 {
		t.Fatalf("fifth lease with 19 left: ok=%v retry=%v err=%v, want refused", ok, retry, err)
	}
	for i := range 19 {
		if ok, _, err := db.TakeRate(ctx, "many", plain); !ok || err != nil {
			t.Fatalf("single attempt %d of the last 19: %v %v", i+1, ok, err)
		}
	}
	if ok, _, err := db.TakeRate(ctx, "many", plain); ok || err != nil {
		t.Fatalf("attempt 101: ok=%v err=%v, want refused", ok, err)
	}
}
