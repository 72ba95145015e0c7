package captchagate

import (
	"bytes"
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
)

// Slider is a slider-puzzle Challenge, as in the identity-service flow of
// the seeds: a background picture with a piece cut out, and the piece, which
// the visitor drags to the gap. The answer is the piece's x position,
// within Tolerance pixels; y is fixed, as in that flow.
//
// Pictures are drawn on the server with the standard library: one of the
// backgrounds shipped in the package (drawn by internal/cmd/backgrounds),
// cropped at a random offset, mirrored at random and given grain, so no two
// puzzles share pixels. The gap's position and the picture's variation come
// from crypto/rand.
//
// Answers, on verify or inline as captcha_answer, are the seed's point_json
// (`{"x":237.0,"y":5.0}`) or a bare x ("237"). The gate's verify endpoint
// also speaks the seed's request (point_json, token, sender and device
// headers); see docs/challenges.md.
type Slider struct {
	Width     int // picture width in pixels, default 320
	Height    int // picture height, default 160
	Tolerance int // how far from the gap an answer may be, default 5 pixels
	// ClientIDs, if set, are the X-client-id values the seed-compatible
	// verify accepts; others are answered "app not registered" (4113).
	ClientIDs []string
}

// SliderGeometry tells the client how to lay the puzzle out: the picture's
// size, the piece image's size (as tall as the picture, the piece drawn at
// its height) and the y every answer carries.
type SliderGeometry struct {
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
	sliderSecret  = 13 // x, y (uint16 each), background, flip, grain seed (8)
	sliderMaxSide = 1024
)

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

func (s Slider) withDefaults() Slider {
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

// Kind implements Challenge.
func (Slider) Kind() string { return "slider" }

// Formats implements Challenge: the picture and the piece.
func (Slider) Formats() []string { return []string{"png", "piece.png"} }

// Describe implements Describer.
func (s Slider) Describe(c *Captcha) {
	s = s.withDefaults()
	c.Slider = &SliderGeometry{Width: s.Width, Height: s.Height, PieceWidth: sliderPiece, Y: sliderFixedY}
}

// MaxAnswerLen implements AnswerLimiter: point_json is longer than digits.
func (Slider) MaxAnswerLen() int { return 128 }

// Issue implements Challenge.
func (s Slider) Issue() ([]byte, error) {
	s = s.withDefaults()
	b := make([]byte, sliderSecret)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	// The gap sits right of the piece's starting place, clear of the edges.
	lo, hi := sliderPiece+8, s.Width-sliderPiece-4
	x := lo + int(binary.BigEndian.Uint16(b[0:2]))%(hi-lo+1)
	y := 4 + int(binary.BigEndian.Uint16(b[2:4]))%(s.Height-sliderPiece-8+1)
	binary.BigEndian.PutUint16(b[0:2], uint16(x))
	binary.BigEndian.PutUint16(b[2:4], uint16(y))
	return b, nil
}

type sliderSecretParts struct {
	x, y  int
	bg    int
	flip  bool
	grain uint64
}

func parseSliderSecret(secret []byte) (sliderSecretParts, bool) {
	if len(secret) != sliderSecret {
		return sliderSecretParts{}, false
	}
	return sliderSecretParts{
		x:     int(binary.BigEndian.Uint16(secret[0:2])),
		y:     int(binary.BigEndian.Uint16(secret[2:4])),
		bg:    int(secret[4]),
		flip:  secret[5]&1 == 1,
		grain: binary.BigEndian.Uint64(secret[5:13]) | 1, // xorshift needs a non-zero seed
	}, true
}

// X returns the gap's x position in secret, for tests that solve puzzles
// the way a person would (and nothing else: the secret never leaves the
// server).
func (Slider) X(secret []byte) (int, bool) {
	p, ok := parseSliderSecret(secret)
	return p.x, ok
}

// Render implements Challenge.
func (s Slider) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	s = s.withDefaults()
	p, ok := parseSliderSecret(secret)
	if !ok || p.x+sliderPiece > s.Width || p.y+sliderPiece > s.Height {
		return "", errors.New("captchagate: malformed slider secret")
	}
	bg := s.background(p)
	switch format {
	case "png":
		for yy := range sliderPiece {
			for xx := range sliderPiece {
				switch pieceMask(xx, yy) {
				case maskInside:
					o := bg.PixOffset(p.x+xx, p.y+yy)
					for c := range 3 { // the gap: darkened
						bg.Pix[o+c] = bg.Pix[o+c] / 3
					}
				case maskEdge:
					bg.SetRGBA(p.x+xx, p.y+yy, color.RGBA{255, 255, 255, 200})
				}
			}
		}
		return "image/png", pngEncoder.Encode(w, bg)
	case "piece.png":
		piece := image.NewNRGBA(image.Rect(0, 0, sliderPiece, s.Height))
		for yy := range sliderPiece {
			for xx := range sliderPiece {
				switch pieceMask(xx, yy) {
				case maskInside:
					c := bg.RGBAAt(p.x+xx, p.y+yy)
					piece.SetNRGBA(xx, p.y+yy, color.NRGBA{c.R, c.G, c.B, 255})
				case maskEdge:
					piece.SetNRGBA(xx, p.y+yy, color.NRGBA{255, 255, 255, 255})
				}
			}
		}
		return "image/png", pngEncoder.Encode(w, piece)
	}
	return "", errors.New("captchagate: unsupported format " + format)
}

// background is the puzzle's picture before the gap: a crop of one of the
// shipped backgrounds, mirrored or not, with grain.
func (s Slider) background(p sliderSecretParts) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, s.Width, s.Height))
	set := backgrounds()
	if len(set) == 0 { // cannot happen: the backgrounds are embedded
		draw.Draw(out, out.Bounds(), image.NewUniform(color.RGBA{90, 120, 150, 255}), image.Point{}, draw.Src)
		return out
	}
	src := set[p.bg%len(set)]
	sb := src.Bounds()
	g := p.grain
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
			if p.flip {
				sx = s.Width - 1 - x
			}
			sx = sb.Min.X + (ox+sx)%sb.Dx()
			si := src.PixOffset(sx, sy)
			di := out.PixOffset(x, y)
			n := int(next()%25) - 12
			for c := range 3 {
				out.Pix[di+c] = uint8(min(max(int(src.Pix[si+c])+n, 0), 255))
			}
			out.Pix[di+3] = 255
		}
	}
	return out
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

// Check implements Challenge: answer is point_json or a bare x, within
// Tolerance of the gap.
func (s Slider) Check(secret []byte, answer string) bool {
	p, ok := parseSliderSecret(secret)
	if !ok {
		return false
	}
	x, ok := parseSliderAnswer(answer)
	if !ok {
		return false
	}
	tol := float64(s.withDefaults().Tolerance)
	// Not a byte comparison: the distance alone decides, and it is computed
	// the same way wherever the gap is.
	return math.Abs(x-float64(p.x)) <= tol
}

// ValidAnswer implements AnswerValidator: answer is a point or an x on the
// picture.
func (Slider) ValidAnswer(answer string) bool {
	_, ok := parseSliderAnswer(answer)
	return ok
}

// parseSliderAnswer reads point_json ({"x":237.0,"y":5.0}) or a bare x.
func parseSliderAnswer(answer string) (float64, bool) {
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
