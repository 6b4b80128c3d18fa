// Package redact hides secrets in values that are logged or put in errors.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

var (
	// dsnPassword matches the password of a key=value DSN.
	dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
	// urlUserinfo matches the password of a URL's userinfo (scheme://user:pw@).
	urlUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@`)
)

// URL returns s with its password hidden: the password of a URL's user
// info or of a password query parameter, or password= in a key=value DSN.
// A URL that does not parse is hidden whole, since it may still hold one.
func URL(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable URL, masked]"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// URLs applies URL to each of a comma-separated list of URLs.
func URLs(s string) string {
	parts := strings.Split(s, ",")
	for i, u := range parts {
		parts[i] = URL(strings.TrimSpace(u))
	}
	return strings.Join(parts, ",")
}

// Text masks the passwords of URLs and key=value DSNs inside a message
// (a driver error quoting its connection string, say).
func Text(s string) string {
	s = urlUserinfo.ReplaceAllString(s, "${1}xxxxx@")
	return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
}

// Secret says whether a secret is set without showing any of it.
func Secret(s string) string {
	if s == "" {
		return "(unset)"
	}
	return "(set)"
}
