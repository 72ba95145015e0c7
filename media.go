package captchagate

import (
	"bytes"
	"context"
	"errors"
	"math/bits"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// mediaCache keeps rendered captcha media by id, format and language, up to
// a byte budget, evicting the oldest first. A captcha's secret never changes
// under its id, so a cached rendering stays right for as long as the id is
// answerable; the store is still asked whether it is before each fetch.
//
// The buffers of evicted renderings are reused once no response is being
// written from them, so under a flood of fresh captchas renders land in
// recycled memory instead of new allocations (a sound is about 130 KB).
type mediaCache struct {
	mu       sync.Mutex
	m        map[string]*media
	order    []string // insertion order, oldest first
	size     int      // capacity of the cached buffers
	max      int
	free     [][]byte // buffers nothing refers to, for reuse
	freeSize int      // their capacity, at most max/4
}

// media is one rendering. refs counts the cache's hold on it and each
// response being written from it: whoever got it from render releases it,
// and the last release hands its buffer back for reuse.
type media struct {
	b    []byte
	ct   string
	c    *mediaCache // nil with the cache disabled
	refs atomic.Int32
}

func (m *media) release() {
	if m.refs.Add(-1) == 0 && m.c != nil {
		m.c.recycle(m.b)
	}
}

func newMediaCache(max int) *mediaCache {
	if max <= 0 {
		return nil
	}
	return &mediaCache{m: map[string]*media{}, max: max}
}

func mediaKey(id, format, lang string) string { return id + "." + format + "?" + lang }

// get returns the rendering cached under k, held for the caller, or nil.
func (c *mediaCache) get(k string) *media {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.m[k]
	if m != nil {
		m.refs.Add(1)
	}
	return m
}

// newMedia copies b into a recycled buffer if one fits, or a new one, and
// returns it held once, for the caller.
func (c *mediaCache) newMedia(b []byte, ct string) *media {
	m := &media{ct: ct, c: c}
	m.refs.Store(1)
	if c != nil {
		c.mu.Lock()
		for i, f := range c.free {
			// A buffer up to a quarter larger than needed fits.
			if cap(f) >= len(b) && cap(f)-len(b) <= len(b)/4 {
				m.b = f[:len(b)]
				c.free[i] = c.free[len(c.free)-1]
				c.free[len(c.free)-1] = nil
				c.free = c.free[:len(c.free)-1]
				c.freeSize -= cap(f)
				break
			}
		}
		c.mu.Unlock()
	}
	if m.b == nil {
		m.b = make([]byte, len(b), sizeClass(len(b)))
	}
	copy(m.b, b)
	return m
}

// sizeClass rounds n up to a sixteenth of the power of two above it, so that
// buffers of renderings of slightly different lengths can be swapped.
func sizeClass(n int) int {
	if n <= 1024 {
		return n
	}
	step := 1 << (bits.Len(uint(n)) - 4)
	return (n + step - 1) &^ (step - 1)
}

// put caches m under k, unless k is cached already or m is over a quarter
// of the budget, evicting the oldest renderings to make room.
func (c *mediaCache) put(k string, m *media) {
	if c == nil || cap(m.b) > c.max/4 {
		return
	}
	var evicted []*media
	c.mu.Lock()
	if _, ok := c.m[k]; ok {
		c.mu.Unlock()
		return
	}
	for c.size+cap(m.b) > c.max && len(c.order) > 0 {
		old := c.m[c.order[0]]
		delete(c.m, c.order[0])
		c.order = c.order[1:]
		c.size -= cap(old.b)
		evicted = append(evicted, old)
	}
	c.order = append(c.order, k) // reallocating drops the evicted prefix
	m.refs.Add(1)
	c.m[k] = m
	c.size += cap(m.b)
	c.mu.Unlock()
	for _, old := range evicted {
		old.release()
	}
}

// recycle keeps b for a later rendering if the free list has room.
func (c *mediaCache) recycle(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.freeSize+cap(b) <= c.max/4 {
		c.free = append(c.free, b)
		c.freeSize += cap(b)
	}
}

// render returns the media of captcha id, held for the caller (release it),
// from the cache or rendered under the gate's render slots, so that renders
// never occupy more than their share of the CPUs however many clients ask.
func (g *Gate) render(ctx context.Context, r *http.Request, id string, rec *record, format, lang string) (*media, error) {
	k := mediaKey(id, format, lang)
	if m := g.media.get(k); m != nil {
		return m, nil
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case g.renderSlots <- struct{}{}:
	case <-ctx.Done(): // the client went away
		return nil, failureError(CodeRenderUnavailable, ctx.Err())
	case <-t.C:
		return nil, g.failure(r, rec.policy, CodeRenderUnavailable, errors.New("captchagate: every render slot stayed busy"))
	}
	defer func() { <-g.renderSlots }()
	buf := renderBuffers.Get().(*bytes.Buffer)
	defer putRenderBuffer(buf)
	ct, err := g.challenge.(Renderer).Render(buf, id, rec.secret, format, lang)
	if err != nil {
		return nil, g.failure(r, rec.policy, CodeRenderUnavailable, err)
	}
	m := g.media.newMedia(buf.Bytes(), ct)
	g.media.put(k, m)
	return m, nil
}

// renderBuffers are what challenges render into before the bytes are copied
// to a buffer of the right size.
var renderBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putRenderBuffer(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		b.Reset()
		renderBuffers.Put(b)
	}
}

// allowMedia takes one media fetch from the client's budget.
func (g *Gate) allowMedia(ctx context.Context, r *http.Request) error {
	return g.allowClient(ctx, r, "", 'm', g.mediaInterval, g.mediaBurst, msgTooManyMedia)
}
