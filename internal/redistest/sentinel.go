package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SentinelOptions configures StartSentinel. The zero value is usable.
type SentinelOptions struct {
	// Replicas is the number of replicas of the master: 1 or 2. Default 1.
	Replicas int
	// DownAfter is the sentinels' down-after-milliseconds: how long a
	// server must not answer before it is seen down. Default one second.
	DownAfter time.Duration
	// FailoverTimeout is the sentinels' failover-timeout; a failover that
	// found no good replica is tried again after twice this. Default two
	// seconds.
	FailoverTimeout time.Duration
}

// Sentinel is a running Sentinel deployment: one master, its replicas and
// three sentinels monitoring it (quorum 2), all on 127.0.0.1, persistence
// off. Servers are named by address.
type Sentinel struct {
	t         testing.TB
	name      string
	sentinels []*sentinelProc
	servers   []*sentinelProc // master first, then the replicas

	mu         sync.Mutex
	failoverAt time.Time
}

// sentinelProc is one redis-server process of a Sentinel deployment (a data
// server or a sentinel).
type sentinelProc struct {
	addr string
	bin  string
	args []string
	proc
}

// StartSentinel starts a master, o.Replicas replicas and three sentinels
// monitoring the master as "gate", waits until every sentinel sees the
// replicas and the other sentinels, and stops everything when t ends. It
// skips (or fails, under CAPTCHAGATE_REQUIRE_REDIS=1) like Start.
func StartSentinel(t testing.TB, o SentinelOptions) *Sentinel {
	t.Helper()
	bin := lookPath(t, "redis-server", "redis-server")
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Replicas > 2 {
		t.Fatalf("redistest: StartSentinel supports 1 or 2 replicas, not %d", o.Replicas)
	}
	if o.DownAfter <= 0 {
		o.DownAfter = time.Second
	}
	if o.FailoverTimeout <= 0 {
		o.FailoverTimeout = 2 * time.Second
	}
	s := &Sentinel{t: t, name: "gate"}
	t.Cleanup(s.stopAll)

	common := []string{"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
		"--loglevel", "warning", "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}
	master := startSentinelProc(t, bin, func(port int) []string {
		return append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", t.TempDir()}, common...)
	})
	s.servers = append(s.servers, master)
	_, masterPort, _ := net.SplitHostPort(master.addr)
	for range o.Replicas {
		r := startSentinelProc(t, bin, func(port int) []string {
			return append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", t.TempDir(),
				"--replicaof", "127.0.0.1", masterPort}, common...)
		})
		s.servers = append(s.servers, r)
	}
	// Every replica in sync before the sentinels look.
	s.waitFor(20*time.Second, "replicas in sync", func() error {
		info, err := sentinelInfo(master.addr, "replication")
		if err != nil {
			return err
		}
		if n := info["connected_slaves"]; n != strconv.Itoa(o.Replicas) {
			return fmt.Errorf("master has %s connected replicas", n)
		}
		for _, r := range s.servers[1:] {
			ri, err := sentinelInfo(r.addr, "replication")
			if err != nil {
				return err
			}
			if ri["master_link_status"] != "up" {
				return fmt.Errorf("replica %s: link %s", r.addr, ri["master_link_status"])
			}
		}
		return nil
	})

	for range 3 {
		dir := t.TempDir() // a sentinel rewrites its config file: one each
		p := startSentinelProc(t, bin, func(port int) []string {
			conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
			text := fmt.Sprintf("bind 127.0.0.1\nport %d\nprotected-mode no\ndaemonize no\ndir %s\nloglevel warning\n"+
				"sentinel monitor %s 127.0.0.1 %s 2\n"+
				"sentinel down-after-milliseconds %[3]s %[5]d\n"+
				"sentinel failover-timeout %[3]s %[6]d\n"+
				"sentinel parallel-syncs %[3]s 2\n",
				port, dir, s.name, masterPort, o.DownAfter.Milliseconds(), o.FailoverTimeout.Milliseconds())
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				t.Fatalf("redistest: %v", err)
			}
			return []string{conf, "--sentinel"}
		})
		s.sentinels = append(s.sentinels, p)
	}
	// Every sentinel sees every replica up and the two other sentinels
	// (found through the master's hello channel, every two seconds):
	// without them no failover can be authorized.
	s.waitFor(30*time.Second, "sentinels see the replicas and each other", func() error {
		for _, p := range s.sentinels {
			replicas, err := Do(p.addr, "SENTINEL", "REPLICAS", s.name)
			if err != nil {
				return err
			}
			up := 0
			for _, r := range replicas.([]any) {
				if f := sentinelFields(r)["flags"]; f == "slave" {
					up++
				}
			}
			if up != o.Replicas {
				return fmt.Errorf("sentinel %s sees %d replicas up", p.addr, up)
			}
			others, err := Do(p.addr, "SENTINEL", "SENTINELS", s.name)
			if err != nil {
				return err
			}
			if n := len(others.([]any)); n != 2 {
				return fmt.Errorf("sentinel %s knows %d other sentinels", p.addr, n)
			}
		}
		return nil
	})
	return s
}

