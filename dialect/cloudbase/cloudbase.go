// Package cloudbase is the dialect of the CloudBase auth SDK (npm
// @cloudbase/oauth, bundled in @cloudbase/js-sdk) for captchagate: the
// SDK's own captcha handling works against a gate, unmodified.
//
// What the SDK does (read from @cloudbase/oauth 3.3.3, src/captcha/captcha.ts,
// src/oauth2client/oauth2client.ts, src/auth/apis.ts):
//
//   - it sends JSON bodies without a Content-Type (fetch then says
//     text/plain) and adds client_id to the query;
//   - it detects a captcha by the "error" member alone ("captcha_required"
//     or "captcha_invalid"), whatever the status or "error_code";
//   - it then asks POST {api}/v1/captcha/data {"state":"POST:/v1/signin",
//     "redirect_uri":""} for {data, type, token, expires_in}, data being a
//     data: URL of the picture, and hands it to its captcha UI
//     (captchaOptions.openURIWithCallback), which verifies with POST
//     {api}/v1/captcha/data/verify {"token","key"} and resolves with
//     {captcha_token, expires_in};
//   - it retries the original request once, with captcha_token in the query;
//   - it caches that token for expires_in − 10 seconds, for every later
//     request of the client;
//   - its captcha endpoints go through the same request wrapper, so an
//     answer refused with "captcha_invalid" would start a captcha for the
//     verify call itself;
//   - its default modal accepts at most 4 characters.
//
// How the dialect meets each:
//
//   - ErrorHandler writes every gate error as {"error","error_code",
//     "error_description"}; a guard's captcha_required and captcha_invalid
//     keep their names, so the SDK starts its captcha flow.
//   - The SDK never reads the captcha of a guard's answer: it asks for one by
//     state. ErrorHandler therefore remembers the captcha the guard issued
//     under the client's x-device-id header (sent by the SDK on every
//     request) and the request's state, and POST data hands out that very
//     captcha, bound like every guard captcha to the flow's keys. A second
//     POST data for the same device and state is the UI's refresh:
//     Gate.Refresh, counted against the flow's refresh limit. With nothing
//     remembered (a withCaptcha request asks first), a state listed in
//     Options.States gets a captcha up front (Gate.NewCaptcha), which opens
//     no tripped account, as the gate's own POST new does not.
//   - POST data/verify answers a wrong answer with "invalid_argument"
//     (error_code 4002), never captcha_invalid, so the SDK's UI shows the
//     error and refreshes instead of nesting a captcha; the fresh captcha
//     the gate issued for the flow is what that refresh hands out.
//   - The verify answer reports expires_in 9 (or less, with a shorter
//     Config.TokenTTL): the SDK then stores the token as already expired
//     (expires_in − 10 < 0) and asks for a new captcha the next time one is
//     needed, instead of replaying a spent single-use token that it could
//     not recover from. The token itself keeps Config.TokenTTL and single
//     use; the SDK spends it within milliseconds, on its one retry.
//   - ReadProof takes captcha_token from the query.
//   - Challenge is Digits of Options.Digits (4) digits, what the modal takes.
//
// Mount the gate's Handler at Prefix() (Config.Prefix), the SDK's
// {apiPath}/v1/captcha/:
//
//	d, err := cloudbase.New(cloudbase.Options{States: map[string]string{"POST:/v1/verification": "sms"}})
//	gate, err := captchagate.New(captchagate.Config{
//		Prefix:       d.Prefix(),      // "/auth/v1/captcha/"
//		Challenge:    d.Challenge(),   // 4 digits
//		Dialects:     []captchagate.Dialect{d},
//		ErrorHandler: d.WriteError,
//	})
//	mux.Handle(d.Prefix(), gate.Handler())
//	mux.Handle("POST /auth/v1/signin", gate.Guard(signinPolicy)(signin))
package cloudbase

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/store/memstore"
)

// Wire names of the dialect's own errors (the "error" member).
const (
	// ErrorInvalidArgument answers a refused answer on data/verify (with
	// error_code 4002, the gate's captcha_invalid): the SDK treats it as a
	// plain failure. A malformed request to the captcha endpoints is the
	// gate's invalid_request.
	ErrorInvalidArgument = "invalid_argument"
)

// DeviceHeader is the header in which the SDK sends its device id
// (@cloudbase/oauth keeps a random UUID in its storage).
const DeviceHeader = "X-Device-Id"

// MaxReportedExpiresIn is the longest expires_in the verify answer reports:
// the SDK caches a token for expires_in − 10 seconds, so at 9 its cached
// copy is expired as it is stored.
const MaxReportedExpiresIn = 9 * time.Second

