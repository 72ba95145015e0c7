package captchagate

import (
	"fmt"
	"testing"
)

func TestMediaCacheStaysWithinItsBudget(t *testing.T) {
	c := newMediaCache(10_000)
	for i := range 1000 {
		c.put(fmt.Sprint("k", i), media{b: make([]byte, 300)})
		if c.size > c.max {
			t.Fatalf("after %d puts the cache holds %d bytes, budget %d", i+1, c.size, c.max)
		}
	}
	if _, ok := c.get("k999"); !ok {
		t.Fatal("the newest entry is cached")
	}
	if _, ok := c.get("k0"); ok {
		t.Fatal("the oldest entry was evicted")
	}
	if len(c.m) != len(c.order) || len(c.m) != 33 {
		t.Fatalf("%d entries, %d in order; want 33", len(c.m), len(c.order))
	}
	c.put("big", media{b: make([]byte, 5000)}) // over a quarter of the budget: not cached
	if _, ok := c.get("big"); ok {
		t.Fatal("an entry over a quarter of the budget is not cached")
	}
	var none *mediaCache
	none.put("x", media{})
	if _, ok := none.get("x"); ok {
		t.Fatal("a disabled cache holds nothing")
	}
}
