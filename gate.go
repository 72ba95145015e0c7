package captchagate

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate/store/memstore"
)

// StoreFailMode says what the counting step does when the store fails.
// Captcha verification and token consumption always fail closed: without the
// store, no captcha is verified and no token is accepted.
type StoreFailMode int

const (
	// FailClosed treats a key whose counter cannot be read or written as
	// tripped: the request needs a captcha, and if none can be issued either,
	// it is answered 503 service_unavailable. The default.
	FailClosed StoreFailMode = iota
	// FailOpen lets the request through uncounted. Availability over
	// protection: choose it only where another control stands behind the gate.
	FailOpen
)

// Config configures a Gate. Every field's zero value means its default.
type Config struct {
	// Secret keys the HMACs that name counters in the store and that bind
	// captchas and tokens to a policy and its key values. At least 32 bytes;
	// every instance sharing a Store must use the same. Default: 32 random
	// bytes, allowed only with the default in-memory store.
	Secret []byte

	// Store holds counters, captchas and tokens. Default: a memstore.Store
	// bounded by MaxEntries, closed by Gate.Close.
	Store Store
	// MaxEntries bounds the entries (counters, buckets, captchas, tokens) of
	// the default store. Default 1<<20 (tens of MB). At the bound it
	// over-counts rather than refuse or forget (store/memstore): a tripped
	// counter stays tripped, and newcomers are asked for a captcha until the
	// flood's windows end.
	MaxEntries int

	// Challenge is the kind of captcha issued. Default Digits{}.
	Challenge Challenge
	// Dialects are the client shapes the captcha endpoints and guards
	// understand besides the gate's own (docs/protocol.md), tried in order.
	// Default none.
	Dialects []Dialect

	// Prefix is the path Handler is mounted under, with a trailing slash.
	// Default "/captcha/".
	Prefix string
	// BaseURL, if set ("https://example.com"), makes the captcha URLs in
	// responses absolute. Default: absolute paths. The request's Host header
	// is never used.
	BaseURL string

	// TrustedProxies are the networks whose forwarded header is believed.
	// Default none: the client address is RemoteAddr, and X-Forwarded-For is
	// ignored, since any client can send it.
	TrustedProxies []netip.Prefix
	// ForwardedHeader is the header trusted proxies append the client address
	// to. Default "X-Forwarded-For": a comma-separated list of addresses,
	// each of which may carry a port ("192.0.2.1:4711", "[2001:db8::1]:4711").
	// "Forwarded" is read as RFC 7239: the for= parameter of each element.
	// An entry that is not an address ("unknown", an obfuscated "_name",
	// garbage) puts the request in the strict bucket (see ClientIP).
	ForwardedHeader string
	// AllowNetworks are client networks (as ClientIP resolves the client's
	// address) whose requests bypass every guard of the Gate: not counted,
	// never asked for a captcha. For a monitoring network or an office
	// behind a shared address; a list that is too wide turns the guards off
	// for everyone in it. Default none.
	AllowNetworks []netip.Prefix
	// TrustUnixSocket believes the forwarded header of requests whose
	// RemoteAddr is not an IP address (a unix-socket listener's "@", "" or
	// path), as if they came from a trusted proxy. Set it when a reverse
	// proxy reaches the server over a unix socket that nothing else can
	// reach, and that proxy always sets the header. Default false: such
	// requests all count in the strict bucket (see ClientIP).
	TrustUnixSocket bool

	// CaptchaTTL is how long a captcha can be answered. Default 5 minutes.
	CaptchaTTL time.Duration
	// TokenTTL is how long a captcha_token can be used. Default 2 minutes.
	TokenTTL time.Duration
	// MaxRefreshes bounds how often one captcha flow can be refreshed.
	// Default 5.
	MaxRefreshes int

	// CreateRate and CreateBurst limit, per client address, how many captchas
	// are issued (by guards, new, refresh and after wrong answers). Default
	// one every two seconds with a burst of 20; together with CaptchaTTL this
	// bounds the captchas one client has outstanding.
	CreateRate  rate.Limit
	CreateBurst int

	// MediaRate and MediaBurst limit, per client address, how many captcha
	// images and sounds are served. Default 5 a second with a burst of 30.
	MediaRate  rate.Limit
	MediaBurst int
	// MediaCacheBytes bounds the cache of rendered images and sounds, so a
	// repeated fetch costs no render. Default 16 MiB; negative disables it.
	// Renders themselves run on at most half the CPUs (at least one) at a
	// time, so media requests cannot starve guarded routes.
	MediaCacheBytes int

	// MaxBodyBytes bounds request bodies read to find keys and proof.
	// Default 64 KiB; larger bodies are answered 413.
	MaxBodyBytes int64

	// StoreFailure is the counting step's policy when the store fails.
	// Default FailClosed. A store that is full (ErrStoreFull) is not a
	// failure it governs: under either mode the request is asked for a
	// captcha, which a Marker store can still issue and spend.
	StoreFailure StoreFailMode
	// StoreTimeout bounds how long a request waits on a shared Store: all
	// store calls of a guarded request before its handler share one budget,
	// settling the counters after the handler gets another (a Batcher
	// writes those behind, unwaited: see Batcher.Later), and each captcha
	// endpoint request gets one. A call cut short counts as a store failure.
	// Store calls are detached from the client's cancellation, so a client
	// that hangs up does not cancel a counting write. Default 250ms. The
	// in-memory store never waits and is not timed.
	StoreTimeout time.Duration

	// ErrorHandler renders the gate's errors. Default WriteError (JSON).
	ErrorHandler ErrorHandler
	// OnEvent, if set, is called for each Event, synchronously on the
	// goroutine of the request the event is about, before the response is
	// complete; it must not block. One kind can arrive late: a Store that is
	// a Batcher (store/redisstore) writes give-backs and resets behind, after
	// the response, and reports their failure as EventStoreError from its own
	// goroutine, possibly after the request ended (its Request is then a
	// request that has been answered). Hooks must be safe for concurrent use.
	OnEvent func(Event)
	// CORS lets pages of the origins it lists call Handler's endpoints
	// from a browser (preflights answered). Default none.
	CORS CORS
	// RateLimitHeaders chooses the RateLimit and RateLimit-Policy header
	// fields guards send. Default: on 428 and 429 answers, saying nothing
	// per account (see RateLimitHeaders).
	RateLimitHeaders RateLimitHeaders
	// RawEventValues puts the values of keys themselves (the account, the
	// number, the address, as the key counts them) in Event.Value, instead
	// of their keyed hash: for an application that must name the account in
	// its own lockout records. Default false. Logs never carry them.
	RawEventValues bool
	// Logger receives warnings (tripped thresholds, refused captchas) and
	// store errors. No secret, answer, token or key value is logged.
	// Default slog.Default().
	Logger *slog.Logger

	// Now returns the current time. Default time.Now. Tests inject a clock;
	// the default store uses it too.
	Now func() time.Time

	// DefaultLanguage is the language of error descriptions (and of
	// htmlform's widget) for a request that sets none (WithLanguage) and
	// whose Accept-Language matches none of Languages(): "en", "ru", "zh",
	// "ja", "pt", "es", "de" or "fr". Default "en". See docs/protocol.md,
	// "Languages".
	DefaultLanguage string
}

