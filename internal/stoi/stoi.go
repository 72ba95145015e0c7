// Package stoi computes the short-time objective intelligibility of speech
// in noise: STOI (Taal, Hendriks, Heusdens and Jensen, IEEE TASLP 2011) and
// its extension for modulated maskers, ESTOI (Jensen and Taal, IEEE TASLP
// 2016). Both compare a degraded signal with the clean speech in it and
// return a score that rises monotonically with the share of words
// listeners understand; ESTOI also accounts for maskers that come and go,
// such as babble.
//
// It is a port of pystoi 0.4.1 (github.com/mpariente/pystoi, MIT), itself
// checked against the authors' MATLAB code: the same resampling to 10 kHz,
// silent-frame removal, 1/3-octave bands, 384 ms segments and clipping.
// pystoi adds random noise of machine-epsilon size before ESTOI's
// normalisations; this port does not, and leaves an all-zero row or column
// at zero instead. stoi_test.go holds pystoi's own results for fixed
// inputs, which this port matches.
package stoi

import (
	"errors"
	"math"
	"math/cmplx"
)

const (
	fs       = 10000 // the rate the measure is defined at
	nFrame   = 256   // window, samples
	nFFT     = 512
	numBand  = 15 // 1/3-octave bands
	minFreq  = 150
	nSeg     = 30 // frames per segment (384 ms)
	beta     = -15.0
	dynRange = 40.0
	eps      = 2.220446049250313e-16
)

// ErrTooShort is returned when fewer than 30 frames of speech remain after
// silent frames are removed (pystoi returns 1e-5 and warns).
var ErrTooShort = errors.New("stoi: fewer than 30 frames of speech (384 ms) after removing silent frames")

// STOI returns the STOI of degraded against clean, both sampled at rate
// Hz, of the same length.
func STOI(clean, degraded []float64, rate int) (float64, error) {
	return measure(clean, degraded, rate, false)
}

// ESTOI returns the extended STOI of degraded against clean, both sampled
// at rate Hz, of the same length.
func ESTOI(clean, degraded []float64, rate int) (float64, error) {
	return measure(clean, degraded, rate, true)
}

func measure(x, y []float64, rate int, extended bool) (float64, error) {
	if len(x) != len(y) {
		return 0, errors.New("stoi: clean and degraded differ in length")
	}
	if rate != fs {
		x, y = Resample(x, fs, rate), Resample(y, fs, rate)
	}
	x, y = removeSilentFrames(x, y)
	xs, ys := bands(x), bands(y)
	frames := len(xs)
	if frames < nSeg {
		return 0, ErrTooShort
	}
	segments := frames - nSeg + 1
	var sum float64
	xseg := make([][]float64, numBand) // band × frame of one segment
	yseg := make([][]float64, numBand)
	for b := range numBand {
		xseg[b] = make([]float64, nSeg)
		yseg[b] = make([]float64, nSeg)
	}
	clip := math.Pow(10, -beta/20)
	col := make([]float64, numBand) // rowColNormalize's scratch
	for m := nSeg; m <= frames; m++ {
		for b := range numBand {
			for k := range nSeg {
				xseg[b][k] = xs[m-nSeg+k][b]
				yseg[b][k] = ys[m-nSeg+k][b]
			}
		}
		if extended {
			rowColNormalize(xseg, col)
			rowColNormalize(yseg, col)
			for b := range numBand {
				for k := range nSeg {
					sum += xseg[b][k] * yseg[b][k] / nSeg
				}
			}
			continue
		}
		for b := range numBand {
			xv, yv := xseg[b], yseg[b]
			alpha := norm(xv) / (norm(yv) + eps)
			for k := range nSeg {
				yv[k] = min(yv[k]*alpha, xv[k]*(1+clip))
			}
			center(xv)
			center(yv)
			nx, ny := norm(xv)+eps, norm(yv)+eps
			for k := range nSeg {
				sum += (xv[k] / nx) * (yv[k] / ny)
			}
		}
	}
	if extended {
		return sum / float64(segments), nil
	}
	return sum / float64(segments*numBand), nil
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func center(v []float64) {
	var m float64
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	for i := range v {
		v[i] -= m
	}
}

// rowColNormalize gives every row (a band over the segment's frames), then
// every column (a frame over the bands), zero mean and unit norm. col is
// scratch of len(seg).
func rowColNormalize(seg [][]float64, col []float64) {
	for _, row := range seg {
		center(row)
		if n := norm(row); n > 0 {
			for k := range row {
				row[k] /= n
			}
		}
	}
	for k := range seg[0] {
		for b := range seg {
			col[b] = seg[b][k]
		}
		center(col)
		n := norm(col)
		for b := range seg {
			if n > 0 {
				seg[b][k] = col[b] / n
			} else {
				seg[b][k] = 0
			}
		}
	}
}

// hanning is MATLAB's hanning(n): the Hann window without its zero ends.
func hanning(n int) []float64 {
	w := make([]float64, n)
	for k := range w {
		w[k] = 0.5 * (1 - math.Cos(2*math.Pi*float64(k+1)/float64(n+1)))
	}
	return w
}

var window = hanning(nFrame)

// removeSilentFrames drops the frames (256 samples, hop 128, Hann
// windowed) whose clean energy is more than 40 dB below the loudest clean
// frame, from both signals, and overlap-adds what is left.
func removeSilentFrames(x, y []float64) ([]float64, []float64) {
	const hop = nFrame / 2
	var starts []int
	var energies []float64
	top := math.Inf(-1)
	for i := 0; i < len(x)-nFrame; i += hop {
		var e float64
		for k := range nFrame {
			v := window[k] * x[i+k]
			e += v * v
		}
		db := 20 * math.Log10(math.Sqrt(e)+eps)
		starts = append(starts, i)
		energies = append(energies, db)
		top = max(top, db)
	}
	var keep []int
	for j, e := range energies {
		if top-dynRange-e < 0 {
			keep = append(keep, starts[j])
		}
	}
	if len(keep) == 0 {
		return nil, nil
	}
	n := (len(keep)-1)*hop + nFrame
	xo, yo := make([]float64, n), make([]float64, n)
	for j, at := range keep {
		for k := range nFrame {
			xo[j*hop+k] += window[k] * x[at+k]
			yo[j*hop+k] += window[k] * y[at+k]
		}
	}
	return xo, yo
}

// obm is the 1/3-octave band matrix: for each band, the FFT bins [lo, hi).
var obm = func() (b [numBand][2]int) {
	nearest := func(freq float64) int {
		best, bi := math.Inf(1), 0
		for k := 0; k <= nFFT/2; k++ {
			f := float64(k) * fs / nFFT
			if d := (f - freq) * (f - freq); d < best {
				best, bi = d, k
			}
		}
		return bi
	}
	for i := range numBand {
		k := float64(i)
		b[i][0] = nearest(minFreq * math.Pow(2, (2*k-1)/6))
		b[i][1] = nearest(minFreq * math.Pow(2, (2*k+1)/6))
	}
	return b
}()

// bands returns the 1/3-octave band amplitudes of each STFT frame of x
// (256-sample Hann frames, hop 128, 512-point FFT).
func bands(x []float64) [][numBand]float64 {
	const hop = nFrame / 2
	var out [][numBand]float64
	buf := make([]complex128, nFFT)
	for i := 0; i < len(x)-nFrame; i += hop {
		clear(buf)
		for k := range nFrame {
			buf[k] = complex(window[k]*x[i+k], 0)
		}
		fft(buf)
		var f [numBand]float64
		for b, r := range obm {
			var e float64
			for k := r[0]; k < r[1]; k++ {
				a := cmplx.Abs(buf[k])
				e += a * a
			}
			f[b] = math.Sqrt(e)
		}
		out = append(out, f)
	}
	return out
}

// fft transforms a in place; len(a) is a power of two.
func fft(a []complex128) {
	n := len(a)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			a[i], a[j] = a[j], a[i]
		}
	}
	tw := twiddles(n)
	for size := 2; size <= n; size <<= 1 {
		step := n / size
		for start := 0; start < n; start += size {
			for k := range size / 2 {
				u, v := a[start+k], a[start+k+size/2]*tw[k*step]
				a[start+k], a[start+k+size/2] = u+v, u-v
			}
		}
	}
}

