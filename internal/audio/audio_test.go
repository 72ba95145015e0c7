package audio

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The reference: dchest/captcha's own steps, each sound materialized
// (changeSpeed, reversedSound, setSoundLevel, then mixSound), with levels
// clipped to the sample range. refChangeSpeed also reports which samples it
// wrote: dchest leaves the others at 0 and mixes that in; mix leaves dst
// alone there.
func refChangeSpeed(a []byte, speed float64) (b []byte, reached []bool) {
	b = make([]byte, int(math.Floor(float64(len(a))*speed)))
	reached = make([]bool, len(b))
	var p float64
	for _, v := range a {
		for i := int(p); i < int(p+speed) && i < len(b); i++ {
			b[i], reached[i] = v, true
		}
		p += speed
	}
	return b, reached
}

// refMixAt mixes the reached samples of snd into dst.
func refMixAt(dst, snd []byte, reached []bool) {
	for i := range min(len(snd), len(dst)) {
		if reached[i] {
			refMix(dst[i:i+1], snd[i:i+1])
		}
	}
}

func refLevel(a []byte, level float64) {
	for i, v := range a {
		av := float64(v)
		switch {
		case av > 128:
			if av = (av-128)*level + 128; av < 128 {
				av = 128
			}
		case av < 128:
			if av = 128 - (128-av)*level; av > 128 {
				av = 128
			}
		default:
			continue
		}
		a[i] = byte(min(max(av, 0), 255))
	}
}

func refMix(dst, src []byte) {
	for i, v := range src {
		av, bv := int(v), int(dst[i])
		if av < 128 && bv < 128 {
			dst[i] = byte(av * bv / 128)
		} else {
			dst[i] = byte(min(2*(av+bv)-av*bv/128-256, 255))
		}
	}
}

// A full-scale sample mixed over a loud one stays at full scale.
func TestMixSampleClips(t *testing.T) {
	for b := range 256 {
		if got := mixSample(255, b); got < 250 {
			t.Fatalf("mixSample(255, %d) = %d", b, got)
		}
	}
}

func TestMixMatchesMaterializedSteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var lut [256]byte
	for range 500 {
		src := make([]byte, 1+rng.IntN(300))
		for i := range src {
			src[i] = byte(rng.IntN(256))
		}
		speed := 0.5 + rng.Float64()
		level := 0.2 + rng.Float64()
		reversed := rng.IntN(2) == 0
		dst := make([]byte, int(math.Floor(float64(len(src))*speed)))
		for i := range dst {
			dst[i] = byte(rng.IntN(256))
		}
		want := bytes.Clone(dst)
		snd := bytes.Clone(src)
		if reversed {
			for i, j := 0, len(snd)-1; i < j; i, j = i+1, j-1 {
				snd[i], snd[j] = snd[j], snd[i]
			}
		}
		snd, reached := refChangeSpeed(snd, speed)
		refLevel(snd, level)
		refMixAt(want, snd, reached)
		levels(&lut, level)
		got := bytes.Clone(dst)
		mix(got, src, speed, &lut, reversed)
		if !bytes.Equal(got, want) {
			t.Fatalf("speed %v level %v reversed %v: mix differs from the materialized steps", speed, level, reversed)
		}
		// A shorter dst cuts the sound.
		cut := bytes.Clone(dst[:len(dst)/2])
		mix(cut, src, speed, &lut, reversed)
		if !bytes.Equal(cut, want[:len(dst)/2]) {
			t.Fatal("a cut mix differs from the start of the whole one")
		}
	}
}

// seedOf is a captcha seed for tests, named by a string.
func seedOf(name string) (s [16]byte) {
	copy(s[:], name)
	return s
}

func wav(t *testing.T, id string, digits []byte, lang string) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := Write(&b, seedOf(id), digits, lang)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Fatalf("Write returned %d for %d bytes", n, b.Len())
	}
	return b.Bytes()
}

