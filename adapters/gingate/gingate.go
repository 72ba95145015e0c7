// Package gingate runs captchagate's guard, or any net/http middleware that
// judges the response, as gin middleware.
//
// The usual net/http adapter for gin leaves the guard blind: gin writes
// through a writer of its own (c.Writer), and writes a status set with
// c.Status or c.AbortWithStatus only after every handler has returned, so
// the guard sees no status and counts no failure. Wrap gives the handlers
// after it a c.Writer that writes through the guard's writer, flushes the
// status gin would send before the guard settles, and stops the chain when
// the guard answers itself (captcha required, too many requests):
//
//	r := gin.New()
//	r.Any("/captcha/*path", gin.WrapH(gate.Handler())) // at Config.Prefix
//	r.POST("/login", gingate.Wrap(gate.Guard(policy)), login)
//
// In login, a status of 401 or 403 (c.Status, c.AbortWithStatus,
// c.AbortWithError, c.JSON, c.String...) counts as a failure, as do
// captchagate.Fail(c.Request) and captchagate.Succeed(c.Request).
//
// What the guard cannot see: a status written by middleware registered
// before Wrap (it runs after the guard settled), and errors pushed with
// c.Error that a middleware before Wrap turns into a status. Map errors to
// statuses in the handlers, or in middleware registered after Wrap.
package gingate

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Wrap returns gin middleware that runs the handlers after it inside mw,
// with c.Request and c.Writer the request and writer mw passed on. mw is
// gate.Guard(policy), guard.Wrap, or a chain ending in one (htmlform's
// Flow.Middleware around a guard). If mw answers the request itself, the
// handlers after Wrap do not run. c.Request and c.Writer are restored when
// mw returns. The route's parameters (c.Param) are set on the request as
// path values, so key sources can read them with r.PathValue.
func Wrap(mw func(http.Handler) http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		req, prev := c.Request, c.Writer
		for _, p := range c.Params { // for key sources that read r.PathValue
			req.SetPathValue(p.Key, p.Value)
		}
		reached := false
		mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reached = true
			gw := &writer{ResponseWriter: w, size: noWritten, status: http.StatusOK}
			c.Request, c.Writer = r, gw
			c.Next()
			// What gin would write once every handler returned, written
			// now, through w, while the guard is still watching: a status
			// set with c.Status, or the default 200.
			gw.WriteHeaderNow()
		})).ServeHTTP(prev, req)
		c.Request, c.Writer = req, prev
		if !reached {
			c.Abort() // mw answered: captcha required, too many requests...
		}
		// Send what the guard settled on, so that nothing after it changes
		// the status.
		prev.WriteHeaderNow()
	}
}

const noWritten = -1

// writer is a gin.ResponseWriter that writes through the writer the guard
// passed on, holding the status back until the body or WriteHeaderNow, as
// gin's own writer does.
type writer struct {
	http.ResponseWriter
	size   int
	status int
}

var _ gin.ResponseWriter = (*writer)(nil)

// Unwrap lets http.ResponseController reach the writers below.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteHeader sets the status to write; it is ignored once written.
func (w *writer) WriteHeader(code int) {
	if code > 0 && !w.Written() {
		w.status = code
	}
}

// WriteHeaderNow writes the status and headers if not written yet.
func (w *writer) WriteHeaderNow() {
	if !w.Written() {
		w.size = 0
		w.ResponseWriter.WriteHeader(w.status)
	}
}

// Write writes the status if not written yet, then b.
func (w *writer) Write(b []byte) (int, error) {
	w.WriteHeaderNow()
	n, err := w.ResponseWriter.Write(b)
	w.size += n
	return n, err
}

// WriteString writes the status if not written yet, then s.
func (w *writer) WriteString(s string) (int, error) {
	w.WriteHeaderNow()
	n, err := io.WriteString(w.ResponseWriter, s)
	w.size += n
	return n, err
}

// Status returns the status written, or to be written.
func (w *writer) Status() int { return w.status }

// Size returns the bytes of body written, -1 before the headers.
func (w *writer) Size() int { return w.size }

// Written reports whether the status and headers were written.
func (w *writer) Written() bool { return w.size != noWritten }

// Flush writes the status if not written yet and flushes.
func (w *writer) Flush() {
	w.WriteHeaderNow()
	http.NewResponseController(w.ResponseWriter).Flush()
}

var errHijacked = errors.New("gingate: cannot hijack after the body was written")

// Hijack hands over the connection, as gin's writer does: before any body.
func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.size > 0 {
		return nil, nil, errHijacked
	}
	w.size = max(w.size, 0)
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// CloseNotify implements gin.ResponseWriter's http.CloseNotifier; use the
// request's context instead.
func (w *writer) CloseNotify() <-chan bool {
	type closeNotifier interface{ CloseNotify() <-chan bool }
	if cn, ok := below[closeNotifier](w.ResponseWriter); ok {
		return cn.CloseNotify()
	}
	return make(chan bool) // never closes
}

// Pusher returns the http.Pusher below, or nil.
func (w *writer) Pusher() http.Pusher {
	p, _ := below[http.Pusher](w.ResponseWriter)
	return p
}

// below returns the first writer in the chain from w (through Unwrap) that
// implements T.
func below[T any](w http.ResponseWriter) (T, bool) {
	for w != nil {
		if t, ok := w.(T); ok {
			return t, true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	var zero T
	return zero, false
}
