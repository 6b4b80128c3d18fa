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

// checkSymbol is the symbol `stockservice check` asks for by default: one
// stooq has quoted for decades.
const checkSymbol = "aapl.us"

// diagnosis is what one fetch from stooq says about it.
type diagnosis struct {
	result string // short and stable, for people and scripts
	serves bool   // whether stooq serves quotes to this service
	advice string // what the operator does next
}

// diagnose reads the outcome of one fetch.
func diagnose(err error, symbol string) diagnosis {
	switch {
	case err == nil:
		return diagnosis{"quote found", true, ""}
	case errors.Is(err, stooq.ErrNotFound):
		return diagnosis{"unknown symbol", true, fmt.Sprintf("stooq answers, but has no quote for %s; check the symbol (e.g. %s)", symbol, checkSymbol)}
	case errors.Is(err, stooq.ErrKeyRequired):
		return diagnosis{"key required", false, refusalAdvice[stockrpc.CodeKeyRequired]}
	case errors.Is(err, stooq.ErrKeyRejected):
		return diagnosis{"key rejected", false, refusalAdvice[stockrpc.CodeKeyRejected]}
	case errors.Is(err, stooq.ErrChallenge):
		return diagnosis{"challenge", false, "stooq answered a bot challenge (a browser check) instead of a quote; the stock service never solves one. " +
			"Try again later or from another network, and see docs/operations.md"}
	case errors.Is(err, stooq.ErrRateLimited):
		return diagnosis{"daily limit", false, refusalAdvice[stockrpc.CodeRateLimited]}
	case errors.Is(err, stooq.ErrTimeout):
		return diagnosis{"timeout", false, "stooq did not answer within STOOQ_TIMEOUT; check the network path to STOOQ_URL, or raise STOOQ_TIMEOUT"}
	case errors.Is(err, stooq.ErrNetwork):
		return diagnosis{"network error", false, "stooq cannot be reached: check STOOQ_URL, DNS, proxies (HTTPS_PROXY) and egress rules"}
	default:
		return diagnosis{"unexpected answer", false, "stooq answered something that is not a quote; the detail below says what"}
	}
}

// runCheck is `stockservice check [SYMBOL]`: one real fetch from stooq
// with the configured STOOQ_URL, STOOQ_API_KEY and STOOQ_TIMEOUT, and a
// diagnosis on stdout. It fails when stooq cannot serve quotes (an
// unknown symbol is not such a failure: stooq answered).
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
	d := diagnose(err, symbol)
	fmt.Fprintf(stdout, "result:  %s (%s)\n", d.result, time.Since(start).Round(time.Millisecond))
	if err == nil {
		fmt.Fprintf(stdout, "quote:   %s %q close %v at %s\n", q.Symbol, q.Name, q.Close, q.QuotedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "detail:  %v\n", err) // the client redacts the key
	}
	if d.advice != "" {
		fmt.Fprintf(stdout, "action:  %s\n", d.advice)
	}
	if !d.serves {
		return fmt.Errorf("check: stooq cannot serve quotes: %s", d.result)
	}
	return nil
}
