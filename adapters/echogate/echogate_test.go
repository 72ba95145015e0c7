package echogate_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/adapters/echogate"
	"github.com/captchagate/captchagate/internal/flowtest"
)

// login answers 200 to alice's password and returns a 401 error to
// anything else, as echo handlers usually do.
func login(c echo.Context) error {
	var req flowtest.Credentials
	if err := json.NewDecoder(c.Request().Body).Decode(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest)
	}
	if req.Username != "alice" || req.Password != "wonderland" {
		return echo.NewHTTPError(http.StatusUnauthorized, "invalid_credentials")
	}
	return c.JSON(http.StatusOK, map[string]bool{"ok": true})
}

func newEcho(e *flowtest.Env) *echo.Echo {
	ec := echo.New()
	ec.HideBanner, ec.HidePort = true, true
	ec.Any("/captcha/*", echo.WrapHandler(e.Gate.Handler()))
	return ec
}

// The whole flow on echo: wrong passwords, returned as errors, trip the
// guard; the client gets a captcha, loads its image, answers it, and signs
// in with the token, which works once. The handler never runs for a
// request the guard answered.
func TestLoginFlow(t *testing.T) {
	t.Parallel()
	e := flowtest.NewEnv(t, captchagate.Config{})
	var calls atomic.Int32
	ec := newEcho(e)
	ec.POST("/login", func(c echo.Context) error { calls.Add(1); return login(c) }, echogate.Wrap(e.Gate.Guard(flowtest.LoginPolicy)))
	base := flowtest.Serve(t, ec)
	e.LoginOnce(t, base, `{"message":"invalid_credentials"}`, &calls)
}

// An SMS send route counted by phone: past its send rate the client needs a
// captcha (a token lets it send), past the ceiling it gets 429 with
// Retry-After even with a token; after the ceiling's window it sends again.
func TestSendCodeRateAndCeiling(t *testing.T) {
	t.Parallel()
	e := flowtest.NewEnv(t, captchagate.Config{})
	var sent atomic.Int32
	ec := newEcho(e)
	ec.POST("/send-code", func(c echo.Context) error {
		sent.Add(1)
		return c.JSON(http.StatusOK, map[string]bool{"ok": true})
	}, echogate.Wrap(e.Gate.Guard(flowtest.SendCodePolicy)))
	base := flowtest.Serve(t, ec)
	e.SendCode(t, base, &sent)
}

// errBadPassword is an application's error, which its HTTPErrorHandler maps
// to 401.
var errBadPassword = errors.New("bad password")

// failureShapes are the ways an echo handler answers 401. naiveTrips says
// whether echo.WrapMiddleware sees it too (a status written, not returned).
var failureShapes = []struct {
	name       string
	fail       echo.HandlerFunc
	body       string // what the client must still get
	naiveTrips bool
}{
	{"return echo.NewHTTPError", func(c echo.Context) error { return echo.NewHTTPError(http.StatusUnauthorized) },
		`{"message":"Unauthorized"}`, false},
	{"return echo.ErrUnauthorized", func(c echo.Context) error { return echo.ErrUnauthorized },
		`{"message":"Unauthorized"}`, false},
	{"return a custom error", func(c echo.Context) error { return errBadPassword }, `{"error":"invalid_credentials"}`, false},
	{"a middleware after Wrap", nil, `{"message":"Unauthorized"}`, false}, // it returns echo.ErrUnauthorized before the handler
	{"return c.JSON", func(c echo.Context) error {
		return c.JSON(http.StatusUnauthorized, map[string]string{"error": "invalid_credentials"})
	}, `{"error":"invalid_credentials"}`, true},
	{"return c.NoContent", func(c echo.Context) error { return c.NoContent(http.StatusUnauthorized) }, "", true},
}

