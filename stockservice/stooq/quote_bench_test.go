package stooq_test

import (
	"context"
	"testing"

	"github.com/stockquote/stockquote/stockservice/stooq"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// BenchmarkQuote is one keep-alive fetch and parse from the in-process
// fake; the fake's own cost is included.
//
//	go test -run '^$' -bench Quote -benchmem ./stockservice/stooq/
func BenchmarkQuote(b *testing.B) {
	fake := stooqtest.NewServer(stooqtest.Options{})
	defer fake.Close()
	c := newClient(b, fake.URL, stooq.Options{})
	defer c.CloseIdleConnections()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Quote(ctx, "aapl.us"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQuoteWithKey is BenchmarkQuote with an API key, which the
// client adds to each request below the transport wrappers.
func BenchmarkQuoteWithKey(b *testing.B) {
	fake := stooqtest.NewServer(stooqtest.Options{RequireKey: "bench-key"})
	defer fake.Close()
	c := newClient(b, fake.URL, stooq.Options{APIKey: "bench-key"})
	defer c.CloseIdleConnections()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Quote(ctx, "aapl.us"); err != nil {
			b.Fatal(err)
		}
	}
}
