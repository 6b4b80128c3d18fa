package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stockquote/stockquote/shared/redact"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

// checkSymbol is the symbol `stockservice check` asks for by default.
const checkSymbol = "aapl.us"

// runCheck is `stockservice check [SYMBOL]`: one real fetch from stooq
// with the configured settings and a diagnosis on stdout. It fails when
// stooq cannot serve quotes.
func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 1 {
		return fmt.Errorf("check: want at most one symbol, got %q", args)
	}
	symbol := checkSymbol
	if len(args) == 1 {
		symbol = args[0]
	}
	symbol, err := stockrpc.NormalizeSymbol(symbol)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	// The check needs no broker: an unset AMQP_URL is no reason to refuse.
	cfg, err := loadConfig(func(k string) string {
		if v := getenv(k); v != "" || k != "AMQP_URL" {
			return v
		}
		return "amqp://unused"
	})
	if err != nil {
		return err
	}
	client, err := stooq.New(newStooqOptions(cfg))
	if err != nil {
		return fmt.Errorf("check: stooq client: %w", err)
	}
	defer client.CloseIdleConnections()

	fmt.Fprintf(stdout, "stooq:   %s (STOOQ_API_KEY %s, STOOQ_TIMEOUT %s)\n", redact.URL(cfg.StooqURL), redact.Secret(cfg.StooqAPIKey), cfg.StooqTimeout)
	fmt.Fprintf(stdout, "symbol:  %s\n", symbol)
	start := time.Now()
	q, err := client.Quote(ctx, symbol)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("check: %w", ctx.Err())
	}
	took := time.Since(start).Round(time.Millisecond)
	if err == nil {
		fmt.Fprintf(stdout, "result:  quote found (%s)\n", took)
		fmt.Fprintf(stdout, "quote:   %s %q close %v at %s\n", q.Symbol, q.Name, q.Close, q.QuotedAt.Format(time.RFC3339))
		return nil
	}
	f := classify(err)
	fmt.Fprintf(stdout, "result:  %s (%s)\n", f.result, took)
	fmt.Fprintf(stdout, "detail:  %v\n", err) // the client redacts the key
	fmt.Fprintf(stdout, "action:  %s\n", f.advice)
	if f.code == stockrpc.CodeNotFound {
		return nil // stooq answered: it serves quotes
	}
	return fmt.Errorf("check: stooq cannot serve quotes: %s", f.result)
}
