//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium. Its absence FAILS the test: make
// test needs it (apt-get install -y chromium; scripts/setup-test-deps.sh installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it with `apt-get install -y chromium` (Debian) or set CHROMIUM to its path; the /docs browser test needs it")
	return ""
}

// browserLog collects what the page reports: uncaught exceptions, console
// errors and Content-Security-Policy violations.
type browserLog struct {
	mu   sync.Mutex
	errs []string
}

func (b *browserLog) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, s)
}

func (b *browserLog) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// TestDocsInBrowser opens /docs of the real API in headless Chromium,
// logs in through Swagger UI (HTTP Basic in its Authorize dialog, then
// "Try it out" on POST /api/v1/login), authorizes with the token the page
// showed, and fetches a quote through "Try it out" on GET /api/v1/stock,
// all under the page's Content-Security-Policy.
func TestDocsInBrowser(t *testing.T) {
	s := newSystem(t, options{})
	exe := chromiumPath(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 2000),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	// Subscribe before the page loads: every console error, uncaught
	// exception and browser log error (CSP violations are "security" log
	// errors) lands in logs.
	var logs browserLog
	console := chromedp.Console(bctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				logs.add(fmt.Sprintf("%s %s: %s %s", m.Type, m.Source, m.Text, m.URL))
			}
		}
	}()
	defer func() { cancelBrowser(); <-consoleDone }()
	defer func() {
		if t.Failed() || os.Getenv("DOCS_SCREENSHOT") != "" {
			sctx, c := context.WithTimeout(bctx, 10*time.Second)
			defer c()
			if png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)); err == nil {
				p := filepath.Join(os.TempDir(), "stockquote-docs-"+randomHex(4)+".png")
				if os.WriteFile(p, png, 0o644) == nil {
					t.Logf("screenshot of the page: %s", p)
				}
			}
		}
	}()

	const (
		login = "#operations-auth-login"
		stock = "#operations-quotes-getStock"
		modal = ".dialog-ux .modal-ux"
	)
	// authForm selects the form of one security scheme in the Authorize dialog.
	authForm := func(scheme string) string {
		return fmt.Sprintf(`//div[contains(@class,"modal-ux")]//form[.//h4[contains(normalize-space(.), %q)]]`, scheme)
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v\nbrowser errors: %q", what, err, logs.all())
		}
	}

	run("open /docs",
		chromedp.Navigate(s.API+"/docs"),
		chromedp.WaitVisible(chromedp.CSS(login)),
	)

	run("log in with HTTP Basic in the Authorize dialog",
		chromedp.Click(chromedp.CSS("button.authorize")),
		chromedp.WaitVisible(chromedp.CSS(modal)),
		chromedp.SendKeys(chromedp.Search(authForm("basicAuth")+`//input[@name="username"]`), "alice"),
		chromedp.SendKeys(chromedp.Search(authForm("basicAuth")+`//input[@name="password"]`), "alice-password-1"),
		chromedp.Click(chromedp.Search(authForm("basicAuth")+`//button[contains(@class,"authorize")]`)),
		chromedp.Click(chromedp.CSS(modal+" button.btn-done")),
		chromedp.WaitNotPresent(chromedp.CSS(modal)),

		chromedp.Click(chromedp.CSS(login+" .opblock-summary-control")),
		chromedp.Click(chromedp.CSS(login+" .try-out__btn")),
		chromedp.Click(chromedp.CSS(login+" .execute")),
		chromedp.WaitVisible(chromedp.CSS(login+" .live-responses-table tbody .response-col_status")),
	)
	status, body := liveResponse(t, bctx, login)
	if status != "200" {
		t.Fatalf("login through the page answered %q: %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login through the page showed %q, want a token (%v)", body, err)
	}

	run("authorize with the bearer token the page showed",
		chromedp.Click(chromedp.CSS("button.authorize")),
		chromedp.WaitVisible(chromedp.CSS(modal)),
		chromedp.SendKeys(chromedp.Search(authForm("bearerAuth")+`//input`), tok.AccessToken),
		chromedp.Click(chromedp.Search(authForm("bearerAuth")+`//button[contains(@class,"authorize")]`)),
		chromedp.Click(chromedp.CSS(modal+" button.btn-done")),
		chromedp.WaitNotPresent(chromedp.CSS(modal)),
	)

	const symbol = "msft.us"
	run("fetch a quote with Try it out",
		chromedp.Click(chromedp.CSS(stock+" .opblock-summary-control")),
		chromedp.Click(chromedp.CSS(stock+" .try-out__btn")),
		chromedp.WaitVisible(chromedp.CSS(stock+` tr[data-param-name="q"] input`)),
		// Replace whatever the field holds (Swagger UI may fill in the example).
		chromedp.Focus(chromedp.CSS(stock+` tr[data-param-name="q"] input`)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).select()`, stock+` tr[data-param-name="q"] input`)),
		chromedp.SendKeys(chromedp.CSS(stock+` tr[data-param-name="q"] input`), symbol),
		chromedp.Click(chromedp.CSS(stock+" .execute")),
		chromedp.WaitVisible(chromedp.CSS(stock+" .live-responses-table tbody .response-col_status")),
	)
	status, body = liveResponse(t, bctx, stock)
	if status != "200" {
		t.Fatalf("quote through the page answered %q: %s", status, body)
	}
	var got stockAnswer
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("quote through the page showed %q: %v", body, err)
	}
	want, _ := s.Stooq.Want(symbol)
	if got.Symbol != strings.ToUpper(symbol) || got.Quote != want.Close || got.CompanyName == "" {
		t.Errorf("quote through the page = %+v, want %s at %v", got, strings.ToUpper(symbol), want.Close)
	}
	if n := s.CountRows(t, "symbol = $1", strings.ToUpper(symbol)); n != 1 {
		t.Errorf("history rows for %s = %d, want 1 (the page's request went through the whole system)", symbol, n)
	}
	// The rest of the page renders under the CSP too: the schemas.
	run("open a schema",
		chromedp.Click(chromedp.CSS(`[id="model-Problem"] button.model-box-control`)),
		chromedp.WaitVisible(chromedp.CSS(`[id="model-Problem"] tr.property-row`)),
	)
	if errs := logs.all(); len(errs) > 0 {
		t.Errorf("the page reported errors (a CSP violation shows here):\n%s", strings.Join(errs, "\n"))
	}
}

// curlAuth matches the Authorization header Swagger UI shows in its curl line.
var curlAuth = regexp.MustCompile(`Authorization: (\w+)`)

// liveResponse reads the status and body Swagger UI shows for the last
// "Execute" of the operation block sel.
func liveResponse(t *testing.T, ctx context.Context, sel string) (status, body string) {
	t.Helper()
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel+" .live-responses-table tbody .response-col_status")))
	if err != nil {
		t.Fatalf("read the response status of %s: %v", sel, err)
	}
	body, err = chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel+" .live-responses-table tbody .response-col_description .microlight")))
	if err != nil {
		t.Fatalf("read the response body of %s: %v", sel, err)
	}
	if curl, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel+" .curl-command"))); err == nil {
		if m := curlAuth.FindStringSubmatch(curl); m != nil {
			t.Logf("%s sent Authorization: %s ...", sel, m[1])
		}
	}
	return strings.TrimSpace(status), strings.TrimSpace(body)
}
