package gingate_test

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/adapters/gingate"
)

// A login on gin: the captcha endpoints mounted at Config.Prefix, the guard
// in front of the handler. Whatever way the handler answers 401 counts; the
// sixth wrong password gets 428 captcha_required.
func ExampleWrap() {
	gate, err := captchagate.New(captchagate.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	policy := captchagate.Policy{Name: "login", MaxFailures: 5, Window: 15 * time.Minute,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Any("/captcha/*path", gin.WrapH(gate.Handler())) // image, audio, new, refresh, verify
	r.POST("/login", gingate.Wrap(gate.Guard(policy)), func(c *gin.Context) {
		var req struct{ Username, Password string }
		if c.ShouldBindJSON(&req) != nil || req.Password != "wonderland" {
			c.AbortWithStatus(http.StatusUnauthorized) // counts, though gin writes it late
			return
		}
		c.JSON(http.StatusOK, gin.H{"ok": true})
	})

	srv := httptest.NewServer(r)
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
