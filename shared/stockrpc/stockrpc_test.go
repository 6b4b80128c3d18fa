package stockrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGolden pins the wire encoding. A diff here is a wire change: it must
// stay backward compatible (add fields and codes, never rename or reuse).
func TestGolden(t *testing.T) {
	quotedAt := time.Date(2022, 3, 21, 20, 0, 6, 0, time.UTC)
	cases := []struct {
		name string
		v    any
	}{
		{"request", Request{Version: Version, Symbol: "aapl.us"}},
		{"reply_quote", Reply{Version: Version, Quote: &Quote{
			Symbol: "AAPL.US", Name: "APPLE", Open: 163.51, High: 166.35, Low: 163.015,
			Close: 165.38, Volume: 95752860, QuotedAt: quotedAt,
		}}},
		{"reply_error", Reply{Version: Version, Error: &Error{Code: CodeNotFound, Message: "unknown symbol APPL.US"}}},
		{"reply_cached", Reply{Version: Version, Cached: true, Error: &Error{Code: CodeNotFound, Message: "unknown symbol APPL.US"}}},
		{"codes", []Code{CodeInvalid, CodeNotFound, CodeUpstreamError, CodeRateLimited,
			CodeUpstreamTimeout, CodeUnsupportedVersion, CodeInternal,
			CodeKeyRequired, CodeKeyRejected, CodeChallenge, CodeOverBudget}},
		{"queue", map[string]any{"queue": QueueName, "version": Version, "content_type": ContentType}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.MarshalIndent(tc.v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run go test -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("wire format changed for %s:\ngot:\n%s\nwant:\n%s", tc.name, got, want)
			}
		})
	}
}

// TestGoldenDecode checks the golden bodies decode back to the same values,
// so old messages stay readable.
func TestGoldenDecode(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "reply_quote.golden"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeReply(body)
	if err != nil {
		t.Fatalf("DecodeReply: %v", err)
	}
	if r.Quote == nil || r.Quote.Symbol != "AAPL.US" || r.Quote.Close != 165.38 || r.Quote.Volume != 95752860 {
		t.Errorf("decoded quote = %+v", r.Quote)
	}
	if want := time.Date(2022, 3, 21, 20, 0, 6, 0, time.UTC); !r.Quote.QuotedAt.Equal(want) {
		t.Errorf("QuotedAt = %v, want %v", r.Quote.QuotedAt, want)
	}
	body, err = os.ReadFile(filepath.Join("testdata", "request.golden"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := DecodeRequest(body)
	if err != nil || req.Symbol != "aapl.us" {
		t.Errorf("DecodeRequest = %+v, %v", req, err)
	}
}

func TestNormalizeSymbol(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"aapl.us", "aapl.us", true},
		{" AAPL.US ", "aapl.us", true},
		{"^spx", "^spx", true},
		{"brk-b.us", "brk-b.us", true},
		{"eur_usd", "eur_usd", true},
		{"", "", false},
		{"   ", "", false},
		{"aapl.us+msft.us", "", false},
		{"aapl&f=x", "", false},
		{"aapl us", "", false},
		{"a%00", "", false},
		{"aapl\x00", "", false},
		{"ąapl", "", false},
		{"../etc", "", false},
		{"' OR 1=1 --", "", false},
		{strings.Repeat("a", maxSymbolLen), strings.Repeat("a", maxSymbolLen), true},
		{strings.Repeat("a", maxSymbolLen+1), "", false},
	}
	for _, tc := range cases {
		got, err := NormalizeSymbol(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("NormalizeSymbol(%q) = %q, %v; want %q, nil", tc.in, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidSymbol) {
			t.Errorf("NormalizeSymbol(%q) = %q, %v; want ErrInvalidSymbol", tc.in, got, err)
		}
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	cases := []struct {
		name string
		body string
		code Code
	}{
		{"malformed", `{"v":1,`, CodeInvalid},
		{"not json", `hello`, CodeInvalid},
		{"version 0", `{"symbol":"aapl.us"}`, CodeUnsupportedVersion},
		{"version 2", `{"v":2,"symbol":"aapl.us"}`, CodeUnsupportedVersion},
		{"bad symbol", `{"v":1,"symbol":"a+b"}`, CodeInvalid},
		{"empty symbol", `{"v":1,"symbol":""}`, CodeInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRequest([]byte(tc.body))
			var rerr *Error
			if !errors.As(err, &rerr) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if rerr.Code != tc.code {
				t.Errorf("code = %q, want %q", rerr.Code, tc.code)
			}
		})
	}
}

func TestDecodeReplyErrors(t *testing.T) {
	for _, body := range []string{
		`{`,
		`{"v":1}`,
		`{"v":2,"error":{"code":"internal"}}`,
		`{"v":1,"quote":{"symbol":"A"},"error":{"code":"internal"}}`,
	} {
		if _, err := DecodeReply([]byte(body)); err == nil {
			t.Errorf("DecodeReply(%s) = nil error, want error", body)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"v":1,"symbol":"aapl.us"}`, `{"v":1,"symbol":"a+b"}`, `{}`, `[]`, `null`, "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(body)
		if err != nil {
			var rerr *Error
			if !errors.As(err, &rerr) {
				t.Fatalf("error %v is not a *Error", err)
			}
			return
		}
		if _, err := NormalizeSymbol(req.Symbol); err != nil {
			t.Fatalf("accepted request with invalid symbol %q", req.Symbol)
		}
	})
}

func FuzzNormalizeSymbol(f *testing.F) {
	for _, s := range []string{"aapl.us", "a+b", "a&b", "%00", "ÄÖ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeSymbol(s)
		if err != nil {
			return
		}
		if len(got) == 0 || len(got) > maxSymbolLen || strings.ContainsAny(got, "+&=?# %/") {
			t.Fatalf("NormalizeSymbol(%q) accepted %q", s, got)
		}
	})
}

// FuzzDecodeReply: the API decodes whatever comes back on the reply
// queue; it must never panic, and an accepted reply holds exactly one of
// a quote and an error.
func FuzzDecodeReply(f *testing.F) {
	for _, s := range []string{`{"v":1,"quote":{"symbol":"AAPL.US","close":1}}`, `{"v":1,"error":{"code":"not_found"}}`,
		`{"v":1}`, `{"v":1,"quote":null,"error":null}`, `[]`, `null`, "\x00", `{"v":1e999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeReply(body)
		if err != nil {
			return
		}
		if r.Version != Version || (r.Quote == nil) == (r.Error == nil) {
			t.Fatalf("accepted %q as %+v", body, r)
		}
	})
}
