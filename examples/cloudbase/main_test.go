package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/internal/nodetest"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// needSDK returns the node binary and the driver's path, or skips t without
// node or the npm-installed SDK (fails it with CAPTCHAGATE_REQUIRE_BROWSER=1).
func needSDK(t *testing.T) (node, driver string) {
	t.Helper()
	return nodetest.Need(t, "web", "@cloudbase/oauth", "examples/cloudbase/web"), filepath.Join("web", "driver.js")
}

// TestSDKFlows runs driver.js, the unmodified SDK, against the server, three
// times, each on a fresh server: five wrong sign-ins, then the right
// password: captcha_required, a wrong answer (refused, the UI refreshes),
// the right one, the SDK's retry signs in; then three code sends, the
// second and third past the send rate, each with a captcha of its own.
// Answers are read from the gate's challenge in-process (gatetest.Spy); the
// first right answer of every captcha is accepted.
func TestSDKFlows(t *testing.T) {
	node, driver := needSDK(t)
	for run := range 3 {
		t.Run(fmt.Sprintf("run%d", run+1), func(t *testing.T) { sdkFlow(t, node, driver) })
	}
}

func sdkFlow(t *testing.T, node, driver string) {
	d, err := NewDialect()
	require.NoError(t, err)
	defer d.Close()
	spy := &gatetest.Spy{Digits: d.Challenge()}
	var c gatetest.EventCounts
	gate, err := captchagate.New(Config(captchagate.Config{
		Secret:    gatetest.Secret,
		Challenge: spy,
		OnEvent:   c.Record,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, d))
	require.NoError(t, err)
	defer gate.Close()
	srv := httptest.NewServer(NewApp(gate, d)) // a free loopback port
	defer srv.Close()

	cmd := exec.Command(node, driver, srv.URL)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()

	events := make(chan map[string]any)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
	}()

	var got []string // the events, without tokens
	var tokens []string
	signinCaptchas := 0
	timeout := time.After(60 * time.Second)
loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				break loop
			}
			got = append(got, describe(ev))
			if ev["event"] != "captcha" {
				continue
			}
			token, _ := ev["token"].(string)
			tokens = append(tokens, token)
			answer, ok := spy.Answer(token)
			require.True(t, ok, "the SDK was handed a captcha the gate did not render")
			require.Len(t, answer, 4, "the SDK's modal takes 4 characters")
			if ev["state"] == "POST:/v1/signin" {
				if signinCaptchas++; signinCaptchas == 1 {
					answer = wrong(answer)
				}
			}
			b, _ := json.Marshal(map[string]string{"answer": answer})
			_, err := stdin.Write(append(b, '\n'))
			require.NoError(t, err)
		case <-timeout:
			t.Fatalf("the driver did not finish; events so far:\n%s\nstderr:\n%s", strings.Join(got, "\n"), stderr.String())
		}
	}
	err = cmd.Wait()
	require.NoError(t, err, "events:\n%s\nstderr:\n%s", strings.Join(got, "\n"), stderr.String())

	signin := "captcha POST:/v1/signin"
	send := "captcha POST:/v1/verification"
	want := []string{
		"signin false invalid_password", "signin false invalid_password", "signin false invalid_password",
		"signin false invalid_password", "signin false invalid_password",
		signin, "refused POST:/v1/signin invalid_argument 4002", signin, "verified POST:/v1/signin 9",
		"signin true access_token,expires_in,refresh_token,scope,sub,token_type",
		"send true is_user,verification_id",
		send, "verified POST:/v1/verification 9", "send true is_user,verification_id",
		send, "verified POST:/v1/verification 9", "send true is_user,verification_id",
		"done",
	}
	assert.Equal(t, want, got, "stderr:\n%s", stderr.String())
	require.Equal(t, 4, len(tokens), "captchas shown")
	assert.NotEqual(t, tokens[0], tokens[1], "the refresh after the wrong answer shows a new captcha")
	assert.Equal(t, 1, c.Count(captchagate.EventCaptchaRejected), "only the wrong answer was refused")
	assert.Equal(t, 3, c.Count(captchagate.EventCaptchaVerified), "every right answer accepted at once")
	assert.Equal(t, 3, c.Count(captchagate.EventTokenAccepted), "each retry passed with its own token")
	assert.Zero(t, c.Count(captchagate.EventTokenRefused), "the SDK never replayed a spent token")
}

// describe is an event without its captcha id.
func describe(ev map[string]any) string {
	f := []string{fmt.Sprint(ev["event"])}
	switch ev["event"] {
	case "signin", "send":
		f = append(f, fmt.Sprint(ev["ok"]))
		if ev["ok"] == true {
			var keys []string
			for _, k := range ev["keys"].([]any) {
				keys = append(keys, fmt.Sprint(k))
			}
			f = append(f, strings.Join(keys, ","))
		} else {
			f = append(f, fmt.Sprint(ev["error"]))
		}
	case "captcha":
		f = append(f, fmt.Sprint(ev["state"]))
	case "refused":
		f = append(f, fmt.Sprint(ev["state"]), fmt.Sprint(ev["error"]), fmt.Sprint(ev["error_code"]))
	case "verified":
		f = append(f, fmt.Sprint(ev["state"]), fmt.Sprint(ev["expires_in"]))
	case "error":
		f = append(f, fmt.Sprint(ev["error"]))
	}
	return strings.Join(f, " ")
}

func wrong(answer string) string {
	if answer == "0000" {
		return "1111"
	}
	return "0000"
}
