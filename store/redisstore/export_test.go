package redisstore

// Key returns the Redis key under which the store keeps the gate's key k,
// for tests that look at Redis directly.
func (s *Store) Key(k string) string { return s.prefix + k }

// TooOld is tooOld, for a test of New's version check: the Redis of the
// tests is new enough.
var TooOld = tooOld
