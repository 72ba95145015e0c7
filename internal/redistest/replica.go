package redistest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// StartReplica starts a redis-server replicating master for t, and waits
// until the master counts it as a connected replica in sync.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	host, port, _ := strings.Cut(master.Addr, ":")
	r := Start(t, "--replicaof", host, port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := Info(master.Addr, "replication")
		if err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: replica %s not in sync with %s: %v %s", r.Addr, master.Addr, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Info sends INFO section to the server at addr and returns its reply.
func Info(addr, section string) (string, error) {
	v, err := Do(addr, "INFO", section)
	if err != nil {
		return "", err
	}
	info, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("INFO: unexpected reply %T", v)
	}
	return info, nil
}
