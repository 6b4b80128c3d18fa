package amqprpc

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stockquote/stockquote/shared/redact"
)

// backoff returns the delay before reconnect attempt n (0-based): an
// exponential min*2^n capped at max, with "equal jitter" (half fixed, half
// random) so that many processes cut off together do not redial in step.
// rnd returns a float in [0, 1).
func backoff(n int, minDelay, maxDelay time.Duration, rnd func() float64) time.Duration {
	if n < 0 {
		n = 0
	}
	d := maxDelay
	if n < 62 {
		if f := float64(minDelay) * math.Pow(2, float64(n)); f < float64(maxDelay) {
			d = time.Duration(f)
		}
	}
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}

// jitter is the production source of randomness for backoff.
func jitter() float64 { return rand.Float64() }

// SplitURLs splits a comma-separated list of amqp:// URLs (the nodes of
// one cluster) and checks each. A comma inside a password must be
// percent-encoded (%2C). Errors never echo a password.
func SplitURLs(s string) ([]string, error) {
	var urls []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if _, err := amqp.ParseURI(u); err != nil {
			// amqp's error does not echo the URL; keep it that way.
			return nil, fmt.Errorf("URL %s: %w", redact.URL(u), err)
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return nil, errors.New("no AMQP URL given")
	}
	return urls, nil
}

// parseDeadline reads the DeadlineHeader (Unix milliseconds, an int64 as
// Client writes it) from headers. ok is false when the header is absent
// or unusable.
func parseDeadline(headers map[string]any) (deadline time.Time, ok bool) {
	ms, ok := headers[DeadlineHeader].(int64)
	if !ok || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// expiration returns the AMQP expiration (milliseconds, as a decimal
// string) for a message whose deadline is remaining from now: rounded up,
// at least 1, since "0" would mean "deliver now or drop".
func expiration(remaining time.Duration) string {
	ms := (remaining + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(int64(ms), 10)
}
