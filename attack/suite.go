package attack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/memstore"
	"github.com/captchagate/captchagate/store/redisstore"
	"github.com/captchagate/captchagate/store/storetest"
)

// Backend is the store a scenario runs on.
type Backend struct {
	Name string
	// MaxEntries bounds an in-memory store (0: memstore's default, 1<<20).
	MaxEntries int
	// Eviction, if set, runs on a fresh redis-server with this
	// maxmemory-policy and maxmemory MaxMemory bytes above what the empty
	// server uses.
	Eviction  string
	MaxMemory int64
}

// Redis reports whether b is a Redis backend.
func (b Backend) Redis() bool { return b.Eviction != "" }

// Flood is what the attackers send: a wrong password for a unique username
// per request, from one address (over keep-alive connections) or from one
// address per request (a new connection each).
type Flood struct {
	Name      string
	Requests  int
	Addresses int // 1, or one a request
}

// Result is what one scenario measured.
type Result struct {
	Backend Backend
	Flood   Flood

	// EntriesPerRefused is the store entries (memstore Len, Redis DBSIZE)
	// that each of Probe refused requests left behind, measured before the
	// flood on a store far from full: an address past its threshold sends
	// wrong passwords for unique usernames, without solving the captchas.
	EntriesPerRefused float64
	Probe             int

	Statuses      map[int]int // flood answers by status
	FloodErrors   int         // flood requests without an answer
	FloodRefused  int         // flood answers other than 200 and 401
	EntriesBefore int         // before the flood
	EntriesAfter  int         // after the flood
	Limit         int         // the memstore's bound (0 for Redis)

	// Legitimate attempts between the flood's chunks (Chunks of them):
	// the fixed users (who logged in before) and newcomers (logins and code
	// requests), each solving a captcha when asked.
	Known, KnownRefused       int
	Newcomer, NewcomerRefused int
	RefusedStatuses           map[int]int

	// VictimStatus answers a wrong password for an account tripped before
	// the flood: 428 while it stays tripped, 401 if its counter was lost.
	VictimStatus int

	// Recovery is how long after the flood (on the injected clock, in
	// steps of a minute) a newcomer was first served again; Recovered false
	// if not within RecoveryLimit.
	Recovery  time.Duration
	Recovered bool

	HeapBefore, HeapAfter         uint64 // runtime HeapAlloc after a GC
	RedisBefore, RedisAfter       int64  // used_memory
	RedisMaxMemory, RedisEvicted  int64
	FloodTime, Elapsed            time.Duration
	BaselineServed, VictimTripped bool // preconditions
}

// RefusedShare is the share of legitimate attempts refused during the flood.
func (r *Result) RefusedShare() float64 {
	n := r.Known + r.Newcomer
	if n == 0 {
		return 0
	}
	return float64(r.KnownRefused+r.NewcomerRefused) / float64(n)
}

// VictimOpen reports whether the attacked account's counter was lost: a
// wrong password reached the handler without a captcha.
func (r *Result) VictimOpen() bool { return r.VictimStatus == http.StatusUnauthorized }

// Goal is one property issue 16 asks of the gate under floods. A goal that
// holds today is Enforced: the suite fails when it stops holding. The others
// are printed as PASS/FAIL; whoever makes one hold flips its Enforced.
type Goal struct {
	ID       string
	Text     string
	Enforced bool
	// Check says whether r meets the goal, and whether the goal applies to r.
	Check func(r *Result) (pass, applies bool)
}

// Goals are checked on every scenario's Result.
var Goals = []Goal{
	{ID: "G1", Text: "a refused request leaves no store entry behind", Enforced: false,
		Check: func(r *Result) (bool, bool) { return r.EntriesPerRefused == 0, r.Probe > 0 }},
	{ID: "G2", Text: "the in-memory store never holds more than MaxEntries", Enforced: true,
		Check: func(r *Result) (bool, bool) {
			return r.EntriesAfter <= r.Limit, !r.Backend.Redis()
		}},
	{ID: "G3", Text: "no legitimate attempt is refused during the flood (at worst a captcha)", Enforced: false,
		Check: func(r *Result) (bool, bool) { return r.KnownRefused+r.NewcomerRefused == 0, r.Known+r.Newcomer > 0 }},
	{ID: "G4", Text: "newcomers are served as soon as the flood stops", Enforced: false,
		Check: func(r *Result) (bool, bool) { return r.Recovered && r.Recovery == 0, true }},
	{ID: "G5", Text: "an account tripped before the flood is still tripped after it", Enforced: false,
		Check: func(r *Result) (bool, bool) { return !r.VictimOpen(), true }},
	{ID: "G6", Text: "the one flooding address gets no more wrong passwords to the app than its threshold (20)", Enforced: false,
		Check: func(r *Result) (bool, bool) {
			return r.Statuses[http.StatusUnauthorized] <= IPThreshold, r.Flood.Addresses == 1
		}},
}

