package altcha

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/captchagate/captchagate"
)

// ProofOfWorkV2 is an invisible proof-of-work captchagate.Challenge in
// ALTCHA's v2 challenge format (key derivation with a cost parameter), the
// one altcha-lib (npm, 2.x) and altcha-lib-go issue by default, which the
// ALTCHA web component (npm altcha 3.x) and altcha-lib's solveChallenge
// solve unmodified. ProofOfWork serves the v1 format; a gate uses one or
// the other, and the widget tells them apart by the challenge JSON.
//
// The challenge_url serves
//
//	{"parameters":{"algorithm":"PBKDF2/SHA-256","cost":…,"expiresAt":…,
//	 "keyLength":32,"keyPrefix":…,"nonce":…,"salt":…},"signature":…}
//
// in altcha-lib's deterministic mode: the server draws a counter from
// [0, MaxCounter], derives the key of nonce‖uint32(counter) with salt at
// cost, and publishes the key's first half as keyPrefix; the client tries
// counters from 0 until a derived key starts with it. The widget's payload
// (base64 JSON {"challenge":{"parameters":…,"signature":…},"solution":
// {"counter":…,"derivedKey":…,"time":…}}) is the answer.
//
// As v1: the parameters are signed with the gate's secret (HMAC-SHA256 of
// their canonical JSON, as altcha-lib signs them) and dated (expiresAt, the
// captcha's expiry, which the widget honours); every challenge is a captcha
// stored and taken on its first answer, so a solved challenge is accepted
// once. The server compares the payload with what it issued (every
// parameter, the signature, the counter and the whole derived key), never
// with what the payload claims, so parameters cannot be changed (a lower
// cost, another salt or nonce) nor challenges spliced; a verification
// derives no key, so verifying costs the server nothing.
//
// Difficulty is the counter's range, as v1's maxnumber: MaxCounter,
// doubled for every RaiseEvery failures a key has past its threshold, up to
// MaxCounterLimit. Cost stays as configured: the server pays it once per
// challenge it issues (one derivation), the client once per counter it
// tries, so raising the range makes only the client work harder.
type ProofOfWorkV2 struct {
	// Algorithm is the key derivation: "PBKDF2/SHA-256" (the default),
	// "PBKDF2/SHA-384", "PBKDF2/SHA-512", or iterated "SHA-256", "SHA-384",
	// "SHA-512": the ones the widget's main bundle solves. ALTCHA's
	// SCRYPT and ARGON2ID need golang.org/x/crypto and extra widget
	// workers and are not offered. Issue fails for any other name.
	Algorithm string
	// Cost is the algorithm's cost: PBKDF2 iterations, or SHA rounds.
	// Default 1,000; at most 1,000,000.
	Cost int
	// MaxCounter bounds the secret counter: the browser derives about
	// half of it on average. Default 1,000.
	MaxCounter int64
	// RaiseEvery doubles MaxCounter for every this many failures past the
	// threshold. Default 3; negative never raises it.
	RaiseEvery int
	// MaxCounterLimit caps the raised MaxCounter. Default 64 × MaxCounter;
	// at most 2³²−1 (the widget's counter is a uint32).
	MaxCounterLimit int64
}

const (
	v2DefaultAlgorithm = "PBKDF2/SHA-256"
	v2MaxCost          = 1_000_000
	v2MaxCounter       = math.MaxUint32
	v2KeyLength        = 32
	v2PrefixLength     = v2KeyLength / 2
	v2NonceBytes       = 16
	v2SaltBytes        = 16
	v2MaxAnswer        = 2 << 10
)

// v2Algorithms are the algorithms offered, by their secret's byte.
var v2Algorithms = []string{"SHA-256", "SHA-384", "SHA-512", "PBKDF2/SHA-256", "PBKDF2/SHA-384", "PBKDF2/SHA-512"}

func v2AlgorithmID(name string) (byte, bool) {
	for i, a := range v2Algorithms {
		if a == name {
			return byte(i + 1), true
		}
	}
	return 0, false
}

func (a ProofOfWorkV2) withDefaults() ProofOfWorkV2 {
	if a.Algorithm == "" {
		a.Algorithm = v2DefaultAlgorithm
	}
	if a.Cost <= 0 {
		a.Cost = 1_000
	}
	a.Cost = min(a.Cost, v2MaxCost)
	if a.MaxCounter <= 0 {
		a.MaxCounter = 1_000
	}
	a.MaxCounter = min(a.MaxCounter, v2MaxCounter)
	if a.RaiseEvery == 0 {
		a.RaiseEvery = 3
	}
	if a.MaxCounterLimit <= 0 {
		a.MaxCounterLimit = min(64*a.MaxCounter, v2MaxCounter)
	}
	a.MaxCounterLimit = min(max(a.MaxCounterLimit, a.MaxCounter), v2MaxCounter)
	return a
}

