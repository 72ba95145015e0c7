package captchagate

import (
	"context"
	"crypto/subtle"
	"errors"
	"image/png"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/dchest/captcha"

	"github.com/captchagate/captchagate/internal/audio"
)

// Challenge is a kind of captcha: it issues a secret, renders it as media and
// checks an answer. The gate stores the secret, binds it to the request that
// needed it, enforces expiry and single use, and mints the token; a Challenge
// only deals with its own secret. Implementations must be safe for concurrent
// use. Digits is the default; other kinds (slider puzzles, proof of work,
// hosted verifiers) plug into the same flow.
type Challenge interface {
	// Kind names the challenge on the wire ("digits").
	Kind() string
	// Issue returns a new secret, drawn from a cryptographic source.
	Issue() ([]byte, error)
	// Formats lists the media formats Render accepts ("png", "wav"), in the
	// order the Captcha's image and audio URLs use them.
	Formats() []string
	// Render writes the media of secret in format to w and returns its
	// Content-Type. id is the captcha's id; lang is a validated language tag
	// for audio ("" when not given).
	Render(w io.Writer, id string, secret []byte, format, lang string) (contentType string, err error)
	// Check reports whether answer solves secret, in time independent of
	// where they differ. An empty answer never solves anything.
	Check(secret []byte, answer string) bool
}

// Optional interfaces a Challenge may implement, for kinds that need more
// than a secret, media and a pure check.

// IssueInfo is what the gate tells an Issuer about the captcha it issues.
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

// An Issuer is a Challenge whose secret depends on when and for whom it is
// issued (Altcha signs and dates its challenges and scales their
// difficulty). The gate calls IssueFor instead of Issue.
type Issuer interface {
	IssueFor(IssueInfo) ([]byte, error)
}

// CheckInfo is what a RemoteChecker is asked to check.
type CheckInfo struct {
	Secret   []byte
	Answer   string
	ClientIP string        // the client address as the gate resolved it ("" if unknown)
	Request  *http.Request // the verify or guarded request
}

// A RemoteChecker is a Challenge whose check calls out (the hosted
// verifiers). The gate calls CheckRemote instead of Check, with a context
// detached from the client's cancellation; the checker bounds its own time.
// An error means the answer could not be checked: the gate fails closed and
// answers service_unavailable.
type RemoteChecker interface {
	CheckRemote(ctx context.Context, c CheckInfo) (bool, error)
}

// A Describer adds what the client needs besides URLs to the Captcha it is
// sent (a site key, a puzzle's geometry).
type Describer interface {
	Describe(c *Captcha)
}

// An AnswerLimiter accepts answers longer than the default 64 bytes (an
// ALTCHA payload, a hosted service's response token).
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

// Digits is the default Challenge: distorted digits as a PNG image, drawn
// with github.com/dchest/captcha's pure functions (never its global store),
// and spoken digits as a WAV file, with dchest's recordings and method but
// from reused buffers (internal/audio). The zero value uses 6 digits on a 240x80 image.
type Digits struct {
	Length int // number of digits, default 6, at most 32
	Width  int // image width in pixels, default 240
	Height int // image height in pixels, default 80
}

// audioLangs are the languages the Digits audio speaks; the first is the
// default.
var audioLangs = []string{"en", "ru", "zh", "ja", "pt"}

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

// Formats implements Challenge.
func (Digits) Formats() []string { return []string{"png", "wav"} }

// Issue implements Challenge. dchest/captcha draws the digits from
// crypto/rand.
func (d Digits) Issue() ([]byte, error) {
	return captcha.RandomDigits(d.withDefaults().Length), nil
}

var pngEncoder = &png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngPool{}}

type pngPool struct{ p sync.Pool }

func (p *pngPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}
func (p *pngPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }

// Render implements Challenge.
func (d Digits) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	d = d.withDefaults()
	for _, c := range secret {
		if c > 9 {
			return "", errors.New("captchagate: digits secret is not digits")
		}
	}
	switch format {
	case "png":
		img := captcha.NewImage(id, secret, d.Width, d.Height)
		return "image/png", pngEncoder.Encode(w, img.Paletted)
	case "wav":
		if lang == "" {
			lang = audioLangs[0]
		}
		_, err := audio.Write(w, id, secret, lang)
		return "audio/wav", err
	}
	return "", errors.New("captchagate: unsupported format " + format)
}

// Check implements Challenge. Spaces and dashes in the answer are ignored, as
// are fullwidth digits' width; anything else that is not a digit fails.
func (d Digits) Check(secret []byte, answer string) bool {
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

func validLang(lang string) bool {
	return slices.Contains(audioLangs, lang)
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
