package attack

import (
	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate/internal/redistest"
)

// startCluster starts a Redis Cluster (three masters, three replicas) for
// the scenario, keeps a client of each master in sc.nodes for INFO, CONFIG
// and DBSIZE, and returns a Cluster client of it for the store.
func (sc *scenario) startCluster() redis.UniversalClient {
	c := redistest.StartCluster(sc.t, redistest.ClusterOptions{})
	for _, m := range c.Masters() {
		rdb := redis.NewClient(&redis.Options{Addr: m, ContextTimeoutEnabled: true})
		sc.t.Cleanup(func() { rdb.Close() })
		sc.nodes = append(sc.nodes, rdb)
	}
	return newClusterClient(sc.t, c)
}

// newClusterClient returns a client of c that honours context deadlines,
// closed when t ends.
func newClusterClient(t interface{ Cleanup(func()) }, c *redistest.Cluster) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true, PoolSize: 32})
	t.Cleanup(func() { cc.Close() })
	return cc
}
