package stooq

import (
	"slices"
	"testing"
	"time"
)

const testRow = "AAPL.US,2022-03-21,21:00:06,163.51,166.35,163.015,165.38,95752860,APPLE"

func TestColumns(t *testing.T) {
	if len(header) != columns {
		t.Fatalf("header has %d fields, columns = %d", len(header), columns)
	}
}

func TestPlainRow(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		want bool
	}{
		{"CRLF", headerLine + "\r\n" + testRow + "\r\n", true},
		{"LF", headerLine + "\n" + testRow + "\n", true},
		{"no final line end", headerLine + "\r\n" + testRow, true},
		{"N/D row", headerLine + "\r\nAPPL.US,N/D,N/D,N/D,N/D,N/D,N/D,N/D,APPL.US\r\n", true},
		{"empty fields", headerLine + "\r\n,,,,,,,,\r\n", true},
		{"quoted name", headerLine + "\r\nA.US,2022-07-01,10:00:00,1,2,0.5,1,7,\"A, B\"\r\n", false},
		{"two rows", headerLine + "\r\n" + testRow + "\r\n" + testRow + "\r\n", false},
		{"header only", headerLine + "\r\n", false},
		{"blank line first", "\r\n" + headerLine + "\r\n" + testRow + "\r\n", false},
		{"eight fields", headerLine + "\r\nA.US,2022-07-01,10:00:00,1,2,0.5,1,7\r\n", false},
		{"ten fields", headerLine + "\r\n" + testRow + ",X\r\n", false},
		{"lone CR at the end", headerLine + "\r\n" + testRow + "\r", false},
		{"php warning first", "<b>Warning</b><br />\n" + headerLine + "\r\n" + testRow + "\r\n", false},
		{"longer header", headerLine + ",Extra\r\n" + testRow + ",X\r\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var row [columns]string
			if got := plainRow([]byte(tt.body), &row); got != tt.want {
				t.Fatalf("plainRow = %v, want %v", got, tt.want)
			}
			if !tt.want {
				return
			}
			want, err := csvRow([]byte(tt.body))
			if err != nil {
				t.Fatalf("csvRow: %v", err)
			}
			if !slices.Equal(row[:], want) {
				t.Errorf("plainRow row = %q, encoding/csv reads %q", row, want)
			}
		})
	}
}

// FuzzPlainRow checks that plainRow never reads a body differently from
// encoding/csv: whatever it accepts, csvRow accepts with the same fields.
func FuzzPlainRow(f *testing.F) {
	for _, s := range []string{
		headerLine + "\r\n" + testRow + "\r\n",
		headerLine + "\n" + testRow,
		headerLine + "\r\n" + testRow + "\r",
		headerLine + "\r\n" + testRow + "\r\n\r\n",
		headerLine + "\r\n" + testRow + "\n\n",
		headerLine + "\r\n\r\n" + testRow + "\r\n",
		headerLine + "\r\nA.US,2022-07-01,10:00:00,1,2,0.5,1,7,\"A\"\r\n",
		headerLine + "\r\nA.US,2022-07-01,10:00:00,1,2,0.5,1,7,A\rB\r\n",
		headerLine + "\r\nA.US,,,,,,,,\xff\x00\r\n",
		headerLine + "\r\n,,,,,,,,\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var row [columns]string
		if !plainRow(body, &row) {
			return
		}
		want, err := csvRow(body)
		if err != nil {
			t.Fatalf("plainRow read %q from a body encoding/csv refuses: %v", row, err)
		}
		if !slices.Equal(row[:], want) {
			t.Fatalf("plainRow read %q, encoding/csv reads %q", row, want)
		}
	})
}

// BenchmarkParse: go test -bench Parse -benchmem ./stockservice/stooq/
func BenchmarkParse(b *testing.B) {
	body := []byte(headerLine + "\r\n" + testRow + "\r\n")
	loc, err := time.LoadLocation(Location)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(body, loc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-csv", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			row, err := csvRow(body)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := parseRow(row, loc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
