// Package redistest starts throwaway redis-server processes for tests: on a
// free 127.0.0.1 port, persistence off, stopped when the test ends. Tests
// that need one call Start; without redis-server on PATH they skip, unless
// CAPTCHAGATE_REQUIRE_REDIS=1 is set (as CI does), which turns the skip into
// a failure.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	Addr string // host:port on 127.0.0.1

	t    testing.TB
	bin  string
	dir  string
	port int

	extra []string // further redis-server arguments
	proc
}

// Start starts a redis-server for t and stops it when t ends; args are
// further redis-server arguments ("--maxmemory", "2mb", ...).
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server", "redis-server")
	s := &Server{t: t, bin: bin, dir: t.TempDir(), extra: args}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, lastErr = freePort()
		if lastErr != nil {
			continue
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("redistest: starting redis-server: %v", lastErr)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	t.Cleanup(s.Stop)
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning")
	cmd.Args = append(cmd.Args, s.extra...)
	return s.run(cmd, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
}

// ping sends an inline PING and waits for +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// Stop stops the server; a stopped server can be started again with Restart.
func (s *Server) Stop() { s.stop(false) }

// Restart stops the server (if running) and starts a fresh one on the same
// port: its data and script cache are gone, as after a crash without
// persistence.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may linger briefly
	}
	s.t.Fatalf("redistest: restarting redis-server: %v", err)
}

// Pause stops the process (SIGSTOP): connections stay open, nothing answers.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }
