package otelgate_test

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

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/metrics/otelgate"
)

// The account and the phone number the scenario is about, spelled so that
// they cannot appear in the metrics by chance.
const (
	account = "Carol-Zx9q"
	phone   = "+1 555 000 7391"
)

// clock is the gate's injected time: tests advance it instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

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

// app is a gate with a login (3 failures per account, then a captcha), an
// SMS sender (2 codes per number, then 429) and a search in dry run (1
// request per address, then it would refuse), its captcha endpoints and
// a ManualReader to collect the counts, over real HTTP on loopback.
type app struct {
	srv    *httptest.Server
	clock  *clock
	rec    *recorder
	reader *sdkmetric.ManualReader
}

func newApp(t *testing.T, raw bool) *app { return newAppOn(t, raw, nil) }

// newAppOn is newApp on store (the in-memory store if nil).
func newAppOn(t *testing.T, raw bool, store captchagate.Store) *app {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	m, err := otelgate.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	a := &app{clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, rec: &recorder{}, reader: reader}
	gate, err := captchagate.New(captchagate.Config{
		Secret:         gatetest.Secret,
		Challenge:      gatetest.KnownDigits{}, // every answer is gatetest.Answer
		Now:            a.clock.Now,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent:        captchagate.EventHooks(m.Observe, nil, a.rec.hook),
		RawEventValues: raw,
		Store:          store,
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
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

type answer struct {
	Status  int
	Token   string `json:"captcha_token"`
	Captcha *struct {
		ID       string `json:"id"`
		AudioURL string `json:"audio_url"`
	} `json:"captcha"`
}

// do sends a request (a JSON body if body is not nil) and decodes a JSON answer.
func (a *app) do(t *testing.T, method, path string, body any, header ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
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
	ans := answer{Status: res.StatusCode}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &ans); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return ans
}

func (a *app) expect(t *testing.T, status int, ans answer, what string) answer {
	t.Helper()
	if ans.Status != status {
		t.Fatalf("%s: status %d, want %d", what, ans.Status, status)
	}
	return ans
}

func (a *app) login(t *testing.T, header ...string) answer {
	t.Helper()
	return a.do(t, "POST", "/login", map[string]string{"username": account, "password": "guess"}, header...)
}

func (a *app) verify(t *testing.T, id, digits string) answer {
	t.Helper()
	return a.do(t, "POST", "/captcha/verify", map[string]string{"captcha_id": id, "captcha_answer": digits})
}

// collect reads the counts through the ManualReader and returns them in
// JSON (all that an exporter could send) and the value of each
// captchagate.events series, keyed by its attributes.
func (a *app) collect(t *testing.T) (string, map[string]float64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := a.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	text, err := json.Marshal(rm)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelgate.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "captchagate.events" || m.Unit != "{event}" || !ok || !sum.IsMonotonic {
				t.Errorf("metric %q (%q): %T", m.Name, m.Unit, m.Data)
				continue
			}
			for _, dp := range sum.DataPoints {
				l := map[string]string{}
				for _, kv := range dp.Attributes.ToSlice() {
					if kv.Value.Type() != attribute.STRING || kv.Value.AsString() == "" {
						t.Errorf("attribute %v", kv)
					}
					l[string(kv.Key)] = kv.Value.AsString()
				}
				if len(l) != dp.Attributes.Len() {
					t.Errorf("attributes %v", dp.Attributes)
				}
				got[series(l["policy"], l["key"], l["outcome"], l["mode"])] = float64(dp.Value)
			}
		}
	}
	return string(text), got
}

func series(policy, key, outcome, mode string) string {
	return "policy=" + policy + " key=" + key + " outcome=" + outcome + " mode=" + mode
}

