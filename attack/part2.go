package attack

// Part 2 of the attack suite (issue 17, "Hold against a determined
// attacker, part 2"): an attacker with a perfect captcha solver against the
// owner's budgets (account keys that never reset on success, the failure
// ceiling, device cookies), the site-wide key, proof scope, and the same on
// Redis across instances. The harness is here, the scenarios in
// part2_scenarios.go; TestAttackPart2 runs them on each backend and prints
// one table:
//
//	go test -run TestAttackPart2 -v ./attack

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/memstore"
	"github.com/captchagate/captchagate/store/redisstore"
	"github.com/captchagate/captchagate/store/storetest"
)

// The part-2 target's thresholds.
const (
	// P2MaxFailures is the login policy's failures per account (and per
	// known device) in P2Window before a captcha.
	P2MaxFailures = 5
	P2Window      = 15 * time.Minute
	// P2FailureCeiling is the account key's failure ceiling a day: the
	// default (Key.FailureCeiling 0), 100.
	P2FailureCeiling = 100
	// P2IPFailures is the failures per client address a day before a
	// captcha: high, so that one address is not the key an attacker meets.
	P2IPFailures = 1000
	// P2SiteFailures is the site-wide key's (Everyone) failures per
	// P2Window before every login needs a captcha.
	P2SiteFailures = 200

	// P2PhoneBurst and P2PhoneCeiling: codes per phone number at once
	// before a captcha, and a day in all.
	P2PhoneBurst   = 3
	P2PhoneCeiling = 10
	// P2SiteSendBurst and P2SiteSendCeiling: codes site wide at once before
	// everyone needs a captcha, and a day in all.
	P2SiteSendBurst   = 50
	P2SiteSendCeiling = 200

	// P2CreateBurst is the target's captchas per client address at once
	// (Config.CreateBurst), lifted so that part 1's creation budget is not
	// what stops a solver from one address here.
	P2CreateBurst = 10_000
)

// CanonicalIdentities says whether the core counts an identity however it
// is written as one key: a phone number ("+1 (555) 000-1234", "001 555 000
// 1234", fullwidth and Arabic-Indic digits), a username under Unicode case
// folding and NFKC (fullwidth letters). It does (canon.go): the goals of 6b
// and 9b are enforced.
var CanonicalIdentities = true

// P2LoginPolicy is the part-2 login policy: per account 5 failures in 15
// minutes, then a captcha, and the default failure ceiling of 100 a day;
// per address 1000 failures a day; site wide 200 failures in 15 minutes;
// device cookies.
func P2LoginPolicy() captchagate.Policy {
	return captchagate.Policy{
		Name: "login",
		Keys: []captchagate.Key{
			captchagate.Username(captchagate.JSONField("username")),
			{Source: captchagate.ClientIP(), MaxFailures: P2IPFailures, Window: 24 * time.Hour},
			{Source: captchagate.Everyone(), MaxFailures: P2SiteFailures, Window: P2Window},
		},
		MaxFailures: P2MaxFailures,
		Window:      P2Window,
		Devices:     &captchagate.Devices{},
	}
}

// P2SMSPolicy is the part-2 code-sending policy: per number 3 at once, then
// one every 20 minutes without a captcha, and 10 a day in all; per address
// 10 at once, then one a minute; site wide 50 at once, then one a second,
// and 200 a day in all.
func P2SMSPolicy() captchagate.Policy {
	ph := captchagate.Phone(captchagate.JSONField("phone"))
	ph.Rate, ph.Burst, ph.Ceiling, ph.CeilingWindow = rate.Every(20*time.Minute), P2PhoneBurst, P2PhoneCeiling, 24*time.Hour
	return captchagate.Policy{
		Name: "sms",
		Keys: []captchagate.Key{
			ph,
			{Source: captchagate.ClientIP(), MaxFailures: -1, Rate: rate.Every(time.Minute), Burst: 10},
			{Source: captchagate.Everyone(), MaxFailures: -1, Rate: rate.Every(time.Second), Burst: P2SiteSendBurst,
				Ceiling: P2SiteSendCeiling, CeilingWindow: 24 * time.Hour},
		},
	}
}

// SessionHeader names the part-2 target's session: a request carrying it
// has a captchagate.Session with that ID (a stand-in for a session layer).
const SessionHeader = "X-Session"

