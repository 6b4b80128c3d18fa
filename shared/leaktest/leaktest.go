// Package leaktest fails a test that leaves goroutines running.
package leaktest

import (
	"runtime"
	"testing"
	"time"
)

// Check fails t if, once t and the cleanups registered after Check have
// run, more goroutines run than now (after 5s of grace). It counts the
// whole process's goroutines: a test using it must not be parallel.
func Check(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines running after the test, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
		}
	})
}
