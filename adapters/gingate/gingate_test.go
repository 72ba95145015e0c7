package gingate_test

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/adapters/gingate"
	"github.com/captchagate/captchagate/internal/flowtest"
)

func init() { gin.SetMode(gin.TestMode) }

// login answers 200 to alice's password and 401, as JSON, to anything else.
func login(c *gin.Context) {
	var req flowtest.Credentials
	if err := c.ShouldBindJSON(&req); err != nil {
		c.AbortWithStatus(http.StatusBadRequest)
		return
	}
	if req.Username != "alice" || req.Password != "wonderland" {
		c.JSON(http.StatusUnauthorized, gin.H{"error": "invalid_credentials"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"ok": true})
}

// The whole flow on gin: wrong passwords trip the guard, the client gets a
// captcha, loads its image, answers it, and signs in with the token, which
// works once. The handler never runs for a request the guard answered.
func TestLoginFlow(t *testing.T) {
	t.Parallel()
	e := flowtest.NewEnv(t, captchagate.Config{})
	var calls atomic.Int32
	r := gin.New()
	r.Any("/captcha/*path", gin.WrapH(e.Gate.Handler()))
	r.POST("/login", gingate.Wrap(e.Gate.Guard(flowtest.LoginPolicy)), func(c *gin.Context) { calls.Add(1); login(c) })
	base := flowtest.Serve(t, r)
	e.LoginOnce(t, base, `{"error":"invalid_credentials"}`, &calls)
}

// An SMS send route counted by phone: past its send rate the client needs a
// captcha (a token lets it send), past the ceiling it gets 429 with
// Retry-After even with a token; after the ceiling's window it sends again.
func TestSendCodeRateAndCeiling(t *testing.T) {
	t.Parallel()
	e := flowtest.NewEnv(t, captchagate.Config{})
	var sent atomic.Int32
	r := gin.New()
	r.Any("/captcha/*path", gin.WrapH(e.Gate.Handler()))
	r.POST("/send-code", gingate.Wrap(e.Gate.Guard(flowtest.SendCodePolicy)), func(c *gin.Context) {
		sent.Add(1)
		c.JSON(http.StatusOK, gin.H{"ok": true})
	})
	base := flowtest.Serve(t, r)
	e.SendCode(t, base, &sent)
}

// failureShapes are the ways a gin handler answers 401.
var failureShapes = []struct {
	name string
	fail gin.HandlerFunc
	body string // what the client must still get
}{
	{"c.Status", func(c *gin.Context) { c.Status(http.StatusUnauthorized) }, ""},
	{"c.AbortWithStatus", func(c *gin.Context) { c.AbortWithStatus(http.StatusUnauthorized) }, ""},
	{"c.AbortWithError", func(c *gin.Context) { _ = c.AbortWithError(http.StatusUnauthorized, errors.New("wrong password")) }, ""},
	{"c.JSON", func(c *gin.Context) { c.JSON(http.StatusUnauthorized, gin.H{"error": "invalid_credentials"}) }, `{"error":"invalid_credentials"}`},
	{"c.String", func(c *gin.Context) { c.String(http.StatusUnauthorized, "no") }, "no"},
	{"a middleware after Wrap", nil, `{"error":"no"}`}, // it aborts with 401 before the handler
}

// route mounts the captcha endpoints and POST /login, whose wrong
// passwords fail in the given shape, behind guard.
func route(e *flowtest.Env, guard gin.HandlerFunc, fail gin.HandlerFunc, outer *atomic.Int32) *gin.Engine {
	r := gin.New()
	r.Use(func(c *gin.Context) { // a logging middleware: sees the status the client gets
		req, w := c.Request, c.Writer
		c.Next()
		if c.Request != req || c.Writer != w {
			outer.Store(-1) // the guard's request and writer must not outlive it
			return
		}
		outer.Store(int32(c.Writer.Status()))
	})
	r.Any("/captcha/*path", gin.WrapH(e.Gate.Handler()))
	handlers := []gin.HandlerFunc{guard}
	if fail == nil { // the failure comes from an auth middleware behind the guard
		handlers = append(handlers, func(c *gin.Context) {
			if c.GetHeader("Authorization") == "" {
				c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "no"})
			}
		})
		fail = func(c *gin.Context) { c.Status(http.StatusUnauthorized) }
	}
	handlers = append(handlers, func(c *gin.Context) {
		var req flowtest.Credentials
		_ = c.ShouldBindJSON(&req)
		if req.Password != "wonderland" {
			fail(c)
			return
		}
		c.String(http.StatusOK, "welcome")
	})
	r.POST("/login", handlers...)
	return r
}

