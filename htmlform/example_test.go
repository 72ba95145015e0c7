package htmlform_test

import (
	"crypto/rand"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"

	"github.com/gorilla/sessions"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/htmlform"
)

// loginTmpl is an existing login page; {{.Captcha}} is the only addition:
// empty until the gate asks for a captcha, then the widget.
var loginTmpl = template.Must(template.New("login").Parse(`<form method="post" action="/login">
{{with .Error}}<p role="alert">{{.}}</p>{{end}}
<input name="username" value="{{.Username}}"> <input name="password" type="password">
{{.Captcha}}
<button>Sign in</button>
</form>
`))

type loginPage struct {
	Username, Error string
	Captcha         template.HTML
}

// An existing HTML login form behind the gate: the widget goes into the
// template, flow.Middleware wraps the guard, and Options.Render shows the
// form again when the gate stops a post. After 3 wrong passwords the page
// asks for the digits in the picture; the answer travels with the next
// post, and the captcha's id stays in the visitor's session.
func Example() {
	// The challenge is a stand-in whose every captcha reads 123456, so that
	// this example can answer one; leave Config.Challenge unset in real code.
	gate, err := captchagate.New(captchagate.Config{Challenge: sameDigits{}})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()

	sessionKey := make([]byte, 32) // in real code: a key kept across restarts
	rand.Read(sessionKey)
	store := sessions.NewCookieStore(sessionKey)
	store.Options = &sessions.Options{Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode} // Secure behind https

	var flow *htmlform.Flow
	flow, err = htmlform.New(gate, htmlform.Options{
		Sessions: store,
		Render: func(w http.ResponseWriter, r *http.Request, err error) { // the gate stopped a post
			w.WriteHeader(htmlform.Status(err))
			loginTmpl.Execute(w, loginPage{Username: r.PostFormValue("username"), Captcha: flow.Widget(r, err)})
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	showLogin := func(w http.ResponseWriter, r *http.Request) {
		loginTmpl.Execute(w, loginPage{Captcha: flow.Widget(r, nil)})
	}
	login := func(w http.ResponseWriter, r *http.Request) {
		user := r.PostFormValue("username")
		if user != "alice" || r.PostFormValue("password") != "wonderland" { // crypto/subtle in real code
			w.WriteHeader(http.StatusUnauthorized)
			loginTmpl.Execute(w, loginPage{Username: user, Error: "Wrong username or password.", Captcha: flow.Widget(r, nil)})
			return
		}
		fmt.Fprintln(w, "Welcome,", user)
	}
	policy := captchagate.Policy{Name: "login", MaxFailures: 3,
		Keys: []captchagate.Key{captchagate.Username(captchagate.Field("username"))}}

	mux := http.NewServeMux()
	mux.Handle("/captcha/", flow.Handler()) // the gate's endpoints, widget.js and widget.css
	mux.Handle("GET /login", flow.Middleware(http.HandlerFunc(showLogin)))
	mux.Handle("POST /login", flow.Middleware(gate.Guard(policy)(http.HandlerFunc(login))))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A browser: one visitor, with its cookies.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	submit := func(form url.Values) {
		res, err := browser.PostForm(srv.URL+"/login", form)
		if err != nil {
			log.Fatal(err)
		}
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if fields := inputs(string(page)); len(fields) > 0 {
			fmt.Println(res.StatusCode, "form:", fields)
		} else {
			fmt.Print(res.StatusCode, " ", string(page))
		}
	}
	for range 4 {
		submit(url.Values{"username": {"alice"}, "password": {"guess"}})
	}
	submit(url.Values{"username": {"alice"}, "password": {"wonderland"}, "captcha_answer": {"123456"}})
	// Output:
	// 401 form: [username password]
	// 401 form: [username password]
	// 401 form: [username password]
	// 428 form: [username password captcha_answer]
	// 200 Welcome, alice
}

var inputName = regexp.MustCompile(`<input[^>]*\bname="([^"]+)"`)

// inputs lists the names of the fields a page's form posts.
func inputs(page string) []string {
	var names []string
	for _, m := range inputName.FindAllStringSubmatch(page, -1) {
		names = append(names, m[1])
	}
	return names
}

// sameDigits is the Digits challenge, except that every captcha it issues
// reads 123456: a stand-in for the person who reads the picture.
type sameDigits struct{ captchagate.Digits }

func (sameDigits) Issue(captchagate.IssueInfo) ([]byte, error) { return []byte{1, 2, 3, 4, 5, 6}, nil }