// run drives every outcome the issue names through the gate, as clients
// would, and returns the counts it expects.
func (a *app) run(t *testing.T) map[string]float64 {
	t.Helper()
	for i := 0; i < 3; i++ {
		a.expect(t, http.StatusUnauthorized, a.login(t), "a wrong password")
	}
	c1 := a.expect(t, http.StatusPreconditionRequired, a.login(t), "the fourth login").Captcha // tripped, issued
	if c1 == nil || c1.AudioURL == "" {
		t.Fatal("no captcha with audio")
	}
	a.expect(t, http.StatusOK, a.do(t, "GET", c1.AudioURL, nil), "the audio")
	c2 := a.expect(t, http.StatusForbidden, a.verify(t, c1.ID, "000000"), "a wrong answer").Captcha // wrong by ear, issued
	c3 := a.expect(t, http.StatusOK, a.do(t, "POST", "/captcha/refresh", map[string]string{"captcha_id": c2.ID}), "refresh").Captcha
	token := a.expect(t, http.StatusOK, a.verify(t, c3.ID, gatetest.Answer), "the right answer").Token         // solved by eye
	a.expect(t, http.StatusForbidden, a.verify(t, c3.ID, gatetest.Answer), "a spent captcha")                  // refused
	a.expect(t, http.StatusUnauthorized, a.login(t, captchagate.TokenHeader, token), "a login with the token") // tripped, token_accepted
	c4 := a.expect(t, http.StatusForbidden, a.login(t, captchagate.TokenHeader, token), "the token again").Captcha
	a.clock.Advance(5 * time.Minute)                                                                           // CaptchaTTL's deadline
	c5 := a.expect(t, http.StatusForbidden, a.verify(t, c4.ID, gatetest.Answer), "an expired captcha").Captcha // expired, issued
	a.expect(t, http.StatusOK, a.do(t, "GET", c5.AudioURL, nil), "the audio")
	a.expect(t, http.StatusOK, a.verify(t, c5.ID, gatetest.Answer), "the right answer by ear") // solved by ear

	for i := 0; i < 2; i++ {
		a.expect(t, http.StatusOK, a.do(t, "POST", "/sms", map[string]string{"phone": phone}), "an SMS")
	}
	a.expect(t, http.StatusTooManyRequests, a.do(t, "POST", "/sms", map[string]string{"phone": phone}), "the third SMS") // ceiling
	a.expect(t, http.StatusOK, a.do(t, "GET", "/search", nil), "a search")
	a.expect(t, http.StatusOK, a.do(t, "GET", "/search", nil), "a search past the ceiling, in dry run") // ceiling, dry_run

	return map[string]float64{
		series("login", "json:username", "tripped", ""): 1,
		series("login", "", "issued", "image"):          4, // on the trip, after the wrong answer, the reused token and the expiry
		series("login", "", "refreshed", "image"):       1,
		series("login", "", "wrong", "audio"):           1,
		series("login", "", "solved", "image"):          1,
		series("login", "", "solved", "audio"):          1,
		series("login", "", "expired", "image"):         1,
		series("login", "", "refused", "image"):         1,
		series("login", "", "token_accepted", ""):       1,
		series("login", "", "token_refused", ""):        1,
		series("sms", "json:phone", "ceiling", ""):      1,
		series("search", "ip", "ceiling", ""):           1,
		series("search", "ip", "dry_run", ""):           1,
	}
}

// Every outcome of the flow is counted once, by policy, key name (lockouts
// only) and mode (captcha events only), and nothing else is: what the
// ManualReader collects has exactly the series the scenario makes.
func TestCountsEveryOutcome(t *testing.T) {
	t.Parallel()
	a := newApp(t, false)
	want := a.run(t)
	_, got := a.collect(t)
	if !maps.Equal(got, want) {
		t.Errorf("captchagate.events:\n got %s\nwant %s", dump(got), dump(want))
	}
}

func dump(m map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "\n  %s: %v", k, m[k])
	}
	return b.String()
}