const (
	maxDevice = 128 // longest x-device-id remembered (the SDK's are 16–48)
	maxState  = 256 // longest state
)

// Options configures the dialect. The zero value is the SDK's defaults.
type Options struct {
	// APIPath is the path the SDK's requests start with: apiOrigin's path
	// followed by apiPath. Default "/auth", the SDK's AUTH_API_PREFIX. A
	// request's state is its method, ':' and its path after APIPath
	// ("POST:/v1/signin"), as the SDK computes it.
	APIPath string
	// Digits is the number of digits of Challenge. Default 4, the most the
	// SDK's modal accepts.
	Digits int
	// States maps a state to the policy whose captcha POST data issues up
	// front when no guard asked this device for one (the SDK's withCaptcha
	// requests ask before sending). Such a captcha opens no tripped account
	// key (see docs/protocol.md, POST new). Default none: such a request is
	// refused with invalid_argument.
	States map[string]string
	// Store keeps which captcha each device's flow was shown, for
	// Options.TTL: a Store shared by every instance (the gate's Redis store
	// with another prefix) for several instances. Default an in-memory
	// store of MaxPending entries, closed by Close.
	Store captchagate.Store
	// Prefix is prepended to the Store keys. Default "cloudbase:".
	Prefix string
	// TTL is how long a remembered captcha is kept. Default 5 minutes (the
	// gate's default CaptchaTTL); a captcha that expired earlier is
	// forgotten when found.
	TTL time.Duration
	// MaxPending bounds the default in-memory Store. Default 1<<16.
	MaxPending int
}

// Dialect speaks the CloudBase SDK's captcha endpoints and errors. Create
// it with New; its methods are safe for concurrent use.
type Dialect struct {
	o     Options
	store captchagate.Store
	own   *memstore.Store
}

var (
	_ captchagate.Dialect     = (*Dialect)(nil)
	_ captchagate.ProofReader = (*Dialect)(nil)
)

// New validates o and returns the Dialect.
func New(o Options) (*Dialect, error) {
	if o.APIPath == "" {
		o.APIPath = "/auth"
	}
	o.APIPath = strings.TrimSuffix(o.APIPath, "/")
	if !strings.HasPrefix(o.APIPath, "/") && o.APIPath != "" {
		return nil, fmt.Errorf("cloudbase: APIPath %q must start with /", o.APIPath)
	}
	if o.Digits == 0 {
		o.Digits = 4
	}
	if o.Digits < 1 || o.Digits > 32 {
		return nil, fmt.Errorf("cloudbase: Digits %d is not within 1..32", o.Digits)
	}
	if o.Prefix == "" {
		o.Prefix = "cloudbase:"
	}
	if o.TTL == 0 {
		o.TTL = 5 * time.Minute
	}
	if o.TTL < 0 {
		return nil, errors.New("cloudbase: TTL is negative")
	}
	if o.MaxPending == 0 {
		o.MaxPending = 1 << 16
	}
	for state, policy := range o.States {
		if state == "" || policy == "" {
			return nil, errors.New("cloudbase: States has an empty state or policy")
		}
	}
	d := &Dialect{o: o, store: o.Store}
	if d.store == nil {
		if o.MaxPending < 64 {
			return nil, fmt.Errorf("cloudbase: MaxPending %d is under 64", o.MaxPending)
		}
		d.own = memstore.New(memstore.Options{MaxEntries: o.MaxPending})
		d.store = d.own
	}
	return d, nil
}

// Close stops the default in-memory Store; a Store passed in Options is
// the caller's to close.
func (d *Dialect) Close() error {
	if d.own != nil {
		return d.own.Close()
	}
	return nil
}

// Prefix is where the SDK calls the captcha endpoints, APIPath +
// "/v1/captcha/": set it as Config.Prefix and mount Gate.Handler there.
func (d *Dialect) Prefix() string { return d.o.APIPath + "/v1/captcha/" }

// Challenge is the Digits the SDK's modal can take: Options.Digits digits.
func (d *Dialect) Challenge() captchagate.Digits {
	return captchagate.Digits{Length: d.o.Digits}
}

// State is the SDK's state of r: its method, ':' and its path after
// APIPath ("POST:/v1/signin").
func (d *Dialect) State(r *http.Request) string {
	return r.Method + ":" + strings.TrimPrefix(r.URL.Path, d.o.APIPath)
}

// ReadProof implements captchagate.ProofReader: the SDK retries with
// captcha_token in the query, and only there.
func (d *Dialect) ReadProof(r *http.Request, _ []byte) (captchagate.Proof, bool) {
	tok := r.URL.Query().Get(captchagate.TokenField)
	return captchagate.Proof{Token: tok}, tok != ""
}

