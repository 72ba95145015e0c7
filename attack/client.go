package attack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/captchagate/captchagate/internal/gatetest"
)

// Address ranges of 127.0.0.0/8, one a population, so no two share a
// counter by accident. Linux accepts any 127/8 source on the loopback.
const (
	netKnown    = 1  // 127.1.0.n: the fixed users, one address each
	netNewcomer = 2  // 127.2.x.y: a fresh address for each newcomer
	netVictim   = 3  // 127.3.x.y: the failures that trip the victim's account
	netOne      = 4  // 127.4.0.1: the one-address attacker
	netProxy    = 5  // 127.5.0.1: the trusted proxy the IPv6 attackers come through
	netMany     = 16 // 127.16.0.1 and up: the many-address attackers
)

// Addr returns the n-th address (n from 0) of the population net: 127.net.x.y
// with y never 0 or 255; the many-address range continues into the next
// second octets.
func Addr(netw, n int) netip.Addr {
	per := 254 * 256
	return netip.AddrFrom4([4]byte{127, byte(netw + n/per), byte(n % per / 254), byte(n%254 + 1)})
}

type sourceKey struct{}

// withSource makes the requests made with ctx on a shared Client leave from
// src.
func withSource(ctx context.Context, src netip.Addr) context.Context {
	return context.WithValue(ctx, sourceKey{}, src)
}

// ProxyAddr is the address of the trusted reverse proxy the IPv6 floods come
// through (Config.TrustedProxies names it alone): loopback has only ::1, so
// the IPv6 clients are named in the forwarded header it appends.
var ProxyAddr = Addr(netProxy, 0)

// V6Addr returns the n-th address of the attacker's IPv6 /48: its n-th /64
// (n mod 65,536), interface ::1.
func V6Addr(n int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, byte(n >> 8), byte(n), 15: 1})
}

type forwardKey struct{}

// forward holds a forwarded header to send: name and value.
type forward struct{ name, value string }

// withForwarded makes the requests made with ctx carry the header a proxy
// appends for client: X-Forwarded-For: client, or Forwarded:
// for="[client]:port" (RFC 7239, with a port as proxies often add).
func withForwarded(ctx context.Context, header string, client netip.Addr) context.Context {
	f := forward{name: header, value: client.String()}
	if header == "Forwarded" {
		f.value = `for="` + netip.AddrPortFrom(client, 4711).String() + `"`
	}
	return context.WithValue(ctx, forwardKey{}, f)
}

// NewClient returns a client whose connections leave from src. With src
// invalid, each request's context names its source (withSource) and keep-alive
// is off, so a pooled connection never carries one address's request for
// another: a new connection per request, as many addresses send.
func NewClient(src netip.Addr) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		from := src
		if v, ok := ctx.Value(sourceKey{}).(netip.Addr); ok && !src.IsValid() {
			from = v
		}
		d := net.Dialer{Timeout: 10 * time.Second}
		if from.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
		}
		return d.DialContext(ctx, network, addr)
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 64, DisableKeepAlives: !src.IsValid(),
		DisableCompression: true, ForceAttemptHTTP2: false}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// reply is what the suite reads of an answer.
type reply struct {
	Status  int
	Captcha struct {
		ID string `json:"id"`
	} `json:"captcha"`
	Token string `json:"captcha_token"`
}

// post sends body as JSON to url with the optional captcha token, from the
// source in ctx (or the client's).
func post(ctx context.Context, c *http.Client, url string, body any, token string) (reply, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if f, ok := ctx.Value(forwardKey{}).(forward); ok {
		req.Header.Set(f.name, f.value)
	}
	if token != "" {
		req.Header.Set("X-Captcha-Token", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return reply{}, err
	}
	r := reply{Status: resp.StatusCode}
	if len(data) > 0 && data[0] == '{' {
		json.Unmarshal(data, &r)
	}
	return r, nil
}

// Outcome is how a legitimate user's attempt ended.
type Outcome int

const (
	Served        Outcome = iota // the handler answered, no captcha asked
	ServedCaptcha                // asked for a captcha, solved it, then served
	Refused                      // never reached the handler: 429, 503, or a captcha that led nowhere
	Failed                       // a transport error
)

func (o Outcome) String() string {
	return [...]string{"served", "served after captcha", "refused", "failed"}[o]
}

// solve runs one guarded request as a willing human does: on
// captcha_required it answers the captcha (gatetest.Answer) at
// /captcha/verify and retries once with the token. It returns the outcome and
// the final status.
func (t *Target) solve(ctx context.Context, c *http.Client, path string, body any) (Outcome, int) {
	r, err := post(ctx, c, t.URL+path, body, "")
	switch {
	case err != nil:
		return Failed, 0
	case r.Status < 300:
		return Served, r.Status
	case r.Status != http.StatusPreconditionRequired || r.Captcha.ID == "":
		return Refused, r.Status
	}
	v, err := post(ctx, c, t.URL+"/captcha/verify",
		map[string]string{"captcha_id": r.Captcha.ID, "captcha_answer": gatetest.Answer}, "")
	switch {
	case err != nil:
		return Failed, 0
	case v.Status != http.StatusOK || v.Token == "":
		return Refused, v.Status
	}
	r, err = post(ctx, c, t.URL+path, body, v.Token)
	switch {
	case err != nil:
		return Failed, 0
	case r.Status < 300:
		return ServedCaptcha, r.Status
	}
	return Refused, r.Status
}

// Login logs user in with the right password from c.
func (t *Target) Login(ctx context.Context, c *http.Client, user string) (Outcome, int) {
	return t.solve(ctx, c, "/login", map[string]string{"username": user, "password": Password + user})
}

// SendCode asks for a code to phone from c.
func (t *Target) SendCode(ctx context.Context, c *http.Client, phone string) (Outcome, int) {
	return t.solve(ctx, c, "/sms", map[string]string{"phone": phone})
}

// Guess sends a wrong password for user from c and returns the status.
func (t *Target) Guess(ctx context.Context, c *http.Client, user string) (int, error) {
	r, err := post(ctx, c, t.URL+"/login", map[string]string{"username": user, "password": "guess"}, "")
	return r.Status, err
}

// NewCaptcha asks POST /captcha/new for a captcha of the login policy, as a
// form that always shows one does, and returns the status.
func (t *Target) NewCaptcha(ctx context.Context, c *http.Client) (int, error) {
	r, err := post(ctx, c, t.URL+"/captcha/new", map[string]string{"policy": "login"}, "")
	return r.Status, err
}

// Send asks for a code to phone without solving anything and returns the
// status.
func (t *Target) Send(ctx context.Context, c *http.Client, phone string) (int, error) {
	r, err := post(ctx, c, t.URL+"/sms", map[string]string{"phone": phone}, "")
	return r.Status, err
}

func phone(n int) string { return fmt.Sprintf("+1555%07d", n) }
