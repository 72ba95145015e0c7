package memhash

import "time"

// GiveToken gives back one token an Allow took from the bucket h (interval
// as that Allow's): its arrival time moves back by interval, and a bucket
// that is full again is deleted. A bucket that was spilled (over-counted
// in the sketch) keeps its estimate, which only errs on the safe side.
func (s *Store) GiveToken(h uint64, interval time.Duration, now int64) {
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	tat, ok := sh.buckets[h]
	if !ok {
		return
	}
	if tat -= int64(interval); tat <= now {
		delete(sh.buckets, h)
		return
	}
	sh.buckets[h] = tat
}