// Gate owns the store, the secret and the challenge. It hands out guards for
// policies (Guard, NewGuard) and serves the captcha endpoints (Handler). A
// Gate is safe for concurrent use.
type Gate struct {
	store                Store
	ownStore             *memstore.Store
	challenge            Challenge
	dialects             []Dialect
	ips                  ipResolver
	prefix               string
	urlBase              string
	basePath             string // Config.BaseURL's path, without its trailing slash
	captchaTTL, tokenTTL time.Duration
	maxRefreshes         int
	createInterval       time.Duration
	createBurst          int
	maxBody              int64
	failMode             StoreFailMode
	storeTimeout         time.Duration // 0: the store never blocks
	mediaInterval        time.Duration
	mediaBurst           int
	media                *mediaCache
	renderSlots          chan struct{}
	captchas             keeper // sealed or stored (seal.go)
	tokens               keeper
	counter              counter // how guards count on the store
	freeRounds           bool    // counter.freeRounds(), asked once
	errorHandler         ErrorHandler
	onEvent              func(Event)
	rawValues            bool
	allowNets            []netip.Prefix // Config.AllowNetworks, masked
	rateLimits           RateLimitHeaders
	cors                 *corsPolicy // nil: no CORS
	mode                 string      // the challenge's Event.Mode
	heard                *heardSet   // captchas whose sound was served (nil: the challenge has none)
	logger               *slog.Logger
	mountChecked         atomic.Bool // Handler has looked at its first request's path (handlers.go)
	now                  func() time.Time
	defaultLang          string
	macs                 sync.Pool

	mu       sync.RWMutex
	policies map[string]*Guard
}

