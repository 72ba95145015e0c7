package redisstore

import (
	"context"

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

// onceScripter queues scripts on a pipeline as commands that are sent at
// most once: redis.Script's EvalSha and Eval run through it.
type onceScripter struct{ redis.Pipeliner }

func (o onceScripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return o.eval(ctx, "evalsha", sha1, keys, args)
}

func (o onceScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return o.eval(ctx, "eval", script, keys, args)
}

func (o onceScripter) eval(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, name, payload, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	cmd := redis.NewCmd(ctx, a...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3) // Cluster routes by the first key
	}
	o.Process(ctx, onceCmd{cmd})
	return cmd
}

// getDel runs GETDEL at most once.
func getDel(ctx context.Context, c redis.UniversalClient, key string) *redis.StringCmd {
	cmd := redis.NewStringCmd(ctx, "getdel", key)
	cmd.SetFirstKeyPos(1)
	c.Process(ctx, onceStringCmd{cmd})
	return cmd
}
