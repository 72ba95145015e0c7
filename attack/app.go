// Package attack is the scripted attack suite of issue 16 ("Measure, and keep
// measuring"): it mounts the gate the way an application does (examples/login),
// serves it with a real net/http server on a loopback port, and attacks it over
// TCP from many source addresses of 127.0.0.0/8 while a population of
// legitimate users keeps logging in and asking for codes.
//
// The package holds the harness (the target application, source-bound
// clients, floods, the legitimate population, the measurements and the goal
// table); the scenarios run as subtests of TestAttack:
//
//	go test -run TestAttack -v ./attack          # a fifth of issue 16's sizes (CI); prints the table
//	go test -short -run TestAttack -v ./attack   # a tenth (also under -race)
//	CAPTCHAGATE_ATTACK_SCALE=1 go test -run TestAttack -v -timeout 30m ./attack  # the full sizes
//	./attack/wrk.sh                              # req/s and latency of refused requests (TestWrk)
//
// The floods are wrong passwords for unique usernames (from one address, from
// many, from the 65,536 /64s of one IPv6 /48 through a trusted proxy), captcha
// creation (POST new) and codes to unique phone numbers. Their results are
// measured and printed beside the goals of issue 16 (Goals); a goal fails the
// test only where it is enforced, on the backends where it holds today.
package attack

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// LoginPolicy is the target's login policy, as in examples/login: a captcha
// after 5 failures per username in 15 minutes or 20 per client address in an
// hour.
var LoginPolicy = captchagate.Policy{
	Name: "login",
	Keys: []captchagate.Key{
		captchagate.Username(captchagate.JSONField("username")),
		{Source: captchagate.ClientIP(), MaxFailures: IPThreshold, Window: time.Hour},
	},
	MaxFailures: 5,
	Window:      15 * time.Minute,
}

// NetThreshold is NetLoginPolicy's MaxFailures per IPv6 /48 (per IPv4
// address, as ClientIP's) in an hour.
const NetThreshold = 100

// NetLoginPolicy is LoginPolicy with a third key, the client's network
// (ClientNet(32, 48)): 100 failures an hour per IPv6 /48, so that the 65,536
// /64s of one /48 meet one counter.
var NetLoginPolicy = withKey(LoginPolicy,
	captchagate.Key{Source: captchagate.ClientNet(32, 48), MaxFailures: NetThreshold, Window: time.Hour})

func withKey(p captchagate.Policy, k captchagate.Key) captchagate.Policy {
	p.Keys = append(append([]captchagate.Key(nil), p.Keys...), k)
	return p
}

// ShortWindows returns p with every window (the policy's and its keys')
// scaled so that the policy's own window lasts w: for runs on Redis's clock,
// whose TTLs cannot be advanced, to see recovery within the run.
func ShortWindows(p captchagate.Policy, w time.Duration) captchagate.Policy {
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * float64(w) / float64(p.Window)) }
	p.Keys = append([]captchagate.Key(nil), p.Keys...)
	for i := range p.Keys {
		if p.Keys[i].Window != 0 {
			p.Keys[i].Window = scale(p.Keys[i].Window)
		}
	}
	p.Window = w
	return p
}

// SMSPolicy is the target's "send me a code" policy: per phone number a send
// rate (3 at once, then one every 20 minutes) past which a captcha is needed,
// and a hard ceiling of 10 a day; per client address 10 at once, then one a
// minute.
var SMSPolicy = captchagate.Policy{
	Name: "sms",
	Keys: []captchagate.Key{
		{Source: captchagate.JSONField("phone"), Identity: captchagate.IdentityPhone,
			Rate: rate.Every(20 * time.Minute), Burst: 3, Ceiling: 10, CeilingWindow: 24 * time.Hour},
		{Source: captchagate.ClientIP(), MaxFailures: -1, Rate: rate.Every(time.Minute), Burst: 10},
	},
}

// Password is the password of every account of the target: each username's
// password is Password+username. Attackers send anything else.
const Password = "pw-"

// Target is the attacked application: a captchagate.Gate mounted on a mux
// served by an http.Server on a free 127.0.0.1 port.
type Target struct {
	URL  string // http://127.0.0.1:port
	Gate *captchagate.Gate

	srv *http.Server
}

// NewTarget serves a login (POST /login) and a code-sending route (POST /sms)
// guarded by lp (LoginPolicy if its Name is empty; it must be named
// "login") and SMSPolicy, and the captcha endpoints under /captcha/, on a gate
// made from c. c.Challenge defaults to gatetest.KnownDigits, whose every
// captcha's answer is gatetest.Answer.
func NewTarget(c captchagate.Config, lp captchagate.Policy) (*Target, error) {
	if lp.Name == "" {
		lp = LoginPolicy
	}
	if c.Challenge == nil {
		c.Challenge = gatetest.KnownDigits{}
	}
	g, err := captchagate.New(c)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /login", g.Guard(lp)(http.HandlerFunc(login)))
	mux.Handle("POST /sms", g.Guard(SMSPolicy)(http.HandlerFunc(sendCode)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.Close()
		return nil, err
	}
	t := &Target{URL: "http://" + l.Addr().String(), Gate: g,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go t.srv.Serve(l)
	return t, nil
}

// Close stops the server and the gate.
func (t *Target) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.srv.Shutdown(ctx)
	t.Gate.Close()
}

// login answers 200 for the right password and 401 otherwise, as an
// application's login does.
func login(w http.ResponseWriter, r *http.Request) {
	var req struct{ Username, Password string }
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if req.Username == "" || subtle.ConstantTimeCompare([]byte(req.Password), []byte(Password+req.Username)) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"invalid_credentials"}`))
		return
	}
	w.Write([]byte(`{"ok":true}`))
}

// sendCode pretends to send an SMS code: 200 for any phone number.
func sendCode(w http.ResponseWriter, r *http.Request) {
	var req struct{ Phone string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil ||
		!strings.HasPrefix(req.Phone, "+") {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.Write([]byte(`{"sent":true}`))
}
