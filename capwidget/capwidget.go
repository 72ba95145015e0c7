// Package capwidget is the Cap proof-of-work captcha (the @cap.js/widget web
// component, tested with 0.1.57) as a kind of challenge for captchagate,
// with the Dialect that answers the widget's own challenge and redeem
// requests. It is built on captchagate's exported Challenge, Renderer,
// Scaler, AnswerLimiter, AnswerValidator, Dialect and ProofReader only, as a
// third party would build it:
//
//	gate, err := captchagate.New(captchagate.Config{
//		Challenge: capwidget.ProofOfWork{},
//		Dialects:  []captchagate.Dialect{capwidget.Dialect{Store: store}},
//		Store:     store,
//	})
//
// The widget speaks to an API endpoint (its data-cap-api-endpoint
// attribute): POST {api}challenge, with no body, returns
// {"challenge":[[salt,target],...],"token":...,"expires":...}; the widget
// finds, for every pair, a number whose decimal form appended to salt hashes
// (SHA-256, hex) to a string that starts with target, and posts
// {"token":...,"solutions":[n,...]} to {api}redeem, which answers
// {"success":true,"token":...,"expires":...}; the widget puts that token in
// a hidden input named cap-token. For a captcha of this kind the API
// endpoint is {prefix}{id}/ (APIEndpoint), so each challenge is a captcha
// the gate issued, bound to its flow; the redeemed token is the gate's
// captcha_token, scoped and single-use like any other, which Dialect also
// reads from a cap-token member or field on guarded requests.
package capwidget

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
)

// ProofOfWork is the Cap widget's SHA-256 proof of work as a
// captchagate.Challenge: no picture, only CPU time in the visitor's browser.
//
// A challenge is Count pairs of a salt (SaltSize hex characters) and a
// target (TargetLen hex characters), drawn from crypto/rand when the gate
// issues the captcha and sent to the widget explicitly (the widget also
// accepts Cap's own form, pairs derived from the token by a 32-bit
// generator, which this package does not use: a 32-bit state per salt could
// be tabulated ahead of time). The answer is the list of numbers, one per
// pair, as a JSON array ("[81254,3120,...]"); the Dialect builds it from the
// widget's redeem, and a client may also post it as captcha_answer.
//
// The work expected of a browser is Count × 16^TargetLen hashes. Count is
// doubled for every RaiseEvery failures the key that tripped has past its
// threshold (captchagate.IssueInfo.Level), up to CountLimit, as the ALTCHA
// kind doubles its maximum number.
type ProofOfWork struct {
	// Count is the number of salt and target pairs at level 0. Default 50
	// (Cap's default), at most MaxCount.
	Count int
	// TargetLen is the length of each target in hex characters (Cap's
	// challengeDifficulty): each pair costs 16^TargetLen hashes on
	// average. Default 4 (Cap's default); from 1 to 8.
	TargetLen int
	// SaltSize is the length of each salt in hex characters. Default 32
	// (Cap's default); from 16 to 64.
	SaltSize int
	// RaiseEvery doubles Count for every this many failures past the
	// threshold. Default 3; negative never raises it.
	RaiseEvery int
	// CountLimit caps the raised Count. Default 8 × Count, at most MaxCount.
	CountLimit int
}

// MaxCount is the most pairs a challenge has: the widget's redeem then
// stays within the gate's 8 KiB answer limit at TargetLen 8.
const MaxCount = 512

const (
	secretVersion = 1
	seedBytes     = 16
	// secretLen: version, expires (Unix ms, 8 bytes), count (2), salt size
	// (1), difficulty (1), seed.
	secretLen = 1 + 8 + 2 + 1 + 1 + seedBytes
	maxAnswer = 8 << 10
	// maxSolution is the largest number a solution may be: the widget
	// sends JavaScript numbers, exact up to 2^53.
	maxSolution = 1<<53 - 1
)

