package captchagate_test

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
)

// sumQuestion is a third-party kind of captcha, written on the exported
// extension points only: a sum to work out, sent as text in a member of
// its own ("question"). It implements Challenge and Describer; having no
// media, it is no Renderer.
type sumQuestion struct{}

func (sumQuestion) Kind() string { return "sum" }

// Issue draws two small numbers; the secret is "a+b".
func (sumQuestion) Issue(captchagate.IssueInfo) ([]byte, error) {
	a, err := rand.Int(rand.Reader, big.NewInt(10))
	if err != nil {
		return nil, err
	}
	b, err := rand.Int(rand.Reader, big.NewInt(10))
	if err != nil {
		return nil, err
	}
	return []byte(a.String() + "+" + b.String()), nil
}

func (sumQuestion) Check(_ context.Context, c captchagate.CheckInfo) (bool, error) {
	a, b, _ := strings.Cut(string(c.Secret), "+")
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	want := strconv.Itoa(x + y)
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(c.Answer)), []byte(want)) == 1, nil
}

// Describe sends a fixed prompt; a real kind would render the question
// (the gate never sends a secret to the client), say as an image.
func (sumQuestion) Describe() map[string]any {
	return map[string]any{"prompt": "type the sum of the two numbers in the picture"}
}

// A kind of captcha written outside the package: the gate stores its
// secret, binds it, spends it once and mints the token, as for Digits.
func ExampleChallenge() {
	gate, err := captchagate.New(captchagate.Config{Challenge: sumQuestion{}})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	gate.Guard(captchagate.Policy{Name: "signup", MaxFailures: 1,
		Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})

	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("POST", "/captcha/new?policy=signup", nil))
	var body struct{ Captcha captchagate.Captcha }
	json.Unmarshal(w.Body.Bytes(), &body)
	c := body.Captcha
	fmt.Println(c.Kind, string(c.Extra["prompt"].(json.RawMessage)), c.ImageURL == "")

	tok, err := gate.Verify(httptest.NewRequest("POST", "/captcha/verify", nil),
		captchagate.Solution{CaptchaID: c.ID, Answer: "not a number"})
	fmt.Println(tok.Value == "", err)
	// Output:
	// sum "type the sum of the two numbers in the picture" true
	// true captchagate: captcha_invalid: captcha wrong answer; solve the new captcha
}

// camelDialect is a third-party Dialect, written on the exported hook only,
// for a client SDK that speaks camelCase: it answers on guarded requests
// with "captchaID" and "captchaVerifyCode" in the JSON body (a
// ProofReader), and refreshes with POST {prefix}refresh and
// {"captchaId": …}, reading "captchaID" and "verificationImageURL" back.
type camelDialect struct{}

func (camelDialect) ReadProof(_ *http.Request, body []byte) (captchagate.Proof, bool) {
	var p struct {
		ID   string `json:"captchaID"`
		Code string `json:"captchaVerifyCode"`
	}
	if json.Unmarshal(body, &p) != nil || p.ID == "" {
		return captchagate.Proof{}, false
	}
	return captchagate.Proof{CaptchaID: p.ID, Answer: p.Code}, true
}

func (camelDialect) ServeEndpoint(g *captchagate.Gate, w http.ResponseWriter, r *http.Request, endpoint string, body []byte) bool {
	var p struct {
		ID string `json:"captchaId"`
	}
	if endpoint != "refresh" || json.Unmarshal(body, &p) != nil || p.ID == "" {
		return false // the gate's own refresh, or another endpoint
	}
	c, err := g.Refresh(r, p.ID)
	if err != nil {
		g.Error(w, r, err)
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"captchaID": c.ID, "verificationImageURL": c.ImageURL})
	return true
}

// A client dialect written outside the package: its clients send their
// answer in members of their own on the guarded request, and refresh in
// their own shape.
func ExampleDialect() {
	gate, err := captchagate.New(captchagate.Config{
		Dialects:  []captchagate.Dialect{camelDialect{}},
		Challenge: personReads{}, // stands in for a person reading the picture
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	mux.Handle("POST /join", gate.Guard(captchagate.Policy{Name: "join", MaxFailures: 1, Window: time.Hour,
		Keys: []captchagate.Key{{Source: captchagate.JSONField("meeting")}}})(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			var b struct{ Password string }
			json.NewDecoder(r.Body).Decode(&b)
			if b.Password != "sesame" {
				w.WriteHeader(http.StatusForbidden)
			}
		})))
	post := func(path, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		mux.ServeHTTP(w, r)
		return w
	}
	fmt.Println(post("/join", `{"meeting":"m1","password":"guess"}`).Code)
	w := post("/join", `{"meeting":"m1","password":"guess"}`) // tripped: a captcha
	var e struct{ Captcha captchagate.Captcha }
	json.Unmarshal(w.Body.Bytes(), &e)
	fmt.Println(w.Code)

	w = post("/captcha/refresh", `{"captchaId":"`+e.Captcha.ID+`"}`)
	var rb struct {
		ID    string `json:"captchaID"`
		Image string `json:"verificationImageURL"`
	}
	json.Unmarshal(w.Body.Bytes(), &rb)
	fmt.Println(w.Code, rb.ID != e.Captcha.ID, rb.Image == "/captcha/"+rb.ID+".png")

	w = post("/join", `{"meeting":"m1","password":"sesame","captchaID":"`+rb.ID+`","captchaVerifyCode":"123456"}`)
	fmt.Println(w.Code)
	// Output:
	// 403
	// 428
	// 200 true true
	// 200
}

// personReads issues Digits whose answer is always 123456, so the example
// can answer as a person reading the picture would.
type personReads struct{ captchagate.Digits }

func (personReads) Issue(captchagate.IssueInfo) ([]byte, error) { return []byte{1, 2, 3, 4, 5, 6}, nil }

// A dialect whose clients want the picture inline, as a data: URL.
func ExampleGate_RenderMedia() {
	gate, err := captchagate.New(captchagate.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	gate.Guard(captchagate.Policy{Name: "signin", MaxFailures: 5, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})
	r := httptest.NewRequest("POST", "/v1/captcha/data", nil)
	c, err := gate.NewCaptcha(r, "signin")
	if err != nil {
		log.Fatal(err)
	}
	b, ct, err := gate.RenderMedia(r, c.ID, "png", "")
	if err != nil {
		log.Fatal(err)
	}
	data := "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(b)
	fmt.Println(data[:22], len(b) > 1000)
	_, _, err = gate.RenderMedia(r, c.ID, "gif", "")
	fmt.Println(err)
	// Output:
	// data:image/png;base64, true
	// captchagate: not_found: no such format
}
