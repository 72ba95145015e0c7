// Package audio speaks a captcha's digits as a WAV file (8 kHz, unsigned
// 8-bit mono PCM) with the recordings of github.com/dchest/captcha: three
// beeps, then the digits at random speeds (and so pitches), levels and
// pauses over a background of speech-shaped noise and synthetic babble
// (voiced, vowel-like syllables of random pitch and formants, none of them a
// digit), then a last beep.
//
// The digits stand clearly above the background: each recording is trimmed
// of its silence and brought to one loudness, and the background is drawn
// about 15 dB below it (TestDigitLevels measures the margin per digit). A
// clip of six digits lasts 5 to 10 seconds.
//
// dchest builds every transformed sound as a slice of its own and the whole
// file in a buffer, about 1.2 MB allocated per sound. Here the background is
// drawn in buffers reused across renders, each digit is re-pitched, levelled
// and mixed into it in one pass without a copy, and the file is written out
// in pieces, so a fresh sound allocates next to nothing.
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
	digits [10][]byte  // the recordings, trimmed of their silence
	gain   [10]float64 // brings each recording to speechRMS
}

// Loudness of the sound, as RMS distance from silence (128) in sample units.
const (
	speechRMS  = 26.0 // a spoken digit at level 1
	noiseRMS   = 2.9  // the shaped noise
	syllRMSMin = 2.1  // a babble syllable, quietest
	syllRMSMax = 4.7  // a babble syllable, loudest
	maxPeak    = 104  // no recording is raised past this distance from silence, so that at the highest level (1.2) it still fits
)

