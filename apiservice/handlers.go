package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// userStore keeps the accounts.
type userStore interface {
	UserByID(ctx context.Context, id int64) (postgres.User, error)
	UserByName(ctx context.Context, username string) (postgres.User, error)
	CreateUser(ctx context.Context, u postgres.User) (postgres.User, error)
}

// historyStore keeps each user's quote history.
type historyStore interface {
	AddHistory(ctx context.Context, userID int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error)
	History(ctx context.Context, userID int64, limit int, after *postgres.HistoryCursor) ([]postgres.HistoryEntry, error)
}

// stockCounter counts how often each stock was asked for.
type stockCounter interface {
	TopStocks(ctx context.Context, n int) ([]postgres.StockCount, error)
}

// handleLogin exchanges a username and password (HTTP Basic or a JSON
// body) for an access token. Unknown users and wrong passwords get the
// same 401 at the same bcrypt cost. Every attempt costs the client address
// a token, given back on success; wrong guesses are limited per account.
func handleLogin(users userStore, pw *passwords, auth *tokenAuth, throttle *loginThrottle) gin.HandlerFunc {
	type request struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	type response struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	return func(c *gin.Context) {
		tooMany := func(retry time.Duration) {
			c.Header("Retry-After", retryAfterSeconds(retry))
			fail(c, errTooManyRequests)
		}
		client := c.ClientIP()
		spent, retry, ok := throttle.clients.reserve(client, throttle.now())
		if !ok {
			tooMany(retry)
			return
		}
		var req request
		if name, pass, ok := c.Request.BasicAuth(); ok {
			req = request{Username: name, Password: pass}
		} else if err := decodeJSON(c.Request, &req); err != nil {
			fail(c, err)
			return
		}
		name := strings.TrimSpace(req.Username)
		// No user has an invalid name: refuse it without asking the database.
		if err := validateUsername(name); err != nil {
			fail(c, err)
			return
		}
		failLogin := func(err error) { fail(c, fmt.Errorf("login %s: %w", quoteClient(name), err)) }

		ctx := c.Request.Context()
		key := throttle.bucketKey(name, client)
		retry, ok, err := throttle.beginCheck(ctx, key)
		if err != nil {
			failLogin(err)
			return
		}
		if !ok {
			tooMany(retry)
			return
		}
		defer throttle.endCheck(key)

		// An unknown user (or a failed lookup) is checked against the dummy
		// hash: it costs what a wrong password costs.
		hash := pw.dummy
		lookupCtx, cancel := context.WithTimeout(ctx, dbCallTimeout)
		u, lookupErr := users.UserByName(lookupCtx, name)
		cancel()
		if lookupErr == nil {
			hash = []byte(u.PasswordHash)
		}
		if cmpErr := pw.compare(hash, []byte(req.Password)); lookupErr != nil || cmpErr != nil {
			// Whatever failed, it costs the account one attempt.
			chargeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbCallTimeout)
			ok, retry, err := throttle.rates.TakeRate(chargeCtx, key, throttle.account)
			cancel()
			switch {
			case lookupErr != nil && !errors.Is(lookupErr, postgres.ErrNotFound):
				failLogin(lookupErr)
			case err != nil:
				failLogin(err)
			case !ok: // concurrent failures emptied the bucket meanwhile
				tooMany(retry)
			default:
				fail(c, errBadCredentials)
			}
			return
		}
		// A correct password is let in only while the bucket is not empty,
		// so a 429 after a check reveals nothing about the guess.
		available, retry, err := throttle.rates.PeekRate(ctx, key, throttle.account)
		if err != nil {
			failLogin(err)
			return
		}
		if available < 1 {
			tooMany(retry)
			return
		}
		spent.CancelAt(throttle.now())
		throttle.trust(name, client)
		token, err := auth.issue(u.ID)
		if err != nil {
			fail(c, err)
			return
		}
		c.JSON(http.StatusOK, response{AccessToken: token, TokenType: "Bearer", ExpiresIn: int64(auth.ttl / time.Second)})
	}
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(max(d, time.Second).Seconds())), 10)
}

