package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// What runs at most once, and why: see "Lost replies" in the package doc.
// go-redis (v9.23 and later) asks each command's NoRetry before re-sending
// it, in the single-command, pipeline, Cluster and Ring paths, and re-sends
// no part of a pipeline that holds one such command.

// onceCmd is a script command that go-redis must not re-send.
type onceCmd struct{ *redis.Cmd }

// NoRetry implements redis.Cmder.
func (onceCmd) NoRetry() bool { return true }

// onceStringCmd is a string command that go-redis must not re-send.
type onceStringCmd struct{ *redis.StringCmd }

// NoRetry implements redis.Cmder.
func (onceStringCmd) NoRetry() bool { return true }

// script is a Lua script of the store's, run by its SHA1 (EVALSHA) or,
// after NOSCRIPT, whole (EVAL).
type script struct{ src, sha string }

func newScript(src string) script { return script{src: src, sha: redis.NewScript(src).Hash()} }

// queueOnce queues sc on key with args on p, as a command that is sent at
// most once: by its SHA1, or whole with eval.
func queueOnce(ctx context.Context, p redis.Pipeliner, sc script, eval bool, key string, args ...any) *redis.Cmd {
	a := make([]any, 0, 4+len(args))
	if eval {
		a = append(a, "eval", sc.src, 1, key)
	} else {
		a = append(a, "evalsha", sc.sha, 1, key)
	}
	cmd := redis.NewCmd(ctx, append(a, args...)...)
	cmd.SetFirstKeyPos(3) // Cluster routes by the first key
	p.Process(ctx, onceCmd{cmd})
	return cmd
}

// getDel runs GETDEL at most once; a spend that takes an item waits for
// replicas, when the store does (see durable.go).
func (s *Store) getDel(ctx context.Context, key string) (*redis.StringCmd, error) {
	cmd := redis.NewStringCmd(ctx, "getdel", key)
	cmd.SetFirstKeyPos(1)
	if s.replicas > 0 {
		_, err := s.durably(ctx, key, func(p redis.Pipeliner) redis.Cmder {
			_ = p.Process(ctx, onceStringCmd{cmd})
			return cmd
		})
		if errors.Is(err, ErrNotDurable) {
			return cmd, err
		}
		return cmd, nil
	}
	_ = s.c.Process(ctx, onceStringCmd{cmd})
	s.reloadOnConnError(cmd.Err())
	return cmd, nil
}
