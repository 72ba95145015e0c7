package redistest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/captchagate/captchagate/internal/redistest"
)

func TestSlot(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]int{"123456789": 12739, "foo": 12182, "{user1000}.following": 3443,
		"{user1000}.followers": 3443, "foo{}{bar}": 8363, "{}foo": 9500} {
		if got := redistest.Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

// A cluster starts healthy, moves a slot with its keys, and fails over a
// killed master to its replica.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	if n := len(c.Addrs()); n != 6 {
		t.Fatalf("%d nodes, want 6", n)
	}
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("masters %v, want 3", masters)
	}
	for _, m := range masters {
		if c.ReplicaOf(m) == "" {
			t.Errorf("master %s has no replica", m)
		}
	}
	for key, want := range map[string]int{"foo": 12182, "123456789": 12739} {
		r, err := redistest.Do(c.MasterOfKey(key), "CLUSTER", "KEYSLOT", key)
		if err != nil || r.(int64) != int64(want) {
			t.Errorf("CLUSTER KEYSLOT %s = %v, %v", key, r, err)
		}
	}

	// Keys of a slot follow it to another master.
	slot := redistest.Slot("foo")
	from := c.MasterOf(slot)
	to := masters[0]
	if to == from {
		to = masters[1]
	}
	for _, k := range []string{"foo", "{foo}a", "{foo}b"} {
		if _, err := redistest.Do(from, "SET", k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	c.MigrateSlot(slot, from, to)
	if got := c.MasterOf(slot); got != to {
		t.Fatalf("slot %d on %s, want %s", slot, got, to)
	}
	if v, err := redistest.Do(to, "GET", "{foo}b"); err != nil || v != "v" {
		t.Errorf("GET on the new master: %v, %v", v, err)
	}
	if _, err := redistest.Do(from, "GET", "foo"); err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
		t.Errorf("GET on the old master: %v, want MOVED", err)
	}

	// A killed master's replica takes over.
	dead := c.MasterOf(0)
	replica := c.ReplicaOf(dead)
	start := time.Now()
	c.Kill(dead)
	done := c.WaitFailover(dead, 30*time.Second)
	t.Logf("failover in %v", done.Sub(start))
	if got := c.MasterOf(0); got != replica {
		t.Errorf("slot 0 on %s after failover, want the replica %s", got, replica)
	}
}
