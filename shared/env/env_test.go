package env

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func reader(m map[string]string) *Reader {
	return NewReader(func(k string) string { return m[k] })
}

func TestReaderValues(t *testing.T) {
	r := reader(map[string]string{
		"S": " text\n", "I": "7", "F": "2.5", "D": "1500ms", "ON": "off", "P": "x",
	})
	if got := r.String("S", "def"); got != "text" {
		t.Errorf("String = %q, want text", got)
	}
	if got := r.String("UNSET", "def"); got != "def" {
		t.Errorf("String unset = %q, want def", got)
	}
	if got := r.Int("I", 1, 0, 10); got != 7 {
		t.Errorf("Int = %d, want 7", got)
	}
	if got := r.Float("F", 0, 0, 10); got != 2.5 {
		t.Errorf("Float = %v, want 2.5", got)
	}
	if got := r.Duration("D", time.Second, 0, time.Minute); got != 1500*time.Millisecond {
		t.Errorf("Duration = %v, want 1.5s", got)
	}
	if got := r.OnOff("ON", true); got {
		t.Errorf("OnOff = true, want false")
	}
	if got := Parse(r, "P", 0, func(s string) (int, error) { return len(s), nil }); got != 1 {
		t.Errorf("Parse = %d, want 1", got)
	}
	if err := r.Err(); err != nil {
		t.Errorf("Err = %v, want nil", err)
	}
}

func TestReaderReportsEveryProblem(t *testing.T) {
	r := reader(map[string]string{
		"I": "11", "F": "NaN", "D": "5", "ON": "sometimes", "P": "x",
	})
	if got := r.Int("I", 3, 0, 10); got != 3 {
		t.Errorf("bad Int = %d, want the default 3", got)
	}
	r.Float("F", 0, 0, 10)
	r.Duration("D", time.Second, 0, time.Minute)
	r.OnOff("ON", true)
	Parse(r, "P", 0, func(string) (int, error) { return 0, errors.New("no") })
	r.Required("R", "set it")
	r.Fail("X", errors.New("bad"))
	err := r.Err()
	for _, want := range []string{"I:", "F:", "D:", "ON:", "P: no", "R is required (set it)", "X: bad"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err = %v, want it to mention %q", err, want)
		}
	}
}

func TestReaderLogValue(t *testing.T) {
	r := reader(map[string]string{"U": "amqp://u:pw1@h/", "K": "pw2", "D": "2s"})
	r.Required("U", "a URL")
	r.Secret("K", "")
	r.Secret("UNSET", "")
	r.Duration("D", time.Second, 0, time.Minute)
	r.Int("N", 3, 0, 10)
	got := r.LogValue().String()
	if want := "[U=amqp://u:xxxxx@h/ K=(set) UNSET=(unset) D=2s N=3]"; got != want {
		t.Errorf("LogValue = %s, want %s", got, want)
	}
}
