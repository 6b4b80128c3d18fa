package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// tokenLeeway absorbs small clock differences when checking exp and iat.
const tokenLeeway = 30 * time.Second

// tokenAuth issues and verifies the API's access tokens: HS256 JWTs with
// sub (user id), iat, exp, iss and aud.
type tokenAuth struct {
	secret   []byte
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
	verified verifiedTokens
}

// newTokenAuth returns a tokenAuth; now is the clock (time.Now in production).
func newTokenAuth(secret []byte, issuer, audience string, ttl time.Duration, now func() time.Time) *tokenAuth {
	return &tokenAuth{secret: secret, issuer: issuer, audience: audience, ttl: ttl, now: now,
		verified: verifiedTokens{max: maxVerifiedTokens}}
}

// issue returns a signed token for userID.
func (a *tokenAuth) issue(userID int64) (string, error) {
	now := a.now()
	claims := jwt.RegisteredClaims{
		Subject:   strconv.FormatInt(userID, 10),
		Issuer:    a.issuer,
		Audience:  jwt.ClaimStrings{a.audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(a.ttl)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// verify checks a token (algorithm pinned to HS256, signature, exp, iat,
// iss, aud) and returns the user id it was issued for. A token that
// verified before is answered from memory while the clock is inside the
// window its claims allow (see verifiedTokens).
func (a *tokenAuth) verify(token string) (int64, error) {
	now := a.now()
	if id, ok := a.verified.get(token, now); ok {
		return id, nil
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims,
		func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(a.issuer),
		jwt.WithAudience(a.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithTimeFunc(a.now),
	)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errUnauthenticated, err)
	}
	if claims.IssuedAt == nil {
		return 0, fmt.Errorf("%w: no iat", errUnauthenticated)
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: bad sub %q", errUnauthenticated, claims.Subject)
	}
	// The window without leeway: inside it the checks above pass whatever
	// the leeway, outside it the token is verified again from scratch.
	from := claims.IssuedAt.Time
	if claims.NotBefore != nil && claims.NotBefore.After(from) {
		from = claims.NotBefore.Time
	}
	a.verified.put(token, verifiedToken{id: id, from: from, until: claims.ExpiresAt.Time})
	return id, nil
}

// maxVerifiedTokens bounds the verified-token memo: about 300 bytes per
// token, so at most about 1.2 MB.
const maxVerifiedTokens = 4096

// verifiedToken is what verify learned from a token that passed.
type verifiedToken struct {
	id          int64
	from, until time.Time // the token passes every check in [from, until)
}

// verifiedTokens remembers tokens that passed verify, keyed by the exact
// token string: the signature check is deterministic, so the same string
// verifies the same way again, and parsing, base64 and HMAC are skipped
// (about a tenth of the API's CPU per request, measured; BENCHMARKS.md).
// Only tokens signed with our secret get in, so callers cannot fill it
// with junk; when it is full it is emptied and refills from live traffic.
type verifiedTokens struct {
	max int
	mu  sync.Mutex
	m   map[string]verifiedToken
}

func (v *verifiedTokens) get(token string, now time.Time) (int64, bool) {
	v.mu.Lock()
	t, ok := v.m[token]
	v.mu.Unlock()
	if !ok || now.Before(t.from) || !now.Before(t.until) {
		return 0, false
	}
	return t.id, true
}

func (v *verifiedTokens) put(token string, t verifiedToken) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= v.max {
		v.m = make(map[string]verifiedToken, min(v.max, 256))
	}
	v.m[token] = t
}

// authUser is the authenticated caller, as handlers see it.
type authUser struct {
	ID        int64
	Username  string
	Superuser bool
}

// Gin context keys: userIDKey holds the token's user id (int64), set by
// requireToken; userKey holds the user as loaded by requireUser.
const (
	userIDKey = "stockquote.user_id"
	userKey   = "stockquote.user"
)

// currentUser returns the user requireUser authenticated. Only handlers
// behind requireUser may call it.
func currentUser(c *gin.Context) authUser {
	u, ok := c.Get(userKey)
	if !ok {
		panic("currentUser called on a route without requireUser")
	}
	return u.(authUser)
}

// currentUserID returns the user id of the verified bearer token. Only
// handlers behind requireToken (or requireUser) may call it.
func currentUserID(c *gin.Context) int64 {
	id, ok := c.Get(userIDKey)
	if !ok {
		panic("currentUserID called on a route without requireToken")
	}
	return id.(int64)
}

// userByIDer loads a user by id.
type userByIDer interface {
	UserByID(ctx context.Context, id int64) (postgres.User, error)
}

// bearerToken extracts the token of an "Authorization: Bearer" header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// errUserGone is the answer to a valid token whose user no longer exists.
var errUserGone = withDetail(errUnauthenticated, "invalid or expired bearer token")

// verifyBearer checks the request's bearer token and records its user id
// in c; on failure it answers and returns false.
func verifyBearer(c *gin.Context, auth *tokenAuth) (int64, bool) {
	token, ok := bearerToken(c.GetHeader("Authorization"))
	if !ok {
		fail(c, withDetail(errUnauthenticated, "missing bearer token"))
		return 0, false
	}
	id, err := auth.verify(token)
	if err != nil {
		fail(c, withDetail(err, "invalid or expired bearer token"))
		return 0, false
	}
	c.Set(userIDKey, id)
	return id, true
}

// requireToken authenticates the bearer token without loading its user.
// A handler behind it must itself refuse a user that no longer exists:
// /stock does, in the same statement that saves the quote (the history
// row's foreign key), which saves a database round trip per request, and
// records the user in gone, so that the user's next requests are refused
// here, before any quote is fetched.
func requireToken(auth *tokenAuth, gone *goneUsers) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := verifyBearer(c, auth)
		if !ok {
			return
		}
		if gone.has(id) {
			fail(c, errUserGone)
			return
		}
		c.Next()
	}
}

