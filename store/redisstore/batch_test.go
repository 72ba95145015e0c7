package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/redisstore"
	"github.com/captchagate/captchagate/store/storetest"
)

// pipelines counts the pipelines a client sends and the commands in each,
// and single commands.
type pipelines struct {
	mu     sync.Mutex
	sizes  []int
	single atomic.Int64
}

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		p.single.Add(1)
		return next(ctx, cmd)
	}
}
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.mu.Lock()
		p.sizes = append(p.sizes, len(cmds))
		p.mu.Unlock()
		return next(ctx, cmds)
	}
}

// warm opens the connection and loads the scripts (connection set-up and a
// NOSCRIPT retry are pipelines too), then forgets what it saw.
func (p *pipelines) warm(t *testing.T, s *redisstore.Store) {
	ctx := context.Background()
	_, _, err := s.Incr(ctx, "warm", 1, time.Second)
	require.NoError(t, err)
	_, _, err = s.Allow(ctx, "warm-r", time.Second, 1, false)
	require.NoError(t, err)
	p.mu.Lock()
	p.sizes = nil
	p.mu.Unlock()
	p.single.Store(0)
}

func (p *pipelines) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sizes)
}

func (p *pipelines) last() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sizes[len(p.sizes)-1]
}

// hold keeps back the pipelines of a client that match, until open is
// called: held is closed when it first keeps one back. A pipeline held past
// its deadline fails with it.
type hold struct {
	match    func(cmds []redis.Cmder) bool
	held     chan struct{}
	release  chan struct{}
	heldOnce sync.Once
	openOnce sync.Once
}

func newHold(match func(cmds []redis.Cmder) bool) *hold {
	return &hold{match: match, held: make(chan struct{}), release: make(chan struct{})}
}

func (h *hold) open() { h.openOnce.Do(func() { close(h.release) }) }

func (h *hold) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *hold) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *hold) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.match(cmds) {
			h.heldOnce.Do(func() { close(h.held) })
			select {
			case <-h.release:
			case <-ctx.Done():
				for _, c := range cmds {
					c.SetErr(ctx.Err())
				}
				return ctx.Err()
			}
		}
		return next(ctx, cmds)
	}
}

// hasCommand matches pipelines with a command named name ("del").
func hasCommand(name string) func([]redis.Cmder) bool {
	return func(cmds []redis.Cmder) bool {
		return slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == name })
	}
}

// touches matches pipelines with a command on s's key k.
func touches(s *redisstore.Store, k string) func([]redis.Cmder) bool {
	key := s.Key(k)
	return func(cmds []redis.Cmder) bool {
		return slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return slices.Contains(c.Args(), any(key)) })
	}
}

// heldStore returns a store on c (options o, a prefix of its own, a minute
// per pipeline) and a hold on its pipelines that touch the key "busy".
func heldStore(t *testing.T, c *redis.Client, o redisstore.Options) (*redisstore.Store, *hold) {
	o.Prefix = fmt.Sprintf("held%d:", prefixes.Add(1))
	o.Timeout = time.Minute
	s, err := redisstore.New(c, o)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	h := newHold(touches(s, "busy"))
	c.AddHook(h)
	t.Cleanup(h.open)
	return s, h
}

// busy keeps s's writer busy on a pipeline h holds back, and returns the
// result of the held call once h lets it go.
func busy(t *testing.T, s *redisstore.Store, h *hold) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.Incr(context.Background(), "busy", 1, time.Hour)
		errc <- err
	}()
	<-h.held
	return errc
}

