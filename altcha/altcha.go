// Package altcha is an invisible proof-of-work kind of captcha for
// captchagate, in the formats the ALTCHA web component solves unmodified:
// ProofOfWork serves ALTCHA's v1 challenges, ProofOfWorkV2 its v2 ones (key
// derivation with a cost). It is built on captchagate's exported Challenge,
// Renderer, AnswerLimiter and AnswerValidator only.
package altcha

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/captchagate/captchagate"
)

// ProofOfWork is an invisible proof-of-work captchagate.Challenge in the
// format the ALTCHA
// web component (npm package altcha, its v1 challenge format, which the v3
// widget still speaks) solves unmodified: no picture, no puzzle, only CPU
// time in the visitor's browser.
//
// The Captcha's challenge_url serves the challenge as JSON
// ({"algorithm":"SHA-256","challenge":...,"maxnumber":...,"salt":...,
// "signature":...}); point the widget's challenge attribute at it. The
// widget's payload (base64 JSON) is the answer, posted to verify or inline as
// captcha_answer. Challenges are signed with the gate's secret and dated
// (?expires= in the salt, which the widget honours), and every one is stored
// and taken on its first answer, so a solved challenge is accepted once: the
// replay store the upstream Go library lacks. The server checks the payload
// against its stored salt, number and signature, never against what the
// payload claims, so challenges cannot be spliced.
//
// Difficulty is MaxNumber, doubled for every RaiseEvery failures a key has
// past its threshold, up to MaxNumberLimit.
type ProofOfWork struct {
	// MaxNumber bounds the secret number: the browser tries about half of
	// it on average. Default 50,000 (well under a second on a phone).
	MaxNumber int64
	// RaiseEvery doubles MaxNumber for every this many failures past the
	// threshold. Default 3; negative never raises it.
	RaiseEvery int
	// MaxNumberLimit caps the raised MaxNumber. Default 64 × MaxNumber.
	MaxNumberLimit int64
}

const (
	altchaAlgorithm = "SHA-256"
	altchaSaltBytes = 12
	altchaMaxAnswer = 2 << 10
)

func (a ProofOfWork) withDefaults() ProofOfWork {
	if a.MaxNumber <= 0 {
		a.MaxNumber = 50_000
	}
	if a.RaiseEvery == 0 {
		a.RaiseEvery = 3
	}
	if a.MaxNumberLimit <= 0 {
		a.MaxNumberLimit = 64 * a.MaxNumber
	}
	a.MaxNumberLimit = max(a.MaxNumberLimit, a.MaxNumber)
	return a
}

// Difficulty implements captchagate.Scaler: the largest number a
// challenge of level may hide.
func (a ProofOfWork) Difficulty(level int) int64 { return a.maxNumber(level) }

// maxNumber is the difficulty for level.
func (a ProofOfWork) maxNumber(level int) int64 {
	a = a.withDefaults()
	n := a.MaxNumber
	if a.RaiseEvery > 0 {
		for range min(level/a.RaiseEvery, 40) {
			if n >= a.MaxNumberLimit/2 {
				return a.MaxNumberLimit
			}
			n *= 2
		}
	}
	return min(n, a.MaxNumberLimit)
}

// Kind implements captchagate.Challenge.
func (ProofOfWork) Kind() string { return "altcha" }

// Mode implements captchagate.Moder: "pow", a proof of work.
func (ProofOfWork) Mode() string { return "pow" }

// Media implements captchagate.Renderer: the challenge JSON, whose URL is
// the Captcha's "challenge_url" member (give it to the widget's challenge
// attribute).
func (ProofOfWork) Media() []captchagate.Media {
	return []captchagate.Media{{Format: "json", Member: "challenge_url"}}
}

// MaxAnswerLen implements captchagate.AnswerLimiter.
func (ProofOfWork) MaxAnswerLen() int { return altchaMaxAnswer }

// ValidAnswer implements captchagate.AnswerValidator: answer decodes as a
// payload.
func (ProofOfWork) ValidAnswer(answer string) bool {
	_, ok := DecodePayload(answer)
	return ok
}

// The secret: number (8 bytes), maxnumber (8), signature (64 hex
// characters), salt.
const altchaHead = 16 + 64

