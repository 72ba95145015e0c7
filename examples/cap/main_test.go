package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/capwidget"
	"github.com/captchagate/captchagate/examples/internal/browsertest"
	"github.com/captchagate/captchagate/store/memstore"
)

// needWidget skips t without the npm-installed Cap widget, or fails it
// with CAPTCHAGATE_REQUIRE_BROWSER=1.
func needWidget(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(widgetScript()); err != nil {
		msg := "the Cap widget is not installed; run: npm ci --prefix examples/cap/web"
		if os.Getenv("CAPTCHAGATE_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// spy counts what the gate answered: its events, and the status of every
// request the widget made to the dialect's endpoints.
type spy struct {
	mu         sync.Mutex
	events     map[captchagate.EventKind]int
	challenges []int // statuses of POST {id}/challenge
	redeems    []int // statuses of POST {id}/redeem
	ids        map[string]bool
}

func (s *spy) record(e captchagate.Event) {
	s.mu.Lock()
	s.events[e.Kind]++
	s.mu.Unlock()
}

func (s *spy) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
		id, action, _ := strings.Cut(rest, "/")
		if !ok || r.Method != http.MethodPost || (action != "challenge" && action != "redeem") {
			next.ServeHTTP(w, r)
			return
		}
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.ids[id] = true
		if action == "challenge" {
			s.challenges = append(s.challenges, rec.status)
		} else {
			s.redeems = append(s.redeems, rec.status)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *spy) snapshot() (events map[captchagate.EventKind]int, challenges, redeems []int, ids int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	events = map[captchagate.EventKind]int{}
	for k, v := range s.events {
		events[k] = v
	}
	return events, append([]int(nil), s.challenges...), append([]int(nil), s.redeems...), len(s.ids)
}

// The unmodified Cap widget, installed from npm, solves the challenge the
// gate issues for a tripped sign-in and redeems it through the dialect;
// the page retries with the widget's token, which the guard accepts. Every
// proof the widget sends must be accepted the first time: the test counts
// the gate's answers to the widget (each challenge and redeem 200, one
// redeem a solve, no refusal), over several solves.
func TestCapWidgetInBrowser(t *testing.T) {
	needWidget(t)
	s := &spy{events: map[captchagate.EventKind]int{}, ids: map[string]bool{}}
	store := memstore.New(memstore.Options{})
	t.Cleanup(func() { store.Close() })
	// Small enough for the widget's JavaScript solver on a shared machine,
	// large enough that a wrong number never passes by chance.
	pow := capwidget.ProofOfWork{Count: 12, TargetLen: 3}
	gate, err := NewGate(store, pow, captchagate.Config{
		OnEvent: s.record,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	srv := httptest.NewServer(s.wrap(NewApp(gate, widgetScript())))
	t.Cleanup(srv.Close)

	ctx := browsertest.New(t, 150*time.Second)
	shots := browsertest.NewShots(t, ctx, "cap")
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	clear := func() { browsertest.ClearState(t, ctx) }
	b(chromedp.Navigate(srv.URL+"/"), chromedp.SendKeys("#username", "alice"), chromedp.SendKeys("#password", "nope"))
	browsertest.Wait(t, ctx, "the cap-widget element", `!!customElements.get("cap-widget")`)
	for i := range 3 {
		clear()
		b(chromedp.Click("#go"))
		assert.Contains(t, browsertest.State(t, ctx, "problem"), "wrong username or password", "attempt %d", i+1)
	}
	ev, _, _, _ := s.snapshot()
	require.Zero(t, ev[captchagate.EventCaptchaIssued], "no captcha before the threshold")

	const solves = 4
	for i := range solves {
		if i == solves-1 {
			b(chromedp.SetValue("#password", "demo"))
		}
		clear()
		b(chromedp.Click("#go"))
		assert.Contains(t, browsertest.State(t, ctx, "info"), "confirm you are human", "solve %d", i+1)
		browsertest.Wait(t, ctx, "the widget", `(function(){var w=document.querySelector("#captcha cap-widget");
			return !!(w && w.shadowRoot && w.shadowRoot.querySelector(".captcha-trigger"));})()`)
		if i == 0 {
			shots.Take("widget")
		}
		pt := browsertest.Eval[[]float64](t, ctx, `(function(){var r=document.querySelector("#captcha cap-widget").shadowRoot
			.querySelector(".captcha-trigger").getBoundingClientRect(); return [r.left+r.width/2, r.top+r.height/2];})()`)
		require.Len(t, pt, 2)
		if i == 1 {
			// The visitor moves the mouse and waits: the widget starts
			// solving by itself 2.5 s after the first interaction and
			// redeems before the click (its speculative solve), which
			// then only hands over the token.
			b(chromedp.MouseEvent(chromedp.MouseMoved, pt[0]-40, pt[1]-40))
			waitFor(t, "the widget's own redeem", func() bool { _, _, r, _ := s.snapshot(); return len(r) == i+1 })
			ev, _, _, _ := s.snapshot()
			require.Equal(t, i, ev[captchagate.EventTokenAccepted], "nothing signed in before the click")
		}
		// The visitor clicks the widget's box: a real mouse click where
		// it is drawn.
		b(chromedp.MouseClickXY(pt[0], pt[1]))
		if i == solves-1 {
			assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as alice")
		} else {
			assert.Contains(t, browsertest.State(t, ctx, "problem"), "wrong username or password", "solve %d", i+1)
		}
		ev, challenges, redeems, ids := s.snapshot()
		require.Equal(t, i+1, ids, "solve %d: one captcha a solve", i+1)
		for _, st := range challenges {
			require.Equal(t, http.StatusOK, st, "solve %d: every challenge served (%v)", i+1, challenges)
		}
		require.Equal(t, slicesOf(http.StatusOK, i+1), redeems, "solve %d: the widget's first redeem accepted, once a solve", i+1)
		require.Zero(t, ev[captchagate.EventCaptchaRejected], "solve %d: no refusal", i+1)
		require.Equal(t, i+1, ev[captchagate.EventCaptchaVerified], "solve %d: one verification a solve", i+1)
		require.Equal(t, i+1, ev[captchagate.EventTokenAccepted], "solve %d: its token let the sign-in through", i+1)
		require.Zero(t, ev[captchagate.EventTokenRefused], "solve %d", i+1)
	}
	shots.Take("signed-in")
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
	}
}

func slicesOf(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}
