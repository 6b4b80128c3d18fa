package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRunVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"apiservice", "--version"}, envFunc(nil), nil, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "apiservice ") {
		t.Errorf("output = %q", out.String())
	}
}

func TestRunRefusesBadConfigAndUsage(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		stdin   string
		wantErr string
	}{
		{"serve without secret", []string{"apiservice"}, map[string]string{"DATABASE_URL": "postgres://h/db", "AMQP_URL": "amqp://h/"}, "", "JWT_SECRET is required"},
		{"serve with short secret", []string{"apiservice"}, map[string]string{"DATABASE_URL": "postgres://h/db", "AMQP_URL": "amqp://h/", "JWT_SECRET": "short"}, "", "JWT_SECRET: 5 bytes"},
		{"migrate without database", []string{"apiservice", "migrate"}, nil, "", "DATABASE_URL is required"},
		{"unknown command", []string{"apiservice", "frobnicate"}, nil, "", "unknown command"},
		{"unknown flag", []string{"apiservice", "--nope"}, nil, "", "usage error"},
		{"user add without name", []string{"apiservice", "user", "add"}, nil, "password1\n", "username must be"},
		{"user add empty password", []string{"apiservice", "user", "add", "-name", "bob"}, nil, "\n", "password must be"},
		{"user add short password", []string{"apiservice", "user", "add", "-name", "bob"}, nil, "short\n", "password must be"},
		{"user add bad email", []string{"apiservice", "user", "add", "-name", "bob", "-email", "nope"}, nil, "password1\n", "email"},
		{"user add without database", []string{"apiservice", "user", "add", "-name", "bob"}, nil, "password1\r\n", "DATABASE_URL is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, envFunc(tt.env), strings.NewReader(tt.stdin), &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRunUnknownFlagIsUsageError(t *testing.T) {
	err := run(context.Background(), []string{"apiservice", "-x"}, envFunc(nil), nil, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, errUsage) {
		t.Errorf("err = %v, want errUsage", err)
	}
}
