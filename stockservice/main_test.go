package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

func TestRunWithoutBroker(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantErr    string
		wantStdout string
	}{
		{name: "version", args: []string{"--version"}, wantStdout: "stockservice dev (commit unknown, " + runtime.Version() + ")\n"},
		{name: "missing config", env: map[string]string{}, wantErr: "AMQP_URL is required"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
		{name: "bad listen address", env: map[string]string{"AMQP_URL": "amqp://127.0.0.1:1/", "HTTP_ADDR": "256.0.0.1:99999"}, wantErr: "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"stockservice"}, tt.args...), envFunc(tt.env), &stdout, &stderr)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("run: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("run error = %v, want %q", err, tt.wantErr)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantStdout)
			}
		})
	}
}