// IPThreshold is LoginPolicy's MaxFailures per client address.
const IPThreshold = 20

// Sizes scale the suite.
type Sizes struct {
	OneAddress, ManyAddresses           int // flood requests on the in-memory store
	RedisOneAddress, RedisManyAddresses int // on Redis
	MaxEntries                          int // the bounded in-memory store
	RedisMaxMemory                      int64
	Probe                               int // refused requests measured for entries per refused request
	Chunks                              int // legitimate rounds during a flood
	Known, Newcomers                    int // per round
	Workers                             int // concurrent attackers
}

// FullSizes are the sizes of issue 16, scaled where noted.
var FullSizes = Sizes{
	OneAddress: 30_000, ManyAddresses: 50_000,
	RedisOneAddress: 10_000, RedisManyAddresses: 10_000,
	MaxEntries: 20_000, RedisMaxMemory: 1 << 20,
	Probe: 200, Chunks: 5, Known: 5, Newcomers: 5, Workers: 16,
}

// Scale divides the flood sizes and the in-memory store's bound by d. The
// probe of entries per refused request, Redis's maxmemory (below about 1 MiB
// of headroom the client buffers alone fill it) and the legitimate
// population stay.
func (s Sizes) Scale(d int) Sizes {
	if d <= 1 {
		return s
	}
	s.OneAddress /= d
	s.ManyAddresses /= d
	s.RedisOneAddress /= d
	s.RedisManyAddresses /= d
	s.MaxEntries /= d
	return s
}

// RecoveryLimit is how far the clock is advanced looking for recovery, and
// RecoveryNewcomers how many newcomers in a row must be served to call it
// recovered.
const (
	RecoveryLimit     = 2 * time.Hour
	RecoveryNewcomers = 20
)

// Backends are the stores the suite runs on for sizes s: the default
// in-memory store, one bounded to s.MaxEntries, and Redis under each
// maxmemory-policy.
func Backends(s Sizes) []Backend {
	bs := []Backend{
		{Name: "memstore default (1<<20)"},
		{Name: fmt.Sprintf("memstore MaxEntries %d", s.MaxEntries), MaxEntries: s.MaxEntries},
	}
	for _, p := range []string{"noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
		"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"} {
		bs = append(bs, Backend{Name: "redis " + p, Eviction: p, MaxMemory: s.RedisMaxMemory})
	}
	return bs
}

// Floods are the two floods on b.
func Floods(s Sizes, b Backend) []Flood {
	one, many := s.OneAddress, s.ManyAddresses
	if b.Redis() {
		one, many = s.RedisOneAddress, s.RedisManyAddresses
	}
	return []Flood{
		{Name: "one address", Requests: one, Addresses: 1},
		{Name: fmt.Sprintf("%d addresses", many), Requests: many, Addresses: many},
	}
}

// scenario is one run's state.
type scenario struct {
	t      testing.TB
	s      Sizes
	ctx    context.Context
	clk    *storetest.Clock
	target *Target
	res    *Result

	entries func() int
	flush   func()        // waits for writes behind (Redis)
	rdb     *redis.Client // nil for memstore

	any          *http.Client // one connection per request, source from the context
	knownClients map[int]*http.Client
	newcomer     atomic.Int64
}

