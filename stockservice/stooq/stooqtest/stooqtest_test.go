package stooqtest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

func TestServerFormat(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{})
	defer fake.Close()
	tests := []struct {
		name       string
		query      string
		wantStatus int
		wantBody   string
	}{
		{"known", "?s=aapl.us&f=sd2t2ohlcvn&h&e=csv", 200,
			"Symbol,Date,Time,Open,High,Low,Close,Volume,Name\r\nAAPL.US,2022-03-21,21:00:06,163.51,166.35,163.015,165.38,95752860,APPLE\r\n"},
		{"unknown", "?s=NoSuch.us&f=sd2t2ohlcvn&h&e=csv", 200,
			"Symbol,Date,Time,Open,High,Low,Close,Volume,Name\r\nNOSUCH.US,N/D,N/D,N/D,N/D,N/D,N/D,N/D,NOSUCH.US\r\n"},
		{"generated", "?s=T3.us&f=sd2t2ohlcvn&h&e=csv", 200,
			"Symbol,Date,Time,Open,High,Low,Close,Volume,Name\r\nT3.US,2026-01-02,18:03:21,247.54,248.32,246.77,247.57,1039,TEST3\r\n"},
		{"rate limit", "?s=ratelimit.test&f=sd2t2ohlcvn&h&e=csv", 200, "Exceeded the daily hits limit"},
		{"wrong columns", "?s=aapl.us&f=sd2&h&e=csv", 400, "fake stooq: want /q/l/?s=SYMBOL&f=sd2t2ohlcvn&h&e=csv\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, fake.URL+"/q/l/"+tt.query)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("GET %s = %d %q, want %d %q", tt.query, status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if got := fake.TotalHits(); got != 4 {
		t.Errorf("TotalHits = %d, want 4 (malformed requests are not counted)", got)
	}
}

func TestServerRequireKey(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{RequireKey: "good"})
	defer fake.Close()
	tests := []struct {
		name     string
		query    string
		wantBody string
	}{
		{"no key", "?s=aapl.us&f=sd2t2ohlcvn&h&e=csv", stooqtest.KeyPage},
		{"wrong key", "?s=aapl.us&f=sd2t2ohlcvn&h&e=csv&apikey=bad", stooqtest.BadKeyPage},
		{"right key", "?s=aapl.us&f=sd2t2ohlcvn&h&e=csv&apikey=good",
			"Symbol,Date,Time,Open,High,Low,Close,Volume,Name\r\nAAPL.US,2022-03-21,21:00:06,163.51,166.35,163.015,165.38,95752860,APPLE\r\n"},
		{"challenge before the key", "?s=challenge.test&f=sd2t2ohlcvn&h&e=csv", stooqtest.ChallengePage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := get(t, fake.URL+"/q/l/"+tt.query); status != http.StatusOK || body != tt.wantBody {
				t.Errorf("GET %s = %d %q, want 200 %q", tt.query, status, body, tt.wantBody)
			}
		})
	}
	if got, want := fake.KeyHits(""), 2; got != want {
		t.Errorf("KeyHits(\"\") = %d, want %d", got, want)
	}
	fake.SetRequireKey("")
	if _, body := get(t, fake.URL+"/q/l/?s=aapl.us&f=sd2t2ohlcvn&h&e=csv"); !strings.HasPrefix(body, stooqtest.Header) {
		t.Errorf("without a required key: %q, want a quote", body)
	}
}

func TestServerChallenge(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{Challenge: true})
	defer fake.Close()
	if status, body := get(t, fake.URL+"/q/l/?s=aapl.us&f=sd2t2ohlcvn&h&e=csv"); status != http.StatusOK || body != stooqtest.ChallengePage {
		t.Errorf("with Challenge: %d %q, want 200 and the challenge page", status, body)
	}
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
