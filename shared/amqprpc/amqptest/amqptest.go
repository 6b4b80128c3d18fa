// Package amqptest gives integration tests the shared RabbitMQ and queues
// of their own. It is for tests only: it fails the test (never skips it)
// when the broker cannot be reached.
package amqptest

import (
	"cmp"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stockquote/stockquote/shared/redact"
)

// URL is the RabbitMQ the integration tests use: TEST_AMQP_URL (which the
// Makefile's service check, e2e and the benchmark read too), or the local
// broker with the default guest account.
func URL() string { return cmp.Or(os.Getenv("TEST_AMQP_URL"), "amqp://guest:guest@127.0.0.1:5672/") }

// NewQueue returns a fresh queue name starting with prefix and deletes
// the queue when the test ends. An unreachable broker fails the test.
func NewQueue(t *testing.T, prefix string) string {
	t.Helper()
	conn, err := amqp.Dial(URL())
	if err != nil {
		t.Fatalf("RabbitMQ not reachable at %s: %v", redact.URL(URL()), err)
	}
	conn.Close()
	name := prefix + "-" + strings.ToLower(rand.Text()[:10])
	t.Cleanup(func() { DeleteQueue(t, URL(), name) })
	return name
}

// DeleteQueue removes the queue name from the broker at amqpURL,
// reporting (not stopping the test on) a failure, so it suits t.Cleanup.
func DeleteQueue(t *testing.T, amqpURL, name string) {
	conn, err := amqp.Dial(amqpURL)
	if err == nil {
		defer conn.Close()
		var ch *amqp.Channel
		if ch, err = conn.Channel(); err == nil {
			_, err = ch.QueueDelete(name, false, false, false)
		}
	}
	if err != nil {
		t.Errorf("delete queue %s: %v", name, err)
	}
}