// P2Target is the part-2 application: POST /login (Succeed on the right
// password, 401 otherwise), POST /sms, and the captcha endpoints, guarded by
// P2LoginPolicy and P2SMSPolicy, served on a free 127.0.0.1 port.
type P2Target struct {
	URL  string
	Gate *captchagate.Gate
	// Flush waits for the store's writes behind (Redis), so that another
	// instance sees them.
	Flush func()

	srv     *http.Server
	logins  atomic.Int64 // requests the login handler saw
	mu      sync.Mutex
	reached map[string]int // login handler calls by username
	sent    atomic.Int64   // codes sent
}

func newP2Target(cfg captchagate.Config, flush func()) (*P2Target, error) {
	g, err := captchagate.New(cfg)
	if err != nil {
		return nil, err
	}
	t := &P2Target{Gate: g, Flush: flush, reached: map[string]int{}}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /login", g.Guard(P2LoginPolicy())(http.HandlerFunc(t.login)))
	mux.Handle("POST /sms", g.Guard(P2SMSPolicy())(http.HandlerFunc(t.sendCode)))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := r.Header.Get(SessionHeader); s != "" {
			r = captchagate.WithSession(r, &captchagate.Session{ID: []byte(s)})
		}
		mux.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.Close()
		return nil, err
	}
	t.URL = "http://" + l.Addr().String()
	t.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go t.srv.Serve(l)
	return t, nil
}

// Close stops the server and the gate.
func (t *P2Target) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.srv.Shutdown(ctx)
	t.Gate.Close()
}

// Reached returns how many requests for user the login handler saw.
func (t *P2Target) Reached(user string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reached[user]
}