// A guarded request waits for one round trip with all its counting in it
// (two keys here, and a ceiling); the give-back after the handler is written
// behind, in one more pipeline, without the request waiting for it.
func TestOneRoundTripPerRequest(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	var hook pipelines
	c.AddHook(&hook)
	store := newStore(t, c, time.Now)
	hook.warm(t, store)
	g, err := captchagate.New(captchagate.Config{Secret: secret, Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	policy := captchagate.Policy{Name: "login", MaxFailures: 3, Keys: []captchagate.Key{
		captchagate.Username(captchagate.JSONField("username")),
		{Source: captchagate.ClientIP(), Ceiling: 1000},
	}}
	var inHandler []int
	var before int
	h := g.Guard(policy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHandler = append(inHandler, hook.count()-before)
		assert.Equal(t, 4, hook.last(), "the request's reservation: the username's failures and failure ceiling, the IP's failures and ceiling in one pipeline")
	}))
	for i := range 10 { // more than MaxFailures: each give-back lands
		before = hook.count()
		r := httptest.NewRequest("POST", "/login", strings.NewReader(`{"username":"alice","password":"right"}`))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code, "request %d: %s", i, w.Body)
		require.NoError(t, store.Flush(context.Background()))
		require.Equal(t, before+2, hook.count(), "request %d: the give-back follows in one pipeline", i)
		assert.Equal(t, 3, hook.last(), "the give-back: the username's failure counter and failure ceiling, the IP's failure counter")
	}
	assert.Equal(t, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, inHandler, "pipelines before each handler ran")
	assert.Zero(t, hook.single.Load(), "no counter operation outside a pipeline")
}

// Do runs mixed operations with the semantics of the single methods, and
// what concurrent callers hand over shares pipelines.
func TestBatcher(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	var hook pipelines
	c.AddHook(&hook)
	clk := storetest.NewClock()
	s := newStore(t, c, clk.Now)
	hook.warm(t, s)
	ctx := context.Background()

	ops := []captchagate.Op{
		{Kind: captchagate.OpIncr, Key: "f:a", Delta: 2, Window: time.Minute},
		{Kind: captchagate.OpIncr, Key: "f:a", Delta: 1, Window: time.Minute},
		{Kind: captchagate.OpAllow, Key: "r:a", Interval: time.Second, Burst: 1, Take: true},
		{Kind: captchagate.OpAllow, Key: "r:a", Interval: time.Second, Burst: 1, Take: true},
		{Kind: captchagate.OpIncr, Key: "f:b", Delta: -1, Window: time.Minute},
		{Kind: captchagate.OpReset, Key: "f:c"},
		{Kind: 99, Key: "x"},
	}
	s.Do(ctx, ops)
	for i, op := range ops[:6] {
		require.NoError(t, op.Err, "op %d", i)
	}
	assert.Equal(t, int64(2), ops[0].N)
	assert.Equal(t, int64(3), ops[1].N, "ops run in order")
	assert.Equal(t, clk.Now().Add(time.Minute).UnixMicro(), ops[1].Reset.UnixMicro())
	assert.True(t, ops[2].OK)
	assert.False(t, ops[3].OK, "burst 1: the second take in the same pipeline is refused")
	assert.Equal(t, time.Second, ops[3].Wait)
	assert.Zero(t, ops[4].N, "a negative delta creates nothing")
	assert.True(t, ops[4].Reset.IsZero())
	assert.ErrorContains(t, ops[6].Err, "unknown operation", "an unknown kind fails alone")
	assert.Equal(t, 1, hook.count(), "one pipeline: %v", hook.sizes)

	// Later is ordered before whatever is handed over after it.
	s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:a", Delta: -3, Window: time.Minute}}, func(err error) {
		t.Errorf("report: %v", err)
	})
	n, _, err := s.Incr(ctx, "f:a", 0, time.Minute)
	require.NoError(t, err)
	assert.Zero(t, n)

	// 200 concurrent increments: none lost, in far fewer pipelines.
	hook.mu.Lock()
	hook.sizes = nil
	hook.mu.Unlock()
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			_, _, err := s.Incr(ctx, "f:many", 1, time.Minute)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	n, _, err = s.Incr(ctx, "f:many", 0, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(200), n)
	t.Logf("200 concurrent increments in %d pipelines", hook.count()-1)
	assert.Less(t, hook.count(), 201)
}

