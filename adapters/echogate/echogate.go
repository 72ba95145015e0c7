// Package echogate runs captchagate's guard, or any net/http middleware that
// judges the response, as echo (v4) middleware.
//
// echo.WrapMiddleware leaves the guard blind to errors: a handler that
// returns echo.NewHTTPError(401), echo.ErrUnauthorized or an error of its
// own has it written by echo's HTTPErrorHandler after every middleware has
// returned, so the guard sees no status and counts no failure. Wrap writes
// an error the handlers return through the HTTPErrorHandler while the guard
// is still watching:
//
//	e := echo.New()
//	e.Any("/captcha/*", echo.WrapHandler(gate.Handler())) // at Config.Prefix
//	e.POST("/login", login, echogate.Wrap(gate.Guard(policy)))
//
// In login, a status of 401 or 403 counts as a failure, whether written
// (c.JSON, c.NoContent, c.String...) or returned as an error that the
// HTTPErrorHandler, the default or a custom one, turns into 401 or 403; so
// do captchagate.Fail(c.Request()) and captchagate.Succeed(c.Request()).
//
// The error is handled inside the guard, so the middleware before Wrap
// gets nil instead of it (the response is written by then). A middleware
// before Wrap that turns errors into statuses itself is not seen by the
// guard: map errors in the HTTPErrorHandler, in the handlers, or in
// middleware registered after Wrap.
package echogate

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Wrap returns echo middleware that runs the handlers after it inside mw,
// with the echo context's request and response the request and writer mw
// passed on; an error they return is handled there, with c.Error, and Wrap
// returns nil. mw is gate.Guard(policy), guard.Wrap, or a chain ending in
// one. If mw answers the request itself (captcha required, too many
// requests), the handlers after Wrap do not run. The context's request and
// response are restored when mw returns. The route's parameters (c.Param)
// are set on the request as path values, so key sources can read them with
// r.PathValue.
func Wrap(mw func(http.Handler) http.Handler) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req, res := c.Request(), c.Response()
			names, values := c.ParamNames(), c.ParamValues()
			for i := range min(len(names), len(values)) { // for key sources that read r.PathValue
				req.SetPathValue(names[i], values[i])
			}
			mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c.SetRequest(r)
				c.SetResponse(echo.NewResponse(w, c.Echo()))
				if err := next(c); err != nil {
					c.Error(err) // the HTTPErrorHandler writes it through w, the guard watching
				}
			})).ServeHTTP(res, req)
			c.SetRequest(req)
			c.SetResponse(res)
			return nil
		}
	}
}
