package debugserver

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"testing"
)

func TestStart(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	stop, err := Start("debug", "127.0.0.1:0", Pprof(), log)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"debug_addr":"([^"]+)"`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no debug_addr logged:\n%s", logs.String())
	}
	resp, err := http.Get("http://" + m[1] + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Errorf("GET /debug/pprof/cmdline = %d %q, want 200 and the command line", resp.StatusCode, body)
	}
	stop()
	if _, err := http.Get("http://" + m[1] + "/debug/pprof/cmdline"); err == nil {
		t.Error("still serving after stop")
	}
	if _, err := Start("debug", "256.0.0.1:1", Pprof(), log); err == nil {
		t.Error("Start on a bad address: want an error")
	}
}
