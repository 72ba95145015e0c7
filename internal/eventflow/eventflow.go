// Package eventflow drives every outcome captchagate reports as an Event
// through a gate, as clients would, over real HTTP on loopback, for the
// tests of the metrics modules: each runs the scenario with its own hook and
// asserts its own exposition against the counts the scenario returns.
package eventflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/store/storetest"
)

// The account and the phone number the scenario is about, spelled so that
// they cannot appear in metrics by chance.
const (
	Account = "Carol-Zx9q"
	Phone   = "+1 555 000 7391"
)

// Options is what a metrics module's test brings to the App.
type Options struct {
	Observe        func(captchagate.Event) // the metrics' hook, chained before the App's recorder
	RawEventValues bool                    // Config.RawEventValues
	Store          captchagate.Store       // the gate's store; nil: the in-memory store
	Mount          func(*http.ServeMux)    // more routes beside the App's, such as GET /metrics
}

// App is a gate with a login (3 failures per account, then a captcha), an
// SMS sender (2 codes per number, then 429) and a search in dry run (1
// request per address, then it would refuse), its captcha endpoints and the
// routes Options.Mount adds, served over real HTTP on loopback.
type App struct {
	URL   string           // the server's base URL
	Clock *storetest.Clock // the gate's Now: Run advances it instead of sleeping

	srv *httptest.Server
	rec recorder
}

// Start serves an App until the test ends.
func Start(t *testing.T, o Options) *App {
	t.Helper()
	a := &App{Clock: storetest.NewClock()}
	gate, err := captchagate.New(captchagate.Config{
		Secret:         gatetest.Secret,
		Challenge:      gatetest.KnownDigits{}, // every answer is gatetest.Answer
		Now:            a.Clock.Now,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent:        captchagate.EventHooks(o.Observe, nil, a.rec.hook),
		RawEventValues: o.RawEventValues,
		Store:          o.Store,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gate.Close() })

	fail := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	mux.Handle("POST /login", gate.Guard(captchagate.Policy{Name: "login", MaxFailures: 3, Window: time.Hour,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}})(fail))
	mux.Handle("POST /sms", gate.Guard(captchagate.Policy{Name: "sms",
		Keys: []captchagate.Key{{Source: captchagate.JSONField("phone"), Identity: captchagate.IdentityPhone, Ceiling: 2}}})(ok))
	mux.Handle("GET /search", gate.Guard(captchagate.Policy{Name: "search", DryRun: true,
		Keys: []captchagate.Key{{Source: captchagate.ClientIP(), Ceiling: 1}}})(ok))
	if o.Mount != nil {
		o.Mount(mux)
	}
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	a.URL = a.srv.URL
	return a
}

// Get fetches path from the App, requires 200, and returns the body.
func (a *App) Get(t *testing.T, path string) []byte {
	t.Helper()
	status, _, b := a.send(t, "GET", path, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, status, b)
	}
	return b
}

// send sends a request (a JSON body if body is not nil) and returns the
// response's status, Content-Type and body.
func (a *App) send(t *testing.T, method, path string, body any, header ...string) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header.Get("Content-Type"), b
}

// Answer is a response as the scenario reads it.
type Answer struct {
	Status  int
	Token   string `json:"captcha_token"`
	Captcha *struct {
		ID       string `json:"id"`
		AudioURL string `json:"audio_url"`
	} `json:"captcha"`
}