func (t *P2Target) login(w http.ResponseWriter, r *http.Request) {
	var req struct{ Username, Password string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Username == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	t.logins.Add(1)
	t.mu.Lock()
	t.reached[req.Username]++
	t.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if subtle.ConstantTimeCompare([]byte(req.Password), []byte(Password+req.Username)) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"invalid_credentials"}`))
		return
	}
	captchagate.Succeed(r)
	w.Write([]byte(`{"ok":true}`))
}

// sendCode pretends to send a code to any number, however written: an SMS
// provider reads "001 555…" and "+1 (555)…" as one number.
func (t *P2Target) sendCode(w http.ResponseWriter, r *http.Request) {
	var req struct{ Phone string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Phone == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	t.sent.Add(1)
	w.Write([]byte(`{"sent":true}`))
}

// P2Backend is the store the part-2 scenarios run on: the in-memory store,
// or a Redis (noeviction) started for the backend's run, each scenario under
// a key prefix of its own.
type P2Backend struct {
	Name  string
	Redis bool
	// Cluster runs Redis as a Cluster of three masters and three replicas.
	Cluster bool
}

// P2Backends are memstore, Redis, and a Redis Cluster.
var P2Backends = []P2Backend{{Name: "memstore"}, {Name: "redis noeviction", Redis: true},
	{Name: "redis cluster noeviction", Redis: true, Cluster: true}}

// P2Sizes scale part 2.
type P2Sizes struct {
	Attackers     int // concurrent attackers (scenario 3)
	AttackGuesses int // attacker attempts with a solver (scenario 3)
	OwnerRounds   int // owner logins after the attack (scenario 3)
	TokenTrials   int // captchas each tried by TokenRacers requests at once (scenario 2)
	TokenRacers   int
	SprayAccounts int // scenario 5: one wrong guess at each
	SprayAddrs    int
	SMSAttempts   int // scenario 6a, 6b: attempts at one number
	SMSNumbers    int // scenario 6c: unique numbers from unique addresses
}

// P2Full are issue 17's sizes; -short divides what can be divided.
var P2Full = P2Sizes{Attackers: 16, AttackGuesses: 2000, OwnerRounds: 10, TokenTrials: 10, TokenRacers: 8,
	SprayAccounts: 1000, SprayAddrs: 200, SMSAttempts: 60, SMSNumbers: 400}

// Short returns s for -short and -race runs.
func (s P2Sizes) Short() P2Sizes {
	s.Attackers, s.AttackGuesses, s.OwnerRounds, s.TokenTrials = 8, 500, 5, 5
	s.SMSNumbers = 300
	return s
}

// P2Env is one backend's run: the injected clock the gates and stores
// share, the Redis server, source addresses, and the rows measured.
type P2Env struct {
	t       testing.TB
	ctx     context.Context
	b       P2Backend
	s       P2Sizes
	clk     *storetest.Clock
	srv     *redistest.Server
	cluster *redistest.Cluster
	any     *http.Client
	addrs   atomic.Int64
	prefix  atomic.Int64
	errs    atomic.Int64
	quietLg *slog.Logger
}

// netP2 is part 2's address range: 127.64.x.y and up.
const netP2 = 64

// NewP2Env starts b (a redis-server for a Redis backend) for t.
func NewP2Env(t testing.TB, b P2Backend, s P2Sizes) *P2Env {
	e := &P2Env{t: t, ctx: context.Background(), b: b, s: s, any: NewClient(netip.Addr{}),
		quietLg: slog.New(slog.NewTextHandler(io.Discard, nil))}
	t.Cleanup(e.any.CloseIdleConnections)
	switch {
	case b.Cluster:
		e.cluster = redistest.StartCluster(t, redistest.ClusterOptions{}) // noeviction is Redis's default
	case b.Redis:
		e.srv = redistest.Start(t)
		c := redis.NewClient(&redis.Options{Addr: e.srv.Addr})
		must(t, c.ConfigSet(e.ctx, "maxmemory-policy", "noeviction").Err())
		c.Close()
	}
	return e
}

// Errors is how many requests got no answer.
func (e *P2Env) Errors() int64 { return e.errs.Load() }

// addr returns a source address not used before in this run.
func (e *P2Env) addr() netip.Addr { return Addr(netP2, int(e.addrs.Add(1))) }

// fresh starts a scenario: a new clock. Its targets share it.
func (e *P2Env) fresh() { e.clk = storetest.NewClock() }

// targets returns n instances of the target sharing one store (one
// memstore, or one Redis key prefix through a client and store each) and
// the gate's secret, on the scenario's clock.
func (e *P2Env) targets(n int) []*P2Target {
	var ms *memstore.Store
	prefix := fmt.Sprintf("p2-%d:", e.prefix.Add(1))
	if !e.b.Redis {
		ms = memstore.New(memstore.Options{Now: e.clk.Now, CleanupInterval: -1})
		e.t.Cleanup(func() { ms.Close() })
	}
	ts := make([]*P2Target, n)
	for i := range ts {
		cfg := captchagate.Config{Secret: gatetest.Secret, Challenge: gatetest.KnownDigits{}, Now: e.clk.Now,
			StoreTimeout: 5 * time.Second, CreateBurst: P2CreateBurst, Logger: e.quietLg}
		flush := func() {}
		if e.b.Redis {
			var c redis.UniversalClient
			if e.b.Cluster {
				c = newClusterClient(e.t, e.cluster)
			} else {
				c = redis.NewClient(&redis.Options{Addr: e.srv.Addr, ContextTimeoutEnabled: true, PoolSize: 32})
				e.t.Cleanup(func() { c.Close() })
			}
			st, err := redisstore.New(c, redisstore.Options{Prefix: prefix, Now: e.clk.Now, Logger: e.quietLg})
			must(e.t, err)
			e.t.Cleanup(func() { st.Close() })
			cfg.Store = st
			flush = func() {
				ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
				defer cancel()
				st.Flush(ctx)
			}
		} else {
			cfg.Store = ms
		}
		t, err := newP2Target(cfg, flush)
		must(e.t, err)
		e.t.Cleanup(t.Close)
		ts[i] = t
	}
	return ts
}

func (e *P2Env) target() *P2Target { return e.targets(1)[0] }

// p2req is one request to a target.
type p2req struct {
	path    string
	body    map[string]string
	src     netip.Addr
	token   string
	cookie  string // the device cookie's value
	session string
}

// p2resp is what part 2 reads of an answer.
type p2resp struct {
	status     int
	code       int    // error_code
	captchaID  string // of a 428
	token      string // of a verify
	device     string // the device cookie set, if any
	retryAfter string
}

func (r p2resp) reached() bool {
	return r.status == http.StatusOK || r.status == http.StatusUnauthorized
}

// send sends q to t; a transport error is counted (Errors) and answered
// status 0.
func (e *P2Env) send(t *P2Target, q p2req) p2resp {
	b, _ := json.Marshal(q.body)
	req, err := http.NewRequestWithContext(withSource(e.ctx, q.src), http.MethodPost, t.URL+q.path, bytes.NewReader(b))
	must(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	if q.token != "" {
		req.Header.Set("X-Captcha-Token", q.token)
	}
	if q.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "captchagate_device", Value: q.cookie})
	}
	if q.session != "" {
		req.Header.Set(SessionHeader, q.session)
	}
	resp, err := e.any.Do(req)
	if err != nil {
		e.errs.Add(1)
		return p2resp{}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	r := p2resp{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	var body struct {
		Code    int `json:"error_code"`
		Captcha struct {
			ID string `json:"id"`
		} `json:"captcha"`
		Token string `json:"captcha_token"`
	}
	if len(data) > 0 && data[0] == '{' {
		json.Unmarshal(data, &body)
	}
	r.code, r.captchaID, r.token = body.Code, body.Captcha.ID, body.Token
	for _, c := range resp.Cookies() {
		if c.Name == "captchagate_device" {
			r.device = c.Value
		}
	}
	return r
}

// solve answers captcha id (the perfect solver) and returns the token, or
// "".
func (e *P2Env) solve(t *P2Target, id string, src netip.Addr, session string) string {
	r := e.send(t, p2req{path: "/captcha/verify", src: src, session: session,
		body: map[string]string{"captcha_id": id, "captcha_answer": gatetest.Answer}})
	return r.token
}

// attempt sends q; on captcha_required it solves the captcha and sends q
// again with the token. It returns the last answer and whether a captcha
// was solved.
func (e *P2Env) attempt(t *P2Target, q p2req) (p2resp, bool) {
	r := e.send(t, q)
	if r.status != http.StatusPreconditionRequired || r.captchaID == "" {
		return r, false
	}
	q.token = e.solve(t, r.captchaID, q.src, q.session)
	if q.token == "" {
		return r, false
	}
	return e.send(t, q), true
}

func guess(user string, src netip.Addr) p2req {
	return p2req{path: "/login", src: src, body: map[string]string{"username": user, "password": "guess"}}
}

func rightLogin(user string, src netip.Addr) p2req {
	return p2req{path: "/login", src: src, body: map[string]string{"username": user, "password": Password + user}}
}

func smsTo(phone string, src netip.Addr) p2req {
	return p2req{path: "/sms", src: src, body: map[string]string{"phone": phone}}
}

// P2Row is one line of the part-2 table.
type P2Row struct {
	ID      string // scenario and line: "1a"
	Measure string
	Goal    string // "" for a line that only reports
	Value   string
	Pass    bool
	// Enforced: the test fails on this row when Pass is false. Each
	// scenario says in a comment which defence each goal guards.
	Enforced bool
	Note     string // why a goal is not enforced
	// NA: the line does not apply on this backend (no verdict).
	NA bool
}

func (r P2Row) verdict() string {
	if r.Goal == "" || r.NA {
		return ""
	}
	v := "FAIL"
	if r.Pass {
		v = "PASS"
	}
	if r.Enforced {
		return " **" + v + "**"
	}
	return " " + v + " (not enforced: " + r.Note + ")"
}

// WriteP2Table writes the rows of each backend (the same lines in the same
// order) as one Markdown table, a column a backend.
func WriteP2Table(w io.Writer, names []string, rows [][]P2Row) {
	fmt.Fprintf(w, "| # | measure | goal | %s |\n", strings.Join(names, " | "))
	fmt.Fprintf(w, "|---|---|---|%s\n", strings.Repeat("---|", len(names)))
	if len(rows) == 0 {
		return
	}
	// The first backend that measured a line names it.
	for i := range rows[0] {
		r := rows[0][i]
		for _, rs := range rows {
			if i < len(rs) && !rs[i].NA {
				r = rs[i]
				break
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s |", r.ID, r.Measure, cmpStr(r.Goal, "—"))
		for _, rs := range rows {
			if i < len(rs) {
				fmt.Fprintf(w, " %s%s |", rs[i].Value, rs[i].verdict())
			} else {
				fmt.Fprint(w, " — |")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Reached: a guess the login handler saw (401). Verdicts in bold are enforced: the test fails if one turns FAIL.")
}

func cmpStr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func pct(n, of int) string {
	if of == 0 {
		return "0/0"
	}
	return fmt.Sprintf("%d/%d (%.0f%%)", n, of, 100*float64(n)/float64(of))
}

// statusList formats a status count map ordered by status.
func statusList(m map[int]int) string {
	var parts []string
	for st := 0; st < 600; st++ {
		if n := m[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d×%d", n, st))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
