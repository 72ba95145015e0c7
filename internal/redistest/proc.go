package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// launch starts cmd and waits up to ten seconds until addr answers PING. It
// returns a channel closed when the process has exited; on failure the
// process is gone.
func launch(cmd *exec.Cmd, addr string) (exited chan struct{}, err error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited = make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(addr)
		if err == nil {
			return exited, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("redis-server exited early (%s taken?)", addr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("not answering on %s: %v", addr, err)
		}
	}
}

// halt ends a process launch started and waits for it: at once with kill
// (SIGKILL), else with SIGTERM after SIGCONT (a paused server cannot handle
// SIGTERM), and SIGKILL if it has not exited ten seconds later.
func halt(cmd *exec.Cmd, exited <-chan struct{}, kill bool) {
	if kill {
		cmd.Process.Kill()
		<-exited
		return
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// proc is a redis-server process of a test's (a server, a Cluster node, a
// Sentinel's server or sentinel), stopped and started again at will.
type proc struct {
	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when not running
	exited chan struct{} // closed when cmd has exited
}

// run launches cmd as p's process (see launch).
func (p *proc) run(cmd *exec.Cmd, addr string) error {
	exited, err := launch(cmd, addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return nil
}

// stop ends p's process, if it is running (see halt).
func (p *proc) stop(kill bool) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd != nil {
		halt(cmd, exited, kill)
	}
}

// signal sends sig to p's process, if it is running.
func (p *proc) signal(sig os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.cmd.Process.Signal(sig)
	}
}

// lookPath returns prog's path, or skips t (fails it under
// CAPTCHAGATE_REQUIRE_REDIS=1) when it is not on PATH; pkg is the Debian
// package that has it.
func lookPath(t testing.TB, prog, pkg string) string {
	t.Helper()
	bin, err := exec.LookPath(prog)
	if err != nil {
		msg := prog + " not found on PATH; install it (Debian/Ubuntu: apt-get install " + pkg + ") to run the Redis tests"
		if os.Getenv("CAPTCHAGATE_REQUIRE_REDIS") == "1" {
			t.Fatal(msg + " (CAPTCHAGATE_REQUIRE_REDIS=1 is set)")
		}
		t.Skip(msg)
	}
	return bin
}
