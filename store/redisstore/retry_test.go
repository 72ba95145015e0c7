package redisstore_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/storetest"
)

// lossyProxy forwards loopback connections to a Redis server. Armed with a
// command name, it forwards the next request that holds that command and
// then closes the connection before relaying the reply: Redis has run the
// command, the client never hears of it.
type lossyProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	armed    []byte // lower-case command name to lose the reply of; nil: none
	lost     atomic.Int64
	conns    sync.WaitGroup
}

func newLossyProxy(t *testing.T, upstream string) *lossyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &lossyProxy{ln: ln, upstream: upstream}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.conns.Wait()
	})
	return p
}

func (p *lossyProxy) Addr() string { return p.ln.Addr().String() }

// arm loses the reply of the next request that holds the command name.
func (p *lossyProxy) arm(name string) {
	p.mu.Lock()
	p.armed = []byte(name)
	p.mu.Unlock()
}

// matches disarms the proxy and reports true if req holds the armed command.
func (p *lossyProxy) matches(req []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.armed == nil || !bytes.Contains(bytes.ToLower(req), p.armed) {
		return false
	}
	p.armed = nil
	return true
}

func (p *lossyProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.conns.Add(2)
		var lose atomic.Bool
		go func() { // client → Redis
			defer p.conns.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if p.matches(buf[:n]) {
						lose.Store(true)
					}
					if _, werr := u.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			u.Close()
		}()
		go func() { // Redis → client
			defer p.conns.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := u.Read(buf)
				if n > 0 && lose.Load() {
					p.lost.Add(1)
					break // the reply is lost with the connection
				}
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
			u.Close()
		}()
	}
}