// errorBody is the SDK's error shape (its ResponseError).
type errorBody struct {
	Error       string           `json:"error"`
	ErrorCode   captchagate.Code `json:"error_code"`
	Description string           `json:"error_description,omitempty"`
}

// WriteError is the captchagate.ErrorHandler for the SDK's clients: every
// error as {"error","error_code","error_description"} with the status of
// its code (the SDK reads the body only). When a guard issued a captcha
// (captcha_required, captcha_invalid) it remembers it for the request's
// device and state, for POST data to hand out. Set it as
// Config.ErrorHandler.
func (d *Dialect) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var e *captchagate.Error
	if !errors.As(err, &e) {
		e = &captchagate.Error{Code: captchagate.CodeInternal, Description: "internal error"}
	}
	if e.Captcha != nil {
		// A failure to remember only costs the client a captcha that POST
		// data cannot find; the error is still answered.
		_ = d.remember(r.Context(), r.Header.Get(DeviceHeader), d.State(r), e.Captcha.ID, false, e.Captcha.ExpiresIn)
	}
	e.SetHeaders(w.Header())
	writeJSON(w, e.Code.Status(), errorBody{Error: e.Code.Name(), ErrorCode: e.Code, Description: e.Description})
}

// writeEndpointError answers an error of the captcha endpoints: the gate's
// captcha_required and captcha_invalid become invalid_argument, so that the
// SDK's request wrapper does not start a captcha for the verify call.
func writeEndpointError(w http.ResponseWriter, err error) {
	var e *captchagate.Error
	if !errors.As(err, &e) {
		e = &captchagate.Error{Code: captchagate.CodeInternal, Description: "internal error"}
	}
	name := e.Code.Name()
	if e.Code == captchagate.CodeCaptchaInvalid || e.Code == captchagate.CodeCaptchaRequired {
		name = ErrorInvalidArgument
	}
	e.SetHeaders(w.Header())
	writeJSON(w, e.Code.Status(), errorBody{Error: name, ErrorCode: e.Code, Description: e.Description})
}

func invalidArgument(desc string) error {
	return &captchagate.Error{Code: captchagate.CodeMalformedBody, Description: desc}
}

// unavailable is the client's view of a failure of the dialect's Store; err
// is kept for logs, never written.
func unavailable(err error) error {
	return &captchagate.Error{Code: captchagate.CodeStoreUnavailable, Description: "service unavailable", RetryAfter: time.Second, Err: err}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// ServeEndpoint implements captchagate.Dialect: POST data and data/verify
// under Prefix.
func (d *Dialect) ServeEndpoint(g *captchagate.Gate, w http.ResponseWriter, r *http.Request, endpoint string, body []byte) bool {
	var err error
	switch endpoint {
	case "data":
		err = d.serveData(g, w, r, body)
	case "data/verify":
		err = d.serveVerify(g, w, r, body)
	default:
		return false
	}
	if err != nil {
		writeEndpointError(w, err)
	}
	return true
}

// decode reads the SDK's JSON body whatever its Content-Type (the SDK sends
// none, so fetch says text/plain).
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil || dec.More() {
		return invalidArgument("the body is not a JSON object")
	}
	return nil
}

type dataRequest struct {
	State       string `json:"state"`
	RedirectURI string `json:"redirect_uri"`
}

type dataResponse struct {
	Data      string `json:"data"`
	Type      string `json:"type"`
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"`
}

// serveData answers POST data: the captcha the guard issued for this
// device and state, a refresh of it when it was handed out already, or a
// captcha up front for a state of Options.States.
func (d *Dialect) serveData(g *captchagate.Gate, w http.ResponseWriter, r *http.Request, body []byte) error {
	var p dataRequest
	if err := decode(body, &p); err != nil {
		return err
	}
	state := strings.TrimSpace(p.State)
	if state == "" || len(state) > maxState {
		return invalidArgument("state is missing or too long")
	}
	device := r.Header.Get(DeviceHeader)
	ctx := r.Context()
	c, err := d.pendingCaptcha(g, r, device, state)
	if err != nil {
		return err
	}
	if c == nil {
		policy, ok := d.o.States[state]
		if !ok {
			return invalidArgument("no captcha is pending for this state")
		}
		if c, err = g.NewCaptcha(r, policy); err != nil {
			return err
		}
	}
	// Remembered before it is rendered: a render that fails leaves the
	// flow on this captcha, which the next POST data refreshes.
	if err := d.remember(ctx, device, state, c.ID, true, c.ExpiresIn); err != nil {
		return unavailable(err)
	}
	img, ct, err := g.RenderMedia(r, c.ID, "png", "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, dataResponse{
		Data:      "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(img),
		Type:      "image",
		Token:     c.ID,
		ExpiresIn: c.ExpiresIn,
	})
	return nil
}