// route mounts the captcha endpoints and POST /login, whose wrong
// passwords fail in the given shape, behind guard, with a custom
// HTTPErrorHandler that maps errBadPassword to 401.
func route(e *flowtest.Env, guard echo.MiddlewareFunc, fail echo.HandlerFunc, outer *atomic.Int32) *echo.Echo {
	ec := newEcho(e)
	ec.HTTPErrorHandler = func(err error, c echo.Context) {
		if errors.Is(err, errBadPassword) { // as many do, without checking c.Response().Committed
			_ = c.JSON(http.StatusUnauthorized, map[string]string{"error": "invalid_credentials"})
			return
		}
		ec.DefaultHTTPErrorHandler(err, c)
	}
	ec.Use(func(next echo.HandlerFunc) echo.HandlerFunc { // a logging middleware: sees the status the client gets
		return func(c echo.Context) error {
			req, res := c.Request(), c.Response()
			err := next(c)
			if c.Request() != req || c.Response() != res {
				outer.Store(-1) // the guard's request and writer must not outlive it
				return err
			}
			outer.Store(int32(c.Response().Status))
			return err
		}
	})
	mws := []echo.MiddlewareFunc{guard}
	if fail == nil { // the failure comes from an auth middleware behind the guard
		mws = append(mws, func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				if c.Request().Header.Get("Authorization") == "" {
					return echo.ErrUnauthorized
				}
				return next(c)
			}
		})
		fail = func(c echo.Context) error { return echo.ErrUnauthorized }
	}
	ec.POST("/login", func(c echo.Context) error {
		var req flowtest.Credentials
		_ = json.NewDecoder(c.Request().Body).Decode(&req)
		if req.Password != "wonderland" {
			return fail(c)
		}
		return c.String(http.StatusOK, "welcome")
	}, mws...)
	return ec
}

// Every way an echo handler answers 401, returned or written, counts as a
// failure: the sixth wrong password needs a captcha, and the client gets
// the body the error handler or the handler wrote.
func TestFailureShapesCount(t *testing.T) {
	t.Parallel()
	for _, shape := range failureShapes {
		t.Run(shape.name, func(t *testing.T) {
			t.Parallel()
			e := flowtest.NewEnv(t, captchagate.Config{})
			var outer atomic.Int32
			base := flowtest.Serve(t, route(e, echogate.Wrap(e.Gate.Guard(flowtest.LoginPolicy)), shape.fail, &outer))
			flowtest.FailuresTrip(t, base, shape.body, &outer)
		})
	}
}

// The control: under echo.WrapMiddleware a returned error never trips the
// guard, twelve wrong passwords are twelve 401s, and the guard warns that
// it sees no outcome; a status the handler writes itself trips it there
// too. This is why echogate exists, and shows the test above can fail.
func TestWrapMiddlewareMissesErrors(t *testing.T) {
	t.Parallel()
	for _, shape := range failureShapes {
		t.Run(shape.name, func(t *testing.T) {
			t.Parallel()
			e := flowtest.NewEnv(t, captchagate.Config{})
			var outer atomic.Int32
			base := flowtest.Serve(t, route(e, echo.WrapMiddleware(e.Gate.Guard(flowtest.LoginPolicy)), shape.fail, &outer))
			statuses := map[int]int{}
			for range 12 {
				statuses[flowtest.Post(t, base+"/login", flowtest.Wrong).Status]++
			}
			if shape.naiveTrips {
				assert.Equal(t, map[int]int{http.StatusUnauthorized: 5, http.StatusPreconditionRequired: 7}, statuses)
				return
			}
			assert.Equal(t, map[int]int{http.StatusUnauthorized: 12}, statuses, "never tripped")
			assert.Contains(t, e.Log.String(), "saw no outcome", "the core's warning")
		})
	}
}

// Fail with c.Request() reaches the guard: a handler that answers 200 to a
// wrong password but calls Fail still trips it.
func TestFailWithRequest(t *testing.T) {
	t.Parallel()
	e := flowtest.NewEnv(t, captchagate.Config{})
	ec := newEcho(e)
	ec.POST("/login", func(c echo.Context) error {
		captchagate.Fail(c.Request())
		return c.JSON(http.StatusOK, map[string]bool{"ok": false})
	}, echogate.Wrap(e.Gate.Guard(flowtest.LoginPolicy)))
	base := flowtest.Serve(t, ec)
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
	ec := newEcho(e)
	ec.POST("/items/:id/unlock", func(c echo.Context) error { return echo.ErrForbidden }, echogate.Wrap(e.Gate.Guard(flowtest.ItemPolicy)))
	base := flowtest.Serve(t, ec)
	flowtest.PerItem(t, base)
}

// Mounted in a route group, the captcha endpoints are where Config.Prefix
// says: the URLs sent to the client work, and the gate warns of nothing.
func TestMountInGroup(t *testing.T) {
	t.Parallel()
	e := flowtest.NewEnv(t, captchagate.Config{Prefix: "/auth/captcha/"})
	ec := echo.New()
	auth := ec.Group("/auth")
	auth.Any("/captcha/*", echo.WrapHandler(e.Gate.Handler()))
	auth.POST("/login", login, echogate.Wrap(e.Gate.Guard(flowtest.LoginPolicy)))
	base := flowtest.Serve(t, ec)
	e.InGroup(t, base)
}
