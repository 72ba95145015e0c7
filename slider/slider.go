// Package slider is a slider-puzzle kind of captcha for captchagate: a
// background picture with a piece cut out, and the piece, which the visitor
// drags to the gap. It is built on captchagate's exported Challenge,
// Renderer, Describer, AnswerLimiter and AnswerValidator only.
package slider

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/slidersecret"
)

// Puzzle is a slider-puzzle captchagate.Challenge, as in the
// identity-service flow of the seeds. The answer is the piece's x position,
// within Tolerance pixels; y is fixed, as in that flow.
//
// Pictures are drawn on the server with the standard library: one of the
// backgrounds shipped in the package (drawn by internal/backgrounds),
// cropped at a random offset, mirrored at random and brushed, its grain
// streaked along one diagonal, so no two puzzles share pixels. The gap is
// the piece-shaped patch streaked along the other diagonal: it is not cut
// out, darkened or outlined, so filters of brightness, colour, alpha, edges
// or column differences do not find it, and the piece carries no pixel of
// the picture to match (see docs/challenges.md for the solvers tried). The
// gap's position and the picture's variation come from crypto/rand.
//
// Answers, on verify or inline as captcha_answer, are the seed's point_json
// (`{"x":237.0,"y":5.0}`) or a bare x ("237"). The seed's own verify request
// (point_json, token, sender and device headers) is the dialect of package
// dialect/idaas; see docs/challenges.md.
//
// A puzzle also offers a way through that needs no sight and no pointer:
// its secret carries, besides the gap, the secret of a captchagate.Digits
// captcha of the default six digits, drawn apart from the gap with its own
// crypto/rand, whose picture and sound the gate serves beside the puzzle's
// ("digits_image_url", and "audio_url" in the Digits' five voices) and
// draws as Digits does, noise and all. An answer of six digits (spaces and
// dashes ignored, as Digits ignores them) is checked against those digits,
// any other against the gap. Either answer spends the one captcha, under the
// one binding and the same limits: no second captcha, no second id.
type Puzzle struct {
	Width     int // picture width in pixels, default 320
	Height    int // picture height, default 160
	Tolerance int // how far from the gap an answer may be, default 5 pixels
}

// Geometry tells the client how to lay the puzzle out: the picture's size,
// the piece image's size (as tall as the picture, the piece drawn at its
// height) and the y every answer carries. It is the Captcha's "slider"
// member.
type Geometry struct {
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	PieceWidth int     `json:"piece_width"`
	Y          float64 `json:"y"`
}

const (
	sliderPiece   = 48 // the piece's box: a 36-pixel square and two knobs
	sliderSquare  = 36
	sliderKnob    = 7
	sliderFixedY  = 5.0
	sliderMaxSide = 1024
)

// The backgrounds are embedded here, and so only in binaries that use the
// slider.
//
//go:embed backgrounds/*.png
var backgroundFS embed.FS

var backgrounds = sync.OnceValue(func() []*image.RGBA {
	entries, _ := backgroundFS.ReadDir("backgrounds")
	var out []*image.RGBA
	for _, e := range entries {
		f, err := backgroundFS.Open("backgrounds/" + e.Name())
		if err != nil {
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			continue
		}
		rgba := image.NewRGBA(img.Bounds())
		draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
		out = append(out, rgba)
	}
	return out
})

func (s Puzzle) withDefaults() Puzzle {
	if s.Width <= 0 {
		s.Width = 320
	}
	if s.Height <= 0 {
		s.Height = 160
	}
	s.Width = min(max(s.Width, 3*sliderPiece), sliderMaxSide)
	s.Height = min(max(s.Height, sliderPiece+10), sliderMaxSide)
	if s.Tolerance <= 0 {
		s.Tolerance = 5
	}
	return s
}

// Kind implements captchagate.Challenge.
func (Puzzle) Kind() string { return "slider" }

// Mode implements captchagate.Moder: "slider".
func (Puzzle) Mode() string { return "slider" }

// Media implements captchagate.Renderer: the picture and the piece, and
// the digits' picture and sound.
func (Puzzle) Media() []captchagate.Media { return media }

// digits is the puzzle's way through for who cannot see or drag it: the
// default Digits, whose picture and sound the puzzle serves as its own.
var digits = captchagate.Digits{}

// digitsLen is the number of digits, and the length of a digits answer:
// Digits' default. A Digits secret is the digits and a seed of 16 bytes.
const (
	digitsLen       = 6
	digitsSecretLen = digitsLen + 16
)

var media = func() []captchagate.Media {
	m := []captchagate.Media{{Format: "png", Member: "image_url"}, {Format: "piece.png", Member: "piece_url"}}
	for _, d := range digits.Media() {
		switch d.Format {
		case "png":
			d.Format, d.Member = "digits.png", "digits_image_url"
		case "wav":
			d.Member = "audio_url"
		}
		m = append(m, d)
	}
	return m
}()

