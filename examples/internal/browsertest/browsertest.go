// Package browsertest starts headless Chromium for end-to-end tests, through
// github.com/chromedp/chromedp. Without Chromium the tests skip, unless
// CAPTCHAGATE_REQUIRE_BROWSER=1 is set (as CI does), which makes that a
// failure. SpyGate gives the servers under test a gate whose answers the
// tests can read.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds Chromium: $CHROMIUM, /usr/bin/chromium, or chromium on PATH.
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// New starts a headless Chromium with a fresh profile for t and returns a
// context of its first tab, bounded by timeout. Everything stops when t ends.
func New(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	bin := Path()
	if bin == "" {
		msg := "Chromium not found; install it (Debian/Ubuntu: apt-get install chromium) to run the browser tests"
		if os.Getenv("CAPTCHAGATE_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (CAPTCHAGATE_REQUIRE_BROWSER=1 is set)")
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(640, 860),
	)
	// Starting the browser is tried twice: on a loaded CI machine Chromium
	// has once exited during its start ("chrome failed to start"), before
	// any page. This is the launch only; nothing a page or a client
	// answers is ever retried.
	var err error
	for attempt := range 2 {
		o := append(opts[:len(opts):len(opts)], chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")))
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), o...)
		ctx, cancelCtx := chromedp.NewContext(actx)
		ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
		stop := func() {
			cancelTimeout()
			cancelCtx()
			cancelAlloc()
		}
		if err = chromedp.Do(ctx); err == nil { // starts the browser
			t.Cleanup(stop)
			return ctx
		}
		stop()
		if attempt == 0 {
			t.Logf("browsertest: starting %s failed, starting it once more: %v", bin, err)
		}
	}
	t.Fatalf("browsertest: starting %s: %v", bin, err)
	return nil
}

// Shots saves screenshots of a test's states: always under the test's temp
// dir; with CAPTCHAGATE_SCREENSHOTS=dir set, also into dir (the README's
// pictures are refreshed with CAPTCHAGATE_SCREENSHOTS=$PWD/docs).
type Shots struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	keep   string
	prefix string
}

// NewShots returns a Shots for the browser ctx; names start with prefix.
func NewShots(t *testing.T, ctx context.Context, prefix string) *Shots {
	return &Shots{t: t, ctx: ctx, dir: t.TempDir(), keep: os.Getenv("CAPTCHAGATE_SCREENSHOTS"), prefix: prefix}
}

// Take saves a screenshot of the page as prefix-name.png.
func (s *Shots) Take(name string) {
	s.t.Helper()

	png, err := chromedp.Run(s.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	file := s.prefix + "-" + name + ".png"
	if err := os.WriteFile(filepath.Join(s.dir, file), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
	if s.keep != "" {
		if err := os.WriteFile(filepath.Join(s.keep, file), png, 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
}

// Wait polls the JavaScript expression until it is truthy.
func Wait(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	// A poll running while the page navigates fails ("target navigated"):
	// poll again on the new page.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second)))
		if err == nil {
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			t.Fatalf("waiting for %s (%s): %v", what, expr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Eval evaluates expr (awaiting a promise it returns) and decodes its value.
func Eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// Do runs actions, failing the test on error.
func Do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// Submit clicks sel and waits for the page it leads to.
func Submit(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	Eval[bool](t, ctx, `window.__before = true`)
	Do(t, ctx, chromedp.Click(sel))
	Wait(t, ctx, "the next page", `!window.__before && document.readyState === "complete"`)
}

// ImageID returns the id of the captcha whose image the page shows.
func ImageID(t *testing.T, ctx context.Context) string {
	t.Helper()
	src := Eval[string](t, ctx, `document.querySelector("[data-cg-image]").getAttribute("src")`)
	return strings.TrimSuffix(path.Base(src), ".png")
}

// ImageLoaded is a JavaScript predicate: the captcha image has loaded and is
// not the image old (a src).
func ImageLoaded(old string) string {
	return `(function(){ const i = document.querySelector("[data-cg-image]");
		return i && i.complete && i.naturalWidth > 0 && i.getAttribute("src") !== ` + strconv.Quote(old) + `; })()`
}

// PlayableAudio is a JavaScript promise of the duration in seconds of the
// widget's audio once the browser can play it through (-1 on a media error).
const PlayableAudio = `new Promise(function (resolve) {
	const a = document.querySelector("[data-cg-audio]");
	a.addEventListener("canplaythrough", function () { resolve(a.duration); }, { once: true });
	a.addEventListener("error", function () { resolve(-1); }, { once: true });
	a.preload = "auto";
	a.load();
})`
