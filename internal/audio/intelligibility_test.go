package audio

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"github.com/captchagate/captchagate/internal/stoi"
)

// signals of one render: the clean digits (the render with the digits
// less the render without them) and the background under them, centred and
// resampled to the 10 kHz the measure works at (once, as every mixture
// below is a sum of these), and the RMS of the clean digits over their own
// spans.
type signals struct {
	clean, bg []float64 // at 10 kHz
	speechRMS float64
}

const measureRate = 10000

func render(seed [16]byte, digits []byte, lang string) signals {
	r := renderers.Get().(*renderer)
	defer renderers.Put(r)
	r.seed = seed
	v := voices[lang]
	with := bytes.Clone(r.compose(v, digits, true))
	without := r.compose(v, digits, false)
	clean, bg := make([]float64, len(with)), make([]float64, len(with))
	for i := range with {
		clean[i] = float64(with[i]) - float64(without[i])
		bg[i] = float64(without[i]) - 128
	}
	var sum float64
	var n int
	at := r.gaps[0]
	for k := range digits {
		for j := at; j < min(at+r.said[k].n, len(with)); j++ {
			sum += clean[j] * clean[j]
			n++
		}
		at += r.said[k].n + r.gaps[k+1]
	}
	return signals{
		clean:     stoi.Resample(clean, measureRate, sampleRate),
		bg:        stoi.Resample(bg, measureRate, sampleRate),
		speechRMS: math.Sqrt(sum / float64(max(n, 1))),
	}
}

// withBackground is the clip as served (gain 1), or with its background
// scaled by gain.
func (s signals) withBackground(gain float64) []float64 {
	out := make([]float64, len(s.clean))
	for i := range out {
		out[i] = s.clean[i] + gain*s.bg[i]
	}
	return out
}

// steadyNoise is noise shaped like the clean digits' long-term spectrum,
// at the measure's rate, scaled to the digits' level (0 dB).
func (s signals) steadyNoise(seed uint64) []float64 {
	noise := stoi.SpeechShapedNoise(s.clean, seed)
	var e float64
	for _, v := range noise {
		e += v * v
	}
	// speechRMS is at 8 kHz; resampling keeps the RMS of a sound below
	// 4 kHz, as these are, within a fraction of a dB.
	g := s.speechRMS / math.Sqrt(e/float64(len(noise)))
	for i := range noise {
		noise[i] *= g
	}
	return noise
}

// inNoise is the clean digits in noise (from steadyNoise) at snr dB.
func (s signals) inNoise(snr float64, noise []float64) []float64 {
	g := math.Pow(10, -snr/20)
	out := make([]float64, len(s.clean))
	for i := range out {
		out[i] = s.clean[i] + g*noise[i]
	}
	return out
}

func estoi(t testing.TB, clean, degraded []float64) float64 {
	e, err := stoi.ESTOI(clean, degraded, measureRate)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// equivalentSNR is the SNR of speech-shaped steady noise at which the
// clean digits score the same ESTOI as target, by bisection over -20 to
// +30 dB.
func (s signals) equivalentSNR(t testing.TB, target float64, noise []float64) float64 {
	lo, hi := -20.0, 30.0
	for range 12 {
		mid := (lo + hi) / 2
		if estoi(t, s.clean, s.inNoise(mid, noise)) < target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// TestIntelligibility measures how well a listener would make out the
// digits of the sound, with ESTOI (internal/stoi): the digits as served,
// against the same digits alone. ESTOI has no fixed scale in words
// understood, so each clip is compared with its own digits in steady noise
// shaped like them, the masker of digits-in-noise hearing tests, at a
// known signal-to-noise ratio: a clip's "equivalent SNR" is the ratio at
// which that noise leaves the digits as intelligible as the clip's own
// background does. Hearing tests find half of digit triplets understood
// by normal-hearing listeners well below 0 dB in such noise. The test
// holds every clip, in every voice, to at least +5 dB equivalent and the
// median clip to +10 dB; and checks that the measure can fail: the same
// background 12 dB louder falls below the floor.
func TestIntelligibility(t *testing.T) {
	const floor, median = 5.0, 10.0
	var atFloor, atMedian, clips, louderFails int
	var eq, es []float64
	langs := []string{"en", "ru", "zh", "ja", "pt"}
	for i := range 12 {
		var seed [16]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(i)*0x9e3779b97f4a7c15+1)
		digits := make([]byte, 6)
		for k := range digits {
			digits[k] = byte((i*7 + k*3 + i/10) % 10)
		}
		for li, lang := range langs {
			s := render(seed, digits, lang)
			noise := s.steadyNoise(uint64(i))
			e := estoi(t, s.clean, s.withBackground(1))
			es = append(es, e)
			clips++
			if e >= estoi(t, s.clean, s.inNoise(floor, noise)) {
				atFloor++
			} else {
				t.Errorf("%s, seed %d: ESTOI %.3f, below the same digits in noise at %+.0f dB", lang, i, e, floor)
			}
			if e >= estoi(t, s.clean, s.inNoise(median, noise)) {
				atMedian++
			}
			if li == i%len(langs) {
				// The control, one voice per seed: the background 12 dB
				// louder.
				if estoi(t, s.clean, s.withBackground(4)) < estoi(t, s.clean, s.inNoise(floor, noise)) {
					louderFails++
				}
				eq = append(eq, s.equivalentSNR(t, e, noise))
			}
		}
	}
	slices.Sort(eq)
	slices.Sort(es)
	t.Logf("ESTOI of %d clips: median %.3f, min %.3f, max %.3f", len(es), es[len(es)/2], es[0], es[len(es)-1])
	t.Logf("equivalent SNR of %d clips: median %+.1f dB, min %+.1f dB, max %+.1f dB", len(eq), eq[len(eq)/2], eq[0], eq[len(eq)-1])
	t.Logf("%d of %d clips at or above %+.0f dB, %d at or above %+.0f dB; the background 12 dB louder: %d of %d below %+.0f dB",
		atFloor, clips, floor, atMedian, median, louderFails, len(eq), floor)
	if 2*atMedian < clips {
		t.Errorf("%d of %d clips at or above %+.0f dB equivalent, want at least half", atMedian, clips, median)
	}
	if 2*louderFails < len(eq) {
		t.Errorf("the background 12 dB louder passes the floor in %d of %d clips: the measure cannot tell", len(eq)-louderFails, len(eq))
	}
}
