package captchagate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"image/png"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/captchagate/captchagate/internal/audio"
	"github.com/captchagate/captchagate/internal/digitsimg"
)

// Challenge is a kind of captcha: it issues a secret and checks an answer
// to it. The gate stores the secret, binds it to the request that needed
// it, enforces expiry and single use, and mints the token; a Challenge only
// deals with its own secret. Implementations must be safe for concurrent
// use.
//
// Digits is the default. Other kinds live in their own packages, built on
// this interface and the optional ones below, as a third party would build
// one: slider (a puzzle), altcha (proof of work), hosted (Turnstile,
// hCaptcha, reCAPTCHA). A kind implements only what it needs: Renderer if
// it has media to serve, Describer if the client needs more than URLs,
// AnswerLimiter and AnswerValidator to shape the answers it accepts.
type Challenge interface {
	// Kind names the challenge on the wire ("digits").
	Kind() string
	// Issue returns the secret of a new captcha, drawn from a cryptographic
	// source.
	Issue(IssueInfo) ([]byte, error)
	// Check reports whether c.Answer solves c.Secret, in time independent
	// of where they differ; an empty answer never solves anything. err means
	// the answer could not be checked (a hosted verifier failed): the gate
	// fails closed and answers service_unavailable. ctx is detached from the
	// client's cancellation; a checker that calls out bounds its own time.
	Check(ctx context.Context, c CheckInfo) (ok bool, err error)
}

// IssueInfo is what the gate tells a Challenge about the captcha it issues.
type IssueInfo struct {
	Now     time.Time // the gate's clock
	Expires time.Time // when the captcha stops being accepted
	// Level says how far past its threshold the key that tripped was: 0 for
	// the failure that tripped it, 1 for the one after, and so on (0 for
	// captchas asked for up front and for send-rate trips). It follows the
	// flow to refreshed and fresh captchas, so refreshing never lowers it.
	Level int
	// Sign returns HMAC-SHA256 of msg under the gate's secret, separated from
	// every other use of the secret by the challenge's Kind.
	Sign func(msg []byte) []byte
}

// CheckInfo is an answer to check against a captcha's secret.
type CheckInfo struct {
	Secret   []byte
	Answer   string
	ClientIP string        // the client address as the gate resolved it ("" if unknown)
	Request  *http.Request // the verify or guarded request
}

// A Renderer is a Challenge with media the gate serves under
// Config.Prefix: GET {prefix}{id}.{format}.
type Renderer interface {
	// Media lists the formats Render accepts.
	Media() []Media
	// Render writes the media of secret in format to w and returns its
	// Content-Type. id is the captcha's id; lang is one of the format's
	// Langs ("" when it has none).
	Render(w io.Writer, id string, secret []byte, format, lang string) (contentType string, err error)
}

// Media is one format a Renderer serves.
type Media struct {
	// Format is the URL's extension: "png", "wav", "piece.png".
	Format string
	// Member names the member of the Captcha JSON that carries the URL:
	// "image_url" and "audio_url" fill Captcha.ImageURL and AudioURL, any
	// other name goes to Captcha.Extra ("piece_url"). "" sends no URL.
	Member string
	// Langs are the languages a client may ask for with ?lang=, the first
	// the default. None: the format has no language, and ?lang= is ignored.
	Langs []string
}

// A Moder names the mode of its captchas in events and metrics
// (Event.Mode): "image", "slider", "pow", "hosted". Without it the mode is
// the Kind. The gate reports a captcha whose audio_url media this instance
// served as "audio" when it is answered.
type Moder interface {
	Mode() string
}

// A Describer adds the kind's own members to the Captcha the client is
// sent (a site key, a puzzle's geometry), in Captcha.Extra.
type Describer interface {
	Describe() map[string]any
}

// An AnswerLimiter accepts answers longer than the default 64 bytes (an
// ALTCHA payload, a hosted service's response token), up to 8 KiB.
type AnswerLimiter interface {
	MaxAnswerLen() int
}