// Validate reports a configuration Issue would refuse: an unknown
// Algorithm. Call it where the gate is built; the gate itself asks
// nothing of a Challenge before its first Issue.
func (a ProofOfWorkV2) Validate() error {
	if _, ok := v2AlgorithmID(a.withDefaults().Algorithm); !ok {
		return errors.New("altcha: unsupported v2 algorithm " + strconv.Quote(a.Algorithm))
	}
	return nil
}

// maxCounter is the counter's bound for level.
func (a ProofOfWorkV2) maxCounter(level int) int64 {
	a = a.withDefaults()
	n := a.MaxCounter
	if a.RaiseEvery > 0 {
		for range min(level/a.RaiseEvery, 40) {
			if n >= a.MaxCounterLimit/2 {
				return a.MaxCounterLimit
			}
			n *= 2
		}
	}
	return min(n, a.MaxCounterLimit)
}

// Difficulty implements captchagate.Scaler: the counter's bound for level
// times the cost, the most derivation rounds a client may need.
func (a ProofOfWorkV2) Difficulty(level int) int64 {
	return a.maxCounter(level) * int64(a.withDefaults().Cost)
}

// Kind implements captchagate.Challenge: "altcha", as v1 (the same widget
// runs both).
func (ProofOfWorkV2) Kind() string { return "altcha" }

// Mode implements captchagate.Moder: "pow", a proof of work.
func (ProofOfWorkV2) Mode() string { return "pow" }

// Media implements captchagate.Renderer: the challenge JSON, whose URL is
// the Captcha's "challenge_url" member.
func (ProofOfWorkV2) Media() []captchagate.Media {
	return []captchagate.Media{{Format: "json", Member: "challenge_url"}}
}

// MaxAnswerLen implements captchagate.AnswerLimiter.
func (ProofOfWorkV2) MaxAnswerLen() int { return v2MaxAnswer }

// ValidAnswer implements captchagate.AnswerValidator: answer decodes as a
// v2 payload.
func (ProofOfWorkV2) ValidAnswer(answer string) bool {
	_, ok := DecodePayloadV2(answer)
	return ok
}

// The v2 secret: a tag, the algorithm's byte, cost (4 bytes), counter (4),
// expiresAt (8), nonce, salt, the derived key, then the signature.
const (
	v2Tag  = "A2"
	v2Head = len(v2Tag) + 1 + 4 + 4 + 8 + v2NonceBytes + v2SaltBytes + v2KeyLength
)

type v2Secret struct {
	algorithm  string
	cost       uint32
	counter    uint32
	expiresAt  int64
	nonce      []byte
	salt       []byte
	key        []byte
	signature  []byte
	parameters ParametersV2
}

func parseV2Secret(b []byte) (v2Secret, bool) {
	if len(b) <= v2Head || string(b[:len(v2Tag)]) != v2Tag {
		return v2Secret{}, false
	}
	b = b[len(v2Tag):]
	id := int(b[0])
	if id < 1 || id > len(v2Algorithms) {
		return v2Secret{}, false
	}
	s := v2Secret{
		algorithm: v2Algorithms[id-1],
		cost:      binary.BigEndian.Uint32(b[1:]),
		counter:   binary.BigEndian.Uint32(b[5:]),
		expiresAt: int64(binary.BigEndian.Uint64(b[9:])),
	}
	b = b[17:]
	s.nonce, b = b[:v2NonceBytes], b[v2NonceBytes:]
	s.salt, b = b[:v2SaltBytes], b[v2SaltBytes:]
	s.key, s.signature = b[:v2KeyLength], b[v2KeyLength:]
	s.parameters = v2Parameters(s.algorithm, s.cost, s.expiresAt, s.nonce, s.salt, s.key)
	return s, true
}

// v2Parameters are the parameters of a challenge whose counter derives key.
func v2Parameters(algorithm string, cost uint32, expiresAt int64, nonce, salt, key []byte) ParametersV2 {
	return ParametersV2{
		Algorithm: algorithm,
		Cost:      int64(cost),
		ExpiresAt: expiresAt,
		KeyLength: v2KeyLength,
		KeyPrefix: hex.EncodeToString(key[:v2PrefixLength]),
		Nonce:     hex.EncodeToString(nonce),
		Salt:      hex.EncodeToString(salt),
	}
}