func (p ProofOfWork) withDefaults() ProofOfWork {
	if p.Count <= 0 {
		p.Count = 50
	}
	p.Count = min(p.Count, MaxCount)
	if p.TargetLen <= 0 {
		p.TargetLen = 4
	}
	p.TargetLen = min(p.TargetLen, 8)
	if p.SaltSize <= 0 {
		p.SaltSize = 32
	}
	p.SaltSize = min(max(p.SaltSize, 16), 64)
	if p.RaiseEvery == 0 {
		p.RaiseEvery = 3
	}
	if p.CountLimit <= 0 {
		p.CountLimit = 8 * p.Count
	}
	p.CountLimit = min(max(p.CountLimit, p.Count), MaxCount)
	return p
}

// count is the number of pairs for level.
func (p ProofOfWork) count(level int) int {
	p = p.withDefaults()
	n := p.Count
	if p.RaiseEvery > 0 {
		for range min(level/p.RaiseEvery, 20) {
			n *= 2
			if n >= p.CountLimit {
				return p.CountLimit
			}
		}
	}
	return min(n, p.CountLimit)
}

// Difficulty implements captchagate.Scaler: the hashes a challenge of level
// costs on average, Count × 16^TargetLen.
func (p ProofOfWork) Difficulty(level int) int64 {
	return int64(p.count(level)) << (4 * p.withDefaults().TargetLen)
}

// Kind implements captchagate.Challenge.
func (ProofOfWork) Kind() string { return "cap" }

// Mode implements captchagate.Moder: "pow", a proof of work.
func (ProofOfWork) Mode() string { return "pow" }

// Media implements captchagate.Renderer: the challenge JSON, whose URL is
// the Captcha's "challenge_url" member ({prefix}{id}.json). The widget
// itself asks the Dialect's POST {prefix}{id}/challenge for the same JSON.
func (ProofOfWork) Media() []captchagate.Media {
	return []captchagate.Media{{Format: "json", Member: "challenge_url"}}
}

// MaxAnswerLen implements captchagate.AnswerLimiter.
func (ProofOfWork) MaxAnswerLen() int { return maxAnswer }

// ValidAnswer implements captchagate.AnswerValidator: answer is a JSON
// array of whole numbers from 0 to 2^53−1, at most MaxCount of them.
func (ProofOfWork) ValidAnswer(answer string) bool {
	_, ok := ParseSolutions(answer)
	return ok
}

// Issue implements captchagate.Challenge: a seed from crypto/rand from which
// the pairs are derived, with the shape of the challenge for in.Level and
// its expiry.
func (p ProofOfWork) Issue(in captchagate.IssueInfo) ([]byte, error) {
	d := p.withDefaults()
	b := make([]byte, secretLen)
	b[0] = secretVersion
	binary.BigEndian.PutUint64(b[1:], uint64(in.Expires.UnixMilli()))
	binary.BigEndian.PutUint16(b[9:], uint16(p.count(in.Level)))
	b[11] = byte(d.SaltSize)
	b[12] = byte(d.TargetLen)
	if _, err := rand.Read(b[13:]); err != nil {
		return nil, err
	}
	return b, nil
}

// secret is a parsed secret.
type secret struct {
	expires          time.Time
	count, size, dif int
	seed             []byte
}

func parseSecret(b []byte) (secret, bool) {
	if len(b) != secretLen || b[0] != secretVersion {
		return secret{}, false
	}
	s := secret{
		expires: time.UnixMilli(int64(binary.BigEndian.Uint64(b[1:]))),
		count:   int(binary.BigEndian.Uint16(b[9:])),
		size:    int(b[11]),
		dif:     int(b[12]),
		seed:    b[13:],
	}
	if s.count < 1 || s.count > MaxCount || s.size < 16 || s.size > 64 || s.dif < 1 || s.dif > 8 {
		return secret{}, false
	}
	return s, true
}

// pairs derives the challenge's salt and target pairs from its seed.
func (s secret) pairs() [][2]string {
	out := make([][2]string, s.count)
	var buf [64]byte
	for i := range out {
		out[i] = [2]string{s.derive(&buf, 's', i)[:s.size], s.derive(&buf, 't', i)[:s.dif]}
	}
	return out
}

