package captchagate_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/captchagate/captchagate"
)

// Behind a proxy that writes RFC 7239 Forwarded, count failures per client
// address (IPv6 by /64) and, with a higher threshold, per /48: the fifth /64
// of one /48 needs a captcha although each /64 failed once. Entries the
// proxy could not resolve ("unknown") share one strict bucket.
func ExampleClientNet() {
	gate, err := captchagate.New(captchagate.Config{
		TrustedProxies:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		ForwardedHeader: "Forwarded",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()

	mux := http.NewServeMux()
	mux.Handle("POST /login", gate.Guard(captchagate.Policy{
		Name: "login",
		Keys: []captchagate.Key{
			{Source: captchagate.ClientIP(), MaxFailures: 5},
			{Source: captchagate.ClientNet(32, 48), MaxFailures: 4},
		},
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wrong password", http.StatusUnauthorized)
	})))

	for _, client := range []string{
		`for="[2001:db8:0:1::1]:4711"`, `for="[2001:db8:0:2::1]:4711"`, `for="[2001:db8:0:3::1]:4711"`,
		`for="[2001:db8:0:4::1]:4711"`, `for="[2001:db8:0:5::1]:4711"`, `for="[2001:db8:1::1]:4711"`, "for=unknown",
	} {
		r := httptest.NewRequest("POST", "/login", nil)
		r.RemoteAddr = "10.0.0.2:1234" // the proxy
		r.Header.Set("Forwarded", client+";proto=https")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		fmt.Println(client, w.Code)
	}
	// Output:
	// for="[2001:db8:0:1::1]:4711" 401
	// for="[2001:db8:0:2::1]:4711" 401
	// for="[2001:db8:0:3::1]:4711" 401
	// for="[2001:db8:0:4::1]:4711" 401
	// for="[2001:db8:0:5::1]:4711" 428
	// for="[2001:db8:1::1]:4711" 401
	// for=unknown 401
}
