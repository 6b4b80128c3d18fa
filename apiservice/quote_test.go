package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// fakeCaller is an rpcCaller calling its function field.
type fakeCaller func(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error)

func (f fakeCaller) Call(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error) {
	return f(ctx, queue, body, headers)
}

func TestRPCQuotes(t *testing.T) {
	quoteReply := `{"v":1,"quote":{"symbol":"AAPL.US","name":"APPLE","open":1,"high":2,"low":0.5,"close":1.5,"volume":10,"quoted_at":"2026-11-26T22:00:00Z"}}`
	tests := []struct {
		name     string
		reply    string
		callErr  error
		wantCode stockrpc.Code
		wantErr  error
	}{
		{name: "quote", reply: quoteReply},
		{name: "not found", reply: `{"v":1,"error":{"code":"not_found","message":"no such symbol"}}`, wantCode: stockrpc.CodeNotFound},
		{name: "rate limited", reply: `{"v":1,"error":{"code":"rate_limited","message":""}}`, wantCode: stockrpc.CodeRateLimited},
		{name: "garbage", reply: `<html>`, wantErr: errBadReply},
		{name: "both", reply: `{"v":1,"quote":{"symbol":"X"},"error":{"code":"internal"}}`, wantErr: errBadReply},
		{name: "neither", reply: `{"v":1}`, wantErr: errBadReply},
		{name: "other version", reply: `{"v":2,"quote":{"symbol":"X"}}`, wantErr: errBadReply},
		{name: "empty symbol", reply: `{"v":1,"quote":{"symbol":""}}`, wantErr: errBadReply},
		{name: "broker down", callErr: amqprpc.ErrUnavailable, wantErr: amqprpc.ErrUnavailable},
		{name: "no route", callErr: amqprpc.ErrNoRoute, wantErr: amqprpc.ErrNoRoute},
		{name: "timeout", callErr: fmt.Errorf("wait: %w", context.DeadlineExceeded), wantErr: errNoAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller := fakeCaller(func(ctx context.Context, queue string, body []byte, _ map[string]any) ([]byte, error) {
				if queue != stockrpc.QueueName {
					t.Errorf("queue = %q, want %q", queue, stockrpc.QueueName)
				}
				deadline, ok := ctx.Deadline()
				if !ok || time.Until(deadline) > 3*time.Second {
					t.Errorf("ctx deadline = %v, %v; want within the 3s RPC timeout", deadline, ok)
				}
				var req stockrpc.Request
				if err := json.Unmarshal(body, &req); err != nil || req.Version != stockrpc.Version || req.Symbol != "aapl.us" {
					t.Errorf("request = %s (%v)", body, err)
				}
				return []byte(tt.reply), tt.callErr
			})
			q, err := newRPCQuotes(caller, stockrpc.QueueName, 3*time.Second).Quote(context.Background(), "aapl.us")
			switch {
			case tt.wantCode != "":
				var e *stockrpc.Error
				if !errors.As(err, &e) || e.Code != tt.wantCode {
					t.Errorf("err = %v, want code %q", err, tt.wantCode)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
			default:
				want := stockrpc.Quote{Symbol: "AAPL.US", Name: "APPLE", Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 10,
					QuotedAt: time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)}
				if err != nil || !q.QuotedAt.Equal(want.QuotedAt) || q.Symbol != want.Symbol || q.Close != want.Close || q.Volume != want.Volume {
					t.Errorf("Quote = %+v, %v; want %+v", q, err, want)
				}
			}
		})
	}
}
