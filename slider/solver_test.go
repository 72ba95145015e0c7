package slider_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"image"
	"image/png"
	"math"
	mrand "math/rand/v2"
	"testing"
	"testing/cryptotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/slidersecret"
	"github.com/captchagate/captchagate/slider"
)

// The solvers below are what a script does with a slider puzzle: it gets
// the two PNGs a client gets (the picture and the piece, as tall as the
// picture with the piece at its height) and guesses the gap's x from their
// pixels alone. Each is a filter of the kind the attack report names: an
// alpha scan, colour and brightness scans, edge scans, column differences,
// and template matching of the piece (its pixels, its mask, its outline).
//
// A puzzle counts as solved when the guess is within the puzzle's
// tolerance of the gap, as the gate's check decides. Blind guessing (a
// uniform x over the range the gap is drawn from) solves
// (2*Tolerance+1)/range of them; each solver must solve no more than that
// plus five percentage points.

// shot is one puzzle as a script sees it, and its gap (which it does not).
type shot struct {
	w, h       int
	r, g, b, a []float64 // the picture's channels, row-major
	lum        []float64 // its luminance
	grad       []float64 // its Sobel gradient magnitude (of luminance)
	piece      []px      // the piece's visible pixels, at their picture coordinates for x = 0
	inner      []px      // the piece's opaque pixels
	outline    []px      // visible pixels with an invisible neighbour
	left       []px      // each row's leftmost visible pixel
	right      []px      // each row's rightmost visible pixel
	top, bot   int       // the rows the piece covers
	pw         int       // the piece image's width
	gap        int
	tolerance  int
	lo, hi     int // the range of x the solvers try
	blindRange int
}

type px struct {
	x, y          int
	r, g, b, a, l float64
}

func lumOf(r, g, b float64) float64 { return 0.299*r + 0.587*g + 0.114*b }

func decode(t testing.TB, b []byte) image.Image {
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	return img
}

// newShot issues and renders one puzzle through the package's API.
func newShot(t testing.TB, p slider.Puzzle) *shot {
	secret, err := p.Issue(captchagate.IssueInfo{})
	require.NoError(t, err)
	parts, ok := slidersecret.Parse(secret[:slidersecret.Len]) // the digits follow
	require.True(t, ok)
	var pic, piece bytes.Buffer
	id := rand.Text()
	_, err = p.Render(&pic, id, secret, "png", "")
	require.NoError(t, err)
	_, err = p.Render(&piece, id, secret, "piece.png", "")
	require.NoError(t, err)
	s := &shot{gap: parts.X}
	geo := p.Describe()["slider"].(slider.Geometry)
	s.tolerance = p.Tolerance
	if s.tolerance <= 0 {
		s.tolerance = 5
	}
	// The gap is drawn from [PieceWidth+8, Width-PieceWidth-4]; a script
	// that knows no better guesses uniformly there.
	s.blindRange = (geo.Width - geo.PieceWidth - 4) - (geo.PieceWidth + 8) + 1

	img := decode(t, pic.Bytes())
	s.w, s.h = img.Bounds().Dx(), img.Bounds().Dy()
	n := s.w * s.h
	s.r, s.g, s.b, s.a, s.lum = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for y := range s.h {
		for x := range s.w {
			c := nrgba(img, x, y)
			i := y*s.w + x
			s.r[i], s.g[i], s.b[i], s.a[i] = c[0], c[1], c[2], c[3]
			s.lum[i] = lumOf(c[0], c[1], c[2])
		}
	}
	s.grad = sobel(s.lum, s.w, s.h)

	pimg := decode(t, piece.Bytes())
	s.pw = pimg.Bounds().Dx()
	alpha := func(x, y int) float64 {
		if x < 0 || y < 0 || x >= s.pw || y >= pimg.Bounds().Dy() {
			return 0
		}
		return nrgba(pimg, x, y)[3]
	}
	s.top, s.bot = s.h, 0
	for y := range pimg.Bounds().Dy() {
		first := -1
		last := -1
		for x := range s.pw {
			c := nrgba(pimg, x, y)
			if c[3] == 0 {
				continue
			}
			p := px{x: x, y: y, r: c[0], g: c[1], b: c[2], a: c[3], l: lumOf(c[0], c[1], c[2])}
			s.piece = append(s.piece, p)
			if c[3] == 255 {
				s.inner = append(s.inner, p)
			}
			if alpha(x-1, y) == 0 || alpha(x+1, y) == 0 || alpha(x, y-1) == 0 || alpha(x, y+1) == 0 {
				s.outline = append(s.outline, p)
			}
			if first < 0 {
				first = len(s.piece) - 1
			}
			last = len(s.piece) - 1
			s.top, s.bot = min(s.top, y), max(s.bot, y)
		}
		if first >= 0 {
			s.left = append(s.left, s.piece[first])
			s.right = append(s.right, s.piece[last])
		}
	}
	require.NotEmpty(t, s.piece, "the piece image shows the piece")
	// The solvers try the range the gap is drawn from, as blind guessing
	// does.
	s.lo, s.hi = geo.PieceWidth+8, geo.Width-geo.PieceWidth-4
	return s
}