// dbCallTimeout bounds each database call of a request, so a stuck
// database answers 503 instead of holding requests and connections.
const dbCallTimeout = 5 * time.Second

// handleStock answers the latest quote of ?q= once it is saved in the
// caller's history, within the caller's quota (stockQuota).
func handleStock(quotes quoteRequester, history historyStore, now func() time.Time, quota *stockQuota) gin.HandlerFunc {
	type response struct {
		Symbol      string  `json:"symbol"`
		CompanyName string  `json:"company_name"`
		Quote       float64 `json:"quote"`
	}
	return func(c *gin.Context) {
		requestedAt := now().UTC()
		qs := c.QueryArray("q")
		if len(qs) != 1 {
			fail(c, withDetail(errInvalidInput, "give exactly one q parameter, e.g. ?q=aapl.us"))
			return
		}
		symbol, err := stockrpc.NormalizeSymbol(qs[0])
		if err != nil {
			fail(c, err)
			return
		}
		userID := currentUser(c).ID
		ctx := c.Request.Context()
		retry, ok, err := quota.admit(ctx, userID)
		if err != nil {
			fail(c, fmt.Errorf("quota of user %d: %w", userID, err))
			return
		}
		if !ok {
			c.Header("Retry-After", retryAfterSeconds(retry))
			fail(c, errQuotaExceeded)
			return
		}
		q, fetched, err := quotes.Quote(ctx, symbol)
		if fetched {
			quota.fetched(ctx, userID)
		}
		if err != nil {
			fail(c, fmt.Errorf("quote %q: %w", symbol, err))
			return
		}
		saveCtx, cancel := context.WithTimeout(ctx, dbCallTimeout)
		defer cancel()
		_, err = history.AddHistory(saveCtx, userID, postgres.HistoryEntry{
			RequestedAt: requestedAt,
			Symbol:      q.Symbol,
			Name:        q.Name,
			Open:        q.Open,
			High:        q.High,
			Low:         q.Low,
			Close:       q.Close,
			Volume:      q.Volume,
			QuotedAt:    q.QuotedAt.UTC(),
		})
		if err != nil {
			fail(c, fmt.Errorf("save history for user %d: %w", userID, err))
			return
		}
		c.JSON(http.StatusOK, response{Symbol: q.Symbol, CompanyName: q.Name, Quote: q.Close})
	}
}

const (
	defaultHistoryLimit = 50
	maxHistoryLimit     = 500
)

// historyEntryJSON is one history entry as the API shows it.
type historyEntryJSON struct {
	Date   string  `json:"date"`
	Name   string  `json:"name"`
	Symbol string  `json:"symbol"`
	Open   float64 `json:"open"`
	High   float64 `json:"high"`
	Low    float64 `json:"low"`
	Close  float64 `json:"close"`
}

// handleHistory lists the caller's history, newest first, one page at a
// time; a Link rel="next" header carries the cursor of the next page.
func handleHistory(history historyStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		limit := defaultHistoryLimit
		if s, ok := c.GetQuery("limit"); ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxHistoryLimit {
				fail(c, withDetail(errInvalidInput, fmt.Sprintf("limit must be an integer in 1..%d", maxHistoryLimit)))
				return
			}
			limit = n
		}
		var after *postgres.HistoryCursor
		if s, ok := c.GetQuery("cursor"); ok {
			cur, ok := decodeCursor(s)
			if !ok {
				fail(c, withDetail(errInvalidInput, "bad cursor"))
				return
			}
			after = &cur
		}
		u := currentUser(c)
		ctx, cancel := context.WithTimeout(c.Request.Context(), dbCallTimeout)
		entries, err := history.History(ctx, u.ID, limit+1, after)
		cancel()
		if err != nil {
			fail(c, fmt.Errorf("history of user %d: %w", u.ID, err))
			return
		}
		if len(entries) > limit {
			entries = entries[:limit]
			last := entries[limit-1]
			next := encodeCursor(postgres.HistoryCursor{RequestedAt: last.RequestedAt, ID: last.ID})
			c.Header("Link", fmt.Sprintf(`</api/v1/history?limit=%d&cursor=%s>; rel="next"`, limit, next))
		}
		out := make([]historyEntryJSON, 0, len(entries))
		for _, e := range entries {
			out = append(out, historyEntryJSON{
				Date:   e.RequestedAt.UTC().Format(time.RFC3339),
				Name:   e.Name,
				Symbol: e.Symbol,
				Open:   e.Open,
				High:   e.High,
				Low:    e.Low,
				Close:  e.Close,
			})
		}
		c.JSON(http.StatusOK, out)
	}
}

