package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate"
)

// SafeEvictionPolicy is the only maxmemory-policy under which Redis never
// evicts the gate's state. Every other policy can: allkeys-* evict any key,
// volatile-* any key with a TTL, and every key of the store has one. See
// "Memory" in the package doc for what noeviction costs.
const SafeEvictionPolicy = "noeviction"

// errNoPolicy is returned when Redis does not let the store read its
// policy (CONFIG and INFO refused: renamed, or not allowed by ACL).
var errNoPolicy = errors.New("redisstore: Redis does not let this client read maxmemory-policy (CONFIG GET and INFO memory refused)")

// checkEviction reads the maxmemory-policy of every server c writes to
// and logs, or returns as an error when o.RequireSafeEviction is set, one
// that can evict the gate's state.
func checkEviction(c redis.UniversalClient, o Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	policy, addr, err := evictionPolicy(ctx, c)
	switch {
	case err != nil && o.RequireSafeEviction:
		return fmt.Errorf("redisstore: Options.RequireSafeEviction: cannot read maxmemory-policy: %w", err)
	case errors.Is(err, errNoPolicy):
		o.Logger.Info("redisstore: cannot check Redis's maxmemory-policy; make sure it is "+SafeEvictionPolicy, "err", err)
	case err != nil:
		o.Logger.Warn("redisstore: cannot check Redis's maxmemory-policy; make sure it is "+SafeEvictionPolicy, "err", err)
	case policy == SafeEvictionPolicy:
	case o.RequireSafeEviction:
		return fmt.Errorf("redisstore: Options.RequireSafeEviction: Redis at %s has maxmemory-policy %s, which can evict "+
			"the gate's counters under memory pressure (an attacked account would be open again); set it to %s, "+
			"on a Redis of the gate's own", addr, policy, SafeEvictionPolicy)
	default:
		o.Logger.Warn("redisstore: Redis's maxmemory-policy can evict the gate's counters under memory pressure "+
			"(an attacked account would be open again); set it to "+SafeEvictionPolicy+", on a Redis of the gate's own",
			"addr", addr, "maxmemory-policy", policy)
	}
	return nil
}

// evictionPolicy returns the first policy other than noeviction among the
// servers c writes to (every master of a Cluster, every shard of a Ring),
// with its server's address, or noeviction.
func evictionPolicy(ctx context.Context, c redis.UniversalClient) (policy, addr string, err error) {
	var mu sync.Mutex // ForEachMaster runs one on each master at once
	policy = SafeEvictionPolicy
	one := func(ctx context.Context, c *redis.Client) error {
		p, err := serverPolicy(ctx, c)
		if err != nil {
			return err
		}
		mu.Lock()
		if p != SafeEvictionPolicy && policy == SafeEvictionPolicy {
			policy, addr = p, c.Options().Addr
		}
		mu.Unlock()
		return nil
	}
	ok, err := eachMaster(ctx, c, one)
	if !ok {
		policy, err = serverPolicy(ctx, c)
	}
	return policy, addr, err
}

// eachMaster runs fn on every server c writes to, at once: every master of
// a Cluster, every shard of a Ring, a Client itself. It reports false for a
// client of another type (a wrapper of the caller's own), running nothing.
func eachMaster(ctx context.Context, c redis.UniversalClient, fn func(context.Context, *redis.Client) error) (bool, error) {
	switch c := c.(type) {
	case *redis.ClusterClient:
		return true, c.ForEachMaster(ctx, fn)
	case *redis.Ring:
		return true, c.ForEachShard(ctx, fn)
	case *redis.Client:
		return true, fn(ctx, c)
	}
	return false, nil
}

// serverPolicy reads maxmemory-policy with CONFIG GET, or from INFO memory
// where CONFIG is refused (managed services often rename or forbid it).
func serverPolicy(ctx context.Context, c redis.Cmdable) (string, error) {
	m, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err == nil {
		if p, ok := m["maxmemory-policy"]; ok {
			return p, nil
		}
	} else if !refused(err) {
		return "", err
	}
	info, err := c.Info(ctx, "memory").Result()
	if refused(err) {
		return "", errNoPolicy
	}
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(info) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok {
			return p, nil
		}
	}
	return "", errNoPolicy
}

// refused reports an error Redis answers to a command it does not know or
// does not allow this client.
func refused(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.HasPrefix(s, "NOPERM") || strings.Contains(s, "unknown command")
}

// ErrFull matches (errors.Is) the error of a write Redis refused because
// it reached its maxmemory under noeviction (an "OOM command not allowed"
// reply), or a counter or bucket the store could not create then. It also
// matches captchagate.ErrStoreFull, on which the gate asks the request for
// a captcha (see "Memory" in the package doc). Counters that exist, reads,
// resets, give-backs and spend marks still work then.
var ErrFull = errors.New("redisstore: Redis is full (maxmemory reached under noeviction)")

// fullError is an OOM reply: it matches ErrFull and the reply.
type fullError struct{ err error }

func (e fullError) Error() string   { return "redisstore: Redis is full: " + e.err.Error() }
func (e fullError) Unwrap() []error { return []error{ErrFull, captchagate.ErrStoreFull, e.err} }

// full turns an OOM reply into a fullError, and returns other errors as
// they are.
func full(err error) error {
	if err != nil && strings.HasPrefix(err.Error(), "OOM ") {
		return fullError{err}
	}
	return err
}
