package captchagate_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
)

// Guard a JSON login: after 5 wrong passwords for one username, the sixth
// attempt is answered captcha_required instead of reaching the handler.
func Example() {
	gate, err := captchagate.New(captchagate.Config{}) // in-memory store, random secret
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()

	login := captchagate.Policy{
		Name: "login",
		Keys: []captchagate.Key{
			captchagate.Username(captchagate.JSONField("username")), // 5 per username per 15 min
			{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour},
		},
		MaxFailures: 5,
		Window:      15 * time.Minute,
	}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	mux.Handle("POST /login", gate.Guard(login)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wrong password", http.StatusUnauthorized)
	})))

	for i := 1; i <= 6; i++ {
		r := httptest.NewRequest("POST", "/login", strings.NewReader(`{"username":"alice","password":"guess"}`))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		var body struct {
			Error     string `json:"error"`
			ErrorCode int    `json:"error_code"`
		}
		json.Unmarshal(w.Body.Bytes(), &body)
		fmt.Println(i, w.Code, body.Error, body.ErrorCode)
	}
	// Output:
	// 1 401  0
	// 2 401  0
	// 3 401  0
	// 4 401  0
	// 5 401  0
	// 6 428 captcha_required 4001
}

// A custom ErrorHandler can speak another protocol; this one answers in the
// shape of a video-meeting API (code 423xxx, captchaID and the media URLs).
func ExampleConfig_errorHandler() {
	meetingStyle := func(w http.ResponseWriter, r *http.Request, err error) {
		var e *captchagate.Error
		if !errors.As(err, &e) || e.Captcha == nil {
			captchagate.WriteError(w, r, err) // everything else: the default JSON
			return
		}
		code := 423005 // captcha required after repeated password errors
		if errors.Is(err, captchagate.ErrCaptchaInvalid) {
			code = 423001
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusLocked)
		json.NewEncoder(w).Encode(map[string]any{
			"code":                 code,
			"message":              "PasswordError too many times, please input captcha code",
			"captchaID":            e.Captcha.ID,
			"verificationImageURL": e.Captcha.ImageURL,
			"verificationAudioURL": e.Captcha.AudioURL,
			"refreshURL":           e.Captcha.RefreshURL,
		})
	}
	gate, _ := captchagate.New(captchagate.Config{
		ErrorHandler: meetingStyle,
		BaseURL:      "https://meet.example.com",
		Prefix:       "/captchaservice/v1/captchas/",
	})
	defer gate.Close()

	join := gate.Guard(captchagate.Policy{Name: "join", MaxFailures: 3,
		Keys: []captchagate.Key{{Source: captchagate.Query("meeting"), ResetOnSuccess: true}}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }))

	var w *httptest.ResponseRecorder
	for i := 0; i < 4; i++ {
		w = httptest.NewRecorder()
		join.ServeHTTP(w, httptest.NewRequest("GET", "/join?meeting=123", nil))
	}
	var body map[string]any
	json.Unmarshal(w.Body.Bytes(), &body)
	id := body["captchaID"].(string)
	fmt.Println(w.Code, body["code"])
	fmt.Println(strings.ReplaceAll(body["verificationImageURL"].(string), id, "{id}"))
	fmt.Println(strings.ReplaceAll(body["refreshURL"].(string), id, "{id}"))
	// Output:
	// 423 423005
	// https://meet.example.com/captchaservice/v1/captchas/{id}.png
	// https://meet.example.com/captchaservice/v1/captchas/refresh?captcha_id={id}
}

// Protect an SMS-code endpoint: 3 codes per phone number and 10 per address
// each hour before a captcha is needed, and never more than 10 codes to one
// number a day, captcha or not.
func ExampleKey_sendRate() {
	gate, _ := captchagate.New(captchagate.Config{})
	defer gate.Close()

	sms := captchagate.Policy{
		Name: "sms",
		Keys: []captchagate.Key{
			{Source: captchagate.Phone(captchagate.JSONField("phone")).Source,
				Rate: rate.Every(20 * time.Minute), Burst: 3,
				Ceiling: 10, CeilingWindow: 24 * time.Hour},
			{Source: captchagate.ClientIP(), Rate: rate.Every(6 * time.Minute), Burst: 10},
		},
	}
	send := gate.Guard(sms)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "code sent")
	}))
	for i := 1; i <= 4; i++ {
		w := httptest.NewRecorder()
		send.ServeHTTP(w, httptest.NewRequest("POST", "/sms", strings.NewReader(`{"phone":"+1 555 0100"}`)))
		fmt.Println(i, w.Code)
	}
	// Output:
	// 1 200
	// 2 200
	// 3 200
	// 4 428
}

// Check asks whether a request would need a captcha without answering it,
// say to render the captcha in a login form up front.
func ExampleGuard_Check() {
	gate, _ := captchagate.New(captchagate.Config{})
	defer gate.Close()
	guard, _ := gate.NewGuard(captchagate.Policy{Name: "login", MaxFailures: 1,
		Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})
	h := guard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { captchagate.Fail(r) }))

	r := httptest.NewRequest("GET", "/login", nil)
	fmt.Println(guard.Check(r))
	h.ServeHTTP(httptest.NewRecorder(), r)
	fmt.Println(errors.Is(guard.Check(r), captchagate.ErrCaptchaRequired))
	// Output:
	// <nil>
	// true
}
