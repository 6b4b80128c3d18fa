//go:build integration

package e2e

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stockquote/stockquote/tests/e2e/systemtest"
)

// programs are the binaries TestMain builds once for the whole suite.
var programs *systemtest.Programs

func TestMain(m *testing.M) {
	os.Exit(systemtest.Main(m, "e2e", &programs))
}

// The suite's names for the shared harness.
type (
	proc     = systemtest.Proc
	response = systemtest.Response
)

var randomHex = systemtest.RandomHex

// system is one isolated deployment (see systemtest.System) whose every
// exchange through do and send is checked against the OpenAPI description.
type system struct {
	*systemtest.System
	worker     *proc  // the stock service process (nil with noWorker)
	workerAddr string // the stock service's probe and metrics address
}

// options tune a system.
type options struct {
	noWorker   bool          // start no stock service
	rpcTimeout time.Duration // API RPC_TIMEOUT
}

// newSystem migrates a fresh database, creates the users admin (superuser)
// and alice, and starts the stock service and the API service.
func newSystem(t *testing.T, o options) *system {
	t.Helper()
	s := &system{System: systemtest.New(t, programs, systemtest.Options{
		QueuePrefix: "e2e",
		RPCTimeout:  o.rpcTimeout,
		Check:       checkSpec,
	})}
	if !o.noWorker {
		w := s.StartWorker(t, systemtest.AMQPURL())
		s.worker, s.workerAddr = w.Proc, w.Addr
	}
	s.API, s.APIProc = s.StartAPI(t)
	return s
}

// send is the suite's way to call an API by URL: like every exchange
// through system.Do, it is also checked against the OpenAPI description
// (see openapi_test.go).
func send(t *testing.T, req *http.Request) response {
	t.Helper()
	return systemtest.Send(t, req, checkSpec)
}

var (
	decode      = systemtest.Decode
	wantProblem = systemtest.WantProblem
)
