package altcha

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

// Keys derived by altcha-lib 2.8.0's algorithms/sha and algorithms/pbkdf2
// (node) for salt 000102…0f and nonce f0e0…00 with counter 0x0102.
func TestDeriveKeyV2MatchesAltchaLib(t *testing.T) {
	t.Parallel()
	salt, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f")
	nonce, _ := hex.DecodeString("f0e0d0c0b0a090807060504030201000")
	pw := v2Password(nonce, 0x0102)
	for _, v := range []struct {
		alg  string
		cost int
		key  string
	}{
		{"SHA-256", 1, "ae2f41fd2702dbc491f42a94271a5e193dc75b71a41da55b7155aa9470abe404"},
		{"SHA-256", 3, "558fc29ca0d6312f8c473ce9cf4310125b34218423381d2c13d0ae8e5820b5e0"},
		{"SHA-384", 2, "4a45beb8fbfea1dc7019e1688781b52dca1f1d675aab21ff4b0859994d665b5a"},
		{"SHA-512", 2, "f2189c3c5e750699b494be075b6e8dd891441d34682ba1016edf12f2159fa9e6"},
		{"PBKDF2/SHA-256", 10, "2fc53b61e91f17b1f6315db2c778d67c97165905ba1b78bed7bb9256825e8b4d"},
		{"PBKDF2/SHA-384", 5, "1804e86a23dc394952d79b8228df8974ca92b656f84c565c6fe9f16cffc4cec4"},
		{"PBKDF2/SHA-512", 5, "14dcdd545032da05139451e4bc18d201bbe7a226c1c449600a0f6dd662f8179a"},
	} {
		key, err := DeriveKeyV2(v.alg, v.cost, salt, pw)
		require.NoError(t, err, v.alg)
		assert.Equal(t, v.key, hex.EncodeToString(key), "%s cost %d", v.alg, v.cost)
	}
	for _, bad := range []string{"", "sha-256", "SCRYPT", "ARGON2ID", "PBKDF2/SHA-1", "PBKDF2/"} {
		_, err := DeriveKeyV2(bad, 1, salt, pw)
		assert.Error(t, err, "%q", bad)
	}
	_, err := DeriveKeyV2("SHA-256", 0, salt, pw)
	assert.Error(t, err, "cost 0")
}

func testSign(msg []byte) []byte {
	m := hmac.New(sha256.New, []byte("test-secret"))
	m.Write(msg)
	return m.Sum(nil)
}

// issueV2 issues a challenge outside a gate and returns its secret, the
// challenge JSON as served, and the solved payload.
func issueV2(t testing.TB, a ProofOfWorkV2, exp time.Time) ([]byte, ChallengeV2, PayloadV2) {
	t.Helper()
	secret, err := a.Issue(captchagate.IssueInfo{Now: exp.Add(-5 * time.Minute), Expires: exp, Sign: testSign})
	require.NoError(t, err)
	var sb strings.Builder
	ct, err := a.Render(&sb, "id", secret, "json", "")
	require.NoError(t, err)
	require.Equal(t, "application/json", ct)
	var c ChallengeV2
	require.NoError(t, json.Unmarshal([]byte(sb.String()), &c))
	p, ok := SolveV2(c, uint32(a.withDefaults().MaxCounterLimit))
	require.True(t, ok)
	return secret, c, p
}

func TestV2ChallengeJSON(t *testing.T) {
	t.Parallel()
	exp := time.Unix(1_900_000_000, 0)
	a := ProofOfWorkV2{Cost: 7, MaxCounter: 30}
	secret, c, p := issueV2(t, a, exp)
	var sb strings.Builder
	_, err := a.Render(&sb, "id", secret, "json", "")
	require.NoError(t, err)
	// The members the widget and altcha-lib read, keys in canonical order.
	assert.Regexp(t, `^\{"parameters":\{"algorithm":"PBKDF2/SHA-256","cost":7,"expiresAt":1900000000,"keyLength":32,`+
		`"keyPrefix":"[0-9a-f]{32}","nonce":"[0-9a-f]{32}","salt":"[0-9a-f]{32}"\},"signature":"[0-9a-f]{64}"\}$`, sb.String())
	// The signature is HMAC of the parameters' canonical JSON.
	canon, _ := json.Marshal(c.Parameters)
	assert.Equal(t, hex.EncodeToString(testSign(canon)), c.Signature)
	assert.LessOrEqual(t, p.Solution.Counter, uint32(30))
	assert.True(t, strings.HasPrefix(p.Solution.DerivedKey, c.Parameters.KeyPrefix))
	ok, err := a.Check(context.Background(), captchagate.CheckInfo{Secret: secret, Answer: p.Encode()})
	require.NoError(t, err)
	assert.True(t, ok)

	_, err = a.Render(&sb, "id", secret, "png", "")
	assert.Error(t, err)
	_, err = a.Render(&sb, "id", secret[:10], "json", "")
	assert.Error(t, err)
}

