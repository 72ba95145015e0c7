package redistest

import (
	"fmt"
	"os/exec"
	"syscall"
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
