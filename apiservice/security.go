package main

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/stockquote/stockquote/shared/env"
)

// securityConfig is the part of config about attackers: which proxies to
// believe and how hard to throttle logins.
type securityConfig struct {
	TrustedProxies    []string       // TRUSTED_PROXIES: comma-separated IPs/CIDRs whose X-Forwarded-For is believed; default none
	Login             throttleConfig // LOGIN_* below
	StockQuota        quotaConfig    // STOCK_QUOTA_* below
	ReadHeaderTimeout time.Duration  // HTTP_READ_HEADER_TIMEOUT, default 5s: slow clients are cut off
}

// loadSecurityConfig reads the security settings through getenv:
//
//	TRUSTED_PROXIES          none    IPs or CIDRs of reverse proxies
//	LOGIN_ACCOUNT_BURST      5       failed logins per account before throttling (all replicas together)
//	LOGIN_ACCOUNT_INTERVAL   1m      then one more attempt per interval
//	LOGIN_CLIENT_BURST       20      failed logins per client address (per replica)
//	LOGIN_CLIENT_INTERVAL    6s      then one more attempt per interval
//	LOGIN_MAX_TRACKED        65536   client addresses (and trusted pairs) tracked at most per replica
//	LOGIN_TRUSTED_WINDOW     720h    a client that logged in as a user is trusted this long (0 = never)
//	HTTP_READ_HEADER_TIMEOUT 5s      time a client has to send its headers
//	STOCK_QUOTA_REQUESTS_PER_MINUTE 120  /stock requests per user (all replicas together; 0 = off)
//	STOCK_QUOTA_MISSES_PER_MINUTE    30  of those, requests that reach stooq (0 = off)
func loadSecurityConfig(r *env.Reader) securityConfig {
	var c securityConfig
	for _, p := range strings.Split(r.String("TRUSTED_PROXIES", ""), ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		_, _, cidrErr := net.ParseCIDR(p)
		if cidrErr != nil && net.ParseIP(p) == nil {
			r.Fail("TRUSTED_PROXIES", fmt.Errorf("%q is neither an IP address nor a CIDR", p))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	c.Login.AccountBurst = r.Int("LOGIN_ACCOUNT_BURST", 5, 1, 1000)
	c.Login.AccountInterval = r.Duration("LOGIN_ACCOUNT_INTERVAL", time.Minute, time.Millisecond, 24*time.Hour)
	c.Login.ClientBurst = r.Int("LOGIN_CLIENT_BURST", 20, 1, 100000)
	c.Login.ClientInterval = r.Duration("LOGIN_CLIENT_INTERVAL", 6*time.Second, time.Millisecond, 24*time.Hour)
	c.Login.MaxKeys = r.Int("LOGIN_MAX_TRACKED", 65536, 16, 10_000_000)
	c.Login.TrustedWindow = r.Duration("LOGIN_TRUSTED_WINDOW", 30*24*time.Hour, 0, 366*24*time.Hour)
	c.ReadHeaderTimeout = r.Duration("HTTP_READ_HEADER_TIMEOUT", 5*time.Second, 100*time.Millisecond, time.Minute)
	c.StockQuota.RequestsPerMinute = r.Int("STOCK_QUOTA_REQUESTS_PER_MINUTE", 120, 0, 1_000_000)
	c.StockQuota.MissesPerMinute = r.Int("STOCK_QUOTA_MISSES_PER_MINUTE", 30, 0, 1_000_000)
	return c
}

// LogValue logs the security settings.
func (c securityConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("trusted_proxies", strings.Join(c.TrustedProxies, ",")),
		slog.Int("login_account_burst", c.Login.AccountBurst),
		slog.Duration("login_account_interval", c.Login.AccountInterval),
		slog.Int("login_client_burst", c.Login.ClientBurst),
		slog.Duration("login_client_interval", c.Login.ClientInterval),
		slog.Int("login_max_tracked", c.Login.MaxKeys),
		slog.Duration("login_trusted_window", c.Login.TrustedWindow),
		slog.Duration("read_header_timeout", c.ReadHeaderTimeout),
		slog.Int("stock_quota_requests_per_minute", c.StockQuota.RequestsPerMinute),
		slog.Int("stock_quota_misses_per_minute", c.StockQuota.MissesPerMinute),
	)
}