func TestV2Config(t *testing.T) {
	t.Parallel()
	assert.NoError(t, ProofOfWorkV2{}.Validate())
	assert.NoError(t, ProofOfWorkV2{Algorithm: "SHA-512"}.Validate())
	for _, bad := range []string{"SCRYPT", "ARGON2ID", "sha-256", "MD5"} {
		a := ProofOfWorkV2{Algorithm: bad}
		assert.Error(t, a.Validate(), bad)
		_, err := a.Issue(captchagate.IssueInfo{Expires: time.Now(), Sign: testSign})
		assert.Error(t, err, "Issue fails closed for %s", bad)
	}
	d := ProofOfWorkV2{}.withDefaults()
	assert.Equal(t, ProofOfWorkV2{Algorithm: "PBKDF2/SHA-256", Cost: 1000, MaxCounter: 1000, RaiseEvery: 3, MaxCounterLimit: 64_000}, d)
	huge := ProofOfWorkV2{Cost: 1 << 40, MaxCounter: 1 << 40}.withDefaults()
	assert.Equal(t, 1_000_000, huge.Cost)
	assert.Equal(t, int64(1<<32-1), huge.MaxCounter)
	assert.Equal(t, int64(1<<32-1), huge.MaxCounterLimit)

	// The counter's range doubles every RaiseEvery levels up to the
	// limit; the cost does not move.
	a := ProofOfWorkV2{Cost: 10, MaxCounter: 100, RaiseEvery: 2, MaxCounterLimit: 500}
	var got []int64
	for level := range 9 {
		got = append(got, a.Difficulty(level))
	}
	assert.Equal(t, []int64{1000, 1000, 2000, 2000, 4000, 4000, 5000, 5000, 5000}, got)
	assert.Equal(t, int64(1000), ProofOfWorkV2{Cost: 10, MaxCounter: 100, RaiseEvery: -1}.Difficulty(50))
	assert.Equal(t, int64((1<<32-1)*1_000_000), huge.Difficulty(1000), "no overflow at the limits")
}

// A v1 secret is not a v2 one, and the other way round: a gate switched
// from one to the other refuses the captchas still outstanding, without
// panicking.
func TestV2AndV1SecretsApart(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Minute)
	v2secret, _, v2p := issueV2(t, ProofOfWorkV2{Cost: 2, MaxCounter: 10}, exp)
	v1 := ProofOfWork{MaxNumber: 10}
	v1secret, err := v1.Issue(captchagate.IssueInfo{Expires: exp, Sign: testSign})
	require.NoError(t, err)

	ok, err := ProofOfWorkV2{}.Check(context.Background(), captchagate.CheckInfo{Secret: v1secret, Answer: v2p.Encode()})
	assert.NoError(t, err)
	assert.False(t, ok)
	_, err = ProofOfWorkV2{}.Render(&strings.Builder{}, "id", v1secret, "json", "")
	assert.Error(t, err)
	ok, err = v1.Check(context.Background(), captchagate.CheckInfo{Secret: v2secret, Answer: v2p.Encode()})
	assert.NoError(t, err)
	assert.False(t, ok)
}

