package captchagate

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// mediaCache keeps rendered captcha media by id, format and language, up to
// a byte budget, evicting the oldest first. A captcha's secret never changes
// under its id, so a cached rendering stays right for as long as the id is
// answerable; the store is still asked whether it is before each fetch.
type mediaCache struct {
	mu    sync.Mutex
	m     map[string]media
	order []string // insertion order, oldest first
	size  int
	max   int
}

type media struct {
	b  []byte
	ct string
}

func newMediaCache(max int) *mediaCache {
	if max <= 0 {
		return nil
	}
	return &mediaCache{m: map[string]media{}, max: max}
}

func mediaKey(id, format, lang string) string { return id + "." + format + "?" + lang }

func (c *mediaCache) get(k string) (media, bool) {
	if c == nil {
		return media{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.m[k]
	return m, ok
}

func (c *mediaCache) put(k string, m media) {
	if c == nil || len(m.b) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	for c.size+len(m.b) > c.max && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		c.size -= len(c.m[old].b)
		delete(c.m, old)
	}
	c.order = append(c.order, k) // reallocating drops the evicted prefix
	c.m[k] = m
	c.size += len(m.b)
}

// render returns the media of captcha id, from the cache or rendered under
// the gate's render slots, so that renders never occupy more than their
// share of the CPUs however many clients ask.
func (g *Gate) render(ctx context.Context, r *http.Request, id string, rec *record, format, lang string) (media, error) {
	k := mediaKey(id, format, lang)
	if m, ok := g.media.get(k); ok {
		return m, nil
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case g.renderSlots <- struct{}{}:
	case <-ctx.Done():
		return media{}, ctx.Err()
	case <-t.C:
		return media{}, &Error{Code: CodeStoreUnavailable, Description: "busy; retry later", RetryAfter: time.Second}
	}
	defer func() { <-g.renderSlots }()
	b, ct, err := renderBytes(g.challenge, id, rec.secret, format, lang)
	if err != nil {
		return media{}, g.unavailable(r, rec.policy, err)
	}
	m := media{b: b, ct: ct}
	g.media.put(k, m)
	return m, nil
}

// allowMedia takes one media fetch from the client's budget.
func (g *Gate) allowMedia(ctx context.Context, r *http.Request) error {
	return g.allowClient(ctx, r, 'm', g.mediaInterval, g.mediaBurst, "too many captcha images or sounds requested; retry later")
}
