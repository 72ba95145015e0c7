package captchagate

import (
	"bytes"
	"fmt"
	"testing"
)

func TestMediaCacheStaysWithinItsBudget(t *testing.T) {
	c := newMediaCache(10_000)
	for i := range 1000 {
		m := c.newMedia(make([]byte, 300), "image/png")
		c.put(fmt.Sprint("k", i), m)
		m.release()
		if c.size > c.max || c.freeSize > c.max/4 {
			t.Fatalf("after %d puts the cache holds %d bytes and keeps %d free, budget %d", i+1, c.size, c.freeSize, c.max)
		}
	}
	if m := c.get("k999"); m == nil {
		t.Fatal("the newest entry is not cached")
	} else {
		m.release()
	}
	if c.get("k0") != nil {
		t.Fatal("the oldest entry was not evicted")
	}
	if len(c.m) != len(c.order) || len(c.m) != 33 {
		t.Fatalf("%d entries, %d in order; want 33", len(c.m), len(c.order))
	}
	big := c.newMedia(make([]byte, 5000), "audio/wav") // over a quarter of the budget: not cached
	c.put("big", big)
	big.release()
	if c.get("big") != nil {
		t.Fatal("an entry over a quarter of the budget is cached")
	}
	var none *mediaCache
	m := none.newMedia([]byte("x"), "image/png")
	none.put("x", m)
	m.release()
	if none.get("x") != nil {
		t.Fatal("a disabled cache holds something")
	}
}

// An evicted rendering's buffer is reused only after the last response
// written from it is done.
func TestMediaCacheReusesBuffersNoOneReads(t *testing.T) {
	c := newMediaCache(4 * 2048) // four entries of 2000 bytes (in buffers of 2048)
	fill := func(k string, x byte) *media {
		m := c.newMedia(bytes.Repeat([]byte{x}, 2000), "audio/wav")
		c.put(k, m)
		return m
	}
	reading := fill("a", 'a') // a response is being written from it
	fill("b", 'b').release()
	fill("c", 'c').release()
	fill("d", 'd').release()
	fill("e", 'e').release() // evicts a, which is still being read
	if c.get("a") != nil || len(c.free) != 0 {
		t.Fatal("a was not evicted, or its buffer was freed while read")
	}
	f := fill("f", 'f') // evicts b: nobody reads it, so its buffer is free
	f.release()
	if len(c.free) != 1 {
		t.Fatalf("%d free buffers after evicting an unread entry; want 1", len(c.free))
	}
	bBuf := &c.free[0][0]
	if !bytes.Equal(reading.b, bytes.Repeat([]byte{'a'}, 2000)) {
		t.Fatal("a buffer being read was overwritten")
	}
	g := fill("g", 'g') // takes b's buffer, evicts c (whose buffer is free now)
	g.release()
	if &g.b[0] != bBuf || len(c.free) != 1 || &c.free[0][0] == &reading.b[0] {
		t.Fatal("the free buffer was not reused, or the one being read was freed")
	}
	h := c.newMedia(make([]byte, 2000), "audio/wav") // takes c's
	if len(c.free) != 0 {
		t.Fatal("the free buffer was not reused")
	}
	reading.release() // the last reader of a: its buffer is free now
	if len(c.free) != 1 || &c.free[0][0] != &reading.b[0] {
		t.Fatal("the buffer of an evicted entry was not freed by its last reader")
	}
	h.release() // not cached, but the free list is full (a quarter of the budget)
	if len(c.free) != 1 || c.freeSize != 2048 {
		t.Fatalf("the free list holds %d buffers, %d bytes; want 1, 2048", len(c.free), c.freeSize)
	}
	// Too small a free buffer, or one far too large, is not used.
	small := c.newMedia(make([]byte, 3000), "audio/wav")
	tiny := c.newMedia(make([]byte, 100), "image/png")
	if &small.b[0] == &c.free[0][0] || &tiny.b[0] == &c.free[0][0] || len(c.free) != 1 {
		t.Fatal("a free buffer that does not fit was used")
	}
}