// derive returns 64 hex characters of SHA-256 over the seed, a role byte
// and the pair's index.
func (s secret) derive(buf *[64]byte, role byte, i int) string {
	h := sha256.New()
	io.WriteString(h, "captchagate cap pair\x00")
	h.Write(s.seed)
	h.Write([]byte{role, byte(i >> 8), byte(i)})
	var sum [sha256.Size]byte
	hex.Encode(buf[:], h.Sum(sum[:0]))
	return string(buf[:])
}

// Challenge is the JSON the widget reads from POST {api}challenge (and
// GET {prefix}{id}.json serves): Cap's format 1 with explicit pairs.
type Challenge struct {
	Challenge [][2]string `json:"challenge"`
	Token     string      `json:"token"`   // the captcha's id
	Expires   int64       `json:"expires"` // Unix milliseconds, the captcha's expiry
}

// Render implements captchagate.Renderer: the challenge JSON of captcha id.
func (p ProofOfWork) Render(w io.Writer, id string, sec []byte, format, _ string) (string, error) {
	s, ok := parseSecret(sec)
	if !ok {
		return "", errors.New("capwidget: malformed secret")
	}
	if format != "json" {
		return "", errors.New("capwidget: unsupported format " + format)
	}
	b, err := json.Marshal(Challenge{Challenge: s.pairs(), Token: id, Expires: s.expires.UnixMilli()})
	if err != nil {
		return "", err
	}
	_, err = w.Write(b)
	return "application/json", err
}

// Check implements captchagate.Challenge: the answer is the solutions, one
// per pair, each making SHA-256(salt + decimal) start with the target.
func (p ProofOfWork) Check(_ context.Context, c captchagate.CheckInfo) (bool, error) {
	s, ok := parseSecret(c.Secret)
	if !ok {
		return false, nil
	}
	sol, ok := ParseSolutions(c.Answer)
	if !ok {
		return false, nil
	}
	return Solves(s.pairs(), sol), nil
}

// Solves reports whether sol solves pairs: one number per pair, every one
// making the hex SHA-256 of the salt followed by the number's decimal form
// start with the target. Every pair is hashed, whatever fails first.
func Solves(pairs [][2]string, sol []uint64) bool {
	if len(sol) != len(pairs) || len(pairs) == 0 {
		return false
	}
	eq := 1
	var buf [64]byte
	for i, pr := range pairs {
		sum := sha256.Sum256(strconv.AppendUint([]byte(pr[0]), sol[i], 10))
		hex.Encode(buf[:], sum[:])
		t := pr[1]
		if len(t) == 0 || len(t) > len(buf) {
			eq = 0
			continue
		}
		eq &= subtle.ConstantTimeCompare(buf[:len(t)], []byte(t))
	}
	return eq == 1
}

// Solve finds the numbers of pairs the way the widget does (counting up
// from 0), for tests and clients without a browser.
func Solve(pairs [][2]string) []uint64 {
	out := make([]uint64, len(pairs))
	for i, pr := range pairs {
		for n := uint64(0); ; n++ {
			if Solves([][2]string{pr}, []uint64{n}) {
				out[i] = n
				break
			}
		}
	}
	return out
}

// ParseSolutions reads an answer: a JSON array of whole numbers from 0 to
// 2^53−1 (no sign, fraction or exponent), at most MaxCount of them.
func ParseSolutions(answer string) ([]uint64, bool) {
	answer = strings.TrimSpace(answer)
	if len(answer) < 2 || len(answer) > maxAnswer || answer[0] != '[' {
		return nil, false
	}
	var raw []json.RawMessage
	if json.Unmarshal([]byte(answer), &raw) != nil {
		return nil, false
	}
	return numbers(raw)
}

// numbers converts the widget's solutions, refusing anything but whole
// numbers in range.
func numbers(raw []json.RawMessage) ([]uint64, bool) {
	if len(raw) == 0 || len(raw) > MaxCount {
		return nil, false
	}
	out := make([]uint64, len(raw))
	for i, n := range raw {
		// A JSON string, a sign, a fraction or an exponent does not parse.
		v, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil || v > maxSolution {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// FormatSolutions writes solutions as the answer Check reads.
func FormatSolutions(sol []uint64) string {
	b := make([]byte, 0, 2+8*len(sol))
	b = append(b, '[')
	for i, v := range sol {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, v, 10)
	}
	return string(append(b, ']'))
}