func nrgba(img image.Image, x, y int) [4]float64 {
	r, g, b, a := img.At(img.Bounds().Min.X+x, img.Bounds().Min.Y+y).RGBA()
	if a == 0 {
		return [4]float64{}
	}
	// Un-premultiply, to 0..255.
	return [4]float64{float64(r) * 255 / float64(a), float64(g) * 255 / float64(a), float64(b) * 255 / float64(a), float64(a) / 257}
}

func sobel(l []float64, w, h int) []float64 {
	out := make([]float64, len(l))
	at := func(x, y int) float64 {
		x = min(max(x, 0), w-1)
		y = min(max(y, 0), h-1)
		return l[y*w+x]
	}
	for y := range h {
		for x := range w {
			gx := at(x+1, y-1) + 2*at(x+1, y) + at(x+1, y+1) - at(x-1, y-1) - 2*at(x-1, y) - at(x-1, y+1)
			gy := at(x-1, y+1) + 2*at(x, y+1) + at(x+1, y+1) - at(x-1, y-1) - 2*at(x, y-1) - at(x+1, y-1)
			out[y*w+x] = math.Hypot(gx, gy)
		}
	}
	return out
}

func (s *shot) at(v []float64, x, y int) float64 {
	if x < 0 || y < 0 || x >= s.w || y >= s.h {
		return 0
	}
	return v[y*s.w+x]
}

// argmax returns the x in [lo, hi] with the highest score, ties broken at
// random (a flat score is a blind guess, not a guess of lo).
func (s *shot) argmax(rng *mrand.Rand, score func(x int) float64) int {
	best, bestX, ties := math.Inf(-1), s.lo, 0
	for x := s.lo; x <= s.hi; x++ {
		v := score(x)
		switch {
		case math.IsNaN(v):
			continue
		case v > best+1e-9:
			best, bestX, ties = v, x, 1
		case math.Abs(v-best) <= 1e-9:
			ties++
			if rng.IntN(ties) == 0 {
				bestX = x
			}
		}
	}
	return bestX
}

// ncc is the normalized cross-correlation of a and b (0 if either is flat).
func ncc(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= float64(len(a))
	mb /= float64(len(b))
	var sab, saa, sbb float64
	for i := range a {
		da, db := a[i]-ma, b[i]-mb
		sab += da * db
		saa += da * da
		sbb += db * db
	}
	if saa < 1e-9 || sbb < 1e-9 {
		return 0
	}
	return sab / math.Sqrt(saa*sbb)
}

type solver struct {
	name  string
	guess func(s *shot, rng *mrand.Rand) int
}

// sumOver scores x by the sum of f over the pixels of set placed at x.
func sumOver(s *shot, set []px, f func(x, y int) float64) func(x int) float64 {
	return func(x int) float64 {
		var sum float64
		for _, p := range set {
			sum += f(x+p.x, p.y)
		}
		return sum
	}
}

