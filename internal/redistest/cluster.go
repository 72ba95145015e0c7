package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ClusterOptions configures StartCluster. The zero value is three masters
// with one replica each and a node timeout of 1.5 s.
type ClusterOptions struct {
	// Masters is the number of masters. Default 3.
	Masters int
	// Replicas is the number of replicas of each master. Default 1.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may not answer
	// before the others flag it as failing and its replica takes over.
	// Default 1500 ms.
	NodeTimeout time.Duration
	// FullCoverage sets cluster-require-full-coverage yes (Redis's
	// default): while a master is down and not yet replaced, every node
	// refuses every key (CLUSTERDOWN). Default false: the nodes that are up
	// go on serving their slots, as a gate's deployment should configure.
	FullCoverage bool
}

// Cluster is a running Redis Cluster on 127.0.0.1: every node a
// redis-server with persistence off.
type Cluster struct {
	t     testing.TB
	bin   string
	opts  ClusterOptions
	nodes []*clusterNode
}

// clusterNode is one redis-server of a Cluster.
type clusterNode struct {
	addr string
	port int // the client port; bus, the cluster bus's
	bus  int
	id   string // the cluster node id
	dir  string

	proc
	dead bool // killed on purpose; under proc.mu
}

// StartCluster starts a Redis Cluster for t (by default three masters and
// three replicas), waits until every node reports cluster_state:ok and
// every replica is in sync, and stops every node when t ends. Without
// redis-server and redis-cli on PATH it skips t, or fails it when
// CAPTCHAGATE_REQUIRE_REDIS=1.
func StartCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	bin := lookPath(t, "redis-server", "redis-server")
	cli := lookPath(t, "redis-cli", "redis-tools")
	if o.Masters <= 0 {
		o.Masters = 3
	}
	if o.Replicas < 0 {
		o.Replicas = 0
	} else if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 1500 * time.Millisecond
	}
	c := &Cluster{t: t, bin: bin, opts: o}
	t.Cleanup(c.Stop)
	n := o.Masters * (1 + o.Replicas)
	for range n {
		c.nodes = append(c.nodes, c.startNode())
	}
	args := []string{"--cluster", "create"}
	for _, nd := range c.nodes {
		args = append(args, nd.addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(o.Replicas), "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if os.Getenv("REDISTEST_DEBUG") != "" {
		t.Logf("%s", out)
	}
	for _, nd := range c.nodes {
		id, err := Do(nd.addr, "CLUSTER", "MYID")
		if err != nil {
			t.Fatalf("redistest: CLUSTER MYID on %s: %v", nd.addr, err)
		}
		nd.id = id.(string)
	}
	c.WaitHealthy(30 * time.Second)
	return c
}

// startNode starts one cluster-enabled redis-server on free ports.
func (c *Cluster) startNode() *clusterNode {
	c.t.Helper()
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		bus, err := freePort()
		if err != nil || bus == port {
			lastErr = err
			continue
		}
		nd := &clusterNode{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port, bus: bus, dir: c.t.TempDir()}
		if lastErr = c.run(nd); lastErr == nil {
			return nd
		}
	}
	c.t.Fatalf("redistest: starting a cluster node: %v", lastErr)
	return nil
}

func (c *Cluster) run(nd *clusterNode) error {
	port, bus := nd.port, nd.bus
	coverage := "no"
	if c.opts.FullCoverage {
		coverage = "yes"
	}
	cmd := exec.Command(c.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(bus),
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nd.dir, "nodes.conf"),
		"--cluster-node-timeout", strconv.FormatInt(c.opts.NodeTimeout.Milliseconds(), 10),
		"--cluster-require-full-coverage", coverage,
		// A replica takes over however long it was cut off from its master
		// (the durable-spend tests hold one behind on purpose).
		"--cluster-replica-validity-factor", "0",
		"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
		"--save", "", "--appendonly", "no", "--dir", nd.dir,
		"--daemonize", "no", "--protected-mode", "yes",
		"--loglevel", "notice", "--logfile", filepath.Join(nd.dir, "redis.log"))
	if err := nd.run(cmd, nd.addr); err != nil {
		return fmt.Errorf("ports %d, %d: %w", port, bus, err)
	}
	return nil
}

// Stop stops every node. StartCluster registers it with t.Cleanup.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd.stop(false)
		}()
	}
	wg.Wait()
}

// Addrs returns every node's address, masters and replicas, as started.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		addrs[i] = nd.addr
	}
	return addrs
}

func (c *Cluster) node(addr string) *clusterNode {
	for _, nd := range c.nodes {
		if nd.addr == addr {
			return nd
		}
	}
	c.t.Fatalf("redistest: no cluster node %s", addr)
	return nil
}

