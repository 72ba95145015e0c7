package redisstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/redisstore"
)

// New reads maxmemory-policy: it warns on one that can evict the gate's
// state, or refuses it with RequireSafeEviction; where CONFIG is not
// allowed it reads INFO; where neither is, it says so (and refuses with
// RequireSafeEviction).
func TestEvictionPolicyCheck(t *testing.T) {
	srv := redistest.Start(t)
	admin := client(t, srv)
	ctx := context.Background()
	newWith := func(t *testing.T, c redis.UniversalClient, require bool) (string, error) {
		var log bytes.Buffer
		s, err := redisstore.New(c, redisstore.Options{Logger: slog.New(slog.NewTextHandler(&log, nil)), RequireSafeEviction: require})
		if err == nil {
			s.Close()
		}
		return log.String(), err
	}
	setPolicy := func(t *testing.T, p string) {
		require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", p).Err())
	}
	// A user that may not run CONFIG, and one that may run neither CONFIG
	// nor INFO, as on some managed services.
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "+@all", "-config").Err())
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-config", "-info").Err())
	as := func(user string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: user, Password: "pw", ContextTimeoutEnabled: true})
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("noeviction", func(t *testing.T) {
		setPolicy(t, "noeviction")
		log, err := newWith(t, admin, true)
		require.NoError(t, err)
		assert.Empty(t, log)
	})
	for _, p := range []string{"allkeys-lru", "volatile-ttl", "volatile-lru", "allkeys-random"} {
		t.Run(p, func(t *testing.T) {
			setPolicy(t, p)
			defer setPolicy(t, "noeviction")
			log, err := newWith(t, admin, false)
			require.NoError(t, err)
			assert.Contains(t, log, "level=WARN")
			assert.Contains(t, log, "maxmemory-policy="+p)
			_, err = newWith(t, admin, true)
			assert.ErrorContains(t, err, "maxmemory-policy "+p)
			// Read from INFO where CONFIG is refused.
			log, err = newWith(t, as("noconfig"), false)
			require.NoError(t, err)
			assert.Contains(t, log, "maxmemory-policy="+p)
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		setPolicy(t, "allkeys-lru")
		defer setPolicy(t, "noeviction")
		log, err := newWith(t, as("noinfo"), false)
		require.NoError(t, err, "a policy that cannot be read does not stop New")
		assert.Contains(t, log, "cannot check")
		_, err = newWith(t, as("noinfo"), true)
		assert.ErrorContains(t, err, "cannot read maxmemory-policy")
	})
	t.Run("unreachable", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true, MaxRetries: -1})
		defer c.Close()
		log, err := newWith(t, c, false)
		require.NoError(t, err, "Redis may come up after the app")
		assert.Contains(t, log, "level=WARN")
		_, err = newWith(t, c, true)
		assert.Error(t, err)
	})
}
