package captchagate

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"hash/maphash"
	"sync"
	"time"

	"github.com/captchagate/captchagate/store/memstore"
)

// Issued captchas are kept by a captchaKeeper, chosen in New:
//
//   - with the in-memory store, sealedCaptchas: a captcha costs no entry at
//     all until it is answered. Its id is its record sealed (AES-256-GCM)
//     under a key derived from the secret and a salt of this Gate's, so
//     issuing writes nothing and a flood of captchas piles nothing up. What
//     the gate remembers is which captchas were spent: a mark in a Bloom
//     filter of fixed size, set by the one answer or refresh a captcha gets
//     (of concurrent ones, one wins), kept until the captcha could no longer
//     be answered. id = base64url(nonce (12 bytes) || AES-GCM(record)).
//   - with a shared store, storedCaptchas: the record is stored under a
//     random 128-bit id and taken by its answer, as before. Sealed ids would
//     need their spend marks to outlive the store's data: a Redis that
//     restarts empty would accept again every captcha spent in the last
//     CaptchaTTL. Until the store can vouch for that, shared stores store.

const (
	sealNonce = 12
	sealTag   = 16
	// A sealed id is at least a nonce, a tag and a record with a one-byte
	// policy name and no secret, in unpadded base64, and at most maxIDLen
	// characters (an ALTCHA secret, the longest built-in one, is about 110
	// bytes; the id then about 290 characters).
	minIDLen = (4*(sealNonce+sealTag+recordMin+1) + 2) / 3
	maxIDLen = 1024
)

var sealAD = []byte("captchagate captcha v1")

// A captchaKeeper keeps issued captchas until they are answered.
type captchaKeeper interface {
	// put returns the id of a new captcha whose record is rec.
	put(ctx context.Context, rec *record) (id string, err error)
	// take spends captcha id and returns its record: of concurrent takes of
	// one id, at most one finds it. A captcha past its expiry and grace is
	// not found.
	take(ctx context.Context, id string) (rec record, found bool, err error)
	// get returns the record of captcha id without spending it; found is
	// false once it is spent.
	get(ctx context.Context, id string) (rec record, found bool, err error)
}

// sealedCaptchas seals records in their ids and keeps spend marks in a
// bloomSpender.
type sealedCaptchas struct {
	g     *Gate
	aead  cipher.AEAD
	marks *bloomSpender
}

func (k *sealedCaptchas) put(_ context.Context, rec *record) (string, error) {
	plain := rec.encode()
	b := make([]byte, sealNonce, sealNonce+len(plain)+sealTag)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	b = k.aead.Seal(b, b[:sealNonce], plain, sealAD)
	return b64.EncodeToString(b), nil
}

// open returns the record sealed in id, and the name of its spend mark; ok
// is false for an id this gate did not seal, or past its expiry and grace.
func (k *sealedCaptchas) open(id string) (rec record, mark string, ok bool) {
	// Strict: one captcha has one id (no other spelling of its last
	// character decodes to it).
	raw, err := b64.Strict().DecodeString(id)
	if err != nil || len(raw) < sealNonce+sealTag {
		return rec, "", false
	}
	plain, err := k.aead.Open(nil, raw[:sealNonce], raw[sealNonce:], sealAD)
	if err != nil {
		return rec, "", false
	}
	if rec, err = decodeRecord(plain); err != nil || k.g.now().UnixNano() >= rec.expires+int64(graceTTL) {
		return rec, "", false
	}
	return rec, string(raw[:sealNonce]), true
}

func (k *sealedCaptchas) take(_ context.Context, id string) (record, bool, error) {
	rec, mark, ok := k.open(id)
	if !ok || !k.marks.spend(mark) {
		return rec, false, nil
	}
	return rec, true, nil
}

func (k *sealedCaptchas) get(_ context.Context, id string) (record, bool, error) {
	rec, mark, ok := k.open(id)
	if !ok || k.marks.spent(mark) {
		return rec, false, nil
	}
	return rec, true, nil
}

// storedCaptchas stores records under random ids in the Store.
type storedCaptchas struct {
	g *Gate
}

func captchaKey(id string) string { return "c:" + id }

func (k storedCaptchas) put(ctx context.Context, rec *record) (string, error) {
	id, err := randomString(storedIDBytes)
	if err != nil {
		return "", err
	}
	return id, k.g.store.Put(ctx, captchaKey(id), rec.encode(), k.g.captchaTTL+graceTTL)
}