// New returns a Gate for c, or an error if c is invalid.
func New(c Config) (*Gate, error) {
	g := &Gate{
		store:        c.Store,
		challenge:    c.Challenge,
		dialects:     append([]Dialect(nil), c.Dialects...),
		prefix:       cmp.Or(c.Prefix, "/captcha/"),
		captchaTTL:   positiveOr(c.CaptchaTTL, 5*time.Minute),
		tokenTTL:     positiveOr(c.TokenTTL, 2*time.Minute),
		maxRefreshes: positiveOr(c.MaxRefreshes, 5),
		maxBody:      positiveOr(c.MaxBodyBytes, 64<<10),
		failMode:     c.StoreFailure,
		storeTimeout: cmp.Or(c.StoreTimeout, 250*time.Millisecond),
		errorHandler: c.ErrorHandler,
		onEvent:      c.OnEvent,
		rawValues:    c.RawEventValues,
		rateLimits:   c.RateLimitHeaders,
		logger:       cmp.Or(c.Logger, slog.Default()),
		now:          c.Now,
		defaultLang:  cmp.Or(c.DefaultLanguage, "en"),
		renderSlots:  make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		policies:     map[string]*Guard{},
	}
	// Nil interfaces and funcs mean their default (not cmp.Or: comparing a
	// Challenge whose dynamic type is not comparable would panic).
	if g.challenge == nil {
		g.challenge = Digits{}
	}
	g.mode = g.challenge.Kind()
	if m, ok := g.challenge.(Moder); ok {
		g.mode = m.Mode()
	}
	if r, ok := g.challenge.(Renderer); ok && slices.ContainsFunc(r.Media(), func(m Media) bool { return m.Member == "audio_url" }) {
		g.heard = newHeardSet()
	}
	if g.errorHandler == nil {
		g.errorHandler = WriteError
	}
	if g.now == nil {
		g.now = time.Now
	}
	for _, step := range []func(*Config) error{g.setSecret, g.checkConfig, g.setLimits, g.setProxies} {
		if err := step(&c); err != nil {
			return nil, err
		}
	}
	var err error
	if g.cors, err = compileCORS(c.CORS); err != nil {
		return nil, err
	}
	g.urlBase = strings.TrimSuffix(c.BaseURL, "/") + g.prefix
	if u, err := url.Parse(c.BaseURL); err == nil {
		g.basePath = strings.TrimSuffix(u.Path, "/") // "/app" in https://example.com/app: a mount under it passes checkMount
	}
	g.setStore(c)
	if err := g.setCaptchas(c); err != nil {
		return nil, err
	}
	return g, nil
}

