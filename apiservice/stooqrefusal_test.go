package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stockquote/stockquote/shared/stockrpc"
)

// TestProblemForStooqRefusals: each refusal is a 503 whose detail says
// what happened and what the operator does about it.
func TestProblemForStooqRefusals(t *testing.T) {
	tests := []struct {
		code       stockrpc.Code
		wantDetail []string
	}{
		{stockrpc.CodeKeyRequired, []string{"requires an API key", "set STOOQ_API_KEY", "get_apikey"}},
		{stockrpc.CodeKeyRejected, []string{"rejected the API key", "STOOQ_API_KEY"}},
		{stockrpc.CodeChallenge, []string{"bot challenge", "stockservice check"}},
		{stockrpc.CodeOverBudget, []string{"STOOQ_MAX_RPS"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			// The worker's message never reaches the client: the detail is
			// the API's own.
			p, unexpected := problemFor(&stockrpc.Error{Code: tt.code, Message: "worker text"})
			if unexpected || p.Status != http.StatusServiceUnavailable {
				t.Fatalf("problemFor(%s) = %d (unexpected %v), want 503", tt.code, p.Status, unexpected)
			}
			for _, w := range tt.wantDetail {
				if !strings.Contains(p.Detail, w) {
					t.Errorf("detail %q lacks %q", p.Detail, w)
				}
			}
			if strings.Contains(p.Detail, "worker text") {
				t.Errorf("detail %q passes the worker's message on", p.Detail)
			}
		})
	}
}
