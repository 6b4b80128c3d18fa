// Package leaktest fails a test that leaves goroutines running.
package leaktest

import (
	"runtime"
	"testing"
	"time"
)

// Check counts the goroutines running now and, once the test and every
// cleanup registered after Check have run, fails the test if more are
// running than before, after giving them a few seconds to end. It counts
// the whole process's goroutines, so a test using it must not run in
// parallel with others.
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
