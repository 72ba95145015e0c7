package captchagate

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/captchagate/captchagate/store/memstore"
)

// Issued captchas and minted tokens are kept by a keeper, chosen in New:
//
//   - with the in-memory store, or a shared store that is a Marker
//     (store/redisstore), sealed: a captcha or token costs the store no
//     entry at all. Its id is its record sealed (AES-256-GCM) under a key
//     derived from the secret, with the marks' epoch, so issuing writes
//     nothing and a flood of captchas or tokens piles nothing up. What is
//     remembered is which were spent: a mark (the id's salt) in a Bloom
//     filter of fixed size, set by the one answer, refresh or redemption it
//     gets (of concurrent ones, one wins), kept until it could no longer be
//     answered. id = base64url(salt (16 bytes) || AES-GCM(epoch (8) ||
//     record)), under a key of the id's own, HMAC(secret, salt). In process the marks are the Gate's own (localMarks, a
//     random epoch of its own, so ids open on no other instance); in a
//     shared store they are the store's, and ids open on every instance
//     sharing it and the secret, in the store's current epoch only: a store
//     that lost its marks (a Redis restarted empty) has a new epoch, and
//     refuses every id sealed before.
//   - with any other Store, stored: the record is stored under a random
//     128-bit id (a token under a keyed hash of it) and taken by its
//     answer.

const (
	sealNonce = 16 // a random salt: each id has a key of its own, HMAC(secret, "seal", salt)
	sealTag   = 16
	sealEpoch = 8
	// A sealed id is at least a nonce, a tag, an epoch and a record with a
	// one-byte policy name and no secret, in unpadded base64, and at most
	// maxIDLen characters (an ALTCHA secret, the longest built-in one, is
	// about 110 bytes; the id then about 300 characters).
	minIDLen = (4*(sealNonce+sealTag+sealEpoch+recordMin+1) + 2) / 3
	maxIDLen = 1024
)

// What a sealed id is (the AEAD's additional data): a captcha's id never
// opens as a token, nor a token as a captcha.
var (
	captchaAD = []byte("captchagate captcha v2")
	tokenAD   = []byte("captchagate token v2")
)

// A keeper keeps issued captchas (or minted tokens) until they are spent.
type keeper interface {
	// put returns the id of a new captcha (token) whose record is rec.
	put(ctx context.Context, rec *record) (id string, err error)
	// take spends id and returns its record: of concurrent takes of one
	// id, at most one finds it. One past its expiry and grace is not found.
	take(ctx context.Context, id string) (rec record, found bool, err error)
	// get returns the record of id without spending it; found is false
	// once it is spent.
	get(ctx context.Context, id string) (rec record, found bool, err error)
	// open returns the record of id to be checked before take, as cheaply
	// as the keeper can: found may be true for an id already spent (a
	// sealed id opens without asking the store), never for one that does
	// not exist.
	open(ctx context.Context, id string) (rec record, found bool, err error)
}

// sealer seals records in their ids under one AEAD, and spends them with
// marks in the current epoch of a Marker. Captchas and tokens each have one,
// sharing the AEAD and the marks; ad tells them apart.
type sealer struct {
	g     *Gate
	ad    []byte
	marks Marker
	life  time.Duration // how long a mark is kept: the longest life of a captcha or token, with its grace
	// The epoch new ids are sealed in, and when it was read (unix ns):
	// shared by the captchas' and the tokens' sealers.
	epoch   *atomic.Uint64
	epochAt *atomic.Int64
}

func (k *sealer) put(ctx context.Context, rec *record) (string, error) {
	epoch, err := k.currentEpoch(ctx)
	if err != nil {
		return "", err
	}
	enc := rec.encode()
	plain := make([]byte, sealEpoch, sealEpoch+len(enc))
	binary.BigEndian.PutUint64(plain, epoch)
	plain = append(plain, enc...)
	b := make([]byte, sealNonce, sealNonce+len(plain)+sealTag)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	aead, err := k.aead(b)
	if err != nil {
		return "", err
	}
	b = aead.Seal(b, zeroNonce[:], plain, k.ad)
	return b64.EncodeToString(b), nil
}

// zeroNonce is the GCM nonce of every id: each id's key is its own.
var zeroNonce [12]byte