// digitsFormat returns the Digits format that the puzzle's format names
// ("digits.png" is Digits' "png"), or "" if it is the puzzle's own.
func digitsFormat(format string) string {
	switch format {
	case "digits.png":
		return "png"
	case "wav":
		return "wav"
	}
	return ""
}

// Describe implements captchagate.Describer: the puzzle's Geometry, as the
// "slider" member.
func (s Puzzle) Describe() map[string]any {
	s = s.withDefaults()
	return map[string]any{"slider": Geometry{Width: s.Width, Height: s.Height, PieceWidth: sliderPiece, Y: sliderFixedY}}
}

// MaxAnswerLen implements captchagate.AnswerLimiter: point_json is longer
// than digits.
func (Puzzle) MaxAnswerLen() int { return 128 }

// Issue implements captchagate.Challenge: the gap and the picture's
// variation, then the secret of a Digits captcha, each from crypto/rand.
func (s Puzzle) Issue(info captchagate.IssueInfo) ([]byte, error) {
	s = s.withDefaults()
	b := make([]byte, slidersecret.Len)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	d, err := digits.Issue(info)
	if err != nil {
		return nil, err
	}

	// The gap sits right of the piece's starting place, clear of the edges.
	lo, hi := sliderPiece+8, s.Width-sliderPiece-4
	x := lo + int(binary.BigEndian.Uint16(b[0:2]))%(hi-lo+1)
	y := 4 + int(binary.BigEndian.Uint16(b[2:4]))%(s.Height-sliderPiece-8+1)
	binary.BigEndian.PutUint16(b[0:2], uint16(x))
	binary.BigEndian.PutUint16(b[2:4], uint16(y))
	return append(b, d...), nil
}

// split returns the puzzle's part of secret and the Digits secret after it
// (nil in a secret issued before the digits were added).
func split(secret []byte) (puzzle, digits []byte) {
	if len(secret) <= slidersecret.Len {
		return secret, nil
	}
	return secret[:slidersecret.Len], secret[slidersecret.Len:]
}

// Render implements captchagate.Renderer. The digits' media are drawn from
// the digits' secret alone: nothing of the gap goes into them.
func (s Puzzle) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	s = s.withDefaults()
	secret, ds := split(secret)
	if f := digitsFormat(format); f != "" {
		if len(ds) != digitsSecretLen {
			return "", errors.New("slider: no digits in the secret")
		}
		return digits.Render(w, id, ds, f, lang)
	}
	p, ok := slidersecret.Parse(secret)
	if !ok || p.X+sliderPiece > s.Width || p.Y+sliderPiece > s.Height {
		return "", errors.New("slider: malformed secret")
	}
	bg := s.background(p)
	switch format {
	case "png":
		s.brush(bg, p)
		return "image/png", pngEncoder.Encode(w, bg)
	case "piece.png":
		return "image/png", pngEncoder.Encode(w, s.piece(bg, p))
	}
	return "", errors.New("slider: unsupported format " + format)
}

// background is the puzzle's picture before the gap: a crop of one of the
// shipped backgrounds, mirrored or not, with grain.
func (s Puzzle) background(p slidersecret.Parts) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, s.Width, s.Height))
	set := backgrounds()
	if len(set) == 0 { // cannot happen: the backgrounds are embedded
		draw.Draw(out, out.Bounds(), image.NewUniform(color.RGBA{90, 120, 150, 255}), image.Point{}, draw.Src)
		return out
	}
	src := set[p.BG%len(set)]
	sb := src.Bounds()
	g := p.Grain
	next := func() uint64 { // xorshift over the secret's seed
		g ^= g << 13
		g ^= g >> 7
		g ^= g << 17
		return g
	}
	ox := int(next() % uint64(max(sb.Dx()-s.Width, 1)))
	oy := int(next() % uint64(max(sb.Dy()-s.Height, 1)))
	for y := range s.Height {
		sy := sb.Min.Y + (oy+y)%sb.Dy()
		for x := range s.Width {
			sx := x
			if p.Flip {
				sx = s.Width - 1 - x
			}
			sx = sb.Min.X + (ox+sx)%sb.Dx()
			si := src.PixOffset(sx, sy)
			di := out.PixOffset(x, y)
			n := int(next()%7) - 3
			for c := range 3 {
				out.Pix[di+c] = uint8(min(max(int(src.Pix[si+c])+n, 0), 255))
			}
			out.Pix[di+3] = 255
		}
	}
	return out
}

