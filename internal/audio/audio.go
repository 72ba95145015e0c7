// Package audio speaks a captcha's digits as a WAV file (8 kHz, unsigned
// 8-bit mono PCM) with the recordings and the method of
// github.com/dchest/captcha: three beeps, then the digits at random speeds,
// levels and intervals over a background of white noise and reversed,
// re-pitched digits, then a last beep.
//
// dchest builds every transformed sound as a slice of its own and the whole
// file in a buffer, about 1.2 MB allocated per sound. Here the background is
// drawn in a buffer reused across renders, each digit is re-pitched, levelled
// and mixed into it in one pass without a copy, and the file is written out in
// pieces, so a fresh sound allocates next to nothing.
package audio

import (
	"crypto/sha256"
	_ "embed" // sounds.bin
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math"
	mrand "math/rand/v2"
	"sync"
)

//go:generate go run ./gensounds sounds.bin

// sounds.bin holds dchest/captcha's recordings (see gensounds).
//
//go:embed sounds.bin
var soundsBin []byte

const sampleRate = 8000 // Hz

type voice struct {
	digits  [10][]byte
	longest int
}

var (
	voices  = map[string]*voice{}
	beep    []byte
	endBeep []byte               // the beep, stretched to 1.4 times its length
	silence [sampleRate / 5]byte // a fifth of a second
	padByte = []byte{0}          // after an odd-length data chunk
)

func init() {
	b := soundsBin
	for len(b) > 0 {
		if len(b) < 7 {
			panic("audio: sounds.bin is truncated")
		}
		name, digit, n := string(b[:2]), b[2], int(binary.LittleEndian.Uint32(b[3:7]))
		b = b[7:]
		if n > len(b) || digit > 9 {
			panic("audio: sounds.bin is malformed")
		}
		samples := b[:n:n]
		b = b[n:]
		if name == "bp" {
			beep = samples
			continue
		}
		v := voices[name]
		if v == nil {
			v = new(voice)
			voices[name] = v
		}
		v.digits[digit] = samples
		v.longest = max(v.longest, n)
	}
	if voices["en"] == nil || beep == nil {
		panic("audio: sounds.bin lacks English or the beep")
	}
	endBeep = make([]byte, int(float64(len(beep))*1.4))
	for i := range endBeep {
		endBeep[i] = 128
	}
	var lut [256]byte
	levels(&lut, 1)
	mix(endBeep, beep, 1.4, &lut, false)
	for i := range silence {
		silence[i] = 128
	}
}

// renderer is the reused state of one render.
type renderer struct {
	src    mrand.ChaCha8
	rnd    *mrand.Rand
	h      hash.Hash
	seed   [16]byte
	bg     []byte
	lut    [256]byte
	said   []said
	gaps   []int
	babble []babble
}

// said is one digit as spoken: its speed, level and length in samples.
type said struct {
	speed, level float64
	n            int
}

// babble is one reversed digit of the background: which digit, its speed
// and level, and where it starts, as a fraction of the room left for it.
type babble struct {
	digit             int
	speed, level, pos float64
}

var renderers = sync.Pool{New: func() any {
	r := &renderer{h: sha256.New()}
	r.rnd = mrand.New(&r.src)
	return r
}}

// maxBuffer is the largest background a pooled renderer keeps: 32 digits of
// the longest recording plus their pauses.
const maxBuffer = 1 << 20

// Write writes the sound of digits (each 0 to 9) spoken in lang, or in
// English if there are no recordings for lang. All its randomness (the
// digits' speeds and levels, the pauses, the noise and the background
// babble) comes from seed, the captcha's own: the same seed and digits sound
// the same on every render and every instance, so fetching a sound again
// cannot be used to average its noise away, and every language of one
// captcha is the same recording but for the voice (the same pauses, speeds,
// levels, noise and babble, the babble's sounds in the language's voice).
// The noise cannot be predicted without the seed.
func Write(w io.Writer, seed [16]byte, digits []byte, lang string) (int64, error) {
	for _, d := range digits {
		if d > 9 {
			return 0, fmt.Errorf("audio: digit %d out of range", d)
		}
	}
	v := voices[lang]
	if v == nil {
		v = voices["en"]
	}
	r := renderers.Get().(*renderer)
	defer func() {
		if cap(r.bg) <= maxBuffer {
			renderers.Put(r)
		}
	}()
	r.seed = seed
	body := r.compose(v, digits, true)
	return writeWAV(w, body)
}

// Streams of a render, each drawn from the captcha's seed apart, so that
// one language's longer background does not shift the draws that follow.
var (
	streamSpeech = []byte("captchagate audio\x00speech\x00") // the digits' speeds and levels, the pauses
	streamNoise  = []byte("captchagate audio\x00noise\x00")  // the white noise
	streamBabble = []byte("captchagate audio\x00babble\x00") // the reversed digits of the background
)

