package redisstore

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate"
)

// Lanes: counter operations leave through pipeline writers, one per lane.
// On a Cluster a lane is a master (the owner of the key's slot when the
// operation is handed over), so a master that is dead or slow holds up only
// the operations on its own keys: the others' pipelines go out and return
// meanwhile. Anywhere else there is one lane. A lane's writer still sends
// through the caller's client, which follows MOVED and ASK, so an operation
// queued on a master that has lost its slot meanwhile reaches the new owner.
//
// Ordering holds where the package doc promises it: an operation on a key
// goes to the lane of its slot's owner, and a lane sends in the order handed
// over, so a give-back precedes the next count of the same key (unless the
// slot changed owner in between, when the next count may overtake a
// give-back still queued on the old owner's lane: a count one higher for
// one round trip).

// lane is one pipeline writer and its queue.
type lane struct {
	s     *Store
	addr  string // the master's address; "" for the one lane
	queue chan *batch
	done  chan struct{} // closed when the writer has stopped
}

// newLane starts a lane's writer.
func (s *Store) newLane(addr string) *lane {
	l := &lane{s: s, addr: addr, queue: make(chan *batch, s.queueLen), done: make(chan struct{})}
	go l.writer()
	return l
}

// laneFor returns the lane of key: its slot's master on a Cluster (a lane
// is started for a master seen for the first time), the one lane
// otherwise, and on a Cluster whose slot map the client cannot give.
func (s *Store) laneFor(ctx context.Context, key string) *lane {
	if s.cluster == nil {
		return s.one
	}
	node, err := s.cluster.MasterForKey(ctx, s.prefix+key)
	if err != nil {
		return s.one
	}
	addr := node.Options().Addr
	if l, ok := s.lanes.Load(addr); ok {
		return l.(*lane)
	}
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	if l, ok := s.lanes.Load(addr); ok {
		return l.(*lane)
	}
	select {
	case <-s.stop:
		return s.one // closed: its writer has stopped, and Do fails at once
	default:
	}
	l := s.newLane(addr)
	s.lanes.Store(addr, l)
	return l
}

// everyLane returns the lanes started so far.
func (s *Store) everyLane() []*lane {
	ls := []*lane{s.one}
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	s.lanes.Range(func(_, l any) bool {
		ls = append(ls, l.(*lane))
		return true
	})
	return ls
}

// Close stops the pipeline writers after they have written what was handed
// over; counter operations after Close fail. It does not close the client,
// which is the caller's. Close is idempotent. Its wait has no bound of its
// own (each pipeline has Options.Timeout): call Flush first to bound it.
func (s *Store) Close() error {
	s.lanesMu.Lock()
	s.closeOne.Do(func() { close(s.stop) })
	s.lanesMu.Unlock()
	for _, l := range s.everyLane() {
		<-l.done
	}
	return nil
}