// A caller that gives up (its deadline passes while Redis hangs) leaves
// nothing behind, but for the one that was sending its own pipeline: a
// hand-over still queued is never sent, one already out with the writer is
// given back by the store once Redis answers, and the request that found
// the lane idle and sent its pipeline itself (lane.lead) may have its count
// applied (a count one higher until its window ends: on the safe side).
func TestGiveUpLeavesNoCount(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	s, err := redisstore.New(c, redisstore.Options{Prefix: "giveup:", Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	bg := context.Background()
	_, _, err = s.Incr(bg, "f:k", 1, time.Hour) // one that stands
	require.NoError(t, err)

	srv.Pause()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
			defer cancel()
			_, _, err := s.Incr(ctx, "f:k", 1, time.Hour)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		})
	}
	wg.Wait()
	srv.Resume()
	require.NoError(t, s.Flush(bg))
	n, _, err := s.Incr(bg, "f:k", 0, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "the count made before the pause stands, and the leader's, which Redis ran once "+
		"resumed; none of the 19 that queued behind it")
}

// After Close, counter operations fail at once with ErrClosed; what was
// handed over before is written.
func TestClose(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	s, err := redisstore.New(c, redisstore.Options{Prefix: "close:"})
	require.NoError(t, err)
	ctx := context.Background()
	_, _, err = s.Incr(ctx, "f:k", 5, time.Hour)
	require.NoError(t, err)
	s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:k", Delta: -2, Window: time.Hour}}, nil)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "idempotent")
	_, _, err = s.Incr(ctx, "f:k", 1, time.Hour)
	assert.ErrorIs(t, err, redisstore.ErrClosed)
	var reported error
	s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:k", Delta: -1, Window: time.Hour}}, func(err error) { reported = err })
	require.NoError(t, s.Flush(ctx), "after Close, Flush waits for the reports")
	assert.ErrorIs(t, reported, redisstore.ErrClosed)

	s2, err := redisstore.New(c, redisstore.Options{Prefix: "close:"})
	require.NoError(t, err)
	defer s2.Close()
	n, _, err := s2.Incr(ctx, "f:k", 0, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, int64(3), n, "the give-back handed over before Close was written")
}