// reseed starts the stream named purpose of r's seed.
func (r *renderer) reseed(purpose []byte) {
	var s [32]byte
	r.h.Reset()
	r.h.Write(purpose)
	r.h.Write(r.seed[:])
	r.h.Sum(s[:0])
	r.src.Seed(s)
}

func (r *renderer) float(from, to float64) float64 { return from + (to-from)*r.rnd.Float64() }

// compose draws the background with the digits mixed in (or, for tests,
// without them) into r.bg and returns it.
func (r *renderer) compose(v *voice, digits []byte, speak bool) []byte {
	r.reseed(streamSpeech)
	r.said = r.said[:0]
	for _, d := range digits {
		s := said{speed: r.float(0.9, 1.2), level: r.float(0.75, 1.2)}
		s.n = int(math.Floor(float64(len(v.digits[d])) * s.speed))
		r.said = append(r.said, s)
	}
	// Pauses of one to three seconds before, between and after the digits.
	r.gaps = r.gaps[:0]
	size := v.longest * len(digits)
	for range len(digits) + 1 {
		g := sampleRate + r.rnd.IntN(2*sampleRate)
		r.gaps = append(r.gaps, g)
		size += g
	}
	if cap(r.bg) < size {
		r.bg = make([]byte, size)
	}
	bg := r.bg[:size]

	// White noise, then a reversed, re-pitched digit every tenth of a
	// second, quietly. Each babble takes the same draws whatever the
	// language, so the babble of a shorter background is the start of a
	// longer one's.
	r.reseed(streamNoise)
	r.src.Read(bg)
	for i, x := range bg {
		bg[i] = x%4 + 126
	}
	r.reseed(streamBabble)
	r.babble = r.babble[:0]
	for range size / (sampleRate / 10) {
		b := babble{digit: int(r.rnd.Uint64() % 10), speed: r.float(0.8, 1.4), level: r.float(0.3, 0.46), pos: r.rnd.Float64()}
		r.babble = append(r.babble, b)
		snd := v.digits[b.digit]
		n := int(math.Floor(float64(len(snd)) * b.speed))
		if n >= size {
			continue
		}
		at := int(b.pos * float64(size-n))
		levels(&r.lut, b.level)
		mix(bg[at:at+n], snd, b.speed, &r.lut, true)
	}

	at := r.gaps[0]
	for i, d := range digits {
		s := r.said[i]
		if speak && at < size {
			levels(&r.lut, s.level)
			mix(bg[at:min(at+s.n, size)], v.digits[d], s.speed, &r.lut, false)
		}
		at += s.n + r.gaps[i+1]
	}
	return bg
}

// levels fills lut with each sample's distance from silence (128) scaled
// by level, clipped to the sample range.
func levels(lut *[256]byte, level float64) {
	for x := range lut {
		f := float64(x)
		switch {
		case x > 128:
			f = max((f-128)*level+128, 128)
		case x < 128:
			f = min(128-(128-f)*level, 128)
		}
		lut[x] = byte(min(max(f, 0), 255))
	}
}

// mix mixes src, played at speed (2 stretches it to twice the samples) and
// passed through lut, into dst, reversed if asked; dst may be shorter than
// the played sound, which is then cut.
func mix(dst, src []byte, speed float64, lut *[256]byte, reversed bool) {
	p := 0.0
	last := len(src) - 1
	for j := range src {
		x := src[j]
		if reversed {
			x = src[last-j]
		}
		a := int(lut[x])
		lo, hi := int(p), min(int(p+speed), len(dst))
		p += speed
		for i := lo; i < hi; i++ {
			dst[i] = mixSample(a, int(dst[i]))
		}
		if hi == len(dst) {
			return
		}
	}
}

// mixSample mixes two samples as dchest/captcha does.
func mixSample(a, b int) byte {
	if a < 128 && b < 128 {
		return byte(a * b / 128)
	}
	return byte(2*(a+b) - a*b/128 - 256)
}

// writeWAV writes the RIFF header, the prelude of beeps, body and the last
// beep.
func writeWAV(w io.Writer, body []byte) (int64, error) {
	n := 3*len(beep) + 2*len(silence) + len(body) + len(endBeep)
	padded := n + n%2
	var h [44]byte
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+padded))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)         // fmt chunk size
	binary.LittleEndian.PutUint16(h[20:], 1)          // PCM
	binary.LittleEndian.PutUint16(h[22:], 1)          // mono
	binary.LittleEndian.PutUint32(h[24:], sampleRate) // samples per second
	binary.LittleEndian.PutUint32(h[28:], sampleRate) // bytes per second
	binary.LittleEndian.PutUint16(h[32:], 1)          // block align
	binary.LittleEndian.PutUint16(h[34:], 8)          // bits per sample
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(n))
	parts := [...][]byte{h[:], beep, silence[:], beep, silence[:], beep, body, endBeep, padByte[:padded-n]}
	var total int64
	for _, p := range parts {
		m, err := w.Write(p)
		total += int64(m)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
