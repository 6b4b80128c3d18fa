package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
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
// iss, aud) and returns the user id it was issued for.
func (a *tokenAuth) verify(token string) (int64, error) {
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
	return id, nil
}

// authUser is the authenticated caller.
type authUser struct {
	ID        int64
	Superuser bool
}

// userKey is the gin context key of the authenticated caller.
const userKey = "stockquote.user"

// currentUser returns the caller requireToken or requireUser authenticated.
func currentUser(c *gin.Context) authUser {
	u, ok := c.Get(userKey)
	if !ok {
		panic("currentUser called on a route without requireUser")
	}
	return u.(authUser)
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

// requireUser verifies the bearer token and loads its user, so a removed
// user is refused and a demoted one loses superuser rights at once. With
// users nil (requireToken) the user is not loaded.
func requireUser(auth *tokenAuth, users userStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := bearerToken(c.GetHeader("Authorization"))
		if !ok {
			fail(c, withDetail(errUnauthenticated, "missing bearer token"))
			return
		}
		id, err := auth.verify(token)
		if err != nil {
			fail(c, withDetail(err, "invalid or expired bearer token"))
			return
		}
		u := authUser{ID: id}
		if users != nil {
			ctx, cancel := context.WithTimeout(c.Request.Context(), dbCallTimeout)
			stored, err := users.UserByID(ctx, id)
			cancel()
			if err != nil {
				fail(c, fmt.Errorf("load user %d: %w", id, err))
				return
			}
			u.Superuser = stored.Superuser
		}
		c.Set(userKey, u)
		c.Next()
	}
}

// requireToken is requireUser without loading the user, saving /stock a
// database round trip: a removed user is refused there by the history
// row's foreign key, after at most its quota of quote lookups.
func requireToken(auth *tokenAuth) gin.HandlerFunc { return requireUser(auth, nil) }

// requireSuperuser refuses callers who are not superusers (after requireUser).
func requireSuperuser() gin.HandlerFunc {
	return func(c *gin.Context) {
		if !currentUser(c).Superuser {
			fail(c, withDetail(errForbidden, "superusers only"))
			return
		}
		c.Next()
	}
}

// passwords hashes and checks passwords with bcrypt; the dummy hash makes a
// login for an unknown user cost what a wrong password costs.
type passwords struct {
	cost    int
	dummy   []byte
	compare func(hash, password []byte) error
}

func newPasswords(cost int) (*passwords, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("stockquote timing equalizer"), cost)
	if err != nil {
		return nil, fmt.Errorf("dummy bcrypt hash: %w", err)
	}
	return &passwords{cost: cost, dummy: dummy, compare: bcrypt.CompareHashAndPassword}, nil
}

func (p *passwords) hash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}
