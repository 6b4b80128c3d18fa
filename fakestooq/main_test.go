package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// TestProbe: -probe is the container healthcheck, so it must fail on
// anything but a 200.
func TestProbe(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{})
	defer fake.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	tests := []struct {
		url     string
		wantErr bool
	}{
		{fake.URL + "/q/l/?s=aapl.us&f=sd2t2ohlcvn&h&e=csv", false},
		{fake.URL + "/q/l/?s=aapl.us", true}, // the fake's 400
		{down.URL + "/q/l/?s=aapl.us&f=sd2t2ohlcvn&h&e=csv", true},
	}
	for _, tt := range tests {
		err := run(context.Background(), []string{"-probe", tt.url}, io.Discard, io.Discard)
		if (err != nil) != tt.wantErr {
			t.Errorf("-probe %s: error %v, want error %v", tt.url, err, tt.wantErr)
		}
	}
}