// trim cuts a recording to its speech: from a little before the first sample
// at a twentieth of its peak (which keeps the quiet fricatives of "six" and
// "seven") to a little after the last.
func trim(s []byte) []byte {
	peak := 0
	for _, x := range s {
		peak = max(peak, dist(x))
	}
	first, last := -1, -1
	for i, x := range s {
		if 20*dist(x) >= peak {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	const margin = sampleRate / 20 // 50 ms
	return s[max(first-margin, 0):min(last+margin+1, len(s))]
}

func dist(x byte) int { return max(int(x)-128, 128-int(x)) }

// gainOf is the level that brings s to speechRMS without raising more than
// one sample in 200 past maxPeak (a few short peaks of the Russian voice
// would otherwise hold it far below the others).
func gainOf(s []byte) float64 {
	var ss float64
	var hist [129]int
	for _, x := range s {
		d := float64(x) - 128
		ss += d * d
		hist[dist(x)]++
	}
	peak, above := 128, 0
	for peak > 1 && (above+hist[peak])*200 <= len(s) {
		above += hist[peak]
		peak--
	}
	rms := math.Sqrt(ss / float64(len(s)))
	return min(speechRMS/rms, maxPeak/float64(peak))
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
		v.digits[digit] = trim(samples)
		v.gain[digit] = gainOf(v.digits[digit])
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
	acc    []float32 // the babble, summed
	syll   []float32 // one syllable, before its level is known
	lut    [256]byte
	said   []said
	gaps   []int
	babble []syllable
}

// said is one digit as spoken: its speed, level (before the recording's
// gain) and length in samples.
type said struct {
	speed, level float64
	n            int
}

// syllable is one voiced sound of the background: where it starts, how
// long it lasts (in samples), its pitch at start and end and two formants
// (Hz), and its level (RMS).
type syllable struct {
	at, n         int
	f0, f0end     float64
	f1, f2, level float64
}

var renderers = sync.Pool{New: func() any {
	r := &renderer{h: sha256.New()}
	r.rnd = mrand.New(&r.src)
	return r
}}

// maxBuffer is the largest background a pooled renderer keeps, in samples:
// 32 of the longest digits spoken slowly, plus their pauses.
const maxBuffer = 1 << 19

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
		if cap(r.bg) <= maxBuffer && cap(r.acc) <= maxBuffer {
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
	streamSpeech = []byte("captchagate audio\x00speech\x00")    // the digits' speeds and levels, the pauses
	streamNoise  = []byte("captchagate audio\x00noise\x00")     // the white noise
	streamBabble = []byte("captchagate audio\x00syllables\x00") // the syllables of the background
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
	size := 0
	for _, d := range digits {
		s := said{speed: r.float(0.85, 1.25), level: r.float(0.8, 1.2)}
		s.n = int(math.Floor(float64(len(v.digits[d])) * s.speed))
		r.said = append(r.said, s)
		size += s.n
	}
	// Pauses of 0.3 to 0.9 seconds before, between and after the digits.
	r.gaps = r.gaps[:0]
	for range len(digits) + 1 {
		g := sampleRate*3/10 + r.rnd.IntN(sampleRate*6/10)
		r.gaps = append(r.gaps, g)
		size += g
	}
	if cap(r.bg) < size {
		r.bg = make([]byte, size)
		r.acc = make([]float32, size)
	}
	bg, acc := r.bg[:size], r.acc[:size]
	clear(acc)
	r.drawBabble(acc)

	// Noise, low-passed towards the spectrum of speech, under the babble.
	// Both are drawn in time order, whatever the language, so the
	// background of a shorter clip is the start of a longer one's.
	r.reseed(streamNoise)
	r.src.Read(bg)
	const a = 0.35                   // one-pole low-pass, about 550 Hz at 8 kHz
	const noiseGain = noiseRMS * 5.2 // uniform ±0.5 low-passed has an RMS of about 0.19
	lp := 0.0
	for i, x := range bg {
		lp += a * ((float64(x)+0.5)/256 - 0.5 - lp)
		bg[i] = byte(min(max(math.Round(128+lp*noiseGain+float64(acc[i])), 0), 255))
	}

	at := r.gaps[0]
	for i, d := range digits {
		s := r.said[i]
		if speak {
			levels(&r.lut, s.level*v.gain[d])
			mix(bg[at:min(at+s.n, size)], v.digits[d], s.speed, &r.lut, false)
		}
		at += s.n + r.gaps[i+1]
	}
	return bg
}

// drawBabble adds to acc one voiced syllable after another, each 80 to
// 300 ms long and starting 40 to 250 ms after the last, so that they often
// overlap: a pulse train at a gliding pitch of 90 to 280 Hz through two
// formant resonators, under a raised-cosine envelope, at a random level.
func (r *renderer) drawBabble(acc []float32) {
	r.reseed(streamBabble)
	r.babble = r.babble[:0]
	for at := r.rnd.IntN(sampleRate / 5); at < len(acc); at += sampleRate/25 + r.rnd.IntN(sampleRate*21/100) {
		s := syllable{
			at: at, n: sampleRate*8/100 + r.rnd.IntN(sampleRate*22/100),
			f0: r.float(90, 280), f0end: r.float(90, 280),
			f1: r.float(300, 850), f2: r.float(900, 2400),
			level: r.float(syllRMSMin, syllRMSMax),
		}
		r.babble = append(r.babble, s)
		r.addSyllable(acc[at:min(at+s.n, len(acc))], s)
	}
}

// addSyllable synthesizes s into r.syll and adds it, at its level, to dst
// (its first len(dst) samples if dst is shorter).
func (r *renderer) addSyllable(dst []float32, s syllable) {
	if cap(r.syll) < s.n {
		r.syll = make([]float32, s.n)
	}
	y := r.syll[:s.n]
	c1, d1 := resonator(s.f1, 90)
	c2, d2 := resonator(s.f2, 150)
	var phase, y1a, y1b, y2a, y2b, ss float64
	for i := range y {
		f0 := s.f0 + (s.f0end-s.f0)*float64(i)/float64(s.n)
		x := 0.0
		if phase += f0 / sampleRate; phase >= 1 {
			phase--
			x = 1
		}
		o1 := x + c1*y1a - d1*y1b
		y1a, y1b = o1, y1a
		o2 := o1 + c2*y2a - d2*y2b
		y2a, y2b = o2, y2a
		env := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(s.n))
		y[i] = float32(o2 * env)
		ss += o2 * o2 * env * env
	}
	if ss == 0 {
		return
	}
	g := float32(s.level / math.Sqrt(ss/float64(s.n)))
	for i := range dst {
		dst[i] += y[i] * g
	}
}

// resonator is the feedback of a two-pole resonator at freq Hz with the
// given bandwidth: y[n] = x[n] + c·y[n-1] - d·y[n-2].
func resonator(freq, bandwidth float64) (c, d float64) {
	rad := math.Exp(-math.Pi * bandwidth / sampleRate)
	return 2 * rad * math.Cos(2*math.Pi*freq/sampleRate), rad * rad
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

// mixSample mixes two samples as dchest/captcha does, but clipped: dchest's
// formula gives 256 for a full-scale sample over a loud one, which wraps to
// silence's far end (a click).
func mixSample(a, b int) byte {
	if a < 128 && b < 128 {
		return byte(a * b / 128)
	}
	return byte(min(2*(a+b)-a*b/128-256, 255))
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