// handleStats lists the five most requested stocks over all users.
func handleStats(stocks stockCounter) gin.HandlerFunc {
	type row struct {
		Stock          string `json:"stock"`
		TimesRequested int64  `json:"times_requested"`
	}
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), dbCallTimeout)
		top, err := stocks.TopStocks(ctx, 5)
		cancel()
		if err != nil {
			fail(c, fmt.Errorf("top stocks: %w", err))
			return
		}
		out := make([]row, 0, len(top))
		for _, s := range top {
			out = append(out, row{Stock: strings.ToLower(s.Stock), TimesRequested: s.TimesRequested})
		}
		c.JSON(http.StatusOK, out)
	}
}

// newUserInput is what creating a user needs.
type newUserInput struct {
	Username  string `json:"username"`
	Password  string `json:"password"`
	Email     string `json:"email"`
	Superuser bool   `json:"superuser"`
}

// validate trims the username and email and checks the input. Passwords
// are 8 to 72 bytes, as bcrypt ignores anything longer.
func (in newUserInput) validate() (newUserInput, error) {
	in.Username = strings.TrimSpace(in.Username)
	in.Email = strings.TrimSpace(in.Email)
	if err := validateUsername(in.Username); err != nil {
		return in, err
	}
	if len(in.Password) < 8 || len(in.Password) > 72 {
		return in, withDetail(errInvalidInput, "password must be 8 to 72 bytes")
	}
	if s := in.Email; s != "" {
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s || len(s) > 254 || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
			return in, withDetail(errInvalidInput, "email does not look like an address")
		}
	}
	return in, nil
}

// usernamePattern is 1 to 64 ASCII letters, digits and "._-".
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func validateUsername(s string) error {
	if !usernamePattern.MatchString(s) {
		return withDetail(errInvalidInput, "username must be 1 to 64 letters, digits and ._-")
	}
	return nil
}

// handleCreateUser creates a user; the answer never holds the password hash.
func handleCreateUser(users userStore, pw *passwords) gin.HandlerFunc {
	type response struct {
		ID        int64     `json:"id"`
		Username  string    `json:"username"`
		Email     string    `json:"email"`
		Superuser bool      `json:"superuser"`
		CreatedAt time.Time `json:"created_at"`
	}
	return func(c *gin.Context) {
		var in newUserInput
		if err := decodeJSON(c.Request, &in); err != nil {
			fail(c, err)
			return
		}
		in, err := in.validate()
		if err != nil {
			fail(c, err)
			return
		}
		hash, err := pw.hash(in.Password)
		if err != nil {
			fail(c, err)
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), dbCallTimeout)
		defer cancel()
		u, err := users.CreateUser(ctx, postgres.User{
			Username:     in.Username,
			Email:        in.Email,
			PasswordHash: hash,
			Superuser:    in.Superuser,
		})
		if err != nil {
			fail(c, fmt.Errorf("create user %q: %w", in.Username, err))
			return
		}
		c.JSON(http.StatusCreated, response{ID: u.ID, Username: u.Username, Email: u.Email, Superuser: u.Superuser, CreatedAt: u.CreatedAt.UTC()})
	}
}
