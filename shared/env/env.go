// Package env reads a program's settings from environment variables
// through a getenv function, into typed values with defaults and bounds,
// collecting every problem so a bad configuration is reported whole, and
// recording every setting read so a program logs what it runs with.
package env

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/stockquote/stockquote/shared/redact"
)

// Reader reads settings through getenv. Values are trimmed of spaces (a
// pasted value often ends in a newline); a blank one takes its default.
type Reader struct {
	getenv func(string) string
	errs   []error
	read   []slog.Attr
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

// LogValue lists every setting read with the value in effect. Passwords in
// URLs and DSNs are masked; a Secret shows only whether it is set.
func (r *Reader) LogValue() slog.Value { return slog.GroupValue(r.read...) }

// String returns the value of name, or def.
func (r *Reader) String(name, def string) string {
	return Parse(r, name, def, func(s string) (string, error) { return s, nil })
}

// Required returns the value of name and records a problem if it is unset;
// hint says what to set.
func (r *Reader) Required(name, hint string) string {
	v := r.String(name, "")
	r.require(name, v, hint)
	return v
}

// Secret returns the value of name, which LogValue shows only as set or
// unset. A non-empty hint makes it required, as in Required.
func (r *Reader) Secret(name, hint string) string {
	v := strings.TrimSpace(r.getenv(name))
	if hint != "" {
		r.require(name, v, hint)
	}
	r.read = append(r.read, slog.String(name, redact.Secret(v)))
	return v
}

func (r *Reader) require(name, v, hint string) {
	if v == "" {
		r.errs = append(r.errs, fmt.Errorf("%s is required (%s)", name, hint))
	}
}

// Parse returns the value of name read by parse, or def. A value parse
// refuses is recorded with its error and def is returned.
func Parse[T any](r *Reader, name string, def T, parse func(string) (T, error)) T {
	t := def
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		var err error
		if t, err = parse(v); err != nil {
			r.Fail(name, err)
			t = def
		}
	}
	r.read = append(r.read, slog.String(name, redact.URLs(fmt.Sprint(t))))
	return t
}

// Int returns the integer in name, which must lie in lo..hi, or def.
func (r *Reader) Int(name string, def, lo, hi int) int {
	return inRange(r, name, def, lo, hi, "an integer", strconv.Atoi)
}

// Float returns the number in name, which must lie in lo..hi, or def.
func (r *Reader) Float(name string, def, lo, hi float64) float64 {
	return inRange(r, name, def, lo, hi, "a number", func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
}

// Duration returns the duration in name, which must lie in lo..hi, or def.
func (r *Reader) Duration(name string, def, lo, hi time.Duration) time.Duration {
	return inRange(r, name, def, lo, hi, "a duration (like 30s or 1h)", time.ParseDuration)
}

func inRange[T int | float64 | time.Duration](r *Reader, name string, def, lo, hi T, what string, parse func(string) (T, error)) T {
	return Parse(r, name, def, func(s string) (T, error) {
		v, err := parse(s)
		if err != nil || !(v >= lo && v <= hi) { // also refuses NaN
			return 0, fmt.Errorf("%q: want %s in %v..%v", s, what, lo, hi)
		}
		return v, nil
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
