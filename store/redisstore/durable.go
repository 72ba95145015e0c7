package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Durable spends. Redis replicates asynchronously: a master that dies before
// its replica has seen a write loses it in the failover. For a counter that
// is a few counts; for a spend mark it is a captcha or token accepted a
// second time. So a spend (Mark, Take) is followed, on the same connection,
// by WAIT for Options.Replicas replicas within Options.ReplicaTimeout, and
// counts only when they acknowledge it: otherwise it fails with
// ErrNotDurable, and the gate refuses the answer or token. Redis may still
// have applied it (the mark is set on the master): the answer is refused,
// never accepted twice.

// ErrNotDurable is the error of a spend (Mark, Take) that fewer replicas
// than Options.Replicas acknowledged within Options.ReplicaTimeout. The
// gate refuses that answer or token: see Options.Replicas.
var ErrNotDurable = errors.New("redisstore: spend not acknowledged by enough replicas in time (Options.Replicas, Options.ReplicaTimeout)")

// replicasFor returns how many replicas a spend waits for: o.Replicas when
// set, or (the default) one when every master c writes to has a connected
// replica at New, which New checks with INFO replication.
func replicasFor(c redis.UniversalClient, o Options) (int, error) {
	_, cluster := c.(*redis.ClusterClient)
	_, single := c.(*redis.Client)
	switch {
	case o.Replicas < 0:
		return 0, nil
	case o.Replicas > 0 && !cluster && !single:
		return 0, fmt.Errorf("redisstore: Options.Replicas needs a *redis.Client (single node or Sentinel) or a "+
			"*redis.ClusterClient, to send WAIT on the spend's connection; got %T (set Replicas: -1)", c)
	case o.Replicas > 0:
		if err := canWait(c, o); err != nil {
			return 0, fmt.Errorf("redisstore: Options.Replicas: Redis refuses WAIT to this client, so no spend "+
				"could be made durable: %w", err)
		}
		return o.Replicas, nil
	case !cluster && !single:
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	n, err := connectedReplicas(ctx, c)
	if err != nil {
		o.Logger.Info("redisstore: cannot count Redis's replicas (INFO replication refused or failed); spends do "+
			"not wait for replicas (set Options.Replicas to wait)", "err", err)
		return 0, nil
	}
	if n == 0 {
		return 0, nil
	}
	if err := canWait(c, o); err != nil {
		// A managed service may refuse WAIT: every spend would then fail.
		o.Logger.Info("redisstore: Redis has replicas but refuses WAIT to this client; spends do not wait for "+
			"replicas, and one accepted just before a failover can be accepted again after it", "err", err)
		return 0, nil
	}
	o.Logger.Debug("redisstore: every master has a replica; spends wait for one (Options.Replicas)")
	return 1, nil
}

// canWait sends WAIT 0 0 (which returns at once) to every master c writes
// to, and returns Redis's refusal, if any. Other failures (Redis not
// reachable at New) are not refusals: spends will wait, and fail until
// Redis answers.
func canWait(c redis.UniversalClient, o Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	one := func(ctx context.Context, c *redis.Client) error {
		if err := c.Do(ctx, "wait", 0, 0).Err(); refused(err) {
			return err
		}
		return nil
	}
	_, err := eachMaster(ctx, c, one)
	return err
}

// connectedReplicas returns the fewest connected replicas of a master c
// writes to.
func connectedReplicas(ctx context.Context, c redis.UniversalClient) (int, error) {
	var mu sync.Mutex
	fewest := -1
	one := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		n := 0
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
				n, _ = strconv.Atoi(v)
			}
		}
		mu.Lock()
		if fewest < 0 || n < fewest {
			fewest = n
		}
		mu.Unlock()
		return nil
	}
	_, err := eachMaster(ctx, c, one)
	return max(fewest, 0), err
}

// durably runs the spend that queue adds to a pipeline, on the connection
// of key's master, then WAIT there. It returns the spend's command, and
// ErrNotDurable (wrapped) when the spend ran but too few replicas
// acknowledged it. On a Cluster a MOVED reply (the slot has a new owner;
// the command did not run) reloads the slot map and tries again, twice at
// most; ASK (the slot is migrating) is refused as not durable, since the
// command did not run either, the caller may retry.
func (s *Store) durably(ctx context.Context, key string, queue func(p redis.Pipeliner) redis.Cmder) (redis.Cmder, error) {
	for attempt := 0; ; attempt++ {
		var c *redis.Client
		switch cl := s.c.(type) {
		case *redis.ClusterClient:
			node, err := cl.MasterForKey(ctx, key)
			if err != nil {
				return nil, err
			}
			c = node
		case *redis.Client:
			c = cl
		}
		var cmd redis.Cmder
		var wait *redis.IntCmd
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			cmd = queue(p)
			// Pipeliner has no Wait: WAIT numreplicas timeout(ms).
			wait = redis.NewIntCmd(ctx, "wait", s.replicas, max(s.waitFor.Milliseconds(), 1))
			_ = p.Process(ctx, wait)
			return nil
		})
		err := cmd.Err()
		switch {
		case err == nil:
		case strings.HasPrefix(err.Error(), "MOVED ") && s.cluster != nil && attempt < 2:
			s.cluster.ReloadState(ctx)
			select {
			case <-time.After(50 * time.Millisecond << attempt):
			case <-ctx.Done():
				return cmd, ctx.Err()
			}
			continue
		case strings.HasPrefix(err.Error(), "ASK "):
			return cmd, fmt.Errorf("%w: the slot of %s is migrating (%v)", ErrNotDurable, key, err)
		default:
			s.reloadOnConnError(err)
			return cmd, err
		}
		n, err := wait.Result()
		if err != nil {
			s.reloadOnConnError(err)
			return cmd, fmt.Errorf("%w: WAIT: %v", ErrNotDurable, err)
		}
		if n < int64(s.replicas) {
			return cmd, fmt.Errorf("%w: %d of %d replicas within %v", ErrNotDurable, n, s.replicas, s.waitFor)
		}
		return cmd, nil
	}
}
