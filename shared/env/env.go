// Package env reads a program's settings from environment variables
// through a getenv function, into typed values with defaults and bounds.
// A Reader collects every problem, so a bad configuration is reported
// whole, at once.
package env

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Reader reads settings through getenv. Values are trimmed of spaces (a
// value pasted into a file or a Secret often ends in a newline); an unset
// or blank variable takes its default.
type Reader struct {
	getenv func(string) string
	errs   []error
}

// NewReader returns a Reader using getenv (os.Getenv in production).
func NewReader(getenv func(string) string) *Reader {
	return &Reader{getenv: getenv}
}

// Err returns every problem found so far, joined; nil if none.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// Fail records a problem with the variable name.
func (r *Reader) Fail(name string, err error) {
	r.errs = append(r.errs, fmt.Errorf("%s: %w", name, err))
}

// String returns the value of name, or def.
func (r *Reader) String(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// Required returns the value of name and records a problem if it is unset;
// hint says what to set.
func (r *Reader) Required(name, hint string) string {
	v := r.String(name, "")
	if v == "" {
		r.errs = append(r.errs, fmt.Errorf("%s is required (%s)", name, hint))
	}
	return v
}

// Parse returns the value of name read by parse, or def. A value parse
// refuses is recorded with its error and def is returned.
func Parse[T any](r *Reader, name string, def T, parse func(string) (T, error)) T {
	v := r.String(name, "")
	if v == "" {
		return def
	}
	t, err := parse(v)
	if err != nil {
		r.Fail(name, err)
		return def
	}
	return t
}

// Int returns the integer in name, which must lie in lo..hi, or def.
func (r *Reader) Int(name string, def, lo, hi int) int {
	return Parse(r, name, def, func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("%q: want an integer in %d..%d", s, lo, hi)
		}
		return n, nil
	})
}

// Float returns the number in name, which must lie in lo..hi, or def.
func (r *Reader) Float(name string, def, lo, hi float64) float64 {
	return Parse(r, name, def, func(s string) (float64, error) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f < lo || f > hi {
			return 0, fmt.Errorf("%q: want a number in %v..%v", s, lo, hi)
		}
		return f, nil
	})
}

// Duration returns the duration in name (such as 5s or 1h), which must
// lie in lo..hi, or def.
func (r *Reader) Duration(name string, def, lo, hi time.Duration) time.Duration {
	return Parse(r, name, def, func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		if err != nil || d < lo || d > hi {
			return 0, fmt.Errorf("%q: want a duration (like 30s or 1h) in %v..%v", s, lo, hi)
		}
		return d, nil
	})
}

// OnOff returns the switch in name: on, true or 1; off, false or 0; or def.
func (r *Reader) OnOff(name string, def bool) bool {
	return Parse(r, name, def, func(s string) (bool, error) {
		switch strings.ToLower(s) {
		case "on", "true", "1":
			return true, nil
		case "off", "false", "0":
			return false, nil
		}
		return false, fmt.Errorf("%q is neither on nor off", s)
	})
}