var solvers = []solver{
	// (a) Alpha: the least opaque piece-shaped place.
	{"alpha scan", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, sumOver(s, s.piece, func(x, y int) float64 { return 255 - s.at(s.a, x, y) }))
	}},
	// (b) Colour and brightness: the darkest, the brightest and the least
	// saturated band of columns across the piece's rows, and the same in
	// the piece's shape.
	{"darkest column band", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, bandScore(s, func(x, y int) float64 { return -s.at(s.lum, x, y) }))
	}},
	{"brightest column band", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, bandScore(s, func(x, y int) float64 { return s.at(s.lum, x, y) }))
	}},
	{"least saturated band", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, bandScore(s, func(x, y int) float64 { return -saturation(s, x, y) }))
	}},
	{"darkest piece shape", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, sumOver(s, s.piece, func(x, y int) float64 { return -s.at(s.lum, x, y) }))
	}},
	{"brightest piece shape", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, sumOver(s, s.piece, func(x, y int) float64 { return s.at(s.lum, x, y) }))
	}},
	{"least saturated piece shape", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, sumOver(s, s.piece, func(x, y int) float64 { return -saturation(s, x, y) }))
	}},
	// (c) Edges: the band with the most gradient, and the piece's outline
	// laid on the gradient.
	{"edge band (Sobel)", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, bandScore(s, func(x, y int) float64 { return s.at(s.grad, x, y) }))
	}},
	{"edge outline (Sobel)", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, sumOver(s, s.outline, func(x, y int) float64 { return s.at(s.grad, x, y) }))
	}},
	// (d) Column differences: the column that differs most from its
	// neighbour across the piece's rows (the gap's left edge), and the
	// differences at each row's left and right ends of the piece.
	{"column difference peak", func(s *shot, rng *mrand.Rand) int {
		off := s.left[len(s.left)/2].x // the piece's left edge, mid-height
		return s.argmax(rng, func(x int) float64 { return colDiff(s, x+off) })
	}},
	{"column differences at the piece's sides", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, func(x int) float64 {
			var sum float64
			for _, p := range s.left {
				sum += math.Abs(s.at(s.lum, x+p.x, p.y) - s.at(s.lum, x+p.x-1, p.y))
			}
			for _, p := range s.right {
				sum += math.Abs(s.at(s.lum, x+p.x+1, p.y) - s.at(s.lum, x+p.x, p.y))
			}
			return sum
		})
	}},
	// (e) Template matching: the piece's pixels against the picture by sum
	// of squared differences and by normalized cross-correlation (colour
	// and luminance); the piece's mask against the picture's luminance
	// (the hole darker or lighter than its ring); its outline against the
	// picture's gradient.
	{"template SSD (RGB)", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, func(x int) float64 {
			var sum float64
			for _, p := range s.inner {
				dr := p.r - s.at(s.r, x+p.x, p.y)
				dg := p.g - s.at(s.g, x+p.x, p.y)
				db := p.b - s.at(s.b, x+p.x, p.y)
				sum += dr*dr + dg*dg + db*db
			}
			return -sum
		})
	}},
	{"template NCC (luminance)", func(s *shot, rng *mrand.Rand) int {
		a := make([]float64, len(s.inner))
		for i, p := range s.inner {
			a[i] = p.l
		}
		b := make([]float64, len(s.inner))
		return s.argmax(rng, func(x int) float64 {
			for i, p := range s.inner {
				b[i] = s.at(s.lum, x+p.x, p.y)
			}
			return ncc(a, b)
		})
	}},
	{"template NCC (RGB)", func(s *shot, rng *mrand.Rand) int {
		a := make([]float64, 3*len(s.inner))
		for i, p := range s.inner {
			a[3*i], a[3*i+1], a[3*i+2] = p.r, p.g, p.b
		}
		b := make([]float64, len(a))
		return s.argmax(rng, func(x int) float64 {
			for i, p := range s.inner {
				b[3*i], b[3*i+1], b[3*i+2] = s.at(s.r, x+p.x, p.y), s.at(s.g, x+p.x, p.y), s.at(s.b, x+p.x, p.y)
			}
			return ncc(a, b)
		})
	}},
	{"mask NCC (luminance, either sign)", func(s *shot, rng *mrand.Rand) int {
		return s.argmax(rng, maskNCC(s, s.lum))
	}},
	{"outline NCC (gradient)", func(s *shot, rng *mrand.Rand) int {
		in := map[[2]int]bool{}
		for _, p := range s.outline {
			in[[2]int{p.x, p.y}] = true
		}
		var a []float64
		var at [][2]int
		for y := s.top - 2; y <= s.bot+2; y++ {
			for x := range s.pw {
				at = append(at, [2]int{x, y})
				if in[[2]int{x, y}] {
					a = append(a, 1)
				} else {
					a = append(a, 0)
				}
			}
		}
		b := make([]float64, len(a))
		return s.argmax(rng, func(x int) float64 {
			for i, p := range at {
				b[i] = s.at(s.grad, x+p[0], p[1])
			}
			return ncc(a, b)
		})
	}},
}