// Every way a gin handler answers 401 counts as a failure: the sixth wrong
// password needs a captcha, and the client gets the body the handler wrote.
func TestFailureShapesCount(t *testing.T) {
	t.Parallel()
	for _, shape := range failureShapes {
		t.Run(shape.name, func(t *testing.T) {
			t.Parallel()
			e := flowtest.NewEnv(t, captchagate.Config{})
			var outer atomic.Int32
			base := flowtest.Serve(t, route(e, gingate.Wrap(e.Gate.Guard(flowtest.LoginPolicy)), shape.fail, &outer))
			flowtest.FailuresTrip(t, base, shape.body, &outer)
		})
	}
}

// naive is the usual adapter of net/http middleware to gin, the one issue
// 19's user tried: it hands the guard gin's writer and lets gin's handlers
// go on writing through gin's own.
func naive(mw func(http.Handler) http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.Request = r
			c.Next()
		})).ServeHTTP(c.Writer, c.Request)
	}
}

// The control: under the naive adapter no shape trips the guard, twelve
// wrong passwords are twelve 401s, and the guard warns that it sees no
// outcome. This is why gingate exists, and shows the test above can fail.
func TestNaiveAdapterNeverTrips(t *testing.T) {
	t.Parallel()
	for _, shape := range failureShapes {
		t.Run(shape.name, func(t *testing.T) {
			t.Parallel()
			e := flowtest.NewEnv(t, captchagate.Config{})
			var outer atomic.Int32
			base := flowtest.Serve(t, route(e, naive(e.Gate.Guard(flowtest.LoginPolicy)), shape.fail, &outer))
			for i := 1; i <= 12; i++ {
				assert.Equal(t, http.StatusUnauthorized, flowtest.Post(t, base+"/login", flowtest.Wrong).Status, "wrong password %d", i)
			}
			assert.Contains(t, e.Log.String(), "saw no outcome", "the core's warning")
		})
	}
}

// Fail and Succeed with c.Request reach the guard: a handler that answers
// 200 to a wrong password but calls Fail still trips it.
func TestFailWithRequest(t *testing.T) {
	t.Parallel()
	e := flowtest.NewEnv(t, captchagate.Config{})
	r := gin.New()
	r.POST("/login", gingate.Wrap(e.Gate.Guard(flowtest.LoginPolicy)), func(c *gin.Context) {
		captchagate.Fail(c.Request)
		c.JSON(http.StatusOK, gin.H{"ok": false})
	})
	base := flowtest.Serve(t, r)
	for i := 1; i <= 5; i++ {
		require.Equal(t, http.StatusOK, flowtest.Post(t, base+"/login", flowtest.Wrong).Status)
	}
	assert.Equal(t, http.StatusPreconditionRequired, flowtest.Post(t, base+"/login", flowtest.Wrong).Status)
}

// A key read from the route's parameter (r.PathValue) counts each item on
// its own: failures on one item trip that item only.
func TestPathValueKey(t *testing.T) {
	t.Parallel()
	e := flowtest.NewEnv(t, captchagate.Config{})
	r := gin.New()
	r.POST("/items/:id/unlock", gingate.Wrap(e.Gate.Guard(flowtest.ItemPolicy)), func(c *gin.Context) { c.Status(http.StatusForbidden) })
	base := flowtest.Serve(t, r)
	flowtest.PerItem(t, base)
}

// Mounted in a route group, the captcha endpoints are where Config.Prefix
// says: the URLs sent to the client work, and the gate warns of nothing.
func TestMountInGroup(t *testing.T) {
	t.Parallel()
	e := flowtest.NewEnv(t, captchagate.Config{Prefix: "/auth/captcha/"})
	r := gin.New()
	auth := r.Group("/auth")
	auth.Any("/captcha/*path", gin.WrapH(e.Gate.Handler()))
	auth.POST("/login", gingate.Wrap(e.Gate.Guard(flowtest.LoginPolicy)), login)
	base := flowtest.Serve(t, r)
	e.InGroup(t, base)
}
