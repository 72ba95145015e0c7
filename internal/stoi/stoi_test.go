package stoi

import (
	"math"
	"testing"
)

// lcgNoise is uniform noise in [-1, 1) from a 64-bit LCG, as the
// reference script draws it.
func lcgNoise(n int, seed uint64) []float64 {
	out := make([]float64, n)
	s := seed
	for i := range out {
		s = s*6364136223846793005 + 1442695040888963407
		out[i] = float64(s>>11)/float64(1<<53)*2 - 1
	}
	return out
}

// speech is a voiced signal with a gliding pitch, syllable-rate envelope
// and pauses, as the reference script makes it.
func speech(n, rate int) []float64 {
	out := make([]float64, n)
	for i := range out {
		t := float64(i) / float64(rate)
		if math.Mod(t, 1.0) > 0.7 {
			continue
		}
		f0 := 120 + 30*math.Sin(2*math.Pi*0.5*t)
		env := math.Abs(math.Sin(2 * math.Pi * 3 * t))
		var v float64
		for h := 1; h < 12; h++ {
			v += math.Sin(2*math.Pi*f0*float64(h)*t) / float64(h)
		}
		out[i] = env * v
	}
	return out
}

func rms(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s / float64(len(v)))
}

// pystoi is what pystoi 0.4.1 (numpy 1.24.2, scipy 1.10.1) returned for
// these inputs: rate, SNR (dB), masker, STOI, ESTOI. The script that
// produced them is in testdata/ref.py.
var pystoi = []struct {
	rate, snr   int
	masker      string
	stoi, estoi float64
}{
	{8000, -10, "steady", 0.534647, 0.104186},
	{8000, -10, "modulated", 0.395185, 0.143731},
	{8000, -5, "steady", 0.637474, 0.206978},
	{8000, -5, "modulated", 0.485629, 0.225687},
	{8000, 0, "steady", 0.739924, 0.333549},
	{8000, 0, "modulated", 0.592527, 0.322567},
	{8000, 5, "steady", 0.817270, 0.465777},
	{8000, 5, "modulated", 0.696904, 0.409306},
	{10000, -10, "steady", 0.585276, 0.168666},
	{10000, -10, "modulated", 0.460536, 0.214440},
	{10000, -5, "steady", 0.674673, 0.277012},
	{10000, -5, "modulated", 0.550454, 0.302955},
	{10000, 0, "steady", 0.763345, 0.404115},
	{10000, 0, "modulated", 0.649485, 0.391076},
	{10000, 5, "steady", 0.829578, 0.527593},
	{10000, 5, "modulated", 0.743140, 0.473836},
	{16000, -10, "steady", 0.615030, 0.200822},
	{16000, -10, "modulated", 0.483291, 0.257441},
	{16000, -5, "steady", 0.705947, 0.300526},
	{16000, -5, "modulated", 0.580130, 0.342277},
	{16000, 0, "steady", 0.787857, 0.416155},
	{16000, 0, "modulated", 0.679279, 0.413200},
	{16000, 5, "steady", 0.842948, 0.530650},
	{16000, 5, "modulated", 0.762243, 0.480008},
}

// TestMatchesPystoi holds this port to pystoi's own results, steady and
// modulated noise at four SNRs and three rates (so resampling is checked
// both ways).
func TestMatchesPystoi(t *testing.T) {
	for _, c := range pystoi {
		n := int(float64(c.rate) * 3.1)
		x := speech(n, c.rate)
		noise := lcgNoise(n, 7)
		gain := rms(x) / rms(noise) / math.Pow(10, float64(c.snr)/20)
		y := make([]float64, n)
		for i := range y {
			m := 1.0
			if c.masker == "modulated" {
				m = 0.2
				if math.Mod(float64(i)/float64(c.rate), 0.25) < 0.125 {
					m = 2
				}
			}
			y[i] = x[i] + noise[i]*gain*m
		}
		s, err := STOI(x, y, c.rate)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ESTOI(x, y, c.rate)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%5d Hz %3d dB %-9s STOI %.6f (pystoi %.6f), ESTOI %.6f (pystoi %.6f)", c.rate, c.snr, c.masker, s, c.stoi, e, c.estoi)
		if math.Abs(s-c.stoi) > 2e-6 || math.Abs(e-c.estoi) > 2e-6 {
			t.Errorf("%d Hz, %d dB, %s: STOI %.6f ESTOI %.6f, pystoi %.6f %.6f", c.rate, c.snr, c.masker, s, e, c.stoi, c.estoi)
		}
	}
}