// Run runs flood f on backend b and returns what it measured.
func Run(t testing.TB, s Sizes, b Backend, f Flood) *Result {
	start := time.Now()
	sc := &scenario{t: t, s: s, ctx: context.Background(), clk: storetest.NewClock(),
		res: &Result{Backend: b, Flood: f, Statuses: map[int]int{}, RefusedStatuses: map[int]int{}},
		any: NewClient(netip.Addr{}), flush: func() {}}
	cfg := captchagate.Config{Secret: gatetest.Secret, Now: sc.clk.Now, StoreTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if b.Redis() {
		sc.redis(b, &cfg)
	} else {
		ms := memstore.New(memstore.Options{MaxEntries: b.MaxEntries, Now: sc.clk.Now, CleanupInterval: -1})
		t.Cleanup(func() { ms.Close() })
		sc.res.Limit = cmpOr(b.MaxEntries, 1<<20)
		sc.entries = ms.Len
		cfg.Store = ms
	}
	target, err := NewTarget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(target.Close)
	sc.target = target

	sc.baseline()
	sc.probeRefused()
	sc.res.HeapBefore, sc.res.RedisBefore = sc.memory()
	sc.flood()
	sc.res.HeapAfter, sc.res.RedisAfter = sc.memory()
	sc.victimAfter()
	sc.recovery()
	sc.res.Elapsed = time.Since(start)
	return sc.res
}

func cmpOr(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// redis starts a redis-server with b's eviction policy and maxmemory, and
// points cfg at it.
func (sc *scenario) redis(b Backend, cfg *captchagate.Config) {
	srv := redistest.Start(sc.t)
	sc.rdb = redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, PoolSize: 32})
	sc.t.Cleanup(func() { sc.rdb.Close() })
	must(sc.t, sc.rdb.ConfigSet(sc.ctx, "maxmemory-policy", b.Eviction).Err())
	base := sc.info("memory", "used_memory")
	sc.res.RedisMaxMemory = base + b.MaxMemory
	must(sc.t, sc.rdb.ConfigSet(sc.ctx, "maxmemory", strconv.FormatInt(sc.res.RedisMaxMemory, 10)).Err())
	st, err := redisstore.New(sc.rdb, redisstore.Options{Now: sc.clk.Now})
	must(sc.t, err)
	sc.t.Cleanup(func() { st.Close() })
	cfg.Store = st
	sc.flush = func() {
		ctx, cancel := context.WithTimeout(sc.ctx, 5*time.Second)
		defer cancel()
		st.Flush(ctx)
	}
	sc.entries = func() int { return int(sc.rdb.DBSize(sc.ctx).Val()) }
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// info reads one integer field of a section of Redis's INFO.
func (sc *scenario) info(section, field string) int64 {
	s, err := sc.rdb.Info(sc.ctx, section).Result()
	must(sc.t, err)
	for _, line := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// memory returns the heap after a GC and, on Redis, used_memory.
func (sc *scenario) memory() (uint64, int64) {
	sc.flush()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var used int64
	if sc.rdb != nil {
		used = sc.info("memory", "used_memory")
		sc.res.RedisEvicted = sc.info("stats", "evicted_keys")
	}
	return ms.HeapAlloc, used
}

func (sc *scenario) count() int {
	sc.flush()
	return sc.entries()
}

// baseline: the fixed users log in once, and an attacker trips the victim's
// account from five addresses (so that no address key trips).
func (sc *scenario) baseline() {
	r := sc.res
	r.BaselineServed = true
	for i := range sc.s.Known {
		if o, _ := sc.target.Login(sc.ctx, sc.known(i), knownUser(i)); o != Served {
			r.BaselineServed = false
		}
	}
	for i := range 5 {
		sc.target.Guess(withSource(sc.ctx, Addr(netVictim, i)), sc.any, "victim")
	}
	st, _ := sc.target.Guess(withSource(sc.ctx, Addr(netVictim, 5)), sc.any, "victim")
	r.VictimTripped = st == http.StatusPreconditionRequired
}

// known returns the i-th fixed user's client, which keeps its connections
// alive for the whole scenario.
func (sc *scenario) known(i int) *http.Client {
	if sc.knownClients == nil {
		sc.knownClients = map[int]*http.Client{}
	}
	c, ok := sc.knownClients[i]
	if !ok {
		c = NewClient(Addr(netKnown, i))
		sc.knownClients[i] = c
		sc.t.Cleanup(c.CloseIdleConnections)
	}
	return c
}

func knownUser(i int) string { return fmt.Sprintf("user%d", i) }

// probeRefused measures store entries per refused request: an address
// trips its key with 20 failures, then sends Probe more, all refused.
func (sc *scenario) probeRefused() {
	src := withSource(sc.ctx, Addr(netOne, 1))
	for i := range 20 {
		sc.target.Guess(src, sc.any, fmt.Sprintf("probe-trip-%d", i))
	}
	before := sc.count()
	refused := 0
	for i := range sc.s.Probe {
		if st, err := sc.target.Guess(src, sc.any, fmt.Sprintf("probe-%d", i)); err == nil &&
			st != http.StatusUnauthorized && st != http.StatusOK {
			refused++
		}
	}
	if refused > 0 {
		sc.res.Probe = refused
		sc.res.EntriesPerRefused = float64(sc.count()-before) / float64(refused)
	}
}

// flood sends the flood in Chunks, the legitimate population's attempts
// between them.
func (sc *scenario) flood() {
	r, f := sc.res, sc.res.Flood
	r.EntriesBefore = sc.count()
	var one *http.Client
	if f.Addresses == 1 {
		one = NewClient(Addr(netOne, 0))
		defer one.CloseIdleConnections()
	}
	var mu sync.Mutex
	for c := range sc.s.Chunks {
		from, to := f.Requests*c/sc.s.Chunks, f.Requests*(c+1)/sc.s.Chunks
		var next atomic.Int64
		next.Store(int64(from))
		t0 := time.Now()
		gatetest.Together(sc.s.Workers, func() {
			statuses, errs := map[int]int{}, 0
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					break
				}
				client, ctx := one, sc.ctx
				if one == nil {
					client, ctx = sc.any, withSource(sc.ctx, Addr(netMany, i))
				}
				st, err := sc.target.Guess(ctx, client, fmt.Sprintf("bot-%d", i))
				if err != nil {
					errs++
					continue
				}
				statuses[st]++
			}
			mu.Lock()
			for st, n := range statuses {
				r.Statuses[st] += n
			}
			r.FloodErrors += errs
			mu.Unlock()
		})
		r.FloodTime += time.Since(t0)
		sc.legitimate()
	}
	for st, n := range r.Statuses {
		if st != http.StatusOK && st != http.StatusUnauthorized {
			r.FloodRefused += n
		}
	}
	r.EntriesAfter = sc.count()
}

