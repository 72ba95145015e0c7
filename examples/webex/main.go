// Command webex serves a meeting-info route in the shape of Webex's
// wbxappapi, guarded by captchagate speaking the Webex meetings SDK's
// dialect (package dialect/webex), so that the unmodified
// @webex/plugin-meetings joins with its own password and captcha code:
//
//	POST /wbxappapi/v1/meetingInfo {"meetingKey","password","captchaID","captchaVerifyCode"}
//	  200 the meeting; 403 {"code":403004} (no password: not counted) or
//	  {"code":403028} (wrong password: a failure); past three wrong passwords
//	  per meeting, 423 {"code":423005,"captchaID",…,"refreshURL"}
//	/captchaservice/v1/captchas/  the gate: image, audio, the SDK's refresh
//
// Every meeting is numbered with 9 digits and its password is "sesame".
//
//	go run ./examples/webex -addr 127.0.0.1:8080
//	npm ci --prefix examples/webex/node    # the SDK, for the test that drives it
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/dialect/webex"
)

// Password is every meeting's password.
const Password = "sesame"

// Prefix is where the gate's endpoints are mounted, as Webex's captcha
// service is.
const Prefix = "/captchaservice/v1/captchas/"

// JoinPolicy: past three wrong passwords for a meeting (from anywhere) or
// thirty from one address in an hour, a captcha; the SDK's first probe
// without a password is not counted.
var JoinPolicy = captchagate.Policy{
	Name:        "join",
	MaxFailures: 3,
	Window:      15 * time.Minute,
	Keys: []captchagate.Key{
		{Source: captchagate.Arg("meeting")},
		{Source: captchagate.ClientIP(), MaxFailures: 30, Window: time.Hour},
	},
}

// Options configure the app; the zero value serves real time, 6 digits.
type Options struct {
	// Challenge is the gate's captcha; default captchagate.Digits{} (6
	// digits; the digit count is its Length).
	Challenge captchagate.Challenge
	// Now is the clock of the gate and the dialect; default time.Now.
	Now func() time.Time
	// OnEvent receives the gate's events.
	OnEvent func(captchagate.Event)
}

// App is the example's gate and routes.
type App struct {
	Gate    *captchagate.Gate
	Dialect *webex.Dialect
	guard   *captchagate.Guard
	mux     *http.ServeMux
}

// NewApp returns the app for clients that reach it at baseURL (such as
// "http://127.0.0.1:8080"): the SDK needs absolute captcha URLs.
func NewApp(baseURL string, secret []byte, o Options) (*App, error) {
	d := webex.New(webex.Options{Now: o.Now})
	gate, err := captchagate.New(captchagate.Config{
		Secret:       secret,
		BaseURL:      baseURL,
		Prefix:       Prefix,
		Challenge:    o.Challenge,
		Dialects:     []captchagate.Dialect{d},
		ErrorHandler: d.Error,
		Now:          o.Now,
		OnEvent:      o.OnEvent,
	})
	if err != nil {
		return nil, err
	}
	guard, err := gate.NewGuard(JoinPolicy)
	if err != nil {
		gate.Close()
		return nil, err
	}
	a := &App{Gate: gate, Dialect: d, guard: guard, mux: http.NewServeMux()}
	a.mux.Handle(Prefix, gate.Handler())
	a.mux.HandleFunc("POST /wbxappapi/v1/meetingInfo", a.meetingInfo)
	return a, nil
}

// ServeHTTP serves the app's routes.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Close releases the gate.
func (a *App) Close() { a.Gate.Close() }

type infoRequest struct {
	MeetingKey string `json:"meetingKey"`
	Password   string `json:"password"`
	CaptchaID  string `json:"captchaID"`
	Code       string `json:"captchaVerifyCode"`
}

// wbxError is the body of the app's own errors (403xxx and the like).
type wbxError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func validMeeting(k string) bool {
	if len(k) != 9 {
		return false
	}
	for _, c := range k {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// meetingInfo answers the SDK's meeting-info fetch: the gate decides
// whether a captcha is needed (explicit mode, through the dialect so that
// a used captcha can be refreshed), the app checks the password.
func (a *App) meetingInfo(w http.ResponseWriter, r *http.Request) {
	var req infoRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&req); err != nil || !validMeeting(req.MeetingKey) {
		writeJSON(w, http.StatusBadRequest, wbxError{400001, "Invalid meeting key"})
		return
	}
	at, err := a.Dialect.Begin(w, r, a.guard, map[string]string{"meeting": req.MeetingKey},
		captchagate.Proof{CaptchaID: req.CaptchaID, Answer: req.Code})
	if err != nil {
		a.Gate.Error(w, r, err) // 423 with the captcha, or the gate's own error
		return
	}
	switch {
	case req.Password == "":
		at.End() // the SDK's first probe: asks for the password, counts nothing
		writeJSON(w, http.StatusForbidden, wbxError{403004, "Meeting is not allow to access since require password"})
	case req.Password != Password:
		at.Fail()
		writeJSON(w, http.StatusForbidden, wbxError{403028, "Meeting is not allow to access since password error"})
	default:
		at.Succeed()
		writeJSON(w, http.StatusOK, map[string]any{
			"meetingKey":      req.MeetingKey,
			"meetingNumber":   req.MeetingKey,
			"confID":          "1" + req.MeetingKey,
			"meetingName":     "Example meeting " + req.MeetingKey,
			"permissionToken": "",
		})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	base := flag.String("base", "", "the URL clients reach the server at (default http://<addr>)")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *base == "" {
		*base = "http://" + ln.Addr().String()
	}
	app, err := NewApp(*base, nil, Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	log.Printf("meeting info at %s/wbxappapi/v1/meetingInfo (password %q)", *base, Password)
	log.Fatal(http.Serve(ln, app))
}