// When the queue is full, a request waits within its deadline and a
// give-back is dropped and reported, never blocking.
func TestQueueFull(t *testing.T) {
	// A server that accepts and never answers: the writer's first pipeline
	// hangs, and the queue (one place) fills behind it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer c.Close()
	s, err := redisstore.New(c, redisstore.Options{Queue: 1, Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	bg := context.Background()
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	_, _, err = s.Incr(short(), "f:1", 1, time.Hour) // taken by the writer, hangs
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:1", Delta: -1}}, nil) // fills the queue
	reported := make(chan error, 1)
	s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:2", Delta: -1}}, func(err error) { reported <- err })
	select {
	case err := <-reported:
		assert.ErrorContains(t, err, "queue full")
	case <-time.After(5 * time.Second):
		t.Fatal("a dropped give-back was not reported")
	}
	_, _, err = s.Incr(short(), "f:3", 1, time.Hour)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "a request waits for room within its deadline: %v", err)
}

// On one Store, a write behind is written before whatever is handed over
// after it, even while the writer is busy: the next request on the same
// instance reads a success's reset and a failure's give-back.
func TestWriteBehindReadYourWrites(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	s, h := heldStore(t, c, redisstore.Options{})
	ctx := context.Background()
	_, _, err := s.Incr(ctx, "f:reset", 5, time.Hour)
	require.NoError(t, err)
	_, _, err = s.Incr(ctx, "f:back", 3, time.Hour)
	require.NoError(t, err)

	held := busy(t, s, h)
	report := func(err error) { t.Errorf("report: %v", err) }
	s.Later([]captchagate.Op{{Kind: captchagate.OpReset, Key: "f:reset"}}, report)
	s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:back", Delta: -1, Window: time.Hour}}, report)
	counted := make(chan []captchagate.Op)
	go func() {
		ops := []captchagate.Op{
			{Kind: captchagate.OpIncr, Key: "f:reset", Delta: 1, Window: time.Hour},
			{Kind: captchagate.OpIncr, Key: "f:back", Delta: 1, Window: time.Hour},
		}
		s.Do(ctx, ops)
		counted <- ops
	}()
	h.open()
	require.NoError(t, <-held)
	ops := <-counted
	require.NoError(t, ops[0].Err)
	require.NoError(t, ops[1].Err)
	assert.Equal(t, int64(1), ops[0].N, "the reset came first")
	assert.Equal(t, int64(3), ops[1].N, "the give-back came first")
	require.NoError(t, s.Flush(ctx))
}

// Flush returns once every operation handed over before it is in Redis, or
// has failed or been dropped and its report has returned; it sends nothing
// itself, and returns early when its context ends.
func TestFlush(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	notYet := func(t *testing.T, flushed <-chan error, why string) {
		t.Helper()
		select {
		case err := <-flushed:
			t.Fatalf("Flush returned (%v) %s", err, why)
		default:
		}
	}
	flush := func(s *redisstore.Store) <-chan error {
		flushed := make(chan error, 1)
		go func() { flushed <- s.Flush(ctx) }()
		return flushed
	}

	t.Run("written or reported", func(t *testing.T) {
		c := client(t, srv)
		var hook pipelines
		c.AddHook(&hook)
		s, h := heldStore(t, c, redisstore.Options{})
		hook.warm(t, s)
		require.NoError(t, s.Flush(ctx))
		assert.Zero(t, hook.count(), "nothing handed over: nothing sent")

		held := busy(t, s, h)
		s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:k", Delta: 2, Window: time.Hour}}, nil)
		slow := make(chan struct{})
		var reported error
		s.Later([]captchagate.Op{{Kind: 99, Key: "x"}}, func(err error) {
			<-slow // an event hook that takes its time
			reported = err
		})
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		assert.ErrorIs(t, s.Flush(cancelled), context.Canceled, "its context ended first")

		flushed := flush(s)
		notYet(t, flushed, "while the writer was held")
		h.open()
		require.NoError(t, <-held)
		notYet(t, flushed, "before the report returned")
		close(slow)
		require.NoError(t, <-flushed)
		assert.ErrorContains(t, reported, "unknown operation", "the failure was reported before Flush returned")
		n, err := s.CountIn(ctx, c, "f:k")
		require.NoError(t, err)
		assert.Equal(t, int64(2), n, "the write behind is in Redis")
	})

	t.Run("dropped", func(t *testing.T) {
		c := client(t, srv)
		s, h := heldStore(t, c, redisstore.Options{Queue: 1})
		held := busy(t, s, h)
		s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:k", Delta: 1, Window: time.Hour}}, nil) // fills the queue
		slow := make(chan struct{})
		var reported error
		s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:k", Delta: -1, Window: time.Hour}}, func(err error) {
			<-slow
			reported = err
		})
		flushed := flush(s)
		h.open()
		require.NoError(t, <-held)
		notYet(t, flushed, "before the drop's report returned")
		close(slow)
		require.NoError(t, <-flushed)
		assert.ErrorContains(t, reported, "queue full")
		n, err := s.CountIn(ctx, c, "f:k")
		require.NoError(t, err)
		assert.Equal(t, int64(1), n, "what was queued is written; the dropped give-back is not")
	})

	t.Run("closed", func(t *testing.T) {
		c := client(t, srv)
		s, _ := heldStore(t, c, redisstore.Options{})
		s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:k", Delta: 1, Window: time.Hour}}, nil)
		require.NoError(t, s.Close())
		require.NoError(t, s.Flush(ctx))
		n, err := s.CountIn(ctx, c, "f:k")
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
	})
}