func (k storedCaptchas) take(ctx context.Context, id string) (record, bool, error) {
	return decodeFound(k.g.store.Take(ctx, captchaKey(id)))
}

func (k storedCaptchas) get(ctx context.Context, id string) (record, bool, error) {
	return decodeFound(k.g.store.Get(ctx, captchaKey(id)))
}

func decodeFound(v []byte, found bool, err error) (rec record, _ bool, _ error) {
	if err == nil && found {
		rec, err = decodeRecord(v)
	}
	return rec, found && err == nil, err
}

// bloomSpender keeps spend marks in process, in two generations of a Bloom
// filter of fixed size: memory that floods cannot grow, and whose only
// error is a false "spent", which refuses an answer (the client gets a new
// captcha), never accepts one twice. A generation lasts period (the longest
// a captcha stays answerable, with its grace); a mark is kept for at least
// one period, until the generation after the one it was set in ends.
type bloomSpender struct {
	mu     sync.Mutex
	cur    []uint64 // bits of the current generation (nil until first used)
	prev   []uint64
	start  int64 // when cur began, unix nanoseconds
	period int64
	bits   uint64 // per generation, a power of two
	seed   maphash.Seed
	seed2  maphash.Seed // the second hash's, for the double hashing of positions
	now    func() time.Time
}

// bloomHashes is the number of bits a mark sets: with 16 bits a mark per
// expected mark, a full filter answers a false "spent" for about one
// captcha in 2,000, and one at a tenth of its capacity for none in 10^13.
const bloomHashes = 11

func newBloomSpender(capacity int, period time.Duration, now func() time.Time) *bloomSpender {
	bits := uint64(1 << 16)
	for bits < 16*uint64(capacity) {
		bits <<= 1
	}
	return &bloomSpender{bits: bits, period: int64(period), seed: maphash.MakeSeed(), seed2: maphash.MakeSeed(), now: now}
}

// positions returns the filter's bit positions of mark.
func (p *bloomSpender) positions(mark string) (h1, h2 uint64) {
	h1 = maphash.String(p.seed, mark)
	h2 = maphash.String(p.seed2, mark) | 1
	return h1, h2
}

// rotate starts a new generation when the current one is over; p.mu held.
func (p *bloomSpender) rotate() {
	now := p.now().UnixNano()
	if p.cur == nil {
		p.cur, p.prev, p.start = make([]uint64, p.bits/64), make([]uint64, p.bits/64), now
		return
	}
	switch {
	case now-p.start >= 2*p.period:
		clear(p.cur)
		clear(p.prev)
		p.start = now
	case now-p.start >= p.period:
		p.cur, p.prev = p.prev, p.cur
		clear(p.cur)
		p.start += p.period
	}
}

func (p *bloomSpender) test(gen []uint64, h1, h2 uint64) bool {
	for i := range uint64(bloomHashes) {
		b := (h1 + i*h2) & (p.bits - 1)
		if gen[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// spend sets mark and reports whether it was unset.
func (p *bloomSpender) spend(mark string) bool {
	h1, h2 := p.positions(mark)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rotate()
	if p.test(p.cur, h1, h2) || p.test(p.prev, h1, h2) {
		return false
	}
	for i := range uint64(bloomHashes) {
		b := (h1 + i*h2) & (p.bits - 1)
		p.cur[b/64] |= 1 << (b % 64)
	}
	return true
}

// spent reports whether mark is set.
func (p *bloomSpender) spent(mark string) bool {
	h1, h2 := p.positions(mark)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rotate()
	return p.test(p.cur, h1, h2) || p.test(p.prev, h1, h2)
}

// setCaptchas chooses how issued captchas are kept: sealed in their ids
// with the in-memory store, stored in a shared one.
func (g *Gate) setCaptchas(c Config) error {
	if _, local := g.store.(*memstore.Store); !local {
		g.captchas = storedCaptchas{g}
		return nil
	}
	// The key takes a salt of this Gate's: its spend marks live in this
	// process only, so its ids must open nowhere else, even on an instance
	// that shares the secret.
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	var key [32]byte
	g.mac(&key, []byte("seal\x00"), salt)
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	g.captchas = &sealedCaptchas{g: g, aead: aead,
		marks: newBloomSpender(cmp.Or(c.MaxEntries, 1<<20), g.captchaTTL+graceTTL, g.now)}
	return nil
}