// An operation whose reply is lost is never applied twice: the client's
// retries (MaxRetries 3, go-redis's default) re-send a plain pipeline, as
// the first case shows, but never the store's scripts or GETDEL. The call
// reports the error; Redis holds the operation applied once.
func TestLostReplyAppliedOnce(t *testing.T) {
	srv := redistest.Start(t)
	direct := client(t, srv)
	proxy := newLossyProxy(t, srv.Addr)
	c := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: 3})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	clk := storetest.NewClock()
	s := newStore(t, c, clk.Now)
	count := func(k string) int64 {
		n, err := s.CountIn(ctx, direct, k)
		if err == redis.Nil {
			return 0
		}
		require.NoError(t, err)
		return n
	}
	// Warm: the connection is open and the scripts are loaded.
	_, _, err := s.Incr(ctx, "f:warm", 1, time.Minute)
	require.NoError(t, err)
	_, _, err = s.Allow(ctx, "r:warm", time.Second, 1, false)
	require.NoError(t, err)

	t.Run("a plain pipeline is re-sent", func(t *testing.T) {
		proxy.arm("incr")
		before := proxy.lost.Load()
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, "plain")
			return nil
		})
		require.NoError(t, err, "go-redis retried on a new connection")
		require.Equal(t, before+1, proxy.lost.Load(), "the proxy lost a reply")
		assert.Equal(t, "2", direct.Get(ctx, "plain").Val(), "one INCR, applied twice: what the store must avoid")
	})

	t.Run("increment", func(t *testing.T) {
		_, _, err := s.Incr(ctx, "f:a", 2, time.Minute)
		require.NoError(t, err)
		proxy.arm("evalsha")
		before := proxy.lost.Load()
		n, _, err := s.Incr(ctx, "f:a", 1, time.Minute)
		require.Equal(t, before+1, proxy.lost.Load())
		assert.Error(t, err, "a lost reply is reported (got n=%d)", n)
		assert.Equal(t, int64(3), count("f:a"), "applied once")
		n, _, err = s.Incr(ctx, "f:a", 1, time.Minute)
		require.NoError(t, err, "the next call works, on a new connection")
		assert.Equal(t, int64(4), n)
	})

	t.Run("give-back written behind", func(t *testing.T) {
		_, _, err := s.Incr(ctx, "f:b", 5, time.Minute)
		require.NoError(t, err)
		proxy.arm("evalsha")
		before := proxy.lost.Load()
		reported := make(chan error, 1)
		s.Later([]captchagate.Op{{Kind: captchagate.OpIncr, Key: "f:b", Delta: -1, Window: time.Minute}}, func(err error) { reported <- err })
		require.NoError(t, s.Flush(ctx))
		require.Equal(t, before+1, proxy.lost.Load())
		select {
		case err := <-reported:
			assert.Error(t, err)
		default:
			t.Error("the lost reply was not reported")
		}
		assert.Equal(t, int64(4), count("f:b"), "given back once")
	})

	t.Run("reservation and give-back in one pipeline", func(t *testing.T) {
		_, _, err := s.Incr(ctx, "f:c", 1, time.Minute)
		require.NoError(t, err)
		proxy.arm("evalsha")
		ops := []captchagate.Op{
			{Kind: captchagate.OpIncr, Key: "f:c", Delta: 1, Window: time.Minute},
			{Kind: captchagate.OpIncr, Key: "f:d", Delta: 1, Window: time.Minute},
			{Kind: captchagate.OpReset, Key: "f:e"},
		}
		s.Do(ctx, ops)
		for i, op := range ops {
			assert.Error(t, op.Err, "op %d", i)
		}
		assert.Equal(t, int64(2), count("f:c"), "applied once")
		assert.LessOrEqual(t, count("f:d"), int64(1))
	})

	t.Run("token taken", func(t *testing.T) {
		proxy.arm("evalsha")
		_, _, err := s.Allow(ctx, "r:a", time.Hour, 2, true)
		assert.Error(t, err)
		ok, _, err := s.Allow(ctx, "r:a", time.Hour, 2, true)
		require.NoError(t, err)
		assert.True(t, ok, "burst 2: one token taken by the lost call, one left")
		ok, _, err = s.Allow(ctx, "r:a", time.Hour, 2, true)
		require.NoError(t, err)
		assert.False(t, ok)
	})

	t.Run("token returned", func(t *testing.T) {
		for range 2 {
			_, _, err := s.Allow(ctx, "r:b", time.Hour, 2, true)
			require.NoError(t, err)
		}
		require.NoError(t, s.Return(ctx, "r:none", time.Hour), "warm: the script is loaded")
		before := proxy.lost.Load()
		proxy.arm("evalsha")
		assert.Error(t, s.Return(ctx, "r:b", time.Hour))
		require.Equal(t, before+1, proxy.lost.Load(), "the proxy lost a reply")
		ok, _, err := s.Allow(ctx, "r:b", time.Hour, 2, true)
		require.NoError(t, err)
		assert.True(t, ok, "returned once: one token back")
		ok, _, err = s.Allow(ctx, "r:b", time.Hour, 2, true)
		require.NoError(t, err)
		assert.False(t, ok, "not twice")
	})

	t.Run("spend mark", func(t *testing.T) {
		_, epoch, err := s.Mark(ctx, 0, nil, time.Hour, false)
		require.NoError(t, err)
		mark := []byte("a mark of 12+ bytes")
		before := proxy.lost.Load()
		proxy.arm("evalsha")
		_, _, err = s.Mark(ctx, epoch, mark, time.Hour, false)
		assert.Error(t, err, "a lost reply is a failure, not 'already spent'")
		require.Equal(t, before+1, proxy.lost.Load(), "the proxy lost a reply")
		fresh, _, err := s.Mark(ctx, epoch, mark, time.Hour, true)
		require.NoError(t, err)
		assert.False(t, fresh, "set once, by the lost call")
	})

	t.Run("take", func(t *testing.T) {
		require.NoError(t, s.Put(ctx, "c:x", []byte("v"), time.Minute))
		proxy.arm("getdel")
		_, found, err := s.Take(ctx, "c:x")
		assert.Error(t, err, "a lost reply is a failure, not 'not found' (found=%v)", found)
		assert.Zero(t, direct.Exists(ctx, s.Key("c:x")).Val(), "taken once")
	})
}

// Refusing retries costs no failed call after a Redis restart: the client's
// pool drops connections the server closed before handing them out, so the
// first script and GETDEL after the restart go out on a new connection.
func TestRestartCostsNoCall(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	s := newStore(t, c, storetest.NewClock().Now)
	ctx := context.Background()
	for i := range 2 {
		_, _, err := s.Incr(ctx, "f:a", 1, time.Minute)
		require.NoError(t, err, "round %d", i)
		srv.Restart()
		n, _, err := s.Incr(ctx, "f:a", 1, time.Minute)
		require.NoError(t, err, "round %d: the first script after a restart", i)
		assert.Equal(t, int64(1), n, "round %d: a restart without persistence forgot the count", i)
		srv.Restart()
		_, _, err = s.Take(ctx, "c:a")
		require.NoError(t, err, "round %d: the first GETDEL after a restart", i)
	}
}