func saturation(s *shot, x, y int) float64 {
	r, g, b := s.at(s.r, x, y), s.at(s.g, x, y), s.at(s.b, x, y)
	return max(r, g, b) - min(r, g, b)
}

// bandScore sums f over the columns x..x+pw-1 of the piece's rows.
func bandScore(s *shot, f func(x, y int) float64) func(x int) float64 {
	cols := make([]float64, s.w)
	for c := range s.w {
		for y := s.top; y <= s.bot; y++ {
			cols[c] += f(c, y)
		}
	}
	return func(x int) float64 {
		var sum float64
		for i := range s.pw {
			if x+i < s.w {
				sum += cols[x+i]
			}
		}
		return sum
	}
}

// colDiff is column c's difference from column c-1 across the piece's rows.
func colDiff(s *shot, c int) float64 {
	var sum float64
	for y := s.top; y <= s.bot; y++ {
		sum += math.Abs(s.at(s.lum, c, y) - s.at(s.lum, c-1, y))
	}
	return sum
}

// maskNCC correlates the piece's mask (1 inside, 0 in the rest of its box)
// with v, either sign: a hole that differs from its ring in any direction.
func maskNCC(s *shot, v []float64) func(x int) float64 {
	in := map[[2]int]bool{}
	for _, p := range s.piece {
		in[[2]int{p.x, p.y}] = true
	}
	var a []float64
	var at [][2]int
	for y := s.top - 2; y <= s.bot+2; y++ {
		for x := range s.pw {
			at = append(at, [2]int{x, y})
			if in[[2]int{x, y}] {
				a = append(a, 1)
			} else {
				a = append(a, 0)
			}
		}
	}
	b := make([]float64, len(a))
	return func(x int) float64 {
		for i, p := range at {
			b[i] = s.at(v, x+p[0], p[1])
		}
		return math.Abs(ncc(a, b))
	}
}

// puzzles is how many puzzles the solvers try: fewer under -short and
// -race (the measurement is the same, only slower; the race detector's
// run is some ten times slower).
func puzzles() int {
	switch {
	case raceEnabled:
		return 60
	case testing.Short():
		return 100
	}
	return 300
}

// TestSolversDoNoBetterThanBlindGuessing renders puzzles through the
// package's API and runs every solver on each: none may solve more than
// blind guessing does plus five percentage points.
//
// crypto/rand is made deterministic for the test (so the test is not
// parallel), so that every run measures the same puzzles: a rate near the
// line does not pass one run and fail the next. The seed was not chosen; a
// change to the renderer draws other puzzles from it.
func TestSolversDoNoBetterThanBlindGuessing(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 1)
	p := slider.Puzzle{}
	n := puzzles()
	solved := make([]int, len(solvers))
	var seed [8]byte
	rand.Read(seed[:])
	rng := mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:]), 1))
	blind := 0.0
	for range n {
		s := newShot(t, p)
		blind = float64(2*s.tolerance+1) / float64(s.blindRange)
		for i, sv := range solvers {
			if g := sv.guess(s, rng); g >= s.gap-s.tolerance && g <= s.gap+s.tolerance {
				solved[i]++
			}
		}
	}
	// Five points at 300 puzzles, as the issue asks; fewer puzzles spread a
	// blind guesser's rate wider (its standard deviation is
	// sqrt(blind*(1-blind)/n)), and the allowance widens by three times the
	// difference.
	sd := func(n int) float64 { return math.Sqrt(blind * (1 - blind) / float64(n)) }
	allow := 0.05 + 3*max(sd(n)-sd(300), 0)
	for i, sv := range solvers {
		rate := float64(solved[i]) / float64(n)
		t.Logf("%-42s %3d/%d = %5.1f%% (blind %.1f%%)", sv.name, solved[i], n, 100*rate, 100*blind)
		assert.LessOrEqual(t, rate, blind+allow, "%s solves %d of %d puzzles: more than blind guessing (%.1f%%) and %.1f points", sv.name, solved[i], n, 100*blind, 100*allow)
	}
}

