package echogate_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/adapters/echogate"
)

// A login on echo: the captcha endpoints mounted at Config.Prefix, the
// guard in front of the handler. The 401 the handler returns as an error
// counts; the sixth wrong password gets 428 captcha_required.
func ExampleWrap() {
	gate, err := captchagate.New(captchagate.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	policy := captchagate.Policy{Name: "login", MaxFailures: 5, Window: 15 * time.Minute,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}}

	e := echo.New()
	e.Any("/captcha/*", echo.WrapHandler(gate.Handler())) // image, audio, new, refresh, verify
	e.POST("/login", func(c echo.Context) error {
		var req struct{ Username, Password string }
		if json.NewDecoder(c.Request().Body).Decode(&req) != nil || req.Password != "wonderland" {
			return echo.ErrUnauthorized // counts, though echo writes it after the middleware
		}
		return c.JSON(http.StatusOK, map[string]bool{"ok": true})
	}, echogate.Wrap(gate.Guard(policy)))

	srv := httptest.NewServer(e)
	defer srv.Close()
	for range 6 {
		res, err := http.Post(srv.URL+"/login", "application/json", strings.NewReader(`{"username":"alice","password":"nope"}`))
		if err != nil {
			log.Fatal(err)
		}
		res.Body.Close()
		fmt.Print(res.StatusCode, " ")
	}
	fmt.Println()
	// Output: 401 401 401 401 401 428
}
