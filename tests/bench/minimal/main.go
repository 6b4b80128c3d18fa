// Command minimal is the minimal hand-written /stock chain that make bench
// runs as the ceiling of its many-symbol scenario: the simplest honest
// implementation of the services' request path, with none of their tricks
// (no caches, no coalescing, no batching, no token memo, no custom
// transport, writer or parser), so the report can show what the services'
// code buys over plain library calls. One program, two roles:
//
//	minimal -role api     Gin + JWT (HS256, verified on every request,
//	                      nothing loaded) -> one RPC per request over
//	                      RabbitMQ (direct reply-to + correlation id, one
//	                      shared reply consumer, a map of pending calls)
//	                      -> GORM INSERT of the history row -> JSON answer
//	minimal -role worker  consume, GET the stooq CSV with net/http, parse
//	                      it with encoding/csv, reply, ack
//
// The API logs one line per request (gin.Default), as the API does at
// LOG_LEVEL=info. Its only tuning is what any deployment sets: pool sizes
// that match the concurrency (-db-conns, -workers) and GORM's prepared
// statements without a transaction around each single INSERT, as the
// services' store has. JWT_SECRET comes from the environment; both roles
// answer /healthz once ready.
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	_ "time/tzdata" // stooq's times are Europe/Warsaw's

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "minimal:", err)
		os.Exit(1)
	}
}

type config struct {
	role, addr, amqpURL, queue string
	dbURL, issuer, audience    string
	stooqURL                   string
	secret                     []byte
	dbConns, workers           int
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	var cfg config
	fs := flag.NewFlagSet("minimal", flag.ContinueOnError)
	fs.StringVar(&cfg.role, "role", "", "api or worker")
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:0", "HTTP listen address (the worker's serves only /healthz)")
	fs.StringVar(&cfg.amqpURL, "amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL")
	fs.StringVar(&cfg.queue, "queue", "", "request queue")
	fs.StringVar(&cfg.dbURL, "db", "", "PostgreSQL URL of a database with the services' history table (api)")
	fs.StringVar(&cfg.issuer, "issuer", "stockquote-api", "JWT issuer (api)")
	fs.StringVar(&cfg.audience, "audience", "stockquote", "JWT audience (api)")
	fs.IntVar(&cfg.dbConns, "db-conns", 20, "database connections (api)")
	fs.StringVar(&cfg.stooqURL, "stooq", "", "stooq base URL (worker)")
	fs.IntVar(&cfg.workers, "workers", 64, "concurrent requests (worker)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.queue == "" {
		return errors.New("-queue is required")
	}
	switch cfg.role {
	case "api":
		if cfg.secret = []byte(getenv("JWT_SECRET")); len(cfg.secret) == 0 || cfg.dbURL == "" {
			return errors.New("the api needs JWT_SECRET and -db")
		}
		return runAPI(ctx, cfg)
	case "worker":
		if cfg.stooqURL == "" {
			return errors.New("the worker needs -stooq")
		}
		return runWorker(ctx, cfg)
	}
	return fmt.Errorf("-role %q: want api or worker", cfg.role)
}

// quote is the RPC reply: a quote, or Error.
type quote struct {
	Symbol   string    `json:"symbol"`
	Name     string    `json:"name"`
	Open     float64   `json:"open"`
	High     float64   `json:"high"`
	Low      float64   `json:"low"`
	Close    float64   `json:"close"`
	Volume   int64     `json:"volume"`
	QuotedAt time.Time `json:"quoted_at"`
	Error    string    `json:"error,omitempty"`
	NotFound bool      `json:"not_found,omitempty"`
}

// history is a row of the services' history table.
type history struct {
	ID          int64
	UserID      int64
	RequestedAt time.Time
	Symbol      string
	Name        string
	Open        float64
	High        float64
	Low         float64
	Close       float64
	Volume      int64
	QuotedAt    *time.Time
}

func (history) TableName() string { return "history" }

type api struct {
	cfg     config
	ch      *amqp.Channel
	db      *gorm.DB
	next    atomic.Uint64
	mu      sync.Mutex
	pending map[string]chan []byte // by correlation id
}

func runAPI(ctx context.Context, cfg config) error {
	// Configured as the services' store is, so the comparison is of code,
	// not of two documented GORM settings.
	db, err := gorm.Open(postgres.Open(cfg.dbURL), &gorm.Config{PrepareStmt: true, SkipDefaultTransaction: true})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(cfg.dbConns)
	sqlDB.SetMaxIdleConns(cfg.dbConns)

	conn, ch, err := channel(cfg.amqpURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	replies, err := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume replies: %w", err)
	}
	a := &api{cfg: cfg, ch: ch, db: db, pending: map[string]chan []byte{}}
	go func() {
		for d := range replies {
			a.mu.Lock()
			done, ok := a.pending[d.CorrelationId]
			a.mu.Unlock()
			if ok {
				done <- d.Body // buffered: one reply per call
			}
		}
	}()

	gin.SetMode(gin.ReleaseMode)
	r := gin.Default()
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/api/v1/stock", a.stock)
	return serve(ctx, cfg.addr, r)
}

func (a *api) stock(c *gin.Context) {
	userID, err := a.user(c.GetHeader("Authorization"))
	if err != nil {
		c.JSON(http.StatusUnauthorized, gin.H{"error": "invalid token"})
		return
	}
	symbol := c.Query("q")
	if symbol == "" || len(symbol) > 32 {
		c.JSON(http.StatusBadRequest, gin.H{"error": "q: want a stock symbol"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 10*time.Second)
	defer cancel()
	q, err := a.call(ctx, symbol)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		c.JSON(http.StatusGatewayTimeout, gin.H{"error": "the stock service did not answer"})
		return
	case err != nil:
		c.JSON(http.StatusBadGateway, gin.H{"error": err.Error()})
		return
	case q.NotFound:
		c.JSON(http.StatusNotFound, gin.H{"error": q.Error})
		return
	case q.Error != "":
		c.JSON(http.StatusBadGateway, gin.H{"error": q.Error})
		return
	}
	row := history{UserID: userID, RequestedAt: time.Now().UTC(), Symbol: q.Symbol, Name: q.Name,
		Open: q.Open, High: q.High, Low: q.Low, Close: q.Close, Volume: q.Volume, QuotedAt: &q.QuotedAt}
	if err := a.db.WithContext(ctx).Create(&row).Error; err != nil {
		c.JSON(http.StatusInternalServerError, gin.H{"error": "save history"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"symbol": q.Symbol, "company_name": q.Name, "quote": q.Close})
}

// user verifies a bearer token and returns its subject's user id.
func (a *api) user(header string) (int64, error) {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return 0, errors.New("no bearer token")
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.cfg.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(a.cfg.issuer), jwt.WithAudience(a.cfg.audience),
		jwt.WithExpirationRequired())
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(claims.Subject, 10, 64)
}

// call sends one request to the worker and waits for its reply.
func (a *api) call(ctx context.Context, symbol string) (quote, error) {
	id := strconv.FormatUint(a.next.Add(1), 10)
	done := make(chan []byte, 1)
	a.mu.Lock()
	a.pending[id] = done
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.pending, id)
		a.mu.Unlock()
	}()
	body, err := json.Marshal(map[string]string{"symbol": symbol})
	if err != nil {
		return quote{}, err
	}
	err = a.ch.PublishWithContext(ctx, "", a.cfg.queue, false, false, amqp.Publishing{
		ContentType: "application/json", CorrelationId: id, ReplyTo: "amq.rabbitmq.reply-to", Body: body})
	if err != nil {
		return quote{}, fmt.Errorf("publish: %w", err)
	}
	select {
	case b := <-done:
		var q quote
		err := json.Unmarshal(b, &q)
		return q, err
	case <-ctx.Done():
		return quote{}, ctx.Err()
	}
}

