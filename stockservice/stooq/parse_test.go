package stooq_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

const hdr = "Symbol,Date,Time,Open,High,Low,Close,Volume,Name\r\n"

func warsaw(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(stooq.Location)
	if err != nil {
		t.Fatalf("load location: %v", err)
	}
	return loc
}

func TestParse(t *testing.T) {
	loc := warsaw(t)
	tests := []struct {
		name    string
		body    string
		want    stockrpc.Quote
		wantErr error
	}{
		{
			name: "found",
			body: hdr + "AAPL.US,2022-03-21,21:00:06,163.51,166.35,163.015,165.38,95752860,APPLE\r\n",
			want: stockrpc.Quote{Symbol: "AAPL.US", Name: "APPLE", Open: 163.51, High: 166.35, Low: 163.015, Close: 165.38, Volume: 95752860,
				QuotedAt: time.Date(2022, 3, 21, 20, 0, 6, 0, time.UTC)},
		},
		{
			name: "LF line ends and no final newline",
			body: "Symbol,Date,Time,Open,High,Low,Close,Volume,Name\nX.US,2022-07-01,10:00:00,1,2,0.5,1.5,7,X CORP",
			want: stockrpc.Quote{Symbol: "X.US", Name: "X CORP", Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 7,
				QuotedAt: time.Date(2022, 7, 1, 8, 0, 0, 0, time.UTC)},
		},
		{
			name: "time N/D",
			body: hdr + "X.US,2022-07-01,N/D,1,2,0.5,1.5,7,X\r\n",
			want: stockrpc.Quote{Symbol: "X.US", Name: "X", Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 7,
				QuotedAt: time.Date(2022, 6, 30, 22, 0, 0, 0, time.UTC)},
		},
		{name: "N/D row", body: hdr + "APPL.US,N/D,N/D,N/D,N/D,N/D,N/D,N/D,APPL.US\r\n", wantErr: stooq.ErrNotFound},
		{name: "N/D row N/D name", body: hdr + "APPL.US,N/D,N/D,N/D,N/D,N/D,N/D,N/D,N/D\r\n", wantErr: stooq.ErrNotFound},
		{name: "N/D close only", body: hdr + "X.US,2022-07-01,10:00:00,1,2,0.5,N/D,7,X\r\n", wantErr: stooq.ErrNotFound},
		{name: "N/D date only", body: hdr + "X.US,N/D,10:00:00,1,2,0.5,1,7,X\r\n", wantErr: stooq.ErrNotFound},
		{name: "rate limit", body: "Exceeded the daily hits limit", wantErr: stooq.ErrRateLimited},
		{name: "rate limit newline", body: "Exceeded the daily hits limit\r\n", wantErr: stooq.ErrRateLimited},
		{name: "empty", body: "", wantErr: stooq.ErrUpstream},
		{name: "header only", body: hdr, wantErr: stooq.ErrUpstream},
		{name: "two rows", body: hdr + "A.US,2022-07-01,10:00:00,1,2,0.5,1,7,A\r\nB.US,2022-07-01,10:00:00,1,2,0.5,1,7,B\r\n", wantErr: stooq.ErrUpstream},
		{name: "html", body: "<!DOCTYPE html><html><body>error</body></html>", wantErr: stooq.ErrUpstream},
		{name: "php warning", body: "<b>Warning</b>: x in y on line 1<br />\n" + hdr + "A.US,2022-07-01,10:00:00,1,2,0.5,1,7,A\r\n", wantErr: stooq.ErrUpstream},
		{name: "wrong header", body: "Symbol,Date,Time,Open,High,Low,Close,Volume\r\nA.US,2022-07-01,10:00:00,1,2,0.5,1,7\r\n", wantErr: stooq.ErrUpstream},
		{name: "renamed column", body: "Symbol,Date,Time,Open,High,Low,Last,Volume,Name\r\nA.US,2022-07-01,10:00:00,1,2,0.5,1,7,A\r\n", wantErr: stooq.ErrUpstream},
		{name: "truncated", body: hdr + "A.US,2022-07-01,10:0", wantErr: stooq.ErrUpstream},
		{name: "bad price", body: hdr + "A.US,2022-07-01,10:00:00,1,2,0.5,abc,7,A\r\n", wantErr: stooq.ErrUpstream},
		{name: "NaN price", body: hdr + "A.US,2022-07-01,10:00:00,1,2,0.5,NaN,7,A\r\n", wantErr: stooq.ErrUpstream},
		{name: "Inf price", body: hdr + "A.US,2022-07-01,10:00:00,1,+Inf,0.5,1,7,A\r\n", wantErr: stooq.ErrUpstream},
		{name: "negative price", body: hdr + "A.US,2022-07-01,10:00:00,-1,2,0.5,1,7,A\r\n", wantErr: stooq.ErrUpstream},
		{name: "bad volume", body: hdr + "A.US,2022-07-01,10:00:00,1,2,0.5,1,x,A\r\n", wantErr: stooq.ErrUpstream},
		{name: "bad date", body: hdr + "A.US,21/03/2022,10:00:00,1,2,0.5,1,7,A\r\n", wantErr: stooq.ErrUpstream},
		{name: "bad symbol", body: hdr + "A+B,2022-07-01,10:00:00,1,2,0.5,1,7,A\r\n", wantErr: stooq.ErrUpstream},
		{name: "binary", body: "\x00\xff\xfe\"", wantErr: stooq.ErrUpstream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := stooq.Parse([]byte(tt.body), loc)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Errorf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		hdr + "AAPL.US,2022-03-21,21:00:06,163.51,166.35,163.015,165.38,95752860,APPLE\r\n",
		hdr + "APPL.US,N/D,N/D,N/D,N/D,N/D,N/D,N/D,APPL.US\r\n",
		"Exceeded the daily hits limit",
		"<html><body>x</body></html>",
		"<html><body>get an apikey</body></html>",
		"<html><form action=\"/__verify\"></form></html>",
		"<b>Warning</b>: x<br />\n" + hdr + "A.US,2022-07-01,10:00:00,1,2,0.5,1,7,A\r\n",
		hdr + "A.US,2022-07-01,10:0",
		hdr + "A.US,2022-10-30,02:30:00,1e308,2,0.5,1,9.5e18,\"A,\"\"B\"\"\"\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	loc := warsaw(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := stooq.Parse(body, loc)
		if err != nil {
			if !errors.Is(err, stooq.ErrUpstream) && !errors.Is(err, stooq.ErrNotFound) && !errors.Is(err, stooq.ErrRateLimited) &&
				!errors.Is(err, stooq.ErrKeyRequired) && !errors.Is(err, stooq.ErrKeyRejected) && !errors.Is(err, stooq.ErrChallenge) {
				t.Fatalf("Parse error %v wraps no sentinel", err)
			}
			return
		}
		if _, err := stockrpc.NormalizeSymbol(q.Symbol); err != nil || q.Symbol != strings.ToUpper(q.Symbol) {
			t.Errorf("quote symbol %q not valid upper case", q.Symbol)
		}
		if q.Name == "" || q.QuotedAt.Location() != time.UTC || q.Volume < 0 || q.Close < 0 {
			t.Errorf("implausible quote %+v", q)
		}
	})
}
