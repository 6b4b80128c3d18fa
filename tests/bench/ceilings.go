package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	gormpg "gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/stockquote/stockquote/stockservice/stooq"
)

// closedLoop runs fn from c goroutines, each calling it again as soon as
// it returns, for d, and returns the completed rate and latencies.
func closedLoop(ctx context.Context, c int, d time.Duration, fn func(ctx context.Context, worker, i int) error) result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			var mine []time.Duration
			for i := 0; ctx.Err() == nil; i++ {
				t := time.Now()
				err := fn(ctx, w, i)
				if ctx.Err() != nil {
					break // cut off by the end of the run, not a failure
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	q := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(p*float64(len(lats))))]
	}
	return result{
		requests:   int64(len(lats)) + errs.Load(),
		ok:         int64(len(lats)),
		errors:     errs.Load(),
		throughput: float64(len(lats)) / elapsed.Seconds(),
		p50:        q(0.50), p99: q(0.99), p999: q(0.999),
	}
}

// rpcCeiling measures a bare amqp091-go request/reply round trip: a
// one-goroutine echo server acking manually and the client on direct
// reply-to, no JSON, no retries, no bookkeeping but a correlation map.
func rpcCeiling(ctx context.Context, amqpURL string, c int, d time.Duration) (result, error) {
	queue := "bench.ceiling." + randomHex(6)
	sconn, err := amqp.Dial(amqpURL)
	if err != nil {
		return result{}, fmt.Errorf("rpc ceiling: %w", err)
	}
	defer sconn.Close()
	sch, err := sconn.Channel()
	if err != nil {
		return result{}, fmt.Errorf("rpc ceiling: %w", err)
	}
	if _, err := sch.QueueDeclare(queue, false, true, false, false, nil); err != nil {
		return result{}, fmt.Errorf("rpc ceiling: %w", err)
	}
	defer sch.QueueDelete(queue, false, false, false)
	if err := sch.Qos(max(c, 16), 0, false); err != nil {
		return result{}, fmt.Errorf("rpc ceiling: %w", err)
	}
	reqs, err := sch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return result{}, fmt.Errorf("rpc ceiling: %w", err)
	}
	go func() {
		for dl := range reqs {
			_ = sch.PublishWithContext(context.Background(), "", dl.ReplyTo, false, false,
				amqp.Publishing{CorrelationId: dl.CorrelationId, Body: dl.Body})
			_ = dl.Ack(false)
		}
	}()

	cconn, err := amqp.Dial(amqpURL)
	if err != nil {
		return result{}, fmt.Errorf("rpc ceiling: %w", err)
	}
	defer cconn.Close()
	cch, err := cconn.Channel()
	if err != nil {
		return result{}, fmt.Errorf("rpc ceiling: %w", err)
	}
	replies, err := cch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		return result{}, fmt.Errorf("rpc ceiling: %w", err)
	}
	var mu sync.Mutex
	pending := map[string]chan struct{}{}
	go func() {
		for r := range replies {
			mu.Lock()
			if ch, ok := pending[r.CorrelationId]; ok {
				close(ch)
				delete(pending, r.CorrelationId)
			}
			mu.Unlock()
		}
	}()
	body := []byte(`{"v":1,"symbol":"AAPL.US"}`)
	res := closedLoop(ctx, c, d, func(ctx context.Context, w, i int) error {
		id := strconv.Itoa(w) + "." + strconv.Itoa(i)
		done := make(chan struct{})
		mu.Lock()
		pending[id] = done
		mu.Unlock()
		err := cch.PublishWithContext(ctx, "", queue, false, false,
			amqp.Publishing{CorrelationId: id, ReplyTo: "amq.rabbitmq.reply-to", Body: body})
		if err == nil {
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		mu.Lock()
		delete(pending, id)
		mu.Unlock()
		return err
	})
	return res, nil
}

