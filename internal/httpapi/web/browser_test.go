package web_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/neonauth/neonauth/internal/testserver"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// needChromium skips the test when Chromium is missing, unless NEONAUTH_REQUIRE_BROWSER=1
// (set in CI) makes that a failure.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return
	}
	if os.Getenv("NEONAUTH_REQUIRE_BROWSER") == "1" {
		t.Fatalf("%s is missing and NEONAUTH_REQUIRE_BROWSER=1; `make test` installs it",
			chromiumPath)
	}
	t.Skipf("%s is missing; `make test` installs it (apt-get install chromium)", chromiumPath)
}

// lockedBuffer collects the browser's output from its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newBrowser starts headless Chromium with a fresh profile and no network of its own: no
// background requests, no updates, no sync, no QUIC, and every host name fails to resolve,
// so it reaches only the loopback address of the test server.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	out := &lockedBuffer{}
	profile, err := os.MkdirTemp("", "neonauth-chromium-")
	if err != nil {
		t.Fatalf("profile directory: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.CombinedOutput(out),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
		removeProfile(t, profile)
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, out.String())
	}
	return ctx
}

// removeProfile deletes the browser profile, retrying while helper processes of the
// browser that outlive it still write there.
func removeProfile(t *testing.T, dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("remove the browser profile: %v", err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// open navigates and returns the HTTP status of the page.
func open(t *testing.T, ctx context.Context, url string) int64 {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return resp.Status
}

// submit clicks a button that sends a form and returns the page the browser lands on, after
// any redirect.
func submit(t *testing.T, ctx context.Context, buttonID string) *network.Response {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID(buttonID),
		chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("click #%s: %v", buttonID, err)
	}
	return resp
}

func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("read #%s: %v", id, err)
	}
	return s
}

func fill(t *testing.T, ctx context.Context, email string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("email"), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("password"), password, chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("fill the form: %v", err)
	}
}

// wantLanding checks where a form sent the browser.
func wantLanding(t *testing.T, step string, resp *network.Response, base, path string) {
	t.Helper()
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, base+path) {
		t.Fatalf("%s: landed on %s with status %d, want %s%s with 200", step, resp.URL,
			resp.Status, base, path)
	}
}

// TestBrowserTransfer drives the whole transfer in Chromium: open the link, create the
// owner account, land on the project list; the link then fails; the owner signs out and in.
func TestBrowserTransfer(t *testing.T) {
	needChromium(t)
	// The browser starts second so that it stops first: the server's shutdown would wait
	// for the connections that Chromium opens ahead of time.
	s := testserver.Start(t)
	ctx := newBrowser(t)
	p := s.CreateProject(t, "browser-alpha")
	in := s.CreateIntegration(t, p)
	path, _ := transferCode(t, s, p.ID)
	link := s.URL + path

	if st := open(t, ctx, link); st != http.StatusOK {
		t.Fatalf("confirm page: status %d", st)
	}
	if got := text(t, ctx, "project-name"); got != "browser-alpha" {
		t.Errorf("confirm page shows project %q, want browser-alpha", got)
	}
	fill(t, ctx, "owner@example.com")
	resp := submit(t, ctx, "sign-up")
	wantLanding(t, "create account and transfer", resp, s.URL, "/projects")
	list := text(t, ctx, "projects")
	if !strings.Contains(list, in.AuthProjectID) || !strings.Contains(list, "browser-alpha") {
		t.Errorf("project list %q lacks %s (browser-alpha)", list, in.AuthProjectID)
	}
	if got := text(t, ctx, "owner-email"); got != "owner@example.com" {
		t.Errorf("projects page signed in as %q, want owner@example.com", got)
	}
	wantUserOwned(t, s, p.ID)

	if st := open(t, ctx, link); st != http.StatusBadRequest {
		t.Errorf("used link in the browser: status %d, want 400", st)
	}
	if msg := text(t, ctx, "error-message"); !strings.Contains(msg, "already been used") {
		t.Errorf("used link shows %q, want a message that it was already used", msg)
	}
	if r := newVisitor(t, s).get(path); r.Status != http.StatusBadRequest {
		t.Errorf("used link over plain HTTP: status %d, want 400", r.Status)
	}

	open(t, ctx, s.URL+"/projects")
	wantLanding(t, "sign out", submit(t, ctx, "sign-out"), s.URL, "/sign-in")
	if st := open(t, ctx, s.URL+"/projects"); st != http.StatusOK {
		t.Errorf("projects after sign-out: status %d", st)
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil ||
		!strings.HasPrefix(loc, s.URL+"/sign-in") {
		t.Errorf("projects after sign-out shows %q (%v), want the sign-in page", loc, err)
	}
	fill(t, ctx, "owner@example.com")
	wantLanding(t, "sign in", submit(t, ctx, "sign-in"), s.URL, "/projects")
	if list := text(t, ctx, "projects"); !strings.Contains(list, "browser-alpha") {
		t.Errorf("project list after sign-in %q lacks browser-alpha", list)
	}
}
