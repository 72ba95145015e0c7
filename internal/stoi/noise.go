package stoi

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
)

// SpeechShapedNoise returns stationary noise as long as x with x's
// long-term spectrum: x's magnitude spectrum under random phases, the
// masker of digits-in-noise hearing tests. Its draws come from seed.
func SpeechShapedNoise(x []float64, seed uint64) []float64 {
	n := 1
	for n < len(x) {
		n <<= 1
	}
	a := make([]complex128, n)
	for i, v := range x {
		a[i] = complex(v, 0)
	}
	fft(a)
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for k := 1; k < n/2; k++ {
		m := cmplx.Abs(a[k])
		p := 2 * math.Pi * rnd.Float64()
		a[k] = cmplx.Rect(m, p)
		a[n-k] = cmplx.Conj(a[k])
	}
	a[0] = 0
	a[n/2] = complex(cmplx.Abs(a[n/2]), 0)
	// The inverse transform, by conjugating around the forward one.
	for i := range a {
		a[i] = cmplx.Conj(a[i])
	}
	fft(a)
	out := make([]float64, len(x))
	for i := range out {
		out[i] = real(a[i]) / float64(n)
	}
	return out
}
