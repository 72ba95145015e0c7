package cloudbase_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/dialect/cloudbase"
)

// The gate behind a CloudBase SDK client: its sign-in's sixth wrong
// password is answered in the SDK's error shape, and POST data hands the
// SDK that very captcha as a data: URL.
func Example() {
	d, err := cloudbase.New(cloudbase.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	gate, err := captchagate.New(captchagate.Config{
		Prefix:       d.Prefix(),
		Challenge:    d.Challenge(),
		Dialects:     []captchagate.Dialect{d},
		ErrorHandler: d.WriteError,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	mux := http.NewServeMux()
	mux.Handle(d.Prefix(), gate.Handler())
	mux.Handle("POST /auth/v1/signin", gate.Guard(captchagate.Policy{Name: "signin", MaxFailures: 5, Window: time.Hour,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}})(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })))

	post := func(path, body string) string {
		r := httptest.NewRequest("POST", path+"?client_id=demo", strings.NewReader(body))
		r.Header.Set("Content-Type", "text/plain;charset=UTF-8") // as the SDK's fetch sends JSON
		r.Header.Set("X-Device-Id", "0f6c5a3e-2b1d-4c7a-9e8f-1a2b3c4d5e6f")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Body.String()
	}
	for range 5 {
		post("/auth/v1/signin", `{"username":"alice","password":"guess"}`)
	}
	fmt.Print(post("/auth/v1/signin", `{"username":"alice","password":"guess"}`))
	data := post("/auth/v1/captcha/data", `{"state":"POST:/v1/signin","redirect_uri":""}`)
	fmt.Println(strings.HasPrefix(data, `{"data":"data:image/png;base64,`), strings.Contains(data, `"type":"image","token":"`))
	// Output:
	// {"error":"captcha_required","error_code":4001,"error_description":"captcha_token required; solve the captcha and retry"}
	// true true
}