// ceilingRow is the GORM model of the insert ceiling's table.
type ceilingRow struct {
	ID          int64 `gorm:"primaryKey"`
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

func (ceilingRow) TableName() string { return "ceiling_history" }

// insertCeiling measures a bare single-row INSERT through GORM and pgx,
// configured as the store is (prepared statements, no default
// transaction, the same pool size), into a table shaped and indexed like
// history but without its foreign key and counter triggers.
func insertCeiling(ctx context.Context, dbURL string, poolSize, c int, d time.Duration) (result, error) {
	g, err := gorm.Open(gormpg.New(gormpg.Config{DSN: dbURL}), &gorm.Config{
		Logger: logger.Discard, PrepareStmt: true, SkipDefaultTransaction: true,
	})
	if err != nil {
		return result{}, fmt.Errorf("insert ceiling: %w", err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return result{}, fmt.Errorf("insert ceiling: %w", err)
	}
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(poolSize)
	sqlDB.SetMaxIdleConns(poolSize)
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS ceiling_history (
			id bigserial PRIMARY KEY, user_id bigint NOT NULL, requested_at timestamptz NOT NULL,
			symbol text NOT NULL, name text NOT NULL DEFAULT '', open double precision NOT NULL,
			high double precision NOT NULL, low double precision NOT NULL, close double precision NOT NULL,
			volume bigint NOT NULL DEFAULT 0, quoted_at timestamptz)`,
		`CREATE INDEX IF NOT EXISTS ceiling_history_user_idx ON ceiling_history (user_id, requested_at DESC, id DESC)`,
		`CREATE INDEX IF NOT EXISTS ceiling_history_symbol_idx ON ceiling_history (lower(symbol)) INCLUDE (symbol)`,
	} {
		if err := g.WithContext(ctx).Exec(stmt).Error; err != nil {
			return result{}, fmt.Errorf("insert ceiling: %w", err)
		}
	}
	res := closedLoop(ctx, c, d, func(ctx context.Context, w, i int) error {
		now := time.Now().UTC()
		return g.WithContext(ctx).Create(&ceilingRow{UserID: int64(w + 1), RequestedAt: now, Symbol: "AAPL.US", Name: "APPLE",
			Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 100, QuotedAt: &now}).Error
	})
	if err := g.WithContext(context.Background()).Exec(`DROP TABLE ceiling_history`).Error; err != nil {
		return res, fmt.Errorf("insert ceiling: %w", err)
	}
	return res, nil
}

// stooqCeiling measures the stooq client fetching from the fake stooq
// directly, over keep-alive connections.
func stooqCeiling(ctx context.Context, stooqURL string, symbols func(w, i int) string, c int, d time.Duration) (result, error) {
	client, err := stooq.New(stooq.Options{BaseURL: stooqURL, Timeout: 5 * time.Second})
	if err != nil {
		return result{}, fmt.Errorf("stooq ceiling: %w", err)
	}
	defer client.CloseIdleConnections()
	return closedLoop(ctx, c, d, func(ctx context.Context, w, i int) error {
		_, err := client.Quote(ctx, symbols(w, i))
		return err
	}), nil
}

// ginJWTServer is a bare Gin handler that verifies an HS256 bearer token
// the way the API does (pinned algorithm, iss, aud, exp, iat) and answers
// a small JSON body. It returns the base URL and a stop function.
func ginJWTServer(secret []byte, issuer, audience string) (string, func(), error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/jwt", func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		if len(h) < 8 {
			c.AbortWithStatus(http.StatusUnauthorized)
			return
		}
		var claims jwt.RegisteredClaims
		_, err := jwt.ParseWithClaims(h[7:], &claims, func(*jwt.Token) (any, error) { return secret, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(issuer), jwt.WithAudience(audience),
			jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(30*time.Second))
		if err != nil {
			c.AbortWithStatus(http.StatusUnauthorized)
			return
		}
		c.JSON(http.StatusOK, gin.H{"symbol": "AAPL.US", "company_name": "APPLE", "quote": 165.38, "sub": claims.Subject})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with ErrServerClosed at stop
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// signToken returns an HS256 token like the API issues.
func signToken(secret []byte, issuer, audience string, sub int64) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: strconv.FormatInt(sub, 10), Issuer: issuer, Audience: jwt.ClaimStrings{audience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}).SignedString(secret)
}