func TestWAVFile(t *testing.T) {
	digits := []byte{1, 2, 3, 4, 5, 6}
	for lang := range voices {
		f := wav(t, "AAAAAAAAAAAAAAAAAAAAAA", digits, lang)
		if string(f[0:4]) != "RIFF" || string(f[8:16]) != "WAVEfmt " || string(f[36:40]) != "data" {
			t.Fatalf("%s: not a RIFF WAVE header: %q", lang, f[:44])
		}
		n := int(binary.LittleEndian.Uint32(f[40:]))
		if riff := int(binary.LittleEndian.Uint32(f[4:])); riff != len(f)-8 || 44+n+n%2 != len(f) {
			t.Fatalf("%s: RIFF length %d, data length %d, file %d bytes", lang, riff, n, len(f))
		}
		if binary.LittleEndian.Uint32(f[24:]) != 8000 || binary.LittleEndian.Uint16(f[34:]) != 8 {
			t.Fatalf("%s: not 8 kHz 8-bit", lang)
		}
		data := f[44 : 44+n]
		prelude := bytes.Join([][]byte{beep, silence[:], beep, silence[:], beep}, nil)
		if !bytes.HasPrefix(data, prelude) || !bytes.HasSuffix(data, endBeep) {
			t.Fatalf("%s: the beeps are not where they belong", lang)
		}
		// Seven pauses of 0.3 to 0.9 s, six digits and the beeps.
		if secs := float64(n) / 8000; secs < 4 || secs > 10 {
			t.Fatalf("%s: %.1f s long", lang, secs)
		}
	}
}

func TestWAVSameSeedSameSound(t *testing.T) {
	a := wav(t, "AAAAAAAAAAAAAAAAAAAAAA", []byte{1, 2, 3, 4, 5, 6}, "en")
	if !bytes.Equal(a, wav(t, "AAAAAAAAAAAAAAAAAAAAAA", []byte{1, 2, 3, 4, 5, 6}, "en")) {
		t.Fatal("the same seed and digits sound different")
	}
	if bytes.Equal(a, wav(t, "BAAAAAAAAAAAAAAAAAAAAA", []byte{1, 2, 3, 4, 5, 6}, "en")) {
		t.Fatal("another seed sounds the same")
	}
	if bytes.Equal(a, wav(t, "AAAAAAAAAAAAAAAAAAAAAA", []byte{1, 2, 3, 4, 5, 7}, "en")) {
		t.Fatal("other digits sound the same")
	}
	if !bytes.Equal(a, wav(t, "AAAAAAAAAAAAAAAAAAAAAA", []byte{1, 2, 3, 4, 5, 6}, "xx")) {
		t.Fatal("an unknown language is not English")
	}
	if bytes.Equal(a, wav(t, "AAAAAAAAAAAAAAAAAAAAAA", []byte{1, 2, 3, 4, 5, 6}, "ru")) {
		t.Fatal("Russian sounds like English")
	}
	if _, err := Write(&bytes.Buffer{}, seedOf("x"), []byte{1, 10}, "en"); err == nil {
		t.Fatal("digit 10 accepted")
	}
}

// The digits are in the sound: rendered again from the same seed without
// them, only their places differ, each by the digit's recording re-pitched
// and levelled as drawn.
func TestDigitsAreSpoken(t *testing.T) {
	digits := []byte{0, 9, 3, 3, 7, 1, 8, 2}
	for lang, v := range voices {
		r := renderers.Get().(*renderer)
		r.seed = seedOf("id")
		with := bytes.Clone(r.compose(v, digits, true))
		without := r.compose(v, digits, false)
		want := bytes.Clone(without)
		at := r.gaps[0]
		for i, d := range digits {
			s := r.said[i]
			if at < len(want) {
				snd, reached := refChangeSpeed(v.digits[d], s.speed)
				refLevel(snd, s.level*v.gain[d])
				refMixAt(want[at:], snd, reached)
			}
			at += s.n + r.gaps[i+1]
		}
		if !bytes.Equal(with, want) {
			t.Fatalf("%s: the digits are not mixed in where they were drawn", lang)
		}
		if bytes.Equal(with, without) {
			t.Fatalf("%s: no digit is heard", lang)
		}
		renderers.Put(r)
	}
}

// The background is as long as the digits and their pauses, so none is cut,
// even 32 of Portuguese's longest digit.
func TestBackgroundFitsTheDigits(t *testing.T) {
	v := voices["pt"]
	long := byte(0)
	for d, s := range v.digits {
		if len(s) > len(v.digits[long]) {
			long = byte(d)
		}
	}
	digits := bytes.Repeat([]byte{long}, 32)
	for i := range 20 {
		r := renderers.Get().(*renderer)
		r.seed = seedOf(string(rune('a' + i)))
		bg := r.compose(v, digits, true)
		end := 0
		for k, s := range r.said {
			end += r.gaps[k] + s.n
		}
		if end+r.gaps[len(digits)] != len(bg) {
			t.Fatalf("the digits and pauses take %d samples, the background %d", end+r.gaps[len(digits)], len(bg))
		}
		renderers.Put(r)
	}
	wav(t, "id", digits, "pt")
}

