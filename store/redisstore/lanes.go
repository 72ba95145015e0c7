package redisstore

import (
	"context"
	"errors"
	"slices"
	"sync"
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

// lane is one pipeline writer and its queue. A request that finds the lane
// idle sends its pipeline itself, on its own goroutine, and takes along the
// writes behind that were waiting (lingering) for company: one round trip,
// no hand-over between goroutines. What is handed over while a pipeline is
// out waits in pending, and the lane's writer sends it, in order, once the
// pipeline is back.
type lane struct {
	s *Store

	mu      sync.Mutex
	pending []*batch // handed over, not yet sent, in order
	busy    bool     // a pipeline is out, or the writer is about to send
	armed   bool     // the linger timer is set
	linger  *time.Timer

	slots chan struct{} // one per pending batch: Options.Queue
	kick  chan struct{} // wakes the writer (which then owns busy)
	done  chan struct{} // closed when the writer has stopped
}

// newLane starts a lane's writer.
func (s *Store) newLane() *lane {
	l := &lane{s: s, slots: make(chan struct{}, s.queueLen), kick: make(chan struct{}, 1), done: make(chan struct{})}
	l.linger = time.AfterFunc(time.Hour, l.lingered)
	l.linger.Stop()
	go l.writer()
	return l
}

// enqueue adds b to the pending batches (it holds a slot) and has the
// writer send it: at once, unless a pipeline is out (its sender hands over
// to the writer when it is back), or b is a write behind that may linger.
func (l *lane) enqueue(b *batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, b)
	switch {
	case l.busy:
	case b.behind() && l.s.linger > 0:
		if !l.armed {
			l.armed = true
			l.linger.Reset(l.s.linger)
		}
	default:
		l.wake()
	}
}

// wake has the writer send what is pending: it owns busy from now on.
// l.mu is held, and busy is not set.
func (l *lane) wake() {
	l.busy = true
	l.kick <- struct{}{}
}

// lingered: the writes behind waited long enough for company.
func (l *lane) lingered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = false
	if !l.busy && len(l.pending) > 0 {
		l.wake()
	}
}

// pendingBehind reports whether every batch of bs is a write behind.
func pendingBehind(bs []*batch) bool {
	for _, b := range bs {
		if !b.behind() {
			return false
		}
	}
	return true
}

// takePending removes up to Options.MaxBatch operations' worth of pending
// batches (at least one) and gives back their slots. l.mu is held.
func (l *lane) takePending(bs []*batch) []*batch {
	n, k := 0, 0
	for k < len(l.pending) && (k == 0 || n+len(l.pending[k].ops) <= l.s.maxBatch) {
		n += len(l.pending[k].ops)
		k++
	}
	bs = append(bs, l.pending[:k]...)
	clear(l.pending[:k])
	l.pending = l.pending[k:]
	for range k {
		<-l.slots
	}
	return bs
}

// carryFloor is the least time a leader must have left before its deadline
// to take other requests' writes behind along: one that spent most of its
// time elsewhere (on a dead master, say) sends its own operations only, and
// leaves the writes behind to their linger and the writer, so that its
// deadline does not fail them.
const carryFloor = 50 * time.Millisecond

// carries reports whether a leader under ctx takes writes behind along.
func carries(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return !ok || time.Until(d) >= carryFloor
}

