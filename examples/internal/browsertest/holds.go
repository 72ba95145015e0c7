package browsertest

import (
	"sync"
	"testing"
	"time"
)

// Holds keeps the next request of a kind (the test names the kinds, say
// "verify") waiting on the server until the test lets it go, so that a
// state that lasts a moment in real use (a widget verifying) stays while
// the test reads it; no sleeps. The server's handler calls Wait with the
// request's kind; the test calls Next, Held and Release. Register
// t.Cleanup(h.ReleaseAll) after the server's Close, so that it runs first
// and a failed test does not leave the server waiting.
type Holds struct {
	mu      sync.Mutex
	wait    map[string]chan bool // the next request of a kind waits on it
	gates   map[string]chan bool // closed by Release
	arrived map[string]chan bool // closed when such a request is held
}

// NewHolds returns Holds holding nothing.
func NewHolds() *Holds {
	return &Holds{wait: map[string]chan bool{}, gates: map[string]chan bool{}, arrived: map[string]chan bool{}}
}

// Next makes the next request of what wait until Release.
func (h *Holds) Next(what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(chan bool)
	h.wait[what], h.gates[what], h.arrived[what] = c, c, make(chan bool)
}

// Held waits (up to a minute) until the request of what is held.
func (h *Holds) Held(t *testing.T, what string) {
	t.Helper()
	h.mu.Lock()
	c := h.arrived[what]
	h.mu.Unlock()
	select {
	case <-c:
	case <-time.After(60 * time.Second):
		t.Fatalf("no %s request came", what)
	}
}

// Release lets the held request of what go on.
func (h *Holds) Release(what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.gates[what]; c != nil {
		close(c)
		delete(h.gates, what)
	}
}

// ReleaseAll lets every held request go.
func (h *Holds) ReleaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for what, c := range h.gates {
		close(c)
		delete(h.gates, what)
	}
}

// Wait is the server's side: a request of what ("" for none) waits here
// if Next armed what, once.
func (h *Holds) Wait(what string) {
	h.mu.Lock()
	wait, arrived := h.wait[what], h.arrived[what]
	if wait != nil {
		delete(h.wait, what) // one request held per Next
	}
	h.mu.Unlock()
	if wait != nil {
		close(arrived)
		<-wait
	}
}