// An AnswerValidator tells a malformed answer from a wrong one: the gate
// asks it before spending a captcha, and answers an answer it refuses with
// invalid_request (4104), the captcha unspent. It must refuse only answers
// that could solve no captcha of the kind (a slider answer that is not a
// point, an ALTCHA payload that is not base64 JSON).
type AnswerValidator interface {
	ValidAnswer(answer string) bool
}

// A Scaler is a Challenge whose difficulty rises with IssueInfo.Level (a
// proof of work). A token or answer from a captcha issued at a level whose
// Difficulty is lower than the one the request now needs is refused,
// unspent, and the request gets a captcha at its level: a captcha asked for
// early (POST new, a lower trip) cannot skip a raised difficulty.
// Difficulty must not decrease as level grows.
type Scaler interface {
	Difficulty(level int) int64
}

// Digits is the default Challenge: distorted digits as a PNG image, drawn
// as github.com/dchest/captcha draws them (internal/digitsimg), and spoken
// digits as a WAV file, with dchest's recordings and method but from reused
// buffers (internal/audio). The zero value uses 6 digits on a 240x80 image.
//
// Its secret is the digits followed by a seed of 16 bytes from crypto/rand,
// from which every render of the captcha draws its noise: the seed travels
// with the secret (sealed in the id, or stored), so every instance draws one
// captcha byte for byte alike, and no client can average several renders of
// one answer or predict the noise; the audio's languages share one recording
// but for the voice. A secret of digits alone (issued before the seed was
// added) still renders, from a seed derived from the id and the digits.
type Digits struct {
	Length int // number of digits, default 6, at most 32
	Width  int // image width in pixels, default 240
	Height int // image height in pixels, default 80
}

// digitsMedia are the Digits' formats; the audio speaks five languages,
// English by default.
var digitsMedia = []Media{
	{Format: "png", Member: "image_url"},
	{Format: "wav", Member: "audio_url", Langs: []string{"en", "ru", "zh", "ja", "pt"}},
}

func (d Digits) withDefaults() Digits {
	if d.Length <= 0 {
		d.Length = 6
	}
	d.Length = min(d.Length, 32)
	if d.Width <= 0 {
		d.Width = 240
	}
	if d.Height <= 0 {
		d.Height = 80
	}
	return d
}

// Kind implements Challenge.
func (Digits) Kind() string { return "digits" }

// Mode is "image": a Digits captcha is read, or heard ("audio", which the
// gate reports when its sound was fetched).
func (Digits) Mode() string { return "image" }

// Media implements Renderer: the picture and the sound.
func (Digits) Media() []Media { return digitsMedia }

// digitsSeedLen is the length of the seed after a secret's digits.
const digitsSeedLen = 16

// Issue implements Challenge: digits and a seed, all from crypto/rand.
func (d Digits) Issue(IssueInfo) ([]byte, error) {
	n := d.withDefaults().Length
	b := make([]byte, n+digitsSeedLen)
	if _, err := rand.Read(b[n:]); err != nil {
		return nil, err
	}
	// Each digit from a byte below 250, the largest multiple of 10 a byte
	// holds, so that no digit is likelier than another.
	var r [32]byte
	for i := 0; i < n; {
		if _, err := rand.Read(r[:]); err != nil {
			return nil, err
		}
		for _, c := range r {
			if c < 250 && i < n {
				b[i] = c % 10
				i++
			}
		}
	}
	return b, nil
}

// split returns the digits of secret and the seed its media are drawn from:
// the seed that follows the digits, or, for a secret of digits alone, one
// derived from id and the digits. ok is false if the digits are not digits.
func (d Digits) split(id string, secret []byte) (digits []byte, seed [digitsSeedLen]byte, ok bool) {
	digits = d.digitsOf(secret)
	if len(digits) < len(secret) {
		copy(seed[:], secret[len(digits):])
	} else {
		h := sha256.New()
		io.WriteString(h, "captchagate digits seed\x00")
		h.Write(digits)
		h.Write([]byte{0})
		io.WriteString(h, id)
		var sum [sha256.Size]byte
		copy(seed[:], h.Sum(sum[:0]))
	}
	for _, c := range digits {
		if c > 9 {
			return nil, seed, false
		}
	}
	return digits, seed, true
}