// legitimate is one round of the legitimate population: each fixed user
// logs in; newcomers from fresh addresses log in, and two ask for a code.
func (sc *scenario) legitimate() {
	r := sc.res
	for i := range sc.s.Known {
		r.Known++
		if o, st := sc.target.Login(sc.ctx, sc.known(i), knownUser(i)); o >= Refused {
			r.KnownRefused++
			r.RefusedStatuses[st]++
		}
	}
	for i := range sc.s.Newcomers {
		n := int(sc.newcomer.Add(1))
		ctx := withSource(sc.ctx, Addr(netNewcomer, n))
		var o Outcome
		var st int
		if i < 2 {
			o, st = sc.target.SendCode(ctx, sc.any, phone(n))
		} else {
			o, st = sc.target.Login(ctx, sc.any, fmt.Sprintf("new%d", n))
		}
		r.Newcomer++
		if o >= Refused {
			r.NewcomerRefused++
			r.RefusedStatuses[st]++
		}
	}
}

// victimAfter sends a wrong password for the victim from a fresh address.
func (sc *scenario) victimAfter() {
	sc.res.VictimStatus, _ = sc.target.Guess(withSource(sc.ctx, Addr(netVictim, 6)), sc.any, "victim")
}

// recovery advances the clock a minute at a time until a round of
// RecoveryNewcomers newcomers, each from a fresh address, all log in (with a
// captcha if asked).
func (sc *scenario) recovery() {
	for d := time.Duration(0); d <= RecoveryLimit; d += time.Minute {
		if d > 0 {
			sc.clk.Advance(time.Minute)
		}
		served := true
		for range RecoveryNewcomers {
			n := int(sc.newcomer.Add(1))
			o, _ := sc.target.Login(withSource(sc.ctx, Addr(netNewcomer, n)), sc.any, fmt.Sprintf("new%d", n))
			if o >= Refused {
				served = false
				break
			}
		}
		if served {
			sc.res.Recovery, sc.res.Recovered = d, true
			return
		}
	}
}