// Requests one after another on one instance: each give-back, written
// behind, waits (Options.Linger) for the next request's counting and
// leaves in its pipeline, so a request costs one round trip, not two. The
// last one waits out its linger (or a Flush). Without a linger (the
// control), a give-back leaves as soon as the writer takes it, with no
// request to follow.
func TestWriteBehindRidesAlong(t *testing.T) {
	srv := redistest.Start(t)
	for _, linger := range []time.Duration{time.Second, -1} {
		c := client(t, srv)
		var hook pipelines
		c.AddHook(&hook)
		s, err := redisstore.New(c, redisstore.Options{Prefix: fmt.Sprintf("ride%d:", linger), Linger: linger})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		hook.warm(t, s)
		g, err := captchagate.New(captchagate.Config{Secret: secret, Store: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		h := g.Guard(captchagate.Policy{Name: "login", MaxFailures: 3, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})(
			http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		for range 10 {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("POST", "/login", nil))
			require.Equal(t, http.StatusOK, w.Code)
		}
		if linger > 0 {
			require.Equal(t, 10, hook.count(), "one pipeline per request, each with the give-back before it")
			time.Sleep(50 * time.Millisecond)
			assert.Equal(t, 10, hook.count(), "the last give-back waits for company")
			require.NoError(t, s.Flush(context.Background()))
			assert.Equal(t, 11, hook.count(), "Flush sends it")
			continue
		}
		assert.Eventually(t, func() bool { return hook.count() >= 11 }, 5*time.Second, time.Millisecond,
			"the last give-back leaves by itself")
		assert.LessOrEqual(t, hook.count(), 20)
	}
}

// The increments of one counter that share a pipeline run as one script
// with the semantics of one call after another: the previous request's
// give-back and the next one's reservation, concurrent requests of one
// address. A give-back to zero in the middle deletes the counter, and the
// increment after it starts a new window.
func TestIncrementsOfOneKeyShareAScript(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	var hook pipelines
	c.AddHook(&hook)
	clk := storetest.NewClock()
	s := newStore(t, c, clk.Now)
	hook.warm(t, s)
	ctx := context.Background()
	incr := func(k string, d int64) captchagate.Op {
		return captchagate.Op{Kind: captchagate.OpIncr, Key: k, Delta: d, Window: time.Hour}
	}
	// Without and with 20 other keys in the pipeline (a short pipeline is
	// grouped by a scan, a long one through a map).
	for _, pad := range []int{0, 20} {
		k, j := fmt.Sprintf("f:k%d", pad), fmt.Sprintf("f:j%d", pad)
		_, _, err := s.Incr(ctx, k, 1, time.Hour)
		require.NoError(t, err)
		start := clk.Now()
		clk.Advance(time.Minute)
		ops := []captchagate.Op{
			incr(k, 1), incr(j, 1), incr(k, 1), incr(k, -3), incr(k, 1), incr(k, 0),
			{Kind: captchagate.OpReset, Key: j}, incr(j, 1),
		}
		for i := range pad {
			ops = append(ops, incr(fmt.Sprintf("f:other%d-%d", pad, i), 1))
		}
		before := hook.count()
		s.Do(ctx, ops)
		require.Equal(t, before+1, hook.count(), "pad %d: one pipeline", pad)
		assert.Equal(t, 4+pad, hook.last(), "pad %d: commands: k's five increments in one script, j's, the reset, j's again", pad)
		want := []struct {
			n     int64
			reset time.Time
		}{
			{2, start.Add(time.Hour)}, {1, clk.Now().Add(time.Hour)}, {3, start.Add(time.Hour)},
			{0, time.Time{}},                                             // given back to zero: deleted
			{1, clk.Now().Add(time.Hour)}, {1, clk.Now().Add(time.Hour)}, // a new window
			{0, time.Time{}}, {1, clk.Now().Add(time.Hour)},
		}
		for i, op := range ops {
			require.NoError(t, op.Err, "pad %d: op %d", pad, i)
			if op.Kind != captchagate.OpIncr || i >= len(want) {
				continue
			}
			assert.Equal(t, want[i].n, op.N, "pad %d: op %d: count", pad, i)
			assert.True(t, want[i].reset.Equal(op.Reset), "pad %d: op %d: window ends %v, want %v", pad, i, op.Reset, want[i].reset)
		}
		n, err := s.CountIn(ctx, c, k)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
		ttl := c.PTTL(ctx, s.Key(k)).Val()
		assert.InDelta(t, float64(time.Hour), float64(ttl), float64(time.Minute), "the new window's TTL")
	}
}