// startSentinelProc starts redis-server with the arguments args gives for a free
// port, trying other ports if one is taken, and waits until it answers.
func startSentinelProc(t testing.TB, bin string, args func(port int) []string) *sentinelProc {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		p := &sentinelProc{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bin: bin, args: args(port)}
		if lastErr = p.start(); lastErr == nil {
			return p
		}
	}
	t.Fatalf("redistest: starting redis-server: %v", lastErr)
	return nil
}

func (p *sentinelProc) start() error { return p.run(exec.Command(p.bin, p.args...), p.addr) }

// stopAll stops the sentinels first (no failover while the servers go), then
// the servers.
func (s *Sentinel) stopAll() {
	for _, p := range s.sentinels {
		p.stop(false)
	}
	for _, p := range s.servers {
		p.stop(false)
	}
}

// waitFor polls f every 20 ms until it returns nil, and fails t with f's
// last error after d.
func (s *Sentinel) waitFor(d time.Duration, what string, f func() error) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: waiting %v for %s: %v", d, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SentinelAddrs returns the sentinels' addresses, for
// redis.FailoverOptions.SentinelAddrs.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, p := range s.sentinels {
		addrs[i] = p.addr
	}
	return addrs
}

// MasterName returns the name the sentinels monitor the master as, for
// redis.FailoverOptions.MasterName.
func (s *Sentinel) MasterName() string { return s.name }

// Servers returns the addresses of the data servers: the first master, then
// its replicas (as started; a failover changes their roles, not this list).
func (s *Sentinel) Servers() []string {
	addrs := make([]string, len(s.servers))
	for i, p := range s.servers {
		addrs[i] = p.addr
	}
	return addrs
}

// Master returns the master's address as the first sentinel that answers
// reports it.
func (s *Sentinel) Master() string {
	s.t.Helper()
	var last error
	for _, p := range s.sentinels {
		addr, err := s.masterFrom(p)
		if err == nil {
			return addr
		}
		last = err
	}
	s.t.Fatalf("redistest: no sentinel reports the master: %v", last)
	return ""
}

func (s *Sentinel) masterFrom(p *sentinelProc) (string, error) {
	v, err := Do(p.addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.name)
	if err != nil {
		return "", err
	}
	a, ok := v.([]any)
	if !ok || len(a) != 2 {
		return "", fmt.Errorf("unexpected reply %v", v)
	}
	return net.JoinHostPort(a[0].(string), a[1].(string)), nil
}

// Replicas returns the addresses of the servers other than the current
// master (Master) that are still running.
func (s *Sentinel) Replicas() []string {
	s.t.Helper()
	m := s.Master()
	var addrs []string
	for _, p := range s.servers {
		p.mu.Lock()
		alive := p.cmd != nil
		p.mu.Unlock()
		if alive && p.addr != m {
			addrs = append(addrs, p.addr)
		}
	}
	return addrs
}

func (s *Sentinel) proc(addr string) *sentinelProc {
	s.t.Helper()
	for _, p := range append(s.servers[:len(s.servers):len(s.servers)], s.sentinels...) {
		if p.addr == addr {
			return p
		}
	}
	s.t.Fatalf("redistest: no server at %s", addr)
	return nil
}

