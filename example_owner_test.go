package captchagate_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
)

// The explicit mode: the handler decodes the request itself and passes the
// username it will authenticate to Begin, so the guard counts exactly that
// account, whatever shape the request had.
func ExampleGuard_Begin() {
	gate, err := captchagate.New(captchagate.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	guard, err := gate.NewGuard(captchagate.Policy{
		Name: "login",
		Keys: []captchagate.Key{
			captchagate.Username(captchagate.Arg("username")),
			{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour},
		},
		MaxFailures: 3,
		Window:      15 * time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	login := func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password, CaptchaToken string }
		if json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		a, err := guard.Begin(w, r, map[string]string{"username": req.Username}, captchagate.Proof{Token: req.CaptchaToken})
		if err != nil {
			gate.Error(w, r, err) // captcha_required, too_many_requests, invalid_request...
			return
		}
		if req.Password != "wonderland" {
			a.Fail()
			http.Error(w, "wrong password", http.StatusUnauthorized)
			return
		}
		a.Succeed()
		fmt.Fprintln(w, "welcome")
	}
	// "ALICE" and "alice" are one account, as the application decodes them.
	for i, user := range []string{"alice", "ALICE", " Alice", "alice"} {
		w := httptest.NewRecorder()
		login(w, httptest.NewRequest("POST", "/login", strings.NewReader(`{"username":"`+user+`","password":"guess"}`)))
		fmt.Println(i+1, w.Code)
	}
	// Output:
	// 1 401
	// 2 401
	// 3 401
	// 4 428
}

// Device cookies: the owner's browser, which signed in once, keeps a budget
// of its own while an attacker's failures ask everyone else for a captcha.
func ExampleDevices() {
	gate, err := captchagate.New(captchagate.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	h := gate.Guard(captchagate.Policy{
		Name:        "login",
		Keys:        []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))},
		MaxFailures: 5,
		Devices:     &captchagate.Devices{},
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("X-Password"), "wonderland") {
			http.Error(w, "wrong password", http.StatusUnauthorized)
			return
		}
		captchagate.Succeed(r) // before writing: sets the device cookie
		fmt.Fprintln(w, "welcome")
	}))
	try := func(pass string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/login", strings.NewReader(`{"username":"alice"}`))
		r.Header.Set("X-Password", pass)
		for _, c := range cookies {
			r.AddCookie(c)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	device := try("wonderland").Result().Cookies() // the owner signs in
	for range 6 {
		try("guess") // the attacker
	}
	fmt.Println("attacker:", try("guess").Code)
	fmt.Println("owner's browser:", try("wonderland", device...).Code)
	// Output:
	// attacker: 428
	// owner's browser: 200
}