func TestDecodePayloadV2(t *testing.T) {
	t.Parallel()
	_, c, p := issueV2(t, ProofOfWorkV2{Cost: 2, MaxCounter: 10}, time.Unix(1_900_000_000, 0))
	good := p.Encode()
	got, ok := DecodePayloadV2(good)
	require.True(t, ok)
	assert.Equal(t, p, got)

	params, _ := json.Marshal(c.Parameters)
	sol := `{"counter":` + jsonInt(p.Solution.Counter) + `,"derivedKey":"` + p.Solution.DerivedKey + `"`
	for name, tc := range map[string]struct {
		json string
		ok   bool
	}{
		"as the widget writes it": {`{"challenge":{"parameters":` + string(params) + `,"signature":"` + c.Signature + `"},"solution":` + sol + `,"time":12.3}}`, true},
		"time as an integer":      {`{"challenge":{"parameters":` + string(params) + `,"signature":"` + c.Signature + `"},"solution":` + sol + `,"time":12}}`, true},
		"time huge":               {`{"challenge":{"parameters":` + string(params) + `,"signature":"x"},"solution":` + sol + `,"time":1e999}}`, true},
		"no time":                 {`{"challenge":{"parameters":` + string(params) + `,"signature":"x"},"solution":` + sol + `}}`, true},
		"empty object":            {`{}`, true},
		"time a string":           {`{"solution":` + sol + `,"time":"12"}}`, false},
		"counter negative":        {`{"solution":{"counter":-1}}`, false},
		"counter fractional":      {`{"solution":{"counter":1.5}}`, false},
		"counter past uint32":     {`{"solution":{"counter":4294967296}}`, false},
		"counter a string":        {`{"solution":{"counter":"1"}}`, false},
		"derivedKey a number":     {`{"solution":{"derivedKey":1}}`, false},
		"parameters a string":     {`{"challenge":{"parameters":"x"}}`, false},
		"cost fractional":         {`{"challenge":{"parameters":{"cost":1.5}}}`, false},
		"a member never issued":   {`{"challenge":{"parameters":{"keySignature":"00"}}}`, false},
		"data never issued":       {`{"challenge":{"parameters":{"data":{}}}}`, false},
		"not an object":           {`[1]`, false},
		"a v1 payload":            {`{"algorithm":"SHA-256","challenge":"ab","number":1,"salt":"s","signature":"x"}`, false},
	} {
		_, ok := DecodePayloadV2(b64(tc.json))
		assert.Equal(t, tc.ok, ok, name)
	}
	for _, junk := range []string{"", "   ", "not base64 !", strings.Repeat("A", 2100)} {
		_, ok := DecodePayloadV2(junk)
		assert.False(t, ok, "%.20q", junk)
	}
}

func jsonInt(n uint32) string { b, _ := json.Marshal(n); return string(b) }

// b64 encodes a JSON text as a payload.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// FuzzChallengeAnswersV2: no answer makes the v2 check panic, and an
// answer is accepted only if it names the issued counter and key, with the
// issued parameters and signature.
func FuzzChallengeAnswersV2(f *testing.F) {
	a := ProofOfWorkV2{Algorithm: "SHA-256", Cost: 1, MaxCounter: 20}
	secret, c, p := issueV2(f, a, time.Unix(1<<32, 0))
	f.Add(p.Encode())
	f.Add("e30")
	f.Add(b64(`{"challenge":{"parameters":{"cost":1}},"solution":{"counter":3}}`))
	q := p
	q.Solution.Counter++
	f.Add(q.Encode())
	q = p
	q.Challenge.Parameters.Cost = 2
	f.Add(q.Encode())
	f.Fuzz(func(t *testing.T, answer string) {
		ok, err := a.Check(context.Background(), captchagate.CheckInfo{Secret: secret, Answer: answer})
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got, _ := DecodePayloadV2(answer)
			if got.Solution.Counter != p.Solution.Counter || got.Solution.DerivedKey != p.Solution.DerivedKey ||
				got.Challenge.Parameters != c.Parameters || got.Challenge.Signature != c.Signature {
				t.Fatalf("v2 accepted %q", answer)
			}
		}
		// Checking never panics on a mangled secret either.
		if len(answer) > 0 {
			a.Check(context.Background(), captchagate.CheckInfo{Secret: []byte(answer), Answer: p.Encode()})
		}
	})
}

// The counter is drawn from [0, maxCounter(level)]: never past it, and
// across the range (200 draws from 65 values all at most 8 would be a
// chance of (9/65)^200).
func TestV2CounterRange(t *testing.T) {
	t.Parallel()
	a := ProofOfWorkV2{Algorithm: "SHA-256", Cost: 1, MaxCounter: 8, RaiseEvery: 1, MaxCounterLimit: 64}
	counters := func(level int) (hi uint32) {
		for range 200 {
			secret, err := a.Issue(captchagate.IssueInfo{Level: level, Expires: time.Now(), Sign: testSign})
			require.NoError(t, err)
			s, ok := parseV2Secret(secret)
			require.True(t, ok)
			hi = max(hi, s.counter)
		}
		return hi
	}
	assert.LessOrEqual(t, counters(0), uint32(8))
	hi := counters(3)
	assert.LessOrEqual(t, hi, uint32(64))
	assert.Greater(t, hi, uint32(8), "level 3 draws past level 0's range")
}
