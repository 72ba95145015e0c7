// Package curl holds roundtrip.sh, the client's round trip in curl, and its
// test, which runs the script against a server of its own.
package curl

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// newServer starts the demo's JSON login API (alice / wonderland, a captcha
// after 5 wrong passwords) on a loopback port. Its challenge is a
// gatetest.Spy, which tells this test the answer of every picture it draws:
// the test's stand-in for the person at the prompt, never in a demo.
func newServer(t *testing.T) (*httptest.Server, *gatetest.Spy) {
	spy := &gatetest.Spy{}
	gate, err := captchagate.New(captchagate.Config{Challenge: spy, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	login := captchagate.Policy{Name: "login", MaxFailures: 5,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	mux.Handle("POST /api/login", gate.Guard(login)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password string }
		json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		if req.Username != "alice" || req.Password != "wonderland" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_credentials"}`+"\n")
			return
		}
		io.WriteString(w, `{"ok":true,"user":"alice"}`+"\n")
	})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, spy
}

// needTools skips t when bash, curl, sed or grep is missing, or fails it
// under CAPTCHAGATE_REQUIRE_BROWSER=1, which CI sets.
func needTools(t *testing.T) string {
	t.Helper()
	for _, prog := range []string{"curl", "sed", "grep", "bash"} {
		if _, err := exec.LookPath(prog); err != nil {
			msg := prog + " not found on PATH; install it (Debian/Ubuntu: apt-get install " + prog + ") to run the curl example's test"
			if os.Getenv("CAPTCHAGATE_REQUIRE_BROWSER") == "1" {
				t.Fatal(msg + " (CAPTCHAGATE_REQUIRE_BROWSER=1 is set)")
			}
			t.Skip(msg)
		}
	}
	bash, _ := exec.LookPath("bash")
	return bash
}

var captchaIDLine = regexp.MustCompile(`captcha id: (\S+)$`)

// run runs roundtrip.sh against url, typing at its prompt what answer
// returns for the captcha id the script printed, and returns the script's
// output and exit error.
func run(t *testing.T, bash, url string, answer func(id string) string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "roundtrip.sh", url)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	var out strings.Builder
	var id string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if m := captchaIDLine.FindStringSubmatch(line); m != nil {
			id = m[1]
		}
		if strings.HasSuffix(line, "type the digits:") {
			io.WriteString(stdin, answer(id)+"\n")
		}
	}
	stdin.Close()
	err = cmd.Wait()
	out.WriteString(stderr.String())
	return out.String(), err
}

// The script signs in through the whole round trip: 428 on the sixth wrong
// password, the picture, the answer read from it, a token, 200 with the
// token, and 403 for the same token again.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	bash := needTools(t)
	srv, spy := newServer(t)

	out, err := run(t, bash, srv.URL, func(id string) string {
		a, ok := spy.Answer(id)
		require.True(t, ok, "the script fetched the picture of %q before asking", id)
		return a
	})
	require.NoError(t, err, out)
	t.Log("\n" + out)
	for _, want := range []string{
		"   POST /api/login -> 401 invalid_credentials\n",
		"   POST /api/login -> 428 captcha_required\n",
		"   -> 200, saved to ",
		"4. the answer: POST /captcha/verify\n   -> 200: a captcha_token (valid 120 s, once)\n",
		"   POST /api/login -> 200 {\"ok\":true,\"user\":\"alice\"}\n",
		"6. the same token again\n   POST /api/login -> 403 captcha_invalid\n",
	} {
		assert.Contains(t, out, want)
	}
	assert.Equal(t, 5, strings.Count(out, "-> 401 invalid_credentials"), "five wrong passwords before the captcha")
	assert.NotContains(t, out, "X-Captcha-Token: ", "the token is not printed")
}

// A wrong answer is refused at verify, and the script stops there without
// signing in.
func TestRoundTripWrongAnswer(t *testing.T) {
	t.Parallel()
	bash := needTools(t)
	srv, spy := newServer(t)

	out, err := run(t, bash, srv.URL, func(id string) string {
		a, ok := spy.Answer(id)
		require.True(t, ok)
		return wrong(a)
	})
	require.Error(t, err, out)
	assert.Contains(t, out, "   -> 403 captcha_invalid\nthe answer was refused")
	assert.NotContains(t, out, "5. sign in again")
}

// wrong returns digits that differ from a in every place.
func wrong(a string) string {
	b := []byte(a)
	for i, c := range b {
		b[i] = '0' + (c-'0'+1)%10
	}
	return string(b)
}
