package main

import (
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// A cursor is a version byte, requested_at in Unix nanoseconds and an id.
const (
	cursorVersion = 1
	cursorLen     = 1 + 8 + 8
)

// encodeCursor returns the opaque, URL-safe form of a keyset position.
func encodeCursor(c postgres.HistoryCursor) string {
	var b [cursorLen]byte
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(c.RequestedAt.UnixNano()))
	binary.BigEndian.PutUint64(b[9:], uint64(c.ID))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// decodeCursor parses a cursor made by encodeCursor.
func decodeCursor(s string) (postgres.HistoryCursor, bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion {
		return postgres.HistoryCursor{}, false
	}
	nanos := int64(binary.BigEndian.Uint64(b[1:9]))
	id := int64(binary.BigEndian.Uint64(b[9:]))
	return postgres.HistoryCursor{RequestedAt: time.Unix(0, nanos).UTC(), ID: id}, nanos > 0 && id > 0
}
