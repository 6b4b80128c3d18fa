package main

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stockquote/stockquote/shared/amqprpc"
)

func TestRPCServerCollector(t *testing.T) {
	c := newRPCServerCollector(func() amqprpc.ServerStats {
		return amqprpc.ServerStats{Deliveries: 9, Handled: 7, Expired: 1, Panics: 2, NoReplyTo: 3, ReplyErrors: 4}
	})
	want := `
# HELP stockquote_rpc_server_deliveries_total Requests received from the queue.
# TYPE stockquote_rpc_server_deliveries_total counter
stockquote_rpc_server_deliveries_total 9
# HELP stockquote_rpc_server_expired_total Requests dropped unhandled because their deadline had passed.
# TYPE stockquote_rpc_server_expired_total counter
stockquote_rpc_server_expired_total 1
# HELP stockquote_rpc_server_handled_total Requests answered and acked.
# TYPE stockquote_rpc_server_handled_total counter
stockquote_rpc_server_handled_total 7
# HELP stockquote_rpc_server_no_reply_to_total Requests dropped for lack of reply_to.
# TYPE stockquote_rpc_server_no_reply_to_total counter
stockquote_rpc_server_no_reply_to_total 3
# HELP stockquote_rpc_server_panics_total Handler panics (request acked without a reply).
# TYPE stockquote_rpc_server_panics_total counter
stockquote_rpc_server_panics_total 2
# HELP stockquote_rpc_server_reply_errors_total Replies that could not be published (request left for redelivery).
# TYPE stockquote_rpc_server_reply_errors_total counter
stockquote_rpc_server_reply_errors_total 4
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	stats := cacheStats{Hits: 2, Misses: 1, Coalesced: 3, Entries: 4}
	registerCacheMetrics(reg, func() cacheStats { return stats })
	want := `
# HELP stockquote_quote_cache_hits_total Quote lookups answered from the worker's cache.
# TYPE stockquote_quote_cache_hits_total counter
stockquote_quote_cache_hits_total 2
# HELP stockquote_quote_cache_misses_total Quote lookups the worker's cache could not answer (sent on to stooq, one per shared fetch).
# TYPE stockquote_quote_cache_misses_total counter
stockquote_quote_cache_misses_total 1
# HELP stockquote_quote_cache_coalesced_total Quote lookups that joined a stooq fetch already in flight for the same symbol.
# TYPE stockquote_quote_cache_coalesced_total counter
stockquote_quote_cache_coalesced_total 3
# HELP stockquote_quote_cache_entries Symbols held in the worker's quote cache.
# TYPE stockquote_quote_cache_entries gauge
stockquote_quote_cache_entries 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
