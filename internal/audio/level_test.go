package audio

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

// levelFigures are the per-digit levels of many renders: each spoken
// digit's signal (the render with the digits less the render without them,
// over the digit's span) over the background under that span, as RMS dB,
// and the clip lengths of six digits in seconds.
type levelFigures struct {
	snr  []float64 // dB, sorted
	lang map[string][]float64
	secs []float64 // sorted
}

func measureLevels(seeds int) levelFigures {
	f := levelFigures{lang: map[string][]float64{}}
	langs := []string{"en", "ru", "zh", "ja", "pt"}
	for i := range seeds {
		var seed [16]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(i)*0x9e3779b97f4a7c15)
		digits := make([]byte, 6)
		for k := range digits {
			digits[k] = byte((i*7 + k*3 + i/10) % 10)
		}
		for _, lang := range langs {
			v := voices[lang]
			r := renderers.Get().(*renderer)
			r.seed = seed
			with := bytes.Clone(r.compose(v, digits, true))
			without := r.compose(v, digits, false)
			at := r.gaps[0]
			for k := range digits {
				end := min(at+r.said[k].n, len(with))
				var sig, bg float64
				for j := at; j < end; j++ {
					d := float64(with[j]) - float64(without[j])
					b := float64(without[j]) - 128
					sig += d * d
					bg += b * b
				}
				if end > at {
					db := 10 * math.Log10(sig/max(bg, 1e-9))
					f.snr = append(f.snr, db)
					f.lang[lang] = append(f.lang[lang], db)
				}
				at += r.said[k].n + r.gaps[k+1]
			}
			renderers.Put(r)
			var b bytes.Buffer
			n, _ := Write(&b, seed, digits, lang)
			f.secs = append(f.secs, float64(n-44)/sampleRate)
		}
	}
	slices.Sort(f.snr)
	slices.Sort(f.secs)
	for _, s := range f.lang {
		slices.Sort(s)
	}
	return f
}

func pct(s []float64, p float64) float64 { return s[int(p*float64(len(s)-1))] }

// TestDigitLevels measures how far each spoken digit stands above the
// background under it, over 200 captchas of six digits in each of the five
// voices, and holds the sound to a median of at least 10 dB with no digit
// below 5 dB.
func TestDigitLevels(t *testing.T) {
	f := measureLevels(200)
	t.Logf("per-digit signal over background, %d digits: median %.1f dB, 10th percentile %.1f dB, min %.1f dB, max %.1f dB",
		len(f.snr), pct(f.snr, 0.5), pct(f.snr, 0.1), f.snr[0], f.snr[len(f.snr)-1])
	t.Logf("clip of six digits: median %.1f s, min %.1f s, max %.1f s", pct(f.secs, 0.5), f.secs[0], f.secs[len(f.secs)-1])
	for _, lang := range []string{"en", "ru", "zh", "ja", "pt"} {
		s := f.lang[lang]
		t.Logf("  %s: median %.1f dB, 10th percentile %.1f dB, min %.1f dB", lang, pct(s, 0.5), pct(s, 0.1), s[0])
	}
	if m := pct(f.snr, 0.5); m < 10 {
		t.Errorf("median digit %.1f dB above the background, want at least 10", m)
	}
	if f.snr[0] < 5 {
		t.Errorf("a digit %.1f dB above the background, want none below 5", f.snr[0])
	}
	if f.secs[len(f.secs)-1] > 10 {
		t.Errorf("a clip of six digits runs %.1f s, want at most 10", f.secs[len(f.secs)-1])
	}
}