// lead sends b, with the writes behind waiting on l, on the caller's
// goroutine within ctx, if l is idle; it reports whether it did. The
// caller's deadline bounds the round trip: if it passes, b's operations
// fail with its error (they may have run: a count one higher until its
// window ends, on the safe side), and so do the writes behind it took
// along (reported, as a failed write behind is).
func (l *lane) lead(ctx context.Context, b *batch) bool {
	l.mu.Lock()
	if l.busy {
		l.mu.Unlock()
		return false
	}
	l.busy = true
	bs := make([]*batch, 0, len(l.pending)+1)
	if len(l.pending) > 0 && carries(ctx) {
		bs = l.takePending(bs)
	}
	// An armed linger timer is left to fire and find nothing: stopping it
	// here and arming it again for the next write behind would cost a
	// wake-up of the runtime's poller per request.
	l.mu.Unlock()
	b.leader = true
	bs = append(bs, b)
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= l.s.timeout {
		l.send(ctx, bs) // the caller's deadline is the sooner: no timer of the store's
	} else {
		sctx, cancel := context.WithTimeout(ctx, l.s.timeout)
		l.send(sctx, bs)
		cancel()
	}
	err := ctx.Err()
	if d, ok := ctx.Deadline(); ok && err == nil && !time.Now().Before(d) {
		err = context.DeadlineExceeded // the connection's deadline fired first
	}
	if err != nil {
		for i := range b.ops {
			if b.ops[i].Err != nil {
				b.ops[i].Err = err // go-redis says i/o timeout
			}
		}
	}
	l.mu.Lock()
	if len(l.pending) > 0 && (!pendingBehind(l.pending) || !l.armed) {
		l.kick <- struct{}{} // busy passes to the writer
	} else {
		l.busy = false // writes behind left pending wait out their linger
	}
	l.mu.Unlock()
	return true
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
	l := s.newLane()
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

// flush waits until the lane's writer has sent what was pending before it.
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
	case <-l.s.stop: // closing: the writer sends what was pending, then stops
		return wait(l.done)
	default:
	}
	m := &batch{flushed: make(chan struct{})}
	select {
	case l.slots <- struct{}{}:
	case <-l.s.stop:
		return wait(l.done)
	case <-ctx.Done():
		return ctx.Err()
	}
	l.enqueue(m)
	select {
	case <-m.flushed:
		return nil
	case <-l.done:
		select {
		case <-m.flushed:
			return nil
		default:
			return ErrClosed // pending after the writer's last look
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
	leader  bool          // a Do's that its caller sends (lane.lead)
}

// behind reports whether b is a write behind (a Later's).
func (b *batch) behind() bool { return b.done == nil && b.flushed == nil && !b.leader }

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
	if s.cluster == nil {
		return []part{{l: s.one, b: &batch{ops: slices.Clone(ops)}}}
	}
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
// waits for their results or for ctx. On an idle lane the caller sends the
// pipeline itself (see lane).
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
	var sent []part
	hand := func(p part) { // to its lane's writer
		p.b.done = make(chan struct{})
		select {
		case p.l.slots <- struct{}{}:
			p.l.enqueue(p.b)
			sent = append(sent, p)
		case <-ctx.Done():
			fail(p, ctx.Err())
		case <-s.stop:
			fail(p, ErrClosed)
		}
	}
	// The other lanes' parts go to their writers first; then the first part
	// is sent here if its lane is idle, while they are out.
	for _, p := range parts[1:] {
		hand(p)
	}
	if first := parts[0]; !first.l.lead(ctx, first.b) {
		hand(first)
	} else if first.at == nil {
		copy(ops, first.b.ops)
	} else {
		for i, op := range first.b.ops {
			ops[first.at[i]] = op
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
		case p.l.slots <- struct{}{}:
			p.l.enqueue(p.b)
		default:
			s.report(report, errDropped)
		}
	}
}

// writer sends what is pending on l when kicked, in order, one pipeline at
// a time, until nothing is pending; then l is idle again.
func (l *lane) writer() {
	defer close(l.done)
	defer l.linger.Stop()
	s := l.s
	var bs []*batch
	for {
		select {
		case <-l.kick:
		case <-s.stop:
			// Write what was handed over before Close, then stop: once a
			// leader's pipeline that is out is back (it hands over, or
			// finds nothing pending and leaves the lane idle).
			for {
				l.mu.Lock()
				idle := !l.busy
				l.busy = true
				l.mu.Unlock()
				if idle {
					break
				}
				select {
				case <-l.kick:
				case <-time.After(time.Millisecond):
					continue
				}
				break
			}
			l.drain(bs)
			return
		}
		l.drain(bs)
	}
}

// drain sends the pending batches, MaxBatch operations per pipeline, then
// clears busy. The writer owns busy meanwhile.
func (l *lane) drain(bs []*batch) {
	for {
		l.mu.Lock()
		if len(l.pending) == 0 {
			l.busy = false
			l.mu.Unlock()
			return
		}
		bs = l.takePending(bs[:0])
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), l.s.timeout)
		l.send(ctx, bs)
		cancel()
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
func (l *lane) send(ctx context.Context, bs []*batch) {
	s := l.s
	if bs = take(bs); len(bs) == 0 {
		return
	}
	s.exec(ctx, bs)
	var back []captchagate.Op
	for _, b := range bs {
		switch {
		case b.flushed != nil:
		case b.leader:
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