func runWorker(ctx context.Context, cfg config) error {
	loc, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		return err
	}
	conn, ch, err := channel(cfg.amqpURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := ch.QueueDeclare(cfg.queue, false, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue: %w", err)
	}
	if err := ch.Qos(cfg.workers, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(cfg.queue, "minimal-worker", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.workers
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	// Requests already taken are finished after ctx ends.
	wctx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range cfg.workers {
		wg.Go(func() {
			for d := range deliveries {
				var req struct{ Symbol string }
				q := quote{}
				if err := json.Unmarshal(d.Body, &req); err != nil {
					q.Error = "bad request"
				} else if q, err = fetch(wctx, client, cfg.stooqURL, req.Symbol, loc); err != nil {
					q.Error = err.Error()
				}
				body, _ := json.Marshal(q) // a quote always marshals
				if err := ch.PublishWithContext(wctx, "", d.ReplyTo, false, false, amqp.Publishing{
					ContentType: "application/json", CorrelationId: d.CorrelationId, Body: body}); err != nil {
					fmt.Fprintln(os.Stderr, "reply:", err)
				}
				_ = d.Ack(false)
			}
		})
	}
	r := http.NewServeMux()
	r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	err = serve(ctx, cfg.addr, r)
	// Stop taking requests, finish those held, then close.
	_ = ch.Cancel("minimal-worker", false)
	wg.Wait()
	return err
}

// fetch asks stooq for symbol's latest quote.
func fetch(ctx context.Context, client *http.Client, base, symbol string, loc *time.Location) (quote, error) {
	u := base + "/q/l/?s=" + url.QueryEscape(strings.ToLower(symbol)) + "&f=sd2t2ohlcvn&h&e=csv"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return quote{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return quote{}, fmt.Errorf("stooq: %w", err)
	}
	defer resp.Body.Close()
	recs, err := csv.NewReader(io.LimitReader(resp.Body, 64<<10)).ReadAll()
	if err != nil || resp.StatusCode != http.StatusOK || len(recs) != 2 || len(recs[0]) != 9 || recs[0][0] != "Symbol" || len(recs[1]) != 9 {
		return quote{}, fmt.Errorf("stooq: unexpected answer (status %d)", resp.StatusCode)
	}
	f := recs[1]
	if f[6] == "N/D" {
		return quote{Error: "no quote for " + symbol, NotFound: true}, nil
	}
	q := quote{Symbol: f[0], Name: f[8]}
	var errs [6]error
	q.Open, errs[0] = strconv.ParseFloat(f[3], 64)
	q.High, errs[1] = strconv.ParseFloat(f[4], 64)
	q.Low, errs[2] = strconv.ParseFloat(f[5], 64)
	q.Close, errs[3] = strconv.ParseFloat(f[6], 64)
	q.Volume, errs[4] = strconv.ParseInt(f[7], 10, 64)
	q.QuotedAt, errs[5] = time.ParseInLocation("2006-01-02 15:04:05", f[1]+" "+f[2], loc)
	if err := errors.Join(errs[:]...); err != nil {
		return quote{}, fmt.Errorf("stooq: %w", err)
	}
	return q, nil
}

// channel opens a connection to RabbitMQ and a channel on it.
func channel(url string) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, nil, fmt.Errorf("dial RabbitMQ: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("open channel: %w", err)
	}
	return conn, ch, nil
}

// serve runs h on addr until ctx ends, then shuts it down.
func serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