func TestVoices(t *testing.T) {
	for _, lang := range []string{"en", "ru", "zh", "ja", "pt"} {
		v := voices[lang]
		if v == nil {
			t.Fatalf("no %s recordings", lang)
		}
		for d, s := range v.digits {
			if len(s) < 1000 {
				t.Fatalf("%s %d: %d samples", lang, d, len(s))
			}
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		Write(&buf, seedOf("AAAAAAAAAAAAAAAA"), []byte{1, 2, 3, 4, 5, 6}, "en")
	}
}

// Every language of one captcha is one recording but for the voice: the
// digits' speeds, levels and pauses, the noise and the babble's draws are
// the same; another seed draws them anew.
func TestLanguagesShareTheRecording(t *testing.T) {
	digits := []byte{4, 0, 7, 1, 9, 2}
	type drawn struct {
		said   []said
		gaps   []int
		babble []syllable
		noise  []byte
	}
	render := func(seed [16]byte, lang string) drawn {
		r := renderers.Get().(*renderer)
		defer renderers.Put(r)
		r.seed = seed
		r.compose(voices[lang], digits, true)
		r.reseed(streamNoise)
		noise := make([]byte, 4000) // the noise's start, as compose drew it
		r.src.Read(noise)
		return drawn{slices.Clone(r.said), slices.Clone(r.gaps), slices.Clone(r.babble), noise}
	}
	en := render(seedOf("one captcha"), "en")
	for _, lang := range []string{"ru", "zh", "ja", "pt"} {
		o := render(seedOf("one captcha"), lang)
		for i := range en.said {
			if en.said[i].speed != o.said[i].speed || en.said[i].level != o.said[i].level {
				t.Fatalf("%s: digit %d spoken at another speed or level than in English", lang, i)
			}
		}
		if !slices.Equal(en.gaps, o.gaps) {
			t.Fatalf("%s: pauses %v, English %v", lang, o.gaps, en.gaps)
		}
		n := min(len(en.babble), len(o.babble))
		if n < 20 || !slices.Equal(en.babble[:n], o.babble[:n]) {
			t.Fatalf("%s: the babble differs from English's", lang)
		}
		if !bytes.Equal(en.noise, o.noise) {
			t.Fatalf("%s: the noise differs from English's", lang)
		}
	}
	other := render(seedOf("another captcha"), "en")
	if slices.Equal(en.gaps, other.gaps) || bytes.Equal(en.noise, other.noise) {
		t.Fatal("another seed draws the same pauses or noise")
	}
	// The voice still differs.
	a, b := wav(t, "one captcha", digits, "en"), wav(t, "one captcha", digits, "ru")
	if bytes.Equal(a, b) {
		t.Fatal("English and Russian sound the same")
	}
}

// The background carries no voice: without the digits, every language's
// background is the same sound (a shorter one the start of a longer one),
// so none of it is the voice's own digits, reversed or not.
func TestBackgroundHasNoVoice(t *testing.T) {
	digits := []byte{3, 1, 4, 1, 5, 9}
	render := func(lang string) []byte {
		r := renderers.Get().(*renderer)
		defer renderers.Put(r)
		r.seed = seedOf("one captcha")
		return bytes.Clone(r.compose(voices[lang], digits, false))
	}
	en := render("en")
	for _, lang := range []string{"ru", "zh", "ja", "pt"} {
		o := render(lang)
		n := min(len(en), len(o))
		if !bytes.Equal(en[:n], o[:n]) {
			t.Fatalf("%s: the background differs from English's: it has the voice in it", lang)
		}
	}
}

// Each digit of one captcha is spoken at its own speed (and so pitch) and
// level, after a pause of its own.
func TestSpeechVaries(t *testing.T) {
	r := renderers.Get().(*renderer)
	defer renderers.Put(r)
	r.seed = seedOf("one captcha")
	r.compose(voices["en"], []byte{1, 2, 3, 4, 5, 6}, true)
	speeds, levels := map[float64]bool{}, map[float64]bool{}
	for _, s := range r.said {
		speeds[s.speed], levels[s.level] = true, true
	}
	pauses := map[int]bool{}
	for _, g := range r.gaps {
		pauses[g] = true
	}
	if len(speeds) < 6 || len(levels) < 6 || len(pauses) < 7 {
		t.Fatalf("%d speeds, %d levels and %d pauses for six digits", len(speeds), len(levels), len(pauses))
	}
}