// The solvers are real: given a puzzle whose gap is marked as the old
// renderer marked it (darkened, with a light outline), each of the filters
// meant for such a mark finds it. This keeps the test above from passing
// only because a solver is broken.
func TestSolversFindAMarkedGap(t *testing.T) {
	t.Parallel()
	p := slider.Puzzle{}
	rng := mrand.New(mrand.NewPCG(1, 2))
	n := 40
	solved := make([]int, len(solvers))
	for range n {
		s := newShot(t, p)
		// Mark the gap on the picture the way the old renderer did: the
		// piece's pixels darkened to a third, its outline light and
		// translucent.
		edge := map[[2]int]bool{}
		for _, q := range s.outline {
			edge[[2]int{q.x, q.y}] = true
		}
		for _, q := range s.piece {
			i := q.y*s.w + s.gap + q.x
			if edge[[2]int{q.x, q.y}] {
				s.r[i], s.g[i], s.b[i], s.a[i] = 255, 255, 255, 200
			} else {
				s.r[i], s.g[i], s.b[i] = s.r[i]/3, s.g[i]/3, s.b[i]/3
			}
			s.lum[i] = lumOf(s.r[i], s.g[i], s.b[i])
		}
		s.grad = sobel(s.lum, s.w, s.h)
		for i, sv := range solvers {
			if g := sv.guess(s, rng); g >= s.gap-s.tolerance && g <= s.gap+s.tolerance {
				solved[i]++
			}
		}
	}
	for i, sv := range solvers {
		t.Logf("%-42s %3d/%d on a marked gap", sv.name, solved[i], n)
	}
	for _, name := range []string{"alpha scan", "darkest piece shape", "edge outline (Sobel)", "column differences at the piece's sides", "mask NCC (luminance, either sign)", "outline NCC (gradient)"} {
		for i, sv := range solvers {
			if sv.name == name {
				assert.Greater(t, solved[i], n/2, "%s finds a marked gap", name)
			}
		}
	}
}

// orientationSolver is a smarter solver than the filters above, written to
// state honestly what the puzzle does not resist: it knows the gap is
// streaked along the other diagonal than the picture, measures each pixel's
// difference from its neighbours along either diagonal, and lays the
// piece's mask on the difference of the two.
func orientationSolver(s *shot, rng *mrand.Rand) int {
	o := make([]float64, len(s.lum))
	for y := 1; y < s.h-1; y++ {
		for x := 1; x < s.w-1; x++ {
			l := s.lum[y*s.w+x]
			down := math.Abs(l-s.lum[(y+1)*s.w+x+1]) + math.Abs(l-s.lum[(y-1)*s.w+x-1])
			up := math.Abs(l-s.lum[(y+1)*s.w+x-1]) + math.Abs(l-s.lum[(y-1)*s.w+x+1])
			o[y*s.w+x] = down - up
		}
	}
	return s.argmax(rng, maskNCC(s, o))
}

// The gap is there to be seen: a filter that looks for the streaks' other
// diagonal finds it in most puzzles. This is what a person sees, and what a
// script written against this renderer can do (docs/challenges.md).
func TestOrientationFilterFindsTheGap(t *testing.T) {
	t.Parallel()
	rng := mrand.New(mrand.NewPCG(3, 4))
	n := puzzles() / 3
	solved := 0
	for range n {
		s := newShot(t, slider.Puzzle{})
		if g := orientationSolver(s, rng); g >= s.gap-s.tolerance && g <= s.gap+s.tolerance {
			solved++
		}
	}
	t.Logf("orientation filter: %d/%d", solved, n)
	assert.Greater(t, solved, n/2, "the gap's streaks are too faint to be seen")
}