// alive returns the nodes not killed.
func (c *Cluster) alive() []*clusterNode {
	var live []*clusterNode
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if !nd.dead && nd.cmd != nil {
			live = append(live, nd)
		}
		nd.mu.Unlock()
	}
	return live
}

// Kill kills the node at addr (SIGKILL): its data is gone, its sockets are
// closed; the others see it fail after NodeTimeout.
func (c *Cluster) Kill(addr string) {
	nd := c.node(addr)
	nd.mu.Lock()
	nd.dead = true
	nd.mu.Unlock()
	nd.stop(true)
}

// Restart starts the node at addr again after Kill, on its ports and with
// its nodes.conf but none of its data, as a crashed node without
// persistence comes back: a master that was replaced rejoins as a replica
// of its replacement and syncs from it. Call WaitHealthy after it.
func (c *Cluster) Restart(addr string) {
	c.t.Helper()
	nd := c.node(addr)
	nd.mu.Lock()
	running := nd.cmd != nil
	nd.mu.Unlock()
	if running {
		c.t.Fatalf("redistest: Restart of %s, which is running", addr)
	}
	var err error
	for range 50 {
		if err = c.run(nd); err == nil {
			nd.mu.Lock()
			nd.dead = false
			nd.mu.Unlock()
			return
		}
		time.Sleep(100 * time.Millisecond) // the ports may linger briefly
	}
	c.t.Fatalf("redistest: restarting %s: %v", addr, err)
}