// aead returns the AES-256-GCM of the id whose salt is salt: its key is
// the HMAC of the salt under the secret. A key per id, used once, rules out
// GCM's nonce reuse whatever the number of ids sealed under one secret
// (random 96-bit nonces under one key would bound it to about 2^32).
func (k *sealer) aead(salt []byte) (cipher.AEAD, error) {
	var key [32]byte
	k.g.mac(&key, []byte("seal\x00"), salt)
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// epochRefresh is how long a sealer seals in the epoch it last read before
// it asks the Marker again: an instance that only issues (and so never
// learns a new epoch from a Mark) follows a store that lost its marks
// within this long.
const epochRefresh = 10 * time.Second

// currentEpoch returns the marks' epoch, asking the Marker the first time
// and every epochRefresh.
func (k *sealer) currentEpoch(ctx context.Context) (uint64, error) {
	now := k.g.now().UnixNano()
	if e := k.epoch.Load(); e != 0 && now-k.epochAt.Load() < int64(epochRefresh) {
		return e, nil
	}
	_, e, err := k.marks.Mark(ctx, 0, nil, k.life, false)
	if err != nil {
		return 0, err
	}
	if e == 0 {
		return 0, errors.New("captchagate: the store's Marker returned epoch 0")
	}
	k.epoch.Store(e)
	k.epochAt.Store(now)
	return e, nil
}

// unseal returns the record sealed in id, its epoch and its mark; ok is false
// for an id the gate did not seal (as this kind), or past its expiry and
// grace.
func (k *sealer) unseal(id string) (rec record, epoch uint64, mark []byte, ok bool) {
	// Strict: one captcha has one id (no other spelling of its last
	// character decodes to it).
	raw, err := b64.Strict().DecodeString(id)
	if err != nil || len(raw) < sealNonce+sealTag+sealEpoch {
		return rec, 0, nil, false
	}
	aead, err := k.aead(raw[:sealNonce])
	if err != nil {
		return rec, 0, nil, false
	}
	plain, err := aead.Open(nil, zeroNonce[:], raw[sealNonce:], k.ad)
	if err != nil || len(plain) < sealEpoch {
		return rec, 0, nil, false
	}
	if rec, err = decodeRecord(plain[sealEpoch:]); err != nil || k.g.now().UnixNano() >= rec.expires+int64(graceTTL) {
		return rec, 0, nil, false
	}
	return rec, binary.BigEndian.Uint64(plain), raw[:sealNonce], true
}

// mark sets (or with peek reads) id's mark, and reports whether it was
// unset in id's epoch. An id of another epoch is refused, and the epoch the
// Marker reports becomes the one new ids are sealed in.
func (k *sealer) mark(ctx context.Context, id string, peek bool) (record, bool, error) {
	rec, epoch, mark, ok := k.unseal(id)
	if !ok {
		return rec, false, nil
	}
	fresh, current, err := k.marks.Mark(ctx, epoch, mark, k.life, peek)
	if err != nil {
		return rec, false, err
	}
	if current != epoch && current != 0 {
		k.epoch.Store(current)
		k.epochAt.Store(k.g.now().UnixNano())
	}
	return rec, fresh && current == epoch, nil
}

func (k *sealer) take(ctx context.Context, id string) (record, bool, error) {
	return k.mark(ctx, id, false)
}

func (k *sealer) get(ctx context.Context, id string) (record, bool, error) {
	return k.mark(ctx, id, true)
}

func (k *sealer) open(_ context.Context, id string) (record, bool, error) {
	rec, _, _, ok := k.unseal(id)
	return rec, ok, nil
}

// storedItems stores records in the Store: captchas under random ids,
// tokens under a keyed hash of theirs.
type storedItems struct {
	g     *Gate
	token bool
}

func (k storedItems) key(id string) string {
	if !k.token {
		return "c:" + id
	}
	var sum [32]byte
	k.g.mac(&sum, []byte("token\x00"), []byte(id))
	return "t:" + b64.EncodeToString(sum[:16])
}

func (k storedItems) put(ctx context.Context, rec *record) (string, error) {
	n, ttl := storedIDBytes, k.g.captchaTTL
	if k.token {
		n, ttl = tokenBytes, k.g.tokenTTL
	}
	id, err := randomString(n)
	if err != nil {
		return "", err
	}
	return id, k.g.store.Put(ctx, k.key(id), rec.encode(), ttl+graceTTL)
}

func (k storedItems) take(ctx context.Context, id string) (record, bool, error) {
	return decodeFound(k.g.store.Take(ctx, k.key(id)))
}

func (k storedItems) get(ctx context.Context, id string) (record, bool, error) {
	return decodeFound(k.g.store.Get(ctx, k.key(id)))
}

func (k storedItems) open(ctx context.Context, id string) (record, bool, error) {
	return k.get(ctx, id)
}

func decodeFound(v []byte, found bool, err error) (rec record, _ bool, _ error) {
	if err == nil && found {
		rec, err = decodeRecord(v)
	}
	return rec, found && err == nil, err
}

// localMarks are a Gate's own spend marks, in process (with the in-memory
// store): a Bloom filter and a random epoch of the Gate's.
type localMarks struct {
	bloom *bloomSpender
	epoch uint64
}

func (m *localMarks) Mark(_ context.Context, epoch uint64, mark []byte, _ time.Duration, peek bool) (bool, uint64, error) {
	switch {
	case epoch != m.epoch:
		return false, m.epoch, nil
	case peek:
		return !m.bloom.spent(mark), m.epoch, nil
	}
	return m.bloom.spend(mark), m.epoch, nil
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
func (p *bloomSpender) positions(mark []byte) (h1, h2 uint64) {
	h1 = maphash.Bytes(p.seed, mark)
	h2 = maphash.Bytes(p.seed2, mark) | 1
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
func (p *bloomSpender) spend(mark []byte) bool {
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
func (p *bloomSpender) spent(mark []byte) bool {
	h1, h2 := p.positions(mark)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rotate()
	return p.test(p.cur, h1, h2) || p.test(p.prev, h1, h2)
}

// setCaptchas chooses how issued captchas and minted tokens are kept:
// sealed in their ids with the in-memory store or a Marker, stored in any
// other Store.
func (g *Gate) setCaptchas(c Config) error {
	life := max(g.captchaTTL, g.tokenTTL) + graceTTL
	var marks Marker
	switch s := g.store.(type) {
	case *memstore.Store:
		var e [8]byte
		for binary.BigEndian.Uint64(e[:]) == 0 {
			if _, err := rand.Read(e[:]); err != nil {
				return err
			}
		}
		marks = &localMarks{bloom: newBloomSpender(cmp.Or(c.MaxEntries, 1<<20), life, g.now), epoch: binary.BigEndian.Uint64(e[:])}
	case Marker:
		marks = s
	default:
		g.captchas, g.tokens = storedItems{g: g}, storedItems{g: g, token: true}
		return nil
	}
	epoch, at := new(atomic.Uint64), new(atomic.Int64)
	g.captchas = &sealer{g: g, ad: captchaAD, marks: marks, life: life, epoch: epoch, epochAt: at}
	g.tokens = &sealer{g: g, ad: tokenAD, marks: marks, life: life, epoch: epoch, epochAt: at}
	return nil
}