// The gap is not cut out, darkened or outlined: the whole picture is
// brushed, its grain streaked along one diagonal, and the gap's grain along
// the other. The eye sees the piece-shaped patch of crossing streaks at
// once; a filter of brightness, colour, alpha, gradient or column
// differences sees the same statistics inside the gap, outside it and on
// its border (streaks of one length along either diagonal differ in none
// of them), and the piece carries no pixel of the picture to match.
const (
	brushLen  = 6  // a streak is 2*brushLen+1 pixels of noise summed along a diagonal
	brushAmp  = 8  // each pixel of noise is uniform in [-brushAmp, brushAmp]
	pieceTint = 40 // how far the piece's colour is lifted towards white
	brushFade = 2  // the gap's grain fades into the picture's over 2*brushFade pixels
	// Half way through the fade the two streaks cross, and crossing grain
	// has gradients of every direction, whose magnitudes are some 11%
	// larger than one direction's of the same strength (Rayleigh against
	// half-normal): the fade is toned down by up to brushDip there, so that
	// Sobel along the gap's outline finds what it finds elsewhere. The dip
	// also lowers plain differences of neighbours across the border, which
	// crossing does not raise: 0.08 splits the two. Measured over 1000
	// puzzles (blind guessing: 5.2%), Sobel along the outline solved 9.2%
	// with no dip; at 0.08, the Sobel solvers 4.5 to 6.1%, and the lowest
	// (not the highest) column differences at the piece's sides 6.5%.
	brushDip = 0.08
)

// brushRNG is the xorshift generator of a puzzle's brush strokes, seeded
// from its secret apart from the background's.
type brushRNG uint64

func (g *brushRNG) next() uint64 {
	*g ^= *g << 13
	*g ^= *g >> 7
	*g ^= *g << 17
	return uint64(*g)
}

// streaks returns w*h streaks of noise, each the sum of 2*brushLen+1
// noise pixels along the diagonal down-right (if !downRight, down-left).
func streaks(g *brushRNG, w, h int, downRight bool) []int16 {
	const L = brushLen
	nw, nh := w+2*L, h+2*L
	noise := make([]int8, nw*nh)
	for i := range noise {
		noise[i] = int8(int(g.next()%(2*brushAmp+1)) - brushAmp)
	}
	out := make([]int16, w*h)
	step := nw + 1 // down-right
	if !downRight {
		step = nw - 1
	}
	for y := range h {
		for x := range w {
			var sum int16
			i := y*nw + x + L - L*(step-nw) // (x, y) - L steps, in noise's frame
			for range 2*L + 1 {
				sum += int16(noise[i])
				i += step
			}
			out[y*w+x] = sum
		}
	}
	return out
}

// brush streaks pic's grain along one diagonal, and the gap's along the
// other.
func (s Puzzle) brush(pic *image.RGBA, p slidersecret.Parts) {
	g := brushRNG(p.Grain*0x9e3779b97f4a7c15 | 1)
	dir := g.next()&1 == 1
	outside := streaks(&g, s.Width, s.Height, dir)
	// The gap's box, with room for the fade.
	bx, by, bw := p.X-brushFade, p.Y-brushFade, sliderPiece+2*brushFade
	inside := streaks(&g, bw, bw, !dir)
	for y := range s.Height {
		for x := range s.Width {
			n := float64(outside[y*s.Width+x])
			if x >= bx && x < bx+bw && y >= by && y < by+bw {
				// Across the gap's border one grain fades into the other
				// keeping its strength (cos² + sin² = 1), so that the
				// border's gradients are those on either side of it.
				d := pieceDist(float64(x-p.X)+0.5, float64(y-p.Y)+0.5)
				t := min(max((d+brushFade)/(2*brushFade), 0), 1) * math.Pi / 2
				n = math.Cos(t)*float64(inside[(y-by)*bw+x-bx]) + math.Sin(t)*n
				n *= 1 - brushDip*math.Pow(math.Sin(2*t), 2)
			}
			o := pic.PixOffset(x, y)
			for c := range 3 {
				pic.Pix[o+c] = uint8(min(max(int(pic.Pix[o+c])+int(math.Round(n)), 0), 255))
			}
		}
	}
}

// piece draws the piece: the picture's mean colour, lifted, with a grain of
// its own and a light edge. It carries nothing of the gap: no pixel of the
// picture, and no streaks (streaks along the gap's diagonal, even from noise
// of its own, correlate better with the gap's than with the picture's).
func (s Puzzle) piece(bg *image.RGBA, p slidersecret.Parts) *image.NRGBA {
	var sum [3]int
	for i := 0; i < len(bg.Pix); i += 4 {
		for c := range 3 {
			sum[c] += int(bg.Pix[i+c])
		}
	}
	var mean [3]int
	for c := range 3 {
		mean[c] = sum[c]/(len(bg.Pix)/4) + (255-sum[c]/(len(bg.Pix)/4))*pieceTint/100
	}
	g := brushRNG(p.Grain*0xbf58476d1ce4e5b9 | 1)
	piece := image.NewNRGBA(image.Rect(0, 0, sliderPiece, s.Height))
	for yy := range sliderPiece {
		for xx := range sliderPiece {
			switch pieceMask(xx, yy) {
			case maskInside:
				n := int(g.next()%13) - 6
				c := color.NRGBA{A: 255}
				c.R = uint8(min(max(mean[0]+n, 0), 255))
				c.G = uint8(min(max(mean[1]+n, 0), 255))
				c.B = uint8(min(max(mean[2]+n, 0), 255))
				piece.SetNRGBA(xx, p.Y+yy, c)
			case maskEdge:
				piece.SetNRGBA(xx, p.Y+yy, color.NRGBA{255, 255, 255, 255})
			}
		}
	}
	return piece
}

