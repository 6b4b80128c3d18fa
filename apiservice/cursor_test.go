package main

import (
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []postgres.HistoryCursor{
		{RequestedAt: testNow, ID: 1},
		{RequestedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), ID: 1<<62 + 5},
		{RequestedAt: time.Unix(0, 1).UTC(), ID: 9},
	} {
		s := encodeCursor(c)
		got, ok := decodeCursor(s)
		if !ok || !got.RequestedAt.Equal(c.RequestedAt) || got.ID != c.ID {
			t.Errorf("decodeCursor(encodeCursor(%v)) = %v, %v", c, got, ok)
		}
		if got.RequestedAt.Location() != time.UTC {
			t.Errorf("decoded time in %v, want UTC", got.RequestedAt.Location())
		}
	}
}

func TestDecodeCursorRejects(t *testing.T) {
	valid := encodeCursor(postgres.HistoryCursor{RequestedAt: testNow, ID: 3})
	for _, s := range []string{
		"", "x", valid + "A", valid[:len(valid)-1], valid[:len(valid)-1] + "=",
		"AQAAAAAAAAAAAAAAAAAAAAAA", // version 1, zero time and id
		"AgAAAAAAAAAAAAAAAAAAAAAA", // version 2
		"////////////////////////", // negative values
	} {
		if c, ok := decodeCursor(s); ok {
			t.Errorf("decodeCursor(%q) = %v, want it refused", s, c)
		}
	}
}

// FuzzDecodeCursor checks that anything decodeCursor accepts is valid and
// encodes back to the same string (one spelling per position).
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(postgres.HistoryCursor{RequestedAt: testNow, ID: 3}))
	f.Add("")
	f.Add("AQAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := decodeCursor(s)
		if !ok {
			return
		}
		if c.ID <= 0 || c.RequestedAt.UnixNano() <= 0 {
			t.Fatalf("decodeCursor(%q) accepted %v", s, c)
		}
		if back := encodeCursor(c); back != s {
			t.Fatalf("encodeCursor(decodeCursor(%q)) = %q", s, back)
		}
	})
}