var frameTwiddles = makeTwiddles(nFFT)

// twiddles returns e^(-2πik/n) for k < n/2.
func twiddles(n int) []complex128 {
	if n == nFFT {
		return frameTwiddles
	}
	return makeTwiddles(n)
}

func makeTwiddles(n int) []complex128 {
	tw := make([]complex128, n/2)
	for k := range tw {
		tw[k] = cmplx.Exp(complex(0, -2*math.Pi*float64(k)/float64(n)))
	}
	return tw
}

// Resample converts x from rate q to rate p as pystoi does (Octave's
// resample: a Kaiser-windowed sinc with 60 dB rejection, applied as
// scipy's resample_poly applies it, centred on each output sample).
func Resample(x []float64, p, q int) []float64 {
	g := gcd(p, q)
	p, q = p/g, q/g
	if p == q {
		return append([]float64(nil), x...)
	}
	const rejection = 60.0
	cutoff := 1 / (2 * float64(max(p, q)))
	half := int(math.Ceil((rejection - 8) / (28.714 * cutoff / 10)))
	kb := 0.1102 * (rejection - 8.7)
	h := make([]float64, 2*half+1)
	var sum float64
	for i := range h {
		t := float64(i - half)
		s := 2 * cutoff * t
		sinc := 1.0
		if s != 0 {
			sinc = math.Sin(math.Pi*s) / (math.Pi * s)
		}
		r := 2*float64(i)/float64(len(h)-1) - 1
		h[i] = 2 * float64(p) * cutoff * sinc * bessel0(kb*math.Sqrt(1-r*r)) / bessel0(kb)
		sum += h[i]
	}
	for i := range h {
		h[i] *= float64(p) / sum
	}
	nOut := (len(x)*p + q - 1) / q
	out := make([]float64, nOut)
	for n := range out {
		// out[n] = Σ_i h[half + n·q − i·p]·x[i], over the i that reach h.
		c := half + n*q
		i := 0
		if c >= len(h) {
			i = (c-len(h))/p + 1
		}
		var s float64
		for k := c - i*p; k >= 0 && i < len(x); k, i = k-p, i+1 {
			s += h[k] * x[i]
		}
		out[n] = s
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// bessel0 is the modified Bessel function of the first kind, order 0.
func bessel0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 200; k++ {
		term *= (x / 2) / float64(k)
		sum += term * term
		if term*term < sum*1e-17 {
			break
		}
	}
	return sum
}