const (
	maskOutside = iota
	maskInside
	maskEdge
)

// pieceMask says where (x, y) of the piece's box lies: a square with a knob
// on its top and one on its right, and a 2-pixel edge around them.
func pieceMask(x, y int) int {
	d := pieceDist(float64(x)+0.5, float64(y)+0.5)
	switch {
	case d <= 0:
		return maskInside
	case d <= 2:
		return maskEdge
	}
	return maskOutside
}

// pieceDist is the distance from (x, y) to the piece's shape (negative
// inside).
func pieceDist(x, y float64) float64 {
	const (
		off = float64(sliderKnob + 2) // square's top-left, leaving room for the top knob
		sq  = float64(sliderSquare)
	)
	// Square from (2, off) to (2+sq, off+sq).
	dx := math.Max(math.Max(2-x, x-(2+sq)), 0)
	dy := math.Max(math.Max(off-y, y-(off+sq)), 0)
	d := math.Hypot(dx, dy)
	if dx == 0 && dy == 0 {
		d = -math.Min(math.Min(x-2, 2+sq-x), math.Min(y-off, off+sq-y))
	}
	top := math.Hypot(x-(2+sq/2), y-off) - sliderKnob
	right := math.Hypot(x-(2+sq), y-(off+sq/2)) - sliderKnob
	return math.Min(d, math.Min(top, right))
}

// Check implements captchagate.Challenge: the answer is the six digits,
// checked as Digits checks them, or point_json or a bare x, within
// Tolerance of the gap.
func (s Puzzle) Check(ctx context.Context, c captchagate.CheckInfo) (bool, error) {
	secret, ds := split(c.Secret)
	if IsDigits(c.Answer) {
		if len(ds) != digitsSecretLen {
			return false, nil
		}
		c.Secret = ds
		return digits.Check(ctx, c)
	}
	p, ok := slidersecret.Parse(secret)
	if !ok {
		return false, nil
	}
	x, ok := parseAnswer(c.Answer)
	if !ok {
		return false, nil
	}
	tol := float64(s.withDefaults().Tolerance)
	// Not a byte comparison: the distance alone decides, and it is computed
	// the same way wherever the gap is.
	return math.Abs(x-float64(p.X)) <= tol, nil
}

// ValidAnswer implements captchagate.AnswerValidator: answer is six digits,
// or a point or an x on the picture.
func (Puzzle) ValidAnswer(answer string) bool {
	if IsDigits(answer) {
		return true
	}
	_, ok := parseAnswer(answer)
	return ok
}

// IsDigits reports whether answer is a digits answer, the puzzle's way
// through without sight: six digits (ASCII or fullwidth), with spaces and
// dashes between them and nothing else. An x has at most four digits
// before its point (x <= 1024), so no x the widget or the seed sends reads
// as digits. A dialect that checks answers in its own order (dialect/idaas)
// calls it to tell digits from a malformed point.
func IsDigits(answer string) bool {
	n := 0
	for _, r := range answer {
		switch {
		case r >= '0' && r <= '9', r >= '０' && r <= '９':
			n++
		case r == ' ' || r == '-':
		default:
			return false
		}
	}
	return n == digitsLen
}

// parseAnswer reads point_json ({"x":237.0,"y":5.0}) or a bare x.
func parseAnswer(answer string) (float64, bool) {
	answer = strings.TrimSpace(answer)
	if answer == "" {
		return 0, false
	}
	var x float64
	if answer[0] == '{' {
		var pt struct {
			X *float64 `json:"x"`
			Y *float64 `json:"y"`
		}
		d := json.NewDecoder(bytes.NewReader([]byte(answer)))
		if d.Decode(&pt) != nil || pt.X == nil || pt.Y == nil || d.More() {
			return 0, false
		}
		x = *pt.X
	} else {
		v, err := strconv.ParseFloat(answer, 64)
		if err != nil {
			return 0, false
		}
		x = v
	}
	if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 || x > sliderMaxSide {
		return 0, false
	}
	return x, true
}

var pngEncoder = &png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngPool{}}

type pngPool struct{ p sync.Pool }

func (p *pngPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}
func (p *pngPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }
