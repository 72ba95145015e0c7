package redisstore

// Key returns the Redis key under which the store keeps the gate's key k,
// for tests that look at Redis directly.
func (s *Store) Key(k string) string { return s.prefix + k }