// Issue implements captchagate.Challenge: a counter drawn for in.Level,
// its key derived once, the parameters signed with in.Sign and dated to
// in.Expires.
func (a ProofOfWorkV2) Issue(in captchagate.IssueInfo) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	a = a.withDefaults()
	id, _ := v2AlgorithmID(a.Algorithm)
	cb, err := rand.Int(rand.Reader, big.NewInt(a.maxCounter(in.Level)+1))
	if err != nil {
		return nil, err
	}
	counter := uint32(cb.Int64())
	var rnd [v2NonceBytes + v2SaltBytes]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	nonce, salt := rnd[:v2NonceBytes], rnd[v2NonceBytes:]
	key, err := DeriveKeyV2(a.Algorithm, a.Cost, salt, v2Password(nonce, counter))
	if err != nil {
		return nil, err
	}
	expires := in.Expires.Unix()
	canon, err := json.Marshal(v2Parameters(a.Algorithm, uint32(a.Cost), expires, nonce, salt, key))
	if err != nil {
		return nil, err
	}
	b := append([]byte(v2Tag), id)
	b = binary.BigEndian.AppendUint32(b, uint32(a.Cost))
	b = binary.BigEndian.AppendUint32(b, counter)
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	b = append(append(append(b, nonce...), salt...), key...)
	return append(b, in.Sign(canon)...), nil
}

// v2Password is the password of counter: nonce ‖ big-endian uint32
// (altcha-lib's counterMode "uint32", the v2 widget's).
func v2Password(nonce []byte, counter uint32) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), nonce...), counter)
}

// DeriveKeyV2 derives the 32-byte key of password with salt at cost, as
// altcha-lib's deriveKey of algorithm does: PBKDF2 with HMAC of the named
// hash, or the hash of salt‖password hashed again cost−1 times, cut to 32
// bytes.
func DeriveKeyV2(algorithm string, cost int, salt, password []byte) ([]byte, error) {
	var h func() hash.Hash
	name, pb := strings.CutPrefix(algorithm, "PBKDF2/")
	switch name {
	case "SHA-256":
		h = sha256.New
	case "SHA-384":
		h = sha512.New384
	case "SHA-512":
		h = sha512.New
	default:
		return nil, errors.New("altcha: unsupported v2 algorithm " + strconv.Quote(algorithm))
	}
	if cost < 1 || cost > v2MaxCost {
		return nil, errors.New("altcha: v2 cost out of range")
	}
	if pb {
		return pbkdf2.Key(h, string(password), salt, cost, v2KeyLength)
	}
	d := h()
	d.Write(salt)
	d.Write(password)
	sum := d.Sum(nil)
	for range cost - 1 {
		d.Reset()
		d.Write(sum)
		sum = d.Sum(sum[:0])
	}
	return sum[:v2KeyLength], nil
}

// ParametersV2 are a v2 challenge's parameters, their fields in the order
// of their names, so that encoding/json writes the canonical JSON
// altcha-lib signs.
type ParametersV2 struct {
	Algorithm string `json:"algorithm"`
	Cost      int64  `json:"cost"`
	ExpiresAt int64  `json:"expiresAt"`
	KeyLength int64  `json:"keyLength"`
	KeyPrefix string `json:"keyPrefix"`
	Nonce     string `json:"nonce"`
	Salt      string `json:"salt"`
}

// ChallengeV2 is the v2 challenge JSON the widget fetches, and the
// challenge a v2 payload carries back.
type ChallengeV2 struct {
	Parameters ParametersV2 `json:"parameters"`
	Signature  string       `json:"signature"`
}

// SolutionV2 is a v2 payload's solution.
type SolutionV2 struct {
	Counter    uint32 `json:"counter"`
	DerivedKey string `json:"derivedKey"`
	// Time is how long the client says it worked, in milliseconds
	// (tenths). It is informational: any JSON number, or none, is
	// accepted.
	Time float64 `json:"time,omitempty"`
}

// PayloadV2 is what a v2 client posts, base64-encoded JSON.
type PayloadV2 struct {
	Challenge ChallengeV2 `json:"challenge"`
	Solution  SolutionV2  `json:"solution"`
}

// Render implements captchagate.Renderer: the challenge JSON.
func (a ProofOfWorkV2) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	s, ok := parseV2Secret(secret)
	if !ok {
		return "", errors.New("altcha: malformed v2 secret")
	}
	if format != "json" {
		return "", errors.New("altcha: unsupported format " + format)
	}
	b, err := json.Marshal(ChallengeV2{Parameters: s.parameters, Signature: hex.EncodeToString(s.signature)})
	if err != nil {
		return "", err
	}
	_, err = w.Write(b)
	return "application/json", err
}