// Log returns the log of the node at addr (loglevel notice): roles,
// syncs, failovers.
func (c *Cluster) Log(addr string) string {
	b, err := os.ReadFile(filepath.Join(c.node(addr).dir, "redis.log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Pause stops the node at addr (SIGSTOP): connections stay open, nothing
// answers.
func (c *Cluster) Pause(addr string) { c.node(addr).signal(syscall.SIGSTOP) }

// Resume continues a paused node.
func (c *Cluster) Resume(addr string) { c.node(addr).signal(syscall.SIGCONT) }

// nodeInfo is one line of CLUSTER NODES.
type nodeInfo struct {
	id, addr, master string // master: "-" for a master
	isMaster, failed bool
	slots            [][2]int
}

// nodes returns CLUSTER NODES as seen by the node at addr.
func nodesSeenBy(addr string) ([]nodeInfo, error) {
	r, err := Do(addr, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	var out []nodeInfo
	for _, line := range strings.Split(strings.TrimSpace(r.(string)), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		a, _, _ := strings.Cut(f[1], "@")
		ni := nodeInfo{id: f[0], addr: a, master: f[3]}
		for _, fl := range strings.Split(f[2], ",") {
			switch fl {
			case "master":
				ni.isMaster = true
			case "fail", "fail?":
				ni.failed = true
			}
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue // a slot being migrated or imported
			}
			lo, hi, ok := strings.Cut(s, "-")
			if !ok {
				hi = lo
			}
			l, _ := strconv.Atoi(lo)
			h, _ := strconv.Atoi(hi)
			ni.slots = append(ni.slots, [2]int{l, h})
		}
		out = append(out, ni)
	}
	return out, nil
}

// view returns CLUSTER NODES as seen by the first live node that answers.
func (c *Cluster) view() []nodeInfo {
	c.t.Helper()
	var last error
	for _, nd := range c.alive() {
		ns, err := nodesSeenBy(nd.addr)
		if err == nil {
			return ns
		}
		last = err
	}
	c.t.Fatalf("redistest: no cluster node answers: %v", last)
	return nil
}

// Masters returns the addresses of the masters serving slots, in the order
// of their first slot.
func (c *Cluster) Masters() []string {
	c.t.Helper()
	type m struct {
		addr  string
		first int
	}
	var ms []m
	for _, ni := range c.view() {
		if ni.isMaster && !ni.failed && len(ni.slots) > 0 {
			ms = append(ms, m{ni.addr, ni.slots[0][0]})
		}
	}
	slices.SortFunc(ms, func(a, b m) int { return a.first - b.first })
	out := make([]string, len(ms))
	for i, x := range ms {
		out[i] = x.addr
	}
	return out
}

// MasterOf returns the address of the master serving slot, or "" while
// none does (its master failed and no replica has taken over yet).
func (c *Cluster) MasterOf(slot int) string {
	c.t.Helper()
	for _, ni := range c.view() {
		if !ni.isMaster || ni.failed {
			continue
		}
		for _, r := range ni.slots {
			if r[0] <= slot && slot <= r[1] {
				return ni.addr
			}
		}
	}
	return ""
}

// MasterOfKey returns the address of the master serving key's slot.
func (c *Cluster) MasterOfKey(key string) string { return c.MasterOf(Slot(key)) }

// ReplicaOf returns the address of a live replica of the master at addr,
// or "" if it has none.
func (c *Cluster) ReplicaOf(master string) string {
	c.t.Helper()
	ns := c.view()
	var id string
	for _, ni := range ns {
		if ni.addr == master {
			id = ni.id
		}
	}
	for _, ni := range ns {
		if id != "" && ni.master == id && !ni.isMaster && c.isAlive(ni.addr) {
			return ni.addr
		}
	}
	return ""
}

func (c *Cluster) isAlive(addr string) bool {
	return slices.ContainsFunc(c.alive(), func(nd *clusterNode) bool { return nd.addr == addr })
}

// WaitHealthy waits until every live node reports cluster_state:ok, every
// live node sees the same masters serving all 16384 slots and every other
// live node beyond the masters as a replica, and every live replica's link
// to its master is up, in sync, and has acknowledged all its master wrote.
func (c *Cluster) WaitHealthy(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var why error
	for time.Now().Before(deadline) {
		if why = c.healthy(); why == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("redistest: cluster not healthy after %v: %v", timeout, why)
}

func (c *Cluster) healthy() error {
	var want string
	alive := c.alive()
	for _, nd := range alive {
		info, err := Do(nd.addr, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if !strings.Contains(info.(string), "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state not ok", nd.addr)
		}
		ns, err := nodesSeenBy(nd.addr)
		if err != nil {
			return err
		}
		var sb strings.Builder
		covered := 0
		for _, ni := range ns {
			if ni.isMaster && len(ni.slots) > 0 {
				fmt.Fprintf(&sb, "%s%v;", ni.id, ni.slots)
				for _, r := range ni.slots {
					covered += r[1] - r[0] + 1
				}
			}
		}
		if covered != 16384 {
			return fmt.Errorf("%s sees %d slots covered", nd.addr, covered)
		}
		// Gossip spreads the replicas' roles: every node must know them.
		replicas := 0
		for _, ni := range ns {
			if !ni.isMaster && !ni.failed && c.isAlive(ni.addr) {
				replicas++
			}
		}
		if want := len(alive) - c.opts.Masters; replicas != want {
			return fmt.Errorf("%s sees %d replicas, want %d", nd.addr, replicas, want)
		}
		if want == "" {
			want = sb.String()
		} else if sb.String() != want {
			// Masters in slot order differ in their lines' order; compare sets.
			if !sameFields(want, sb.String()) {
				return fmt.Errorf("%s sees another slot map", nd.addr)
			}
		}
		repl, err := Do(nd.addr, "INFO", "replication")
		if err != nil {
			return err
		}
		r := repl.(string)
		if strings.Contains(r, "role:slave") &&
			(!strings.Contains(r, "master_link_status:up") || !strings.Contains(r, "master_sync_in_progress:0")) {
			return fmt.Errorf("replica %s not in sync", nd.addr)
		}
		if err := caughtUp(nd.addr, r); err != nil {
			return err
		}
	}
	return nil
}

// caughtUp checks, on a master's INFO replication r, that every replica has
// acknowledged the master's whole replication stream: after a diskless
// full sync a master streams nothing to a replica until its first
// REPLCONF ACK (up to a second later), so "link up" alone does not mean
// that the writes made since reached it.
func caughtUp(addr, r string) error {
	var offset string
	var acked []string
	for _, line := range strings.Split(r, "\r\n") {
		if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
			offset = v
		}
		if strings.HasPrefix(line, "slave") && strings.Contains(line, "offset=") {
			for _, f := range strings.Split(line, ",") {
				if v, ok := strings.CutPrefix(f, "offset="); ok {
					acked = append(acked, v)
				}
			}
		}
	}
	if !strings.Contains(r, "role:master") {
		return nil
	}
	for _, a := range acked {
		if a != offset {
			return fmt.Errorf("a replica of %s acknowledged offset %s of %s", addr, a, offset)
		}
	}
	return nil
}

func sameFields(a, b string) bool {
	x, y := strings.Split(a, ";"), strings.Split(b, ";")
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// WaitFailover waits until a former replica of the (killed or paused)
// master dead is a master serving dead's slots in the view of every other
// live node, and returns the time it saw that.
func (c *Cluster) WaitFailover(dead string, timeout time.Duration) time.Time {
	c.t.Helper()
	nd := c.node(dead)
	deadline := time.Now().Add(timeout)
	var why error
	for time.Now().Before(deadline) {
		if why = c.failedOver(nd); why == nil {
			return time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("redistest: no failover of %s after %v: %v", dead, timeout, why)
	return time.Time{}
}

func (c *Cluster) failedOver(dead *clusterNode) error {
	for _, nd := range c.alive() {
		if nd == dead {
			continue
		}
		ns, err := nodesSeenBy(nd.addr)
		if err != nil {
			return fmt.Errorf("%s: %v", nd.addr, err)
		}
		for _, ni := range ns {
			if ni.id == dead.id && ni.isMaster && len(ni.slots) > 0 {
				return fmt.Errorf("%s still sees %s serving slots", nd.addr, dead.addr)
			}
		}
		info, err := Do(nd.addr, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if !strings.Contains(info.(string), "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state not ok", nd.addr)
		}
	}
	return nil
}

// Takeover makes the replica at addr its master's master at once (CLUSTER
// FAILOVER TAKEOVER: no agreement asked of the other masters).
func (c *Cluster) Takeover(replica string) error {
	_, err := Do(replica, "CLUSTER", "FAILOVER", "TAKEOVER")
	return err
}

// MigrateSlot moves slot, and every key in it, from the master at from to
// the master at to, as redis-cli --cluster reshard does: while the keys move
// a client gets ASK for the ones already moved, and MOVED after.
func (c *Cluster) MigrateSlot(slot int, from, to string) {
	c.t.Helper()
	m := c.BeginMigration(slot, from, to)
	for m.Move(100) > 0 {
	}
	m.Finish()
}

// Migration is a slot on its way between two masters: the source answers
// ASK for the keys already moved, the target serves them to clients that
// send ASKING.
type Migration struct {
	c        *Cluster
	slot     int
	from, to *clusterNode
}

// BeginMigration marks slot as importing on to and migrating on from.
func (c *Cluster) BeginMigration(slot int, from, to string) *Migration {
	c.t.Helper()
	m := &Migration{c: c, slot: slot, from: c.node(from), to: c.node(to)}
	s := strconv.Itoa(slot)
	c.must(Do(to, "CLUSTER", "SETSLOT", s, "IMPORTING", m.from.id))
	c.must(Do(from, "CLUSTER", "SETSLOT", s, "MIGRATING", m.to.id))
	return m
}

// Move moves up to n keys of the slot (one MIGRATE) and returns how many.
func (m *Migration) Move(n int) int {
	c := m.c
	c.t.Helper()
	r, err := Do(m.from.addr, "CLUSTER", "GETKEYSINSLOT", strconv.Itoa(m.slot), strconv.Itoa(n))
	c.must(r, err)
	keys := r.([]any)
	if len(keys) == 0 {
		return 0
	}
	host, port, _ := net.SplitHostPort(m.to.addr)
	args := []string{"MIGRATE", host, port, "", "0", "5000", "KEYS"}
	for _, k := range keys {
		args = append(args, k.(string))
	}
	c.must(Do(m.from.addr, args...))
	return len(keys)
}

// Finish assigns the slot to the target on every master (target first,
// then source, as redis-cli does): clients now get MOVED.
func (m *Migration) Finish() {
	c := m.c
	c.t.Helper()
	s := strconv.Itoa(m.slot)
	c.must(Do(m.to.addr, "CLUSTER", "SETSLOT", s, "NODE", m.to.id))
	c.must(Do(m.from.addr, "CLUSTER", "SETSLOT", s, "NODE", m.to.id))
	for _, addr := range c.Masters() {
		if addr != m.to.addr && addr != m.from.addr {
			c.must(Do(addr, "CLUSTER", "SETSLOT", s, "NODE", m.to.id))
		}
	}
}

func (c *Cluster) must(_ any, err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("redistest: %v", err)
	}
}

// ErrorStats returns the sum over the live nodes of INFO errorstats's
// count for each error prefix (MOVED, ASK, NOSCRIPT, CROSSSLOT, ...).
// ResetStats zeroes them.
func (c *Cluster) ErrorStats() map[string]int {
	c.t.Helper()
	out := map[string]int{}
	for _, nd := range c.alive() {
		r, err := Do(nd.addr, "INFO", "errorstats")
		if err != nil {
			continue // a paused node
		}
		for _, line := range strings.Split(r.(string), "\r\n") {
			name, rest, ok := strings.Cut(line, ":count=")
			if !ok {
				continue
			}
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			out[strings.TrimPrefix(name, "errorstat_")] += n
		}
	}
	return out
}

// ResetStats zeroes every live node's statistics (CONFIG RESETSTAT).
func (c *Cluster) ResetStats() {
	c.t.Helper()
	for _, nd := range c.alive() {
		c.must(Do(nd.addr, "CONFIG", "RESETSTAT"))
	}
}

// Slot returns the Cluster hash slot of key (CRC16 of its hash tag, or of
// the whole key, modulo 16384).
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// Do sends one command to the Redis at addr on a connection of its own and
// returns its reply: a string (simple or bulk), an int64, nil, a []any, or
// an error for an error reply.
func Do(addr string, args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return readReply(bufio.NewReader(conn))
}

// errReply is an error reply of Redis's.
type errReply string

func (e errReply) Error() string { return string(e) }

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errReply(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(r); err != nil {
				if _, ok := err.(errReply); !ok {
					return nil, err
				}
				out[i] = err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}
