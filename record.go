package captchagate

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// A record is a stored captcha or token: the policy and key values it is bound
// to, when it expires, and for a captcha its secret and refresh count.
type record struct {
	policy    string
	mask      keySet   // which keys of the policy the binding covers
	flags     uint8    // flagSession, flagSender: what else the binding covers
	bind      [16]byte // HMAC over the policy, mask, flags, those keys' hashes and the session's
	refreshes uint8
	level     uint8 // how far past its threshold the flow's key was, for challenges that scale
	expires   int64 // unix nanoseconds
	secret    []byte
}

const (
	recordVersion = 3
	flagSession   = 1 << 0
	// flagSender: a token verified for a sender (the slider's verify names
	// one); bind is chained with the sender's hash, see bindSender.
	flagSender = 1 << 1
	recordMin  = 31
)

func (rec *record) encode() []byte {
	b := make([]byte, 0, recordMin+len(rec.policy)+len(rec.secret))
	b = append(b, recordVersion, rec.flags, rec.refreshes, rec.level)
	b = binary.BigEndian.AppendUint16(b, uint16(rec.mask))
	b = binary.BigEndian.AppendUint64(b, uint64(rec.expires))
	b = append(b, rec.bind[:]...)
	b = append(b, byte(len(rec.policy)))
	b = append(b, rec.policy...)
	return append(b, rec.secret...)
}

var errBadRecord = errors.New("captchagate: malformed record in store")

func decodeRecord(b []byte) (record, error) {
	var rec record
	switch {
	case len(b) >= recordMin && b[0] == recordVersion:
		rec.flags, rec.refreshes, rec.level = b[1], b[2], b[3]
		b = b[4:]
	case len(b) >= recordMin-1 && b[0] == 2:
		// Version 2, without the level: records a previous release left in a
		// shared store stay readable through a rolling upgrade.
		rec.flags, rec.refreshes = b[1], b[2]
		b = b[3:]
	default:
		return rec, errBadRecord
	}
	rec.mask = keySet(binary.BigEndian.Uint16(b))
	rec.expires = int64(binary.BigEndian.Uint64(b[2:]))
	copy(rec.bind[:], b[10:26])
	n := int(b[26])
	if len(b) < 27+n {
		return rec, errBadRecord
	}
	rec.policy = string(b[27 : 27+n])
	rec.secret = append([]byte(nil), b[27+n:]...)
	return rec, nil
}

const (
	storedIDBytes = 16 // 128-bit ids of stored captchas, 22 characters
	storedIDLen   = 22
	tokenBytes    = 24 // 192-bit tokens, 32 characters
	tokenLen      = 32
	graceTTL      = time.Minute // expired records stay this long to say "expired"
)

var b64 = base64.RawURLEncoding

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return b64.EncodeToString(b), nil
}

func b64Chars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validToken reports whether s has the form of a captcha_token: a stored
// token's or a sealed one's (seal.go).
func validToken(s string) bool {
	return (len(s) == tokenLen || len(s) >= minIDLen && len(s) <= maxIDLen) && b64Chars(s)
}

// validID reports whether s has the form of a captcha id: a stored
// captcha's or a sealed one's (seal.go).
func validID(s string) bool {
	return (len(s) == storedIDLen || len(s) >= minIDLen && len(s) <= maxIDLen) && b64Chars(s)
}