// PNG is an encoder for the images of challenges: fast compression, pooled
// buffers.
var pngEncoder = &png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngPool{}}

type pngPool struct{ p sync.Pool }

func (p *pngPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}
func (p *pngPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }

// Render implements Renderer.
func (d Digits) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	d = d.withDefaults()
	digits, seed, ok := d.split(id, secret)
	if !ok {
		return "", errors.New("captchagate: digits secret is not digits")
	}
	switch format {
	case "png":
		return "image/png", pngEncoder.Encode(w, digitsimg.New(mediaSeed(seed, imageMedium), digits, d.Width, d.Height))
	case "wav":
		if lang == "" {
			lang = digitsMedia[1].Langs[0]
		}
		// One seed for every language: one recording, in five voices.
		_, err := audio.Write(w, mediaSeed(seed, audioMedium), digits, lang)
		return "audio/wav", err
	}
	return "", errors.New("captchagate: unsupported format " + format)
}

// digitsOf returns the digits of secret, without the seed.
func (d Digits) digitsOf(secret []byte) []byte {
	if n := d.withDefaults().Length; len(secret) == n+digitsSeedLen {
		return secret[:n]
	}
	return secret
}

// The media of a digits captcha, each drawn from a seed of its own.
var (
	imageMedium = []byte("captchagate digits media\x00image\x00")
	audioMedium = []byte("captchagate digits media\x00audio\x00")
)

// mediaSeed derives the seed of one medium (the picture, the sound) from a
// captcha's seed, so that the two draw apart.
func mediaSeed(seed [digitsSeedLen]byte, medium []byte) (out [16]byte) {
	h := sha256.New()
	h.Write(medium)
	h.Write(seed[:])
	var sum [sha256.Size]byte
	copy(out[:], h.Sum(sum[:0]))
	return out
}

// Check implements Challenge: the answer against the secret's digits (never
// its seed). Spaces and dashes in the answer are ignored, as are fullwidth
// digits' width; anything else that is not a digit fails.
func (d Digits) Check(_ context.Context, c CheckInfo) (bool, error) {
	return digitsMatch(d.digitsOf(c.Secret), c.Answer), nil
}

func digitsMatch(secret []byte, answer string) bool {
	var buf [33]byte
	got := buf[:0]
	for _, r := range answer {
		switch {
		case r >= '0' && r <= '9':
			got = append(got, byte(r-'0'))
		case r >= '０' && r <= '９':
			got = append(got, byte(r-'０'))
		case r == ' ' || r == '-':
		default:
			return false
		}
		if len(got) > len(secret) {
			return false
		}
	}
	if len(got) == 0 || len(got) != len(secret) {
		return false
	}
	return subtle.ConstantTimeCompare(got, secret) == 1
}

// media returns the challenge's format named f, if it is a Renderer with one.
func (g *Gate) mediaFormat(f string) (Media, bool) {
	if rd, ok := g.challenge.(Renderer); ok {
		for _, m := range rd.Media() {
			if m.Format == f {
				return m, true
			}
		}
	}
	return Media{}, false
}

// signer returns IssueInfo.Sign for the gate's challenge.
func (g *Gate) signer() func([]byte) []byte {
	kind := []byte("challenge\x00" + g.challenge.Kind() + "\x00")
	return func(msg []byte) []byte {
		var sum [32]byte
		g.mac(&sum, kind, msg)
		return sum[:]
	}
}

// maxAnswerLen is the longest answer the gate's challenge accepts.
func (g *Gate) maxAnswerLen() int {
	if l, ok := g.challenge.(AnswerLimiter); ok {
		return min(max(l.MaxAnswerLen(), defaultMaxAnswer), maxAnswerCap)
	}
	return defaultMaxAnswer
}

const (
	defaultMaxAnswer = 64
	maxAnswerCap     = 8 << 10
)