// pendingCaptcha returns the captcha remembered for device and state:
// itself if it was not handed out yet, else its refresh. nil when there is
// none that can still be answered.
func (d *Dialect) pendingCaptcha(g *captchagate.Gate, r *http.Request, device, state string) (*captchagate.Captcha, error) {
	key, ok := d.flowKey(device, state)
	if !ok {
		return nil, nil
	}
	v, found, err := d.store.Get(r.Context(), key)
	if err != nil {
		return nil, unavailable(err)
	}
	if !found || len(v) < 2 {
		return nil, nil
	}
	served, id := v[0] == 1, string(v[1:])
	if !served {
		c, err := g.Lookup(r, id)
		if isGone(err) {
			return nil, nil
		}
		return c, err
	}
	c, err := g.Refresh(r, id)
	if isGone(err) {
		return nil, nil
	}
	return c, err
}

// isGone reports whether err says a captcha is unknown, used or expired.
func isGone(err error) bool {
	var e *captchagate.Error
	return errors.As(err, &e) && e.Code == captchagate.CodeNotFound
}

type verifyRequest struct {
	Token string `json:"token"`
	Key   string `json:"key"`
}

type verifyResponse struct {
	Token     string `json:"captcha_token"`
	ExpiresIn int    `json:"expires_in"`
}

// serveVerify answers POST data/verify: a captcha_token for a right
// answer; for a wrong one invalid_argument, the flow's fresh captcha
// remembered for the refresh that follows.
func (d *Dialect) serveVerify(g *captchagate.Gate, w http.ResponseWriter, r *http.Request, body []byte) error {
	var p verifyRequest
	if err := decode(body, &p); err != nil {
		return err
	}
	id := strings.TrimSpace(p.Token)
	tok, err := g.Verify(r, captchagate.Solution{CaptchaID: id, Answer: p.Key})
	ctx := r.Context()
	var e *captchagate.Error
	if errors.As(err, &e) && e.Captcha != nil {
		if key, ok := d.idKey(id); ok {
			if v, found, gerr := d.store.Get(ctx, key); gerr == nil && found {
				_ = d.put(ctx, string(v), e.Captcha.ID, false, e.Captcha.ExpiresIn)
			}
		}
	}
	if err != nil {
		return err
	}
	if key, ok := d.idKey(id); ok {
		_, _, _ = d.store.Take(ctx, key) // the flow's captcha is used; a later trip remembers its own
	}
	writeJSON(w, http.StatusOK, verifyResponse{Token: tok.Value, ExpiresIn: reportedExpiresIn(tok.ExpiresIn)})
	return nil
}

// reportedExpiresIn is the expires_in a verify answer reports for a token
// valid for ttl: at most MaxReportedExpiresIn, so that the SDK's cached
// copy is expired as it is stored (see the package doc).
func reportedExpiresIn(ttl time.Duration) int {
	return int(min(ttl, MaxReportedExpiresIn) / time.Second)
}

// flowKey is the Store key of device's flow for state; ok is false for a
// request without a usable device id.
func (d *Dialect) flowKey(device, state string) (string, bool) {
	device = strings.TrimSpace(device)
	if device == "" || len(device) > maxDevice {
		return "", false
	}
	return d.o.Prefix + "f:" + hash("flow", device, state), true
}

func (d *Dialect) idKey(id string) (string, bool) {
	if id == "" {
		return "", false
	}
	return d.o.Prefix + "i:" + hash("id", id), true
}

func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// remember records captcha id as the flow of device and state (served: it
// was handed out by POST data), and the flow of id, for verify.
func (d *Dialect) remember(ctx context.Context, device, state, id string, served bool, expiresIn int) error {
	key, ok := d.flowKey(device, state)
	if !ok {
		return nil
	}
	return d.put(ctx, key, id, served, expiresIn)
}

func (d *Dialect) put(ctx context.Context, flowKey, id string, served bool, expiresIn int) error {
	ttl := d.o.TTL
	if expiresIn > 0 {
		ttl = min(ttl, time.Duration(expiresIn)*time.Second)
	}
	v := make([]byte, 0, 1+len(id))
	if served {
		v = append(v, 1)
	} else {
		v = append(v, 0)
	}
	v = append(v, id...)
	if err := d.store.Put(ctx, flowKey, v, ttl); err != nil {
		return err
	}
	idKey, _ := d.idKey(id)
	return d.store.Put(ctx, idKey, []byte(flowKey), ttl)
}