// Issue implements captchagate.Challenge: a challenge signed with in.Sign,
// dated to in.Expires, its difficulty raised for in.Level.
func (a ProofOfWork) Issue(in captchagate.IssueInfo) ([]byte, error) {
	maxn := a.maxNumber(in.Level)
	nb, err := rand.Int(rand.Reader, big.NewInt(maxn+1))
	if err != nil {
		return nil, err
	}
	number := nb.Int64()
	var raw [altchaSaltBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	// The widget reads expires from the salt; the trailing & ends the
	// parameters, so digits moved from the number cannot extend them.
	salt := hex.EncodeToString(raw[:]) + "?expires=" + strconv.FormatInt(in.Expires.Unix(), 10) + "&"
	challenge := altchaHash(salt, number)
	sig := hex.EncodeToString(in.Sign([]byte(challenge)))
	b := binary.BigEndian.AppendUint64(nil, uint64(number))
	b = binary.BigEndian.AppendUint64(b, uint64(maxn))
	b = append(b, sig...)
	return append(b, salt...), nil
}

func altchaHash(salt string, number int64) string {
	sum := sha256.Sum256([]byte(salt + strconv.FormatInt(number, 10)))
	return hex.EncodeToString(sum[:])
}

type altchaSecret struct {
	number, maxNumber int64
	signature, salt   string
}

func parseAltchaSecret(b []byte) (altchaSecret, bool) {
	if len(b) <= altchaHead {
		return altchaSecret{}, false
	}
	return altchaSecret{
		number:    int64(binary.BigEndian.Uint64(b)),
		maxNumber: int64(binary.BigEndian.Uint64(b[8:])),
		signature: string(b[16:altchaHead]),
		salt:      string(b[altchaHead:]),
	}, true
}

// Challenge is the challenge JSON the widget fetches.
type Challenge struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	MaxNumber int64  `json:"maxnumber"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
}

// Payload is what the widget posts, base64-encoded JSON.
type Payload struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	Number    int64  `json:"number"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
	// Took is how long the widget says it worked, in milliseconds: the v3
	// widget writes tenths (12.3), older ones whole numbers. It is
	// informational and compared with nothing, so any JSON number is
	// accepted (none, or null, reads as 0); a payload whose took is not a
	// number (a string, an object) is not the widget's and is refused.
	Took float64 `json:"took,omitempty"`
}

// Render implements captchagate.Renderer: the challenge JSON.
func (a ProofOfWork) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	s, ok := parseAltchaSecret(secret)
	if !ok {
		return "", errors.New("altcha: malformed secret")
	}
	if format != "json" {
		return "", errors.New("altcha: unsupported format " + format)
	}
	b, err := json.Marshal(Challenge{
		Algorithm: altchaAlgorithm,
		Challenge: altchaHash(s.salt, s.number),
		MaxNumber: s.maxNumber,
		Salt:      s.salt,
		Signature: s.signature,
	})
	if err != nil {
		return "", err
	}
	_, err = w.Write(b)
	return "application/json", err
}

// Check implements captchagate.Challenge: the answer is the widget's
// payload.
func (a ProofOfWork) Check(_ context.Context, c captchagate.CheckInfo) (bool, error) {
	s, ok := parseAltchaSecret(c.Secret)
	if !ok {
		return false, nil
	}
	p, ok := DecodePayload(c.Answer)
	if !ok {
		return false, nil
	}
	want := altchaHash(s.salt, s.number)
	// Every field is compared, all of them every time.
	eq := subtle.ConstantTimeCompare([]byte(p.Algorithm), []byte(altchaAlgorithm))
	eq &= subtle.ConstantTimeCompare([]byte(p.Salt), []byte(s.salt))
	eq &= subtle.ConstantTimeCompare([]byte(p.Challenge), []byte(want))
	eq &= subtle.ConstantTimeCompare([]byte(p.Signature), []byte(s.signature))
	eq &= subtle.ConstantTimeEq(int32(p.Number>>32), int32(s.number>>32))
	eq &= subtle.ConstantTimeEq(int32(p.Number), int32(s.number))
	return eq == 1, nil
}

// DecodePayload decodes a widget payload (standard or URL base64,
// padded or not, of a JSON object). It reports false when the answer is not
// such an object or a field has the wrong JSON type; took may be any JSON
// number, and one beyond float64's range is held at its largest value.
func DecodePayload(answer string) (Payload, bool) {
	answer = strings.TrimSpace(answer)
	if answer == "" || len(answer) > altchaMaxAnswer {
		return Payload{}, false
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(answer); err == nil {
			break
		}
	}
	if err != nil {
		return Payload{}, false
	}
	// took is decoded apart (this Took hides the embedded one), so that no
	// number the widget may write (a fraction, an exponent, a huge one)
	// refuses a right payload.
	var w struct {
		Payload
		Took json.RawMessage `json:"took"`
	}
	if json.Unmarshal(raw, &w) != nil {
		return Payload{}, false
	}
	p := w.Payload
	if t := string(w.Took); t != "" && t != "null" {
		// Every JSON number parses; a string, an object or a bool does not.
		f, err := strconv.ParseFloat(t, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return Payload{}, false
		}
		p.Took = max(-math.MaxFloat64, min(f, math.MaxFloat64))
	}
	return p, true
}

// Solve finds the number of a challenge the way the widget does, for
// tests and non-browser clients; it gives up past c.MaxNumber.
func Solve(c Challenge) (Payload, bool) {
	if c.Algorithm != altchaAlgorithm {
		return Payload{}, false
	}
	for n := int64(0); n <= c.MaxNumber; n++ {
		if altchaHash(c.Salt, n) == c.Challenge {
			return Payload{Algorithm: c.Algorithm, Challenge: c.Challenge, Number: n, Salt: c.Salt, Signature: c.Signature}, true
		}
	}
	return Payload{}, false
}

// Encode returns p as the widget posts it. JSON has no NaN or infinity: a
// NaN Took is written as 0 (left out) and an infinite one as float64's
// largest value, so the payload always encodes.
func (p Payload) Encode() string {
	if math.IsNaN(p.Took) {
		p.Took = 0
	}
	p.Took = max(-math.MaxFloat64, min(p.Took, math.MaxFloat64))
	b, _ := json.Marshal(p) // cannot fail: strings, an int64 and a finite float64
	return base64.StdEncoding.EncodeToString(b)
}