// Flush waits until every counter operation handed to the store before the
// call (by Do, Later, and so by the gate's give-backs and resets) has been
// written to Redis, or has failed or been dropped and its report has
// returned. It returns nil then, or ctx's error if ctx ends first (the
// writes go on). Flush writes nothing itself and does not delay other
// callers (a write behind lingering for company leaves at once).
//
// Tests call it before asking another instance what a write behind changed;
// a graceful shutdown calls it, with its deadline, after http.Server's
// Shutdown and before Close. After Close it waits only for reports still
// running; it returns ErrClosed if Close stopped a writer before the
// writer reached the call.
func (s *Store) Flush(ctx context.Context) error {
	for _, l := range s.everyLane() {
		if err := l.flush(ctx); err != nil {
			return err
		}
	}
	s.reportMu.Lock()
	running := make([]chan struct{}, 0, len(s.running))
	for c := range s.running {
		running = append(running, c)
	}
	s.reportMu.Unlock()
	for _, c := range running {
		select {
		case <-c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// flush waits until the lane's writer has sent what was queued before it.
func (l *lane) flush(ctx context.Context) error {
	wait := func(c <-chan struct{}) error {
		select {
		case <-c:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-l.s.stop: // closing: the writer sends what was queued, then stops
		return wait(l.done)
	default:
	}
	m := &batch{flushed: make(chan struct{})}
	select {
	case l.queue <- m:
	case <-l.s.stop:
		return wait(l.done)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-m.flushed:
		return nil
	case <-l.done:
		select {
		case <-m.flushed:
			return nil
		default:
			return ErrClosed // queued after the writer's last look
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// report calls f with err on a goroutine of its own, so that a slow event
// hook never holds up a writer or a request; Flush waits for it.
func (s *Store) report(f func(error), err error) {
	if f == nil {
		return
	}
	done := make(chan struct{})
	s.reportMu.Lock()
	s.running[done] = struct{}{}
	s.reportMu.Unlock()
	go func() {
		defer func() {
			s.reportMu.Lock()
			delete(s.running, done)
			s.reportMu.Unlock()
			close(done)
		}()
		f(err)
	}()
}

// ErrClosed is the error of counter operations after Close.
var ErrClosed = errors.New("redisstore: store closed")

// errDropped reports a give-back dropped because the queue was full.
var errDropped = errors.New("redisstore: pipeline queue full; give-back dropped (the counter stays higher until its window ends)")

// batch is one hand-over to a lane's writer: a Do's, a Later's, or a
// Flush's mark (no ops).
type batch struct {
	ops     []captchagate.Op
	done    chan struct{} // closed when ops have their results (Do)
	report  func(error)   // Later
	flushed chan struct{} // Flush: closed once what came before is written
	state   atomic.Int32  // Do: queued, taken, gaveUp or finished
}

// behind reports whether b is a write behind (a Later's).
func (b *batch) behind() bool { return b.done == nil && b.flushed == nil }

// States of a Do's batch. A batch whose caller gave up while it was queued
// is never sent; one given up while in flight has its increments given back.
const (
	queued int32 = iota
	taken
	gaveUp
	finished
)

// part is the share of a Do's or a Later's operations that goes to one
// lane: at is where each of its ops came from (nil: all of them, in order).
type part struct {
	l  *lane
	b  *batch
	at []int
}

// split shares ops out among their lanes: one part when they all go to one
// lane (always, but on a Cluster), in the order of the ops' first lanes.
func (s *Store) split(ctx context.Context, ops []captchagate.Op) []part {
	first := s.laneFor(ctx, ops[0].Key)
	ls := make([]*lane, len(ops))
	ls[0] = first
	one := true
	for i := 1; i < len(ops); i++ {
		ls[i] = s.laneFor(ctx, ops[i].Key)
		one = one && ls[i] == first
	}
	if one {
		return []part{{l: first, b: &batch{ops: slices.Clone(ops)}}}
	}
	var parts []part
	for i, l := range ls {
		j := slices.IndexFunc(parts, func(p part) bool { return p.l == l })
		if j < 0 {
			parts = append(parts, part{l: l, b: &batch{}})
			j = len(parts) - 1
		}
		parts[j].b.ops = append(parts[j].b.ops, ops[i])
		parts[j].at = append(parts[j].at, i)
	}
	return parts
}

// Do implements captchagate.Batcher: ops leave in their lanes' next
// pipelines (on a Cluster, one per master they touch, at once), and Do
// waits for their results or for ctx.
func (s *Store) Do(ctx context.Context, ops []captchagate.Op) {
	if len(ops) == 0 {
		return // nothing to count: no trip through a writer
	}
	fail := func(p part, err error) {
		for i := range p.b.ops {
			if p.at == nil {
				ops[i].Err = err
			} else {
				ops[p.at[i]].Err = err
			}
		}
	}
	select {
	case <-s.stop:
		for i := range ops {
			ops[i].Err = ErrClosed
		}
		return
	default:
	}
	parts := s.split(ctx, ops)
	sent := parts[:0:0]
	for _, p := range parts {
		p.b.done = make(chan struct{})
		select {
		case p.l.queue <- p.b:
			sent = append(sent, p)
		case <-ctx.Done():
			fail(p, ctx.Err())
		case <-s.stop:
			fail(p, ErrClosed)
		}
	}
	for _, p := range sent {
		var err error
		select {
		case <-p.b.done:
		case <-ctx.Done():
			err = ctx.Err()
		case <-p.l.done: // the writer stopped, perhaps before taking the batch
			err = ErrClosed
		}
		if err != nil {
			if p.b.state.CompareAndSwap(queued, gaveUp) || p.b.state.CompareAndSwap(taken, gaveUp) {
				fail(p, err)
				continue
			}
			<-p.b.done // finished meanwhile: the results stand
		}
		if p.at == nil {
			copy(ops, p.b.ops)
			continue
		}
		for i, op := range p.b.ops {
			ops[p.at[i]] = op
		}
	}
}

// Later implements captchagate.Batcher: ops leave in their lanes' next
// pipelines, after everything handed over before them and before
// everything handed over after Later returns (on the same lane: every key
// keeps its order); if a lane's queue is full, its ops are dropped. A
// failure, a drop, and a Later after Close are reported from a goroutine of
// their own. See the package doc for what other instances see, and when.
func (s *Store) Later(ops []captchagate.Op, report func(error)) {
	select {
	case <-s.stop:
		s.report(report, ErrClosed)
		return
	default:
	}
	if len(ops) == 0 {
		return
	}
	for _, p := range s.split(context.Background(), ops) {
		p.b.report = report
		select {
		case p.l.queue <- p.b:
		default:
			s.report(report, errDropped)
		}
	}
}

// writer sends what is handed over to l, in order, one pipeline at a time:
// what arrives while a pipeline is out leaves in the next one. Writes
// behind with nothing else to send wait up to Options.Linger for company.
func (l *lane) writer() {
	defer close(l.done)
	s := l.s
	var bs []*batch
	var linger *time.Timer
	for {
		var first *batch
		select {
		case first = <-l.queue:
		case <-s.stop:
			// Write what was handed over before Close, then stop.
			select {
			case first = <-l.queue:
			default:
				return
			}
		}
		bs = append(bs[:0], first)
		n := len(first.ops)
		behind := first.behind()
	more:
		for n < s.maxBatch {
			select {
			case b := <-l.queue:
				bs, n, behind = append(bs, b), n+len(b.ops), behind && b.behind()
				continue
			default:
			}
			if !behind || s.linger <= 0 {
				break
			}
			// Only writes behind so far: the next request's counting is
			// probably on its way (a request follows a handler's return).
			if linger == nil {
				linger = time.NewTimer(s.linger)
			} else {
				linger.Reset(s.linger)
			}
			select {
			case b := <-l.queue:
				linger.Stop()
				bs, n, behind = append(bs, b), n+len(b.ops), behind && b.behind()
			case <-linger.C:
				break more
			case <-s.stop:
				linger.Stop()
				break more
			}
		}
		l.send(bs)
		clear(bs)
	}
}

// take keeps the batches of bs whose callers still wait, marking them taken.
func take(bs []*batch) []*batch {
	return slices.DeleteFunc(bs, func(b *batch) bool {
		return b.done != nil && !b.state.CompareAndSwap(queued, taken)
	})
}

// send runs the operations of bs and hands out the results, in order: a
// Do's caller is woken, a Later's failure reported, and a Flush's mark
// released once everything before it is written.
func (l *lane) send(bs []*batch) {
	s := l.s
	if bs = take(bs); len(bs) == 0 {
		return
	}
	// One deadline for the whole hand-out: a send takes at most Timeout.
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	s.exec(ctx, bs)
	var back []captchagate.Op
	for _, b := range bs {
		switch {
		case b.flushed != nil:
		case b.done != nil && b.state.CompareAndSwap(taken, finished):
			close(b.done)
		case b.done != nil:
			// The caller gave up while the pipeline was out: nobody will
			// give back what it reserved, so the store does.
			for _, op := range b.ops {
				switch {
				case op.Err != nil:
				case op.Kind == captchagate.OpIncr && op.Delta > 0:
					back = append(back, captchagate.Op{Kind: captchagate.OpIncr, Key: op.Key, Delta: -op.Delta, Window: op.Window})
				case op.Kind == captchagate.OpAllow && op.Take && op.OK:
					back = append(back, captchagate.Op{Kind: captchagate.OpReturn, Key: op.Key, Interval: op.Interval})
				}
			}
		case b.report != nil:
			for _, op := range b.ops {
				if op.Err != nil {
					s.report(b.report, op.Err)
					break
				}
			}
		}
	}
	if len(back) > 0 {
		// At once, before the marks of Flush calls that came after.
		s.exec(ctx, []*batch{{ops: back}})
	}
	for _, b := range bs {
		if b.flushed != nil {
			close(b.flushed)
		}
	}
}

// reloadOnConnError asks a Cluster client to reload its slot map when err
// is a connection's failure (refused, reset, timed out: not an error Redis
// answered), which is how a master's death shows before the Cluster has
// failed it over. go-redis reloads by itself only on MOVED and ASK, or
// every ClusterStateReloadInterval (a minute by default), so without this
// the keys of a dead master would fail until long after a replica took
// its slots. The reload runs in the background, at most one at a time and
// one per 200ms (go-redis's LazyReload).
func (s *Store) reloadOnConnError(err error) {
	if s.cluster == nil || err == nil || errors.Is(err, context.Canceled) {
		return
	}
	var re redis.Error
	if errors.As(err, &re) {
		return // Redis answered
	}
	s.cluster.ReloadState(context.Background())
}