func positiveOr[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// setSecret keys the gate's HMACs with a copy of c.Secret, or with a random
// secret for the default in-memory store.
func (g *Gate) setSecret(c *Config) error {
	secret := c.Secret
	switch {
	case len(secret) == 0 && c.Store != nil:
		return errors.New("captchagate: Config.Secret is required with a shared Store")
	case len(secret) == 0:
		secret = make([]byte, 32)
		rand.Read(secret)
	case len(secret) < 32:
		return errors.New("captchagate: Config.Secret must be at least 32 bytes")
	}
	secret = append([]byte(nil), secret...)
	g.macs.New = func() any { return hmac.New(sha256.New, secret) }
	return nil
}

// checkConfig refuses values with no meaning.
func (g *Gate) checkConfig(c *Config) error {
	for i, d := range g.dialects {
		if d == nil {
			return fmt.Errorf("captchagate: Config.Dialects[%d] is nil", i)
		}
	}
	switch {
	case !strings.HasPrefix(g.prefix, "/") || !strings.HasSuffix(g.prefix, "/"):
		return fmt.Errorf("captchagate: Config.Prefix %q must start and end with /", g.prefix)
	case g.maxRefreshes > 250:
		return errors.New("captchagate: Config.MaxRefreshes must be at most 250")
	case g.failMode != FailClosed && g.failMode != FailOpen:
		return errors.New("captchagate: unknown Config.StoreFailure")
	case c.StoreTimeout < 0:
		return errors.New("captchagate: Config.StoreTimeout must not be negative")
	case tables[g.defaultLang] == nil:
		return fmt.Errorf("captchagate: Config.DefaultLanguage %q must be one of %s", g.defaultLang, strings.Join(languages, ", "))
	}
	return nil
}

// setLimits sets the per-client creation and media buckets and the media
// cache.
func (g *Gate) setLimits(c *Config) error {
	var err error
	if g.createInterval, g.createBurst, err = bucket(c.CreateRate, c.CreateBurst, 0.5, 20, "Create"); err != nil {
		return err
	}
	if g.mediaInterval, g.mediaBurst, err = bucket(c.MediaRate, c.MediaBurst, 5, 30, "Media"); err != nil {
		return err
	}
	switch {
	case c.MediaCacheBytes == 0:
		g.media = newMediaCache(16 << 20)
	case c.MediaCacheBytes > 0:
		g.media = newMediaCache(c.MediaCacheBytes)
	}
	return nil
}

// setProxies sets the trusted proxies and their forwarded header.
func (g *Gate) setProxies(c *Config) error {
	g.ips.trusted = append([]netip.Prefix(nil), c.TrustedProxies...)
	for i, p := range g.ips.trusted {
		if !p.IsValid() {
			return fmt.Errorf("captchagate: Config.TrustedProxies[%d] is not a valid prefix", i)
		}
		g.ips.trusted[i] = p.Masked()
	}
	g.ips.header = http.CanonicalHeaderKey(cmp.Or(c.ForwardedHeader, "X-Forwarded-For"))
	g.ips.forwarded = g.ips.header == "Forwarded"
	g.ips.trustPath = c.TrustUnixSocket
	for i, p := range c.AllowNetworks {
		if !p.IsValid() {
			return fmt.Errorf("captchagate: Config.AllowNetworks[%d] is not a valid prefix", i)
		}
		g.allowNets = append(g.allowNets, p.Masked())
	}
	return nil
}

// setStore chooses, once, the store (the default in-memory one if c names
// none) and the counter the guards count through.
func (g *Gate) setStore(c Config) {
	if g.store == nil {
		g.ownStore = memstore.New(memstore.Options{MaxEntries: c.MaxEntries, Now: c.Now}) // nil: its own cheaper clock
		g.store = g.ownStore
	}
	switch s := g.store.(type) {
	case *memstore.Store:
		g.storeTimeout = 0 // it never waits
		mc := newMemCounter(s)
		mc.resets = !g.rateLimits.Off && g.rateLimits.Allowed // RateLimit's t on every response
		g.counter = mc
	case Batcher:
		g.counter = &batchCounter{hmacNames{g}, s}
	default:
		g.counter = &storeCounter{hmacNames{g}, s}
	}
	g.freeRounds = g.counter.freeRounds()
}

// bucket turns a configured rate and burst into a GCRA interval and burst,
// applying the defaults; an infinite rate means no limit (interval 0).
func bucket(r rate.Limit, burst int, defRate rate.Limit, defBurst int, name string) (time.Duration, int, error) {
	if r == 0 {
		r = defRate
	}
	if r < 0 || burst < 0 {
		return 0, 0, fmt.Errorf("captchagate: Config.%sRate and %sBurst must not be negative", name, name)
	}
	if burst == 0 {
		burst = defBurst
	}
	if r == rate.Inf {
		return 0, burst, nil
	}
	return max(time.Duration(float64(time.Second)/float64(r)), 1), burst, nil
}

// URL returns the address of name under the captcha endpoints:
// Config.BaseURL, Config.Prefix, then name ("/captcha/refresh").
func (g *Gate) URL(name string) string { return g.urlBase + name }

func noCancel() {}

// storeContext returns the context for one budget of store calls made for r:
// detached from the client's cancellation, and bounded by StoreTimeout.
func (g *Gate) storeContext(r *http.Request) (context.Context, context.CancelFunc) {
	if g.storeTimeout == 0 {
		return r.Context(), noCancel
	}
	return context.WithTimeout(context.WithoutCancel(r.Context()), g.storeTimeout)
}

// Close releases what the Gate created: the default store's janitor. A Store
// passed in Config is the caller's to close.
func (g *Gate) Close() error {
	if g.ownStore != nil {
		return g.ownStore.Close()
	}
	return nil
}

// mac computes HMAC-SHA256(secret, parts...) into out.
func (g *Gate) mac(out *[32]byte, parts ...[]byte) {
	h := g.macs.Get().(hash.Hash)
	h.Reset()
	for _, p := range parts {
		h.Write(p)
	}
	h.Sum(out[:0])
	g.macs.Put(h)
}
