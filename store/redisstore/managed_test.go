package redisstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// refusals records the commands Redis refused to a client (NOPERM, or an
// unknown command), by name.
type refusals struct {
	mu    sync.Mutex
	names []string
}

func (h *refusals) note(name string, err error) {
	if err != nil && (strings.HasPrefix(err.Error(), "NOPERM") || strings.Contains(err.Error(), "unknown command")) {
		h.mu.Lock()
		h.names = append(h.names, name)
		h.mu.Unlock()
	}
}

func (h *refusals) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := h.names
	h.names = nil
	return names
}

func (h *refusals) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *refusals) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd) // Process sets cmd's error after the hooks
		h.note(cmd.FullName(), err)
		return err
	}
}
func (h *refusals) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			h.note(c.FullName(), c.Err())
		}
		return err
	}
}

// Managed Redis: the store's client may not run CONFIG or SCRIPT (nor, on
// some services, INFO or WAIT), refused by ACL (NOPERM) or renamed away
// (unknown command), as on several managed services. New still succeeds
// and says what it could not check; counters, buckets and the captcha flow
// work, scripts going by EVALSHA and by EVAL after NOSCRIPT; and nothing
// Redis refuses is sent while serving.
func TestManagedRedis(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := client(t, srv)
	// A server where CONFIG is gone and SCRIPT has a name only its admin
	// knows.
	renamed := redistest.Start(t, "--rename-command", "CONFIG", "", "--rename-command", "SCRIPT", "admin-script")
	for i, tc := range []struct {
		name      string
		rules     []string // ACL rules of the store's user beyond "+@all"; nil: the default user of renamed
		replica   bool     // the server has a replica
		unchecked []string // what New's log must name
	}{
		{"ACL: no CONFIG, SCRIPT", []string{"-@admin", "-config", "-script"}, false, []string{"SCRIPT"}},
		{"ACL: no CONFIG, SCRIPT, INFO", []string{"-@admin", "-config", "-script", "-info"}, false,
			[]string{"SCRIPT", "maxmemory-policy", "replicas"}},
		// With a replica, where WAIT is refused: spends cannot be made
		// durable.
		{"ACL: no CONFIG, SCRIPT, WAIT; a replica", []string{"-@admin", "-config", "-script", "-wait"}, true, []string{"SCRIPT", "WAIT"}},
		{"renamed: no CONFIG, SCRIPT", nil, false, []string{"SCRIPT"}},
		// The least docs/deployment.md says the store needs.
		{"ACL: deployment.md's", []string{"-@all", "+@read", "+@write", "+@scripting", "+@connection", "+info", "-script"}, true,
			[]string{"SCRIPT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *redis.Client
			flushScripts := func() error { return admin.ScriptFlush(ctx).Err() }
			if tc.rules == nil {
				c = redis.NewClient(&redis.Options{Addr: renamed.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
				flushScripts = func() error { return c.Do(ctx, "admin-script", "flush").Err() }
			} else {
				user := fmt.Sprintf("managed%d", i)
				require.NoError(t, admin.Do(ctx, append([]any{"ACL", "SETUSER", user, "reset", "on", ">pw", "~*", "&*", "+@all"},
					anys(tc.rules)...)...).Err())
				c = redis.NewClient(&redis.Options{Addr: srv.Addr, Username: user, Password: "pw", ContextTimeoutEnabled: true, MaxRetries: -1})
			}
			t.Cleanup(func() { c.Close() })
			for _, cmd := range [][]any{{"CONFIG", "GET", "maxmemory-policy"}, {"SCRIPT", "LOAD", "return 1"}} {
				err := c.Do(ctx, cmd...).Err()
				require.True(t, err != nil && (strings.HasPrefix(err.Error(), "NOPERM") || strings.Contains(err.Error(), "unknown command")),
					"the store's client may not run %v: %v", cmd, err)
			}
			if tc.replica {
				require.NoError(t, admin.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err())
				replica := redistest.StartReplica(t, srv)
				defer replica.Stop()
			}
			if slices.Contains(tc.rules, "-wait") {
				_, err := redisstore.New(c, redisstore.Options{Replicas: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				assert.ErrorContains(t, err, "refuses WAIT", "spends asked to wait, where none could: New refuses")
			}
			refused := &refusals{}
			c.AddHook(refused)

			var log bytes.Buffer
			clk := storetest.NewClock()
			// ReplicaTimeout: a replica on a loaded CI machine may take longer
			// than the default 100ms to acknowledge a spend.
			in := gateOn(t, c, redisstore.Options{Prefix: fmt.Sprintf("managed%d:", i), Now: clk.Now,
				ReplicaTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(&log, nil))}, nil)
			t.Logf("New logged: %s", log.String())
			t.Logf("refused to New: %v", refused.take())
			for _, what := range tc.unchecked {
				assert.Contains(t, strings.ToLower(log.String()), strings.ToLower(what), "New says it could not check %s", what)
			}

			// Counters and buckets, straight on the store.
			for i := int64(1); i <= 3; i++ {
				n, _, err := in.store.Incr(ctx, "k", 1, time.Minute)
				require.NoError(t, err)
				assert.Equal(t, i, n)
			}
			ok, _, err := in.store.Allow(ctx, "b", time.Second, 1, true)
			require.NoError(t, err)
			assert.True(t, ok)
			ok, _, err = in.store.Allow(ctx, "b", time.Second, 1, true)
			require.NoError(t, err)
			assert.False(t, ok, "the bucket is empty")

			// The captcha flow through the gate, and once more after the
			// scripts are flushed (NOSCRIPT: sent again whole, by EVAL).
			for round := range 2 {
				if round == 1 {
					require.NoError(t, flushScripts())
				}
				name := "mona" + string(rune('a'+round))
				require.Equal(t, http.StatusUnauthorized, in.post(t, "/spend", login(name, "wrong")).status, "round %d", round)
				rp := in.post(t, "/spend", login(name, "right"))
				require.Equal(t, http.StatusPreconditionRequired, rp.status, "round %d: %s", round, rp.raw)
				verify := `{"captcha_id":"` + rp.captchaID(t) + `","captcha_answer":"` + answer + `"}`
				v := in.post(t, "/captcha/verify", verify)
				require.Equal(t, http.StatusOK, v.status, "round %d: %s", round, v.raw)
				tok := v.body["captcha_token"].(string)
				assert.Equal(t, http.StatusOK, in.post(t, "/spend", login(name, "right"), captchagate.TokenHeader, tok).status, "round %d", round)
				assert.NotEqual(t, http.StatusOK, in.post(t, "/spend", login(name, "right"), captchagate.TokenHeader, tok).status,
					"round %d: a token is spent once", round)
				assert.Equal(t, http.StatusForbidden, in.post(t, "/captcha/verify", verify).status, "round %d: an answer is spent once", round)
			}
			in.flush(t)
			assert.Empty(t, refused.take(), "nothing Redis refuses this client is sent while serving")
		})
	}
}

func anys(s []string) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}
