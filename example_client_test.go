package captchagate_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"

	"github.com/captchagate/captchagate"
)

// The client's side of the protocol, in Go: wrong passwords until the server
// answers 428 captcha_required, the captcha's picture fetched from its
// image_url, the answer posted to its verify_url, and the login retried with
// the captcha_token in the X-Captcha-Token header. A token is good once.
func Example_client() {
	// The server: a login guarded by username, and the captcha endpoints.
	// Its challenge is a stand-in that remembers the pictures it draws, so
	// that this example can read its own captchas.
	person := &rememberingDigits{}
	gate, err := captchagate.New(captchagate.Config{Challenge: person})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	mux.Handle("POST /api/login", gate.Guard(captchagate.Policy{Name: "login", MaxFailures: 3,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))},
	})(http.HandlerFunc(exampleLogin)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The client.
	base, _ := url.Parse(srv.URL)
	c := &apiClient{base: base, http: srv.Client()}
	var captcha *captchaInfo
	for i := 1; i <= 4; i++ {
		status, e, err := c.login("alice", "guess", "")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("login", i, status, e.Error)
		captcha = e.Captcha // with captcha_required: kind "digits", image_url, audio_url, verify_url...
	}
	picture, err := c.get(captcha.ImageURL)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("picture:", http.DetectContentType(picture))
	answer := person.Read(picture) // a person types the digits they see
	token, err := c.verify(captcha, answer)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verified: a captcha_token")

	status, _, _ := c.login("alice", "wonderland", token)
	fmt.Println("login with X-Captcha-Token", status)
	status, e, _ := c.login("alice", "wonderland", token)
	fmt.Println("the same token again", status, e.Error)
	// Output:
	// login 1 401 invalid_credentials
	// login 2 401 invalid_credentials
	// login 3 401 invalid_credentials
	// login 4 428 captcha_required
	// picture: image/png
	// verified: a captcha_token
	// login with X-Captcha-Token 200
	// the same token again 403 captcha_invalid
}

// exampleLogin is the API behind the guard: alice / wonderland.
func exampleLogin(w http.ResponseWriter, r *http.Request) {
	var req struct{ Username, Password string }
	json.NewDecoder(r.Body).Decode(&req)
	w.Header().Set("Content-Type", "application/json")
	if req.Username != "alice" || req.Password != "wonderland" { // use crypto/subtle in real code
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_credentials"}`)
		return
	}
	io.WriteString(w, `{"user":"alice"}`)
}

// captchaInfo is the captcha object of the gate's answers (docs/protocol.md).
type captchaInfo struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	ImageURL   string `json:"image_url"`
	AudioURL   string `json:"audio_url"`
	RefreshURL string `json:"refresh_url"`
	VerifyURL  string `json:"verify_url"`
	ExpiresIn  int    `json:"expires_in"`
}

// errorBody is a JSON error: the gate's (error, error_code, captcha) or the
// application's.
type errorBody struct {
	Error     string       `json:"error"`
	ErrorCode int          `json:"error_code"`
	Captcha   *captchaInfo `json:"captcha"`
}

// apiClient is a client of the API at base; the captcha URLs the server
// sends are relative to it.
type apiClient struct {
	base *url.URL
	http *http.Client
}

// login posts the credentials, with the captcha token if there is one, and
// returns the status and the error body (zero on success).
func (c *apiClient) login(user, pass, token string) (int, errorBody, error) {
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	req, err := http.NewRequest("POST", c.base.JoinPath("/api/login").String(), bytes.NewReader(body))
	if err != nil {
		return 0, errorBody{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Captcha-Token", token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, errorBody{}, err
	}
	defer res.Body.Close()
	var e errorBody
	if res.StatusCode >= 400 {
		if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
			return res.StatusCode, e, fmt.Errorf("login: %d with a body that is not JSON: %w", res.StatusCode, err)
		}
	}
	return res.StatusCode, e, nil
}

// get fetches one of the captcha's URLs (image_url, audio_url).
func (c *apiClient) get(ref string) ([]byte, error) {
	u, err := c.base.Parse(ref)
	if err != nil {
		return nil, err
	}
	res, err := c.http.Get(u.String())
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", ref, res.Status) // 404: expired, ask for a new one (refresh_url)
	}
	return io.ReadAll(res.Body)
}

// verify posts the answer to the captcha's verify_url and returns the
// captcha_token. A wrong answer is a 403 captcha_invalid carrying a fresh
// captcha, to show instead.
func (c *apiClient) verify(captcha *captchaInfo, answer string) (string, error) {
	u, err := c.base.Parse(captcha.VerifyURL)
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]string{"captcha_id": captcha.ID, "captcha_answer": answer})
	res, err := c.http.Post(u.String(), "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var v struct {
		Token     string `json:"captcha_token"`
		ExpiresIn int    `json:"expires_in"` // seconds
		errorBody
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("verify: %d %s", res.StatusCode, v.Error)
	}
	return v.Token, nil
}

// rememberingDigits stands in for the person who reads the captcha: it is
// the Digits challenge, but it remembers the digits of every picture it
// draws, and Read returns them. For examples and tests only.
type rememberingDigits struct {
	captchagate.Digits
	mu   sync.Mutex
	seen map[[32]byte]string // a picture's SHA-256 → its digits
}

// Render implements captchagate.Renderer: Digits' rendering, remembered.
func (d *rememberingDigits) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	var b bytes.Buffer
	ct, err := d.Digits.Render(&b, id, secret, format, lang)
	if err != nil {
		return "", err
	}
	digits := make([]byte, 6) // the default length; a seed follows them
	for i := range digits {
		digits[i] = '0' + secret[i]
	}
	d.mu.Lock()
	if d.seen == nil {
		d.seen = map[[32]byte]string{}
	}
	d.seen[sha256.Sum256(b.Bytes())] = string(digits)
	d.mu.Unlock()
	_, err = w.Write(b.Bytes())
	return ct, err
}

// Read returns the digits in picture, as a person would read them.
func (d *rememberingDigits) Read(picture []byte) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[sha256.Sum256(picture)]
}
