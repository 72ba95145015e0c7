package captchagate_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/captchagate/captchagate"
)

// Count wrong PINs per card, the card named by the route's path value: after
// two for one card, the third needs a captcha; another card is counted apart.
func ExampleSourceFunc() {
	gate, err := captchagate.New(captchagate.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()

	card := captchagate.SourceFunc("card", func(r *http.Request) (string, bool) {
		v := r.PathValue("card")
		return v, v != ""
	})
	mux := http.NewServeMux()
	mux.Handle("POST /cards/{card}/pin", gate.Guard(captchagate.Policy{
		Name:            "pin",
		Keys:            []captchagate.Key{{Source: card, MaxFailures: 2}},
		FailureStatuses: []int{http.StatusForbidden},
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wrong PIN", http.StatusForbidden)
	})))

	for _, path := range []string{"/cards/1/pin", "/cards/1/pin", "/cards/1/pin", "/cards/2/pin"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("POST", path, strings.NewReader(`{"pin":"0000"}`)))
		fmt.Println(path, w.Code)
	}
	// Output:
	// /cards/1/pin 403
	// /cards/1/pin 403
	// /cards/1/pin 428
	// /cards/2/pin 403
}
