// Package gatetest holds what the module's tests share: a barrier that
// releases goroutines together, and a challenge whose answer tests know.
package gatetest

import (
	"io"
	"sync"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/slidersecret"
	"github.com/captchagate/captchagate/slider"
)

// Together runs f in n goroutines released at once by a barrier, and waits
// for all of them.
func Together(n int, f func()) {
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			f()
		}()
	}
	start.Done()
	wg.Wait()
}

// Answer solves every captcha KnownDigits issues.
const Answer = "123456"

// KnownDigits issues the digits of Answer, so tests know every captcha's
// answer; it renders like Digits.
type KnownDigits struct{ captchagate.Digits }

// Issue implements captchagate.Challenge.
func (KnownDigits) Issue(captchagate.IssueInfo) ([]byte, error) { return []byte{1, 2, 3, 4, 5, 6}, nil }

// Secret is a 32-byte gate secret for tests.
var Secret = []byte("0123456789abcdef0123456789abcdef")

// Spy is the Digits challenge that remembers the answer of every captcha it
// renders, so a browser test can learn the answer of the image the browser
// loaded, in-process. Use a pointer.
type Spy struct {
	captchagate.Digits
	mu      sync.Mutex
	answers map[string]string
}

// Render implements captchagate.Challenge and records the answer of id: the
// secret's digits, without the seed that follows them.
func (s *Spy) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	digits := secret
	n := s.Digits.Length
	if n <= 0 {
		n = 6
	}
	if n = min(n, 32); len(secret) == n+16 {
		digits = secret[:n]
	}
	a := make([]byte, len(digits))
	for i, d := range digits {
		a[i] = '0' + d
	}
	s.mu.Lock()
	if s.answers == nil {
		s.answers = map[string]string{}
	}
	s.answers[id] = string(a)
	s.mu.Unlock()
	return s.Digits.Render(w, id, secret, format, lang)
}

// Answer returns the answer of the captcha id once it has been rendered.
func (s *Spy) Answer(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.answers[id]
	return a, ok
}

// SliderSpy is the slider Puzzle that remembers the gap of every puzzle it
// renders, and the digits of its way through without sight, as Spy does
// for digits. Use a pointer.
type SliderSpy struct {
	slider.Puzzle
	mu     sync.Mutex
	gaps   map[string]int
	digits map[string]string
}

// Render implements captchagate.Renderer and records the gap of id, and
// its digits (the six after the puzzle's part of the secret).
func (s *SliderSpy) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	if len(secret) >= slidersecret.Len {
		if p, ok := slidersecret.Parse(secret[:slidersecret.Len]); ok {
			s.mu.Lock()
			if s.gaps == nil {
				s.gaps, s.digits = map[string]int{}, map[string]string{}
			}
			s.gaps[id] = p.X
			if d := secret[slidersecret.Len:]; len(d) == 6+16 {
				a := make([]byte, 6)
				for i, c := range d[:6] {
					a[i] = '0' + c
				}
				s.digits[id] = string(a)
			}
			s.mu.Unlock()
		}
	}
	return s.Puzzle.Render(w, id, secret, format, lang)
}

// Digits returns the digits of the puzzle id once one of its media has
// been rendered.
func (s *SliderSpy) Digits(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.digits[id]
	return a, ok
}

// Gap returns the gap's x of the puzzle id once it has been rendered.
func (s *SliderSpy) Gap(id string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.gaps[id]
	return x, ok
}

// EventCounts counts a gate's events by kind: set its Record as
// Config.OnEvent. Safe for concurrent use.
type EventCounts struct {
	mu sync.Mutex
	n  map[captchagate.EventKind]int
}

// Record counts e.
func (c *EventCounts) Record(e captchagate.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[captchagate.EventKind]int{}
	}
	c.n[e.Kind]++
}

// Count returns how many events of kind were recorded.
func (c *EventCounts) Count(kind captchagate.EventKind) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[kind]
}