// The metrics never carry which account, number or address a lockout was
// about: neither the keyed hash in Event.Value, nor with
// Config.RawEventValues the value itself, nor the spellings clients sent.
func TestNoValueInMetrics(t *testing.T) {
	t.Parallel()
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("RawEventValues=%v", raw), func(t *testing.T) {
			t.Parallel()
			a := newApp(t, raw)
			a.run(t)
			text, got := a.collect(t)
			if len(got) == 0 {
				t.Fatal("nothing counted")
			}
			values := a.rec.values()
			if len(values) < 4 { // the trip, both ceilings and the dry run carry one
				t.Fatalf("the events carried %d values, want at least 4", len(values))
			}
			secret := append(values, account, strings.ToLower(account), phone, "+15550007391", "5550007391")
			for _, v := range secret {
				if strings.Contains(text, v) {
					t.Errorf("the collected metrics carry %q", v)
				}
			}
		})
	}
}

// New takes the meter provider it is given, never the global one by default.
func TestNewNeedsMeterProvider(t *testing.T) {
	t.Parallel()
	if _, err := otelgate.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// A name that is not UTF-8 (a custom challenge's mode, a policy's name) is
// counted with its bad bytes replaced, and an empty one is left out.
func TestObserveInvalidUTF8(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	m, err := otelgate.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(captchagate.Event{Kind: captchagate.EventCaptchaIssued, Policy: "log\xffin", Mode: "\xfe"})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	dps := rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]).DataPoints
	want := attribute.NewSet(attribute.String("policy", "log\uFFFDin"), attribute.String("mode", "\uFFFD"), attribute.String("outcome", "issued"))
	if len(dps) != 1 || !dps[0].Attributes.Equals(&want) || dps[0].Value != 1 {
		t.Errorf("collected %+v", dps)
	}
}

// A failing store is counted as store_error, once per failed operation: the
// login's two counters of the account's key (failures and the failure
// ceiling), then, the key tripped under FailClosed, the client's captcha
// creation budget, which belongs to no policy; the request gets 503.
func TestCountsStoreErrors(t *testing.T) {
	t.Parallel()
	a := newAppOn(t, false, failingStore{})
	a.expect(t, http.StatusServiceUnavailable, a.login(t), "a login with the store down")
	_, got := a.collect(t)
	want := map[string]float64{series("login", "", "store_error", ""): 2, series("", "", "store_error", ""): 1}
	if !maps.Equal(got, want) {
		t.Errorf("got %s\nwant %s", dump(got), dump(want))
	}
}

// failingStore fails every operation.
type failingStore struct{}

var errDown = errors.New("store down")

func (failingStore) Incr(context.Context, string, int64, time.Duration) (int64, time.Time, error) {
	return 0, time.Time{}, errDown
}
func (failingStore) Reset(context.Context, string) error { return errDown }
func (failingStore) Allow(context.Context, string, time.Duration, int, bool) (bool, time.Duration, error) {
	return false, 0, errDown
}
func (failingStore) Put(context.Context, string, []byte, time.Duration) error { return errDown }
func (failingStore) Get(context.Context, string) ([]byte, bool, error)        { return nil, false, errDown }
func (failingStore) Take(context.Context, string) ([]byte, bool, error)       { return nil, false, errDown }

// Observe is safe for concurrent use: hooks run on the requests' goroutines,
// and the first events of a series race to build its attribute set.
func TestObserveConcurrent(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	m, err := otelgate.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	gatetest.Together(8, func() {
		for range 100 {
			m.Observe(captchagate.Event{Kind: captchagate.EventCaptchaVerified, Policy: "login", Mode: "image"})
			m.Observe(captchagate.Event{Kind: captchagate.EventTripped, Policy: "login", Key: "ip", Value: "h:0"})
		}
	})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, dp := range rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]).DataPoints {
		got[dp.Attributes.Encoded(attribute.DefaultEncoder())] = dp.Value
	}
	want := map[string]int64{"mode=image,outcome=solved,policy=login": 800, "key=ip,outcome=tripped,policy=login": 800}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