// Kill kills the server (or sentinel) at addr with SIGKILL, as a crash: it
// stays down.
func (s *Sentinel) Kill(addr string) { s.proc(addr).stop(true) }

// Restart starts the server at addr again (after Kill) on the same port,
// empty, as a crashed server restarted without persistence: a former master
// comes back as one (with its old options), and the sentinels turn it into
// a replica of the current master.
func (s *Sentinel) Restart(addr string) {
	s.t.Helper()
	p := s.proc(addr)
	p.stop(true)
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = p.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may linger briefly
	}
	s.t.Fatalf("redistest: restarting %s: %v", addr, err)
}

// Rejoin restarts the server at addr (after Kill) and makes it a replica of
// the current master, as an operator or the sentinels' next look at it do.
// The sentinels' own conversion took 10 s on a quiet machine and, under
// load, sometimes not within 90 s (a sentinel whose timer is late enters
// TILT mode and acts on nothing for 30 s), so tests that need the replica
// back do not wait for it.
func (s *Sentinel) Rejoin(addr string) {
	s.t.Helper()
	s.Restart(addr)
	host, port, _ := strings.Cut(s.Master(), ":")
	if _, err := Do(addr, "REPLICAOF", host, port); err != nil {
		s.t.Fatalf("redistest: REPLICAOF on %s: %v", addr, err)
	}
}

// Pause stops the server at addr (SIGSTOP): connections stay open, nothing
// answers.
func (s *Sentinel) Pause(addr string) { s.proc(addr).signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Sentinel) Resume(addr string) { s.proc(addr).signal(syscall.SIGCONT) }

// WaitFailover waits (up to 30 s) until a sentinel reports a master other
// than old that answers as a master, and records that moment (FailoverAt):
// the failover is complete. It returns the new master's address once every
// running sentinel reports it (the others learn it from the sentinel that
// led the failover within a few seconds), so that Master agrees.
func (s *Sentinel) WaitFailover(old string) string {
	s.t.Helper()
	var addr string
	s.waitFor(30*time.Second, "a failover away from "+old, func() error {
		for _, p := range s.sentinels {
			a, err := s.masterFrom(p)
			if err != nil || a == old {
				continue
			}
			info, err := sentinelInfo(a, "replication")
			if err != nil {
				return err
			}
			if info["role"] != "master" {
				return fmt.Errorf("%s is reported as master but is a %s", a, info["role"])
			}
			addr = a
			return nil
		}
		return errors.New("every sentinel still reports " + old)
	})
	at := time.Now()
	s.mu.Lock()
	s.failoverAt = at
	s.mu.Unlock()
	s.waitFor(30*time.Second, "every sentinel to report "+addr, func() error {
		for _, p := range s.sentinels {
			p.mu.Lock()
			alive := p.cmd != nil
			p.mu.Unlock()
			if !alive {
				continue
			}
			if a, err := s.masterFrom(p); err != nil || a != addr {
				return fmt.Errorf("sentinel %s reports %s (%v)", p.addr, a, err)
			}
		}
		return nil
	})
	s.t.Logf("redistest: failover from %s to %s; every sentinel agreed %v later", old, addr, time.Since(at).Round(time.Millisecond))
	return addr
}

// FailoverAt returns when the last WaitFailover saw the new master.
func (s *Sentinel) FailoverAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failoverAt
}

// Do runs one command on the server (or sentinel) at addr and returns its
// reply: a string, an int64, a []any, nil, or an error for an error reply.
func (s *Sentinel) Do(addr string, args ...string) (any, error) {
	return Do(addr, args...)
}

// sentinelInfo returns the fields of INFO section from the server at addr.
func sentinelInfo(addr, section string) (map[string]string, error) {
	v, err := Do(addr, "INFO", section)
	if err != nil {
		return nil, err
	}
	text, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("unexpected INFO reply %v", v)
	}
	m := map[string]string{}
	for line := range strings.Lines(text) {
		if k, val, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = val
		}
	}
	return m, nil
}

// sentinelFields turns a reply of alternating names and values (SENTINEL
// REPLICAS's entries) into a map.
func sentinelFields(v any) map[string]string {
	a, _ := v.([]any)
	m := map[string]string{}
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		val, _ := a[i+1].(string)
		m[k] = val
	}
	return m
}