// maxGoneUsers bounds goneUsers (8 bytes and a map slot each).
const maxGoneUsers = 1 << 16

// goneUsers remembers ids of users that no longer exist, learned when a
// save found no user. User ids come from a sequence and are never reused,
// so an id once gone stays gone: a removed user's still-valid token costs
// at most one quote lookup (and one split history batch) per API process,
// not one per request until it expires. When full it is emptied, which
// only costs those lookups again.
type goneUsers struct {
	mu  sync.Mutex
	ids map[int64]struct{}
	max int
}

func newGoneUsers(max int) *goneUsers { return &goneUsers{ids: make(map[int64]struct{}), max: max} }

func (g *goneUsers) add(id int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.ids) >= g.max {
		clear(g.ids)
	}
	g.ids[id] = struct{}{}
}

func (g *goneUsers) has(id int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.ids[id]
	return ok
}

// requireUser authenticates the bearer token and loads its user fresh from
// the store, so a removed user is refused and a demoted one loses
// superuser rights at once, whatever the token's age.
func requireUser(auth *tokenAuth, users userByIDer) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := verifyBearer(c, auth)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), dbCallTimeout)
		u, err := users.UserByID(ctx, id)
		cancel()
		switch {
		case errors.Is(err, postgres.ErrNotFound):
			fail(c, errUserGone)
			return
		case err != nil:
			fail(c, fmt.Errorf("load user %d: %w", id, err))
			return
		}
		c.Set(userKey, authUser{ID: u.ID, Username: u.Username, Superuser: u.Superuser})
		c.Next()
	}
}

// requireSuperuser refuses callers who are not superusers; it must run
// after requireUser.
func requireSuperuser() gin.HandlerFunc {
	return func(c *gin.Context) {
		if !currentUser(c).Superuser {
			fail(c, withDetail(errForbidden, "superusers only"))
			return
		}
		c.Next()
	}
}

// passwords hashes and checks passwords with bcrypt, and holds a dummy
// hash so a login for an unknown user costs the same as a wrong password.
type passwords struct {
	cost    int
	dummy   []byte
	compare func(hash, password []byte) error
}

// newPasswords computes the dummy hash at the configured cost.
func newPasswords(cost int) (*passwords, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("stockquote timing equalizer"), cost)
	if err != nil {
		return nil, fmt.Errorf("dummy bcrypt hash: %w", err)
	}
	return &passwords{cost: cost, dummy: dummy, compare: bcrypt.CompareHashAndPassword}, nil
}

// hash returns the bcrypt hash of password.
func (p *passwords) hash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}
