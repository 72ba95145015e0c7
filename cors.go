package captchagate

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CORS lets pages of other origins call the captcha endpoints (Handler)
// from a browser: an SDK on https://app.example.com talking to an API on
// https://api.example.com. Only Handler's endpoints answer it; a guarded
// route's CORS is the application's (rs/cors, or its router's), which must
// allow the X-Captcha-Token header and expose Retry-After, RateLimit and
// RateLimit-Policy for a cross-origin client to retry with a token.
type CORS struct {
	// Origins are the origins allowed, exactly as browsers send them
	// ("https://app.example.com", "http://localhost:3000": scheme, host,
	// port, no path). "*" allows every origin, without credentials.
	// Default none: no CORS header is sent, and a preflight is answered 405
	// as any OPTIONS request.
	Origins []string
	// Credentials lets the allowed origins send cookies (htmlform's
	// session, the device cookie of Policy.Devices) with fetch's
	// credentials: "include": Access-Control-Allow-Credentials: true. The
	// session's cookie must then be SameSite=None; Secure. It is refused
	// with "*". Default false: cross-origin calls carry no cookies, so the
	// captchas they solve are bound to no session.
	Credentials bool
	// MaxAge is how long a browser may cache a preflight's answer. Default
	// 10 minutes.
	MaxAge time.Duration
}

// corsPolicy is Config.CORS, compiled.
type corsPolicy struct {
	any         bool
	origins     []string
	credentials bool
	maxAge      string
}

var (
	corsMethods = []string{"GET, HEAD, POST"}
	corsHeaders = []string{"Content-Type", "X-Captcha-Token", "Accept-Language"}
	corsExpose  = []string{"Retry-After, RateLimit, RateLimit-Policy"}
	corsTrue    = []string{"true"}
)

func compileCORS(c CORS) (*corsPolicy, error) {
	if len(c.Origins) == 0 {
		if c.Credentials || c.MaxAge != 0 {
			return nil, errors.New("captchagate: Config.CORS has no Origins")
		}
		return nil, nil
	}
	p := &corsPolicy{credentials: c.Credentials}
	for _, o := range c.Origins {
		if o == "*" {
			p.any = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil || o != u.Scheme+"://"+u.Host {
			return nil, fmt.Errorf("captchagate: Config.CORS.Origins: %q is not an origin (scheme://host[:port])", o)
		}
		p.origins = append(p.origins, strings.ToLower(o))
	}
	if p.any && p.credentials {
		return nil, errors.New(`captchagate: Config.CORS: "*" cannot be allowed with Credentials`)
	}
	switch {
	case c.MaxAge < 0:
		return nil, errors.New("captchagate: Config.CORS.MaxAge must not be negative")
	case c.MaxAge == 0:
		c.MaxAge = 10 * time.Minute
	}
	p.maxAge = strconv.FormatInt(int64(c.MaxAge/time.Second), 10)
	return p, nil
}

// handle sets the CORS headers of a request to Handler and answers it if it
// is a preflight of an allowed origin (true: nothing more to do).
func (p *corsPolicy) handle(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !p.any && !slices.Contains(p.origins, strings.ToLower(origin)) {
		return false
	}
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	if p.any {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if p.credentials {
		h["Access-Control-Allow-Credentials"] = corsTrue
	}
	if !preflight {
		h["Access-Control-Expose-Headers"] = corsExpose
		return false
	}
	h["Access-Control-Allow-Methods"] = corsMethods
	// The headers asked for that the endpoints read; the browser refuses
	// the call if one it needs is missing.
	var allowed []string
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if slices.ContainsFunc(corsHeaders, func(h string) bool { return strings.EqualFold(h, name) }) {
				allowed = append(allowed, name)
			}
		}
	}
	if len(allowed) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(allowed, ", "))
	}
	h.Set("Access-Control-Max-Age", p.maxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}