// Check implements captchagate.Challenge: the answer is a v2 payload, and
// every part of it must be what was issued.
func (a ProofOfWorkV2) Check(_ context.Context, c captchagate.CheckInfo) (bool, error) {
	s, ok := parseV2Secret(c.Secret)
	if !ok {
		return false, nil
	}
	p, ok := DecodePayloadV2(c.Answer)
	if !ok {
		return false, nil
	}
	got, err := json.Marshal(p.Challenge.Parameters)
	if err != nil {
		return false, nil
	}
	want, err := json.Marshal(s.parameters)
	if err != nil {
		return false, err
	}
	// Every part is compared, all of them every time.
	eq := subtle.ConstantTimeCompare(got, want)
	eq &= subtle.ConstantTimeCompare([]byte(p.Challenge.Signature), []byte(hex.EncodeToString(s.signature)))
	eq &= subtle.ConstantTimeCompare([]byte(p.Solution.DerivedKey), []byte(hex.EncodeToString(s.key)))
	eq &= subtle.ConstantTimeEq(int32(p.Solution.Counter), int32(s.counter))
	return eq == 1, nil
}

// DecodePayloadV2 decodes a v2 payload (standard or URL base64, padded or
// not, of a JSON object). It reports false when the answer is not such an
// object, a field has the wrong JSON type, the parameters carry a member
// the gate never issues (keySignature, memoryCost, data, …), or the
// counter is not a uint32; solution.time may be any JSON number.
func DecodePayloadV2(answer string) (PayloadV2, bool) {
	raw, ok := decodeBase64(answer, v2MaxAnswer)
	if !ok {
		return PayloadV2{}, false
	}
	var w struct {
		Challenge struct {
			Parameters json.RawMessage `json:"parameters"`
			Signature  string          `json:"signature"`
		} `json:"challenge"`
		Solution struct {
			SolutionV2
			Time json.RawMessage `json:"time"`
		} `json:"solution"`
	}
	if json.Unmarshal(raw, &w) != nil {
		return PayloadV2{}, false
	}
	p := PayloadV2{Solution: w.Solution.SolutionV2}
	p.Challenge.Signature = w.Challenge.Signature
	if len(w.Challenge.Parameters) > 0 && string(w.Challenge.Parameters) != "null" {
		d := json.NewDecoder(bytes.NewReader(w.Challenge.Parameters))
		d.DisallowUnknownFields()
		if d.Decode(&p.Challenge.Parameters) != nil {
			return PayloadV2{}, false
		}
	}
	if t := string(w.Solution.Time); t != "" && t != "null" {
		f, err := strconv.ParseFloat(t, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return PayloadV2{}, false
		}
		p.Solution.Time = max(-math.MaxFloat64, min(f, math.MaxFloat64))
	}
	return p, true
}

// decodeBase64 decodes answer in any of the base64 forms a client may
// write, if it is at most limit bytes.
func decodeBase64(answer string, limit int) ([]byte, bool) {
	answer = strings.TrimSpace(answer)
	if answer == "" || len(answer) > limit {
		return nil, false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(answer); err == nil {
			return raw, true
		}
	}
	return nil, false
}

// SolveV2 finds the counter of a challenge the way the widget does
// (counters from 0 until a derived key starts with keyPrefix), for tests
// and non-browser clients; it gives up past maxCounter.
func SolveV2(c ChallengeV2, maxCounter uint32) (PayloadV2, bool) {
	prm := c.Parameters
	if prm.KeyLength != v2KeyLength || prm.Cost < 1 || prm.Cost > v2MaxCost {
		return PayloadV2{}, false
	}
	nonce, err1 := hex.DecodeString(prm.Nonce)
	salt, err2 := hex.DecodeString(prm.Salt)
	prefix, err3 := hex.DecodeString(prm.KeyPrefix)
	if err1 != nil || err2 != nil || err3 != nil || len(prefix) == 0 {
		return PayloadV2{}, false
	}
	for n := uint32(0); ; n++ {
		key, err := DeriveKeyV2(prm.Algorithm, int(prm.Cost), salt, v2Password(nonce, n))
		if err != nil {
			return PayloadV2{}, false
		}
		if bytes.HasPrefix(key, prefix) {
			return PayloadV2{Challenge: c, Solution: SolutionV2{Counter: n, DerivedKey: hex.EncodeToString(key)}}, true
		}
		if n == maxCounter {
			return PayloadV2{}, false
		}
	}
}

// Encode returns p as the widget posts it (a NaN Time is left out, an
// infinite one held at float64's largest value).
func (p PayloadV2) Encode() string {
	if math.IsNaN(p.Solution.Time) {
		p.Solution.Time = 0
	}
	p.Solution.Time = max(-math.MaxFloat64, min(p.Solution.Time, math.MaxFloat64))
	b, _ := json.Marshal(p) // cannot fail: strings, integers and a finite float64
	return base64.StdEncoding.EncodeToString(b)
}
