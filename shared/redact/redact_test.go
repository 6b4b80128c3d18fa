package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h/db?password=secret", "postgres://h/db?password=xxxxx"},
		{"host=h user=u password=secret dbname=d", "host=h user=u password=xxxxx dbname=d"},
		{"host=h password='se cret' dbname=d", "host=h password=xxxxx dbname=d"},
		{"postgres://u:secret@h1:5432,h2:5432/db?target_session_attrs=read-write", "postgres://u:xxxxx@h1:5432,h2:5432/db?target_session_attrs=read-write"},
		{"amqp://guest:secret@127.0.0.1:5672/", "amqp://guest:xxxxx@127.0.0.1:5672/"},
		{"amqps://user@host/", "amqps://user@host/"},
		{"amqp://u:p%40ss@h/%2f", "amqp://u:xxxxx@h/%2f"},
		{"amqp://u:secret@[::1:5672/", "[unparsable URL, masked]"},
	}
	for _, tt := range tests {
		got := URL(tt.in)
		if got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "p%40ss") {
			t.Errorf("URL(%q) = %q leaks the password", tt.in, got)
		}
	}
}

func TestURLs(t *testing.T) {
	got := URLs("amqp://u:s3cret@a:5672/, amqps://v:p%2Css@b:5671/vh ,,amqp://c/")
	if want := "amqp://u:xxxxx@a:5672/,amqps://v:xxxxx@b:5671/vh,,amqp://c/"; got != want {
		t.Errorf("URLs = %q, want %q", got, want)
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"dial postgres://app:s3cret@db:5432/x failed", "dial postgres://app:xxxxx@db:5432/x failed"},
		{"amqp://guest:guest@127.0.0.1:5672/ refused", "amqp://guest:xxxxx@127.0.0.1:5672/ refused"},
		{"host=db password=s3cret user=app", "host=db password=xxxxx user=app"},
		{"no secret here: aapl.us", "no secret here: aapl.us"},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSecret(t *testing.T) {
	if got := Secret(""); got != "(unset)" {
		t.Errorf(`Secret("") = %q`, got)
	}
	if got := Secret("k3y"); got != "(set)" {
		t.Errorf(`Secret("k3y") = %q`, got)
	}
}