// do sends a request (a JSON body if body is not nil) and decodes a JSON answer.
func (a *App) do(t *testing.T, method, path string, body any, header ...string) Answer {
	t.Helper()
	status, ctype, b := a.send(t, method, path, body, header...)
	ans := Answer{Status: status}
	if strings.HasPrefix(ctype, "application/json") {
		if err := json.Unmarshal(b, &ans); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return ans
}

// Expect fails the test unless ans has status, and returns ans.
func Expect(t *testing.T, status int, ans Answer, what string) Answer {
	t.Helper()
	if ans.Status != status {
		t.Fatalf("%s: status %d, want %d", what, ans.Status, status)
	}
	return ans
}

// Login posts a wrong password for Account, with the header's name, value
// pairs.
func (a *App) Login(t *testing.T, header ...string) Answer {
	t.Helper()
	return a.do(t, "POST", "/login", map[string]string{"username": Account, "password": "guess"}, header...)
}

func (a *App) verify(t *testing.T, id, digits string) Answer {
	t.Helper()
	return a.do(t, "POST", "/captcha/verify", map[string]string{"captcha_id": id, "captcha_answer": digits})
}

// Series names a series of the event counter by its labels.
func Series(policy, key, outcome, mode string) string {
	return "policy=" + policy + " key=" + key + " outcome=" + outcome + " mode=" + mode
}

// Run drives every outcome the issue names through the gate, as clients
// would, and returns the count it expects of each series (named by Series).
func (a *App) Run(t *testing.T) map[string]float64 {
	t.Helper()
	for i := 0; i < 3; i++ {
		Expect(t, http.StatusUnauthorized, a.Login(t), "a wrong password")
	}
	c1 := Expect(t, http.StatusPreconditionRequired, a.Login(t), "the fourth login").Captcha // tripped, issued
	if c1 == nil || c1.AudioURL == "" {
		t.Fatal("no captcha with audio")
	}
	Expect(t, http.StatusOK, a.do(t, "GET", c1.AudioURL, nil), "the audio")
	c2 := Expect(t, http.StatusForbidden, a.verify(t, c1.ID, "000000"), "a wrong answer").Captcha // wrong by ear, issued
	c3 := Expect(t, http.StatusOK, a.do(t, "POST", "/captcha/refresh", map[string]string{"captcha_id": c2.ID}), "refresh").Captcha
	token := Expect(t, http.StatusOK, a.verify(t, c3.ID, gatetest.Answer), "the right answer").Token         // solved by eye
	Expect(t, http.StatusForbidden, a.verify(t, c3.ID, gatetest.Answer), "a spent captcha")                  // refused
	Expect(t, http.StatusUnauthorized, a.Login(t, captchagate.TokenHeader, token), "a login with the token") // tripped, token_accepted
	c4 := Expect(t, http.StatusForbidden, a.Login(t, captchagate.TokenHeader, token), "the token again").Captcha
	a.Clock.Advance(5 * time.Minute)                                                                         // CaptchaTTL's deadline
	c5 := Expect(t, http.StatusForbidden, a.verify(t, c4.ID, gatetest.Answer), "an expired captcha").Captcha // expired, issued
	Expect(t, http.StatusOK, a.do(t, "GET", c5.AudioURL, nil), "the audio")
	Expect(t, http.StatusOK, a.verify(t, c5.ID, gatetest.Answer), "the right answer by ear") // solved by ear

	for i := 0; i < 2; i++ {
		Expect(t, http.StatusOK, a.do(t, "POST", "/sms", map[string]string{"phone": Phone}), "an SMS")
	}
	Expect(t, http.StatusTooManyRequests, a.do(t, "POST", "/sms", map[string]string{"phone": Phone}), "the third SMS") // ceiling
	Expect(t, http.StatusOK, a.do(t, "GET", "/search", nil), "a search")
	Expect(t, http.StatusOK, a.do(t, "GET", "/search", nil), "a search past the ceiling, in dry run") // ceiling, dry_run

	return map[string]float64{
		Series("login", "json:username", "tripped", ""): 1,
		Series("login", "", "issued", "image"):          4, // on the trip, after the wrong answer, the reused token and the expiry
		Series("login", "", "refreshed", "image"):       1,
		Series("login", "", "wrong", "audio"):           1,
		Series("login", "", "solved", "image"):          1,
		Series("login", "", "solved", "audio"):          1,
		Series("login", "", "expired", "image"):         1,
		Series("login", "", "refused", "image"):         1,
		Series("login", "", "token_accepted", ""):       1,
		Series("login", "", "token_refused", ""):        1,
		Series("sms", "json:phone", "ceiling", ""):      1,
		Series("search", "ip", "ceiling", ""):           1,
		Series("search", "ip", "dry_run", ""):           1,
	}
}

// Dump lists counts by series, one a line, for a test's message.
func Dump(m map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "\n  %s: %v", k, m[k])
	}
	return b.String()
}

// AssertNoValue fails the test if text, what the metrics expose (named by
// what), shows which account, number or address a lockout was about:
// an Event.Value the gate reported so far (the keyed hash, or with
// RawEventValues the value itself), or a spelling the clients sent.
func (a *App) AssertNoValue(t *testing.T, text, what string) {
	t.Helper()
	values := a.rec.values()
	if len(values) < 4 { // the trip, both ceilings and the dry run carry one
		t.Fatalf("the events carried %d values, want at least 4", len(values))
	}
	secret := append(values, Account, strings.ToLower(Account), Phone, "+15550007391", "5550007391")
	for _, v := range secret {
		if strings.Contains(text, v) {
			t.Errorf("%s: %q found", what, v)
		}
	}
}

// recorder is an application's own hook, chained beside the metrics: it
// keeps every event, so tests know the Values the metrics must not show.
type recorder struct {
	mu     sync.Mutex
	events []captchagate.Event
}

func (r *recorder) hook(e captchagate.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) values() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var vs []string
	for _, e := range r.events {
		if e.Value != "" {
			vs = append(vs, e.Value)
		}
	}
	return vs
}

// FailingStore is a captchagate.Store that fails every operation.
type FailingStore struct{}

var _ captchagate.Store = FailingStore{}

var errDown = errors.New("store down")

// Incr fails.
func (FailingStore) Incr(context.Context, string, int64, time.Duration) (int64, time.Time, error) {
	return 0, time.Time{}, errDown
}

// Reset fails.
func (FailingStore) Reset(context.Context, string) error { return errDown }

// Allow fails.
func (FailingStore) Allow(context.Context, string, time.Duration, int, bool) (bool, time.Duration, error) {
	return false, 0, errDown
}

// Put fails.
func (FailingStore) Put(context.Context, string, []byte, time.Duration) error { return errDown }

// Get fails.
func (FailingStore) Get(context.Context, string) ([]byte, bool, error) { return nil, false, errDown }

// Take fails.
func (FailingStore) Take(context.Context, string) ([]byte, bool, error) { return nil, false, errDown }
