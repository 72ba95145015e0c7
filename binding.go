package captchagate

import (
	"crypto/subtle"
	"encoding/binary"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// binding is what a captcha or token is bound to.
// It also carries the flow's difficulty level, which follows it to fresh
// captchas.
type binding struct {
	policy string
	mask   keySet
	flags  uint8
	bind   [16]byte
	level  uint8
}

func bindingOf(rec *record) binding {
	return binding{policy: rec.policy, mask: rec.mask, flags: rec.flags, bind: rec.bind, level: rec.level}
}

// bindingFor computes the binding of policy to the keys in mask, whose hashes
// are in hashes, and to the session whose hash is sess (nil: none).
func (g *Gate) bindingFor(policy string, mask keySet, hashes *[maxKeysInPolicy][16]byte, sess *[16]byte) binding {
	b := binding{policy: policy, mask: mask}
	var buf [3 + (maxKeysInPolicy+1)*16]byte
	m := binary.BigEndian.AppendUint16(buf[:0], uint16(mask))
	for i := range maxKeysInPolicy {
		if mask.has(i) {
			m = append(m, hashes[i][:]...)
		}
	}
	if sess != nil {
		b.flags |= flagSession
		m = append(m, sess[:]...)
	}
	m = append(m, b.flags)
	var sum [32]byte
	g.mac(&sum, []byte("bind\x00"), []byte(policy), []byte{0}, m)
	copy(b.bind[:], sum[:16])
	return b
}

// matches reports whether rec is bound to policy and, for every key rec
// covers, to the same key values, and, if rec is bound to a session, to the
// session whose hash is sess.
//
// A token verified for a sender (flagSender) also needs one of senders, the
// sender hashes of the request's Sender keys, to be that sender.
func (g *Gate) matches(rec *record, policy string, present keySet, hashes *[maxKeysInPolicy][16]byte, sess *[16]byte, senders [][16]byte) bool {
	if rec.policy != policy || rec.mask&present != rec.mask {
		return false
	}
	if rec.flags&flagSession == 0 {
		sess = nil
	} else if sess == nil {
		return false
	}
	want := g.bindingFor(policy, rec.mask, hashes, sess)
	if rec.flags&flagSender == 0 {
		return subtle.ConstantTimeCompare(want.bind[:], rec.bind[:]) == 1
	}
	ok := 0
	for i := range senders {
		w := want
		g.bindSender(&w, &senders[i])
		ok |= subtle.ConstantTimeCompare(w.bind[:], rec.bind[:])
	}
	return ok == 1
}

// bindSender chains b with the hash of a sender (senderHash), so a token
// minted for it is usable only by a request whose Sender key has that value.
func (g *Gate) bindSender(b *binding, sender *[16]byte) {
	var sum [32]byte
	g.mac(&sum, []byte("sender-bind\x00"), b.bind[:], sender[:])
	copy(b.bind[:], sum[:16])
	b.flags |= flagSender
}

// senderHash is the keyed hash of a sender (a phone number or an email
// address) under policy, after senderNorm.
func (g *Gate) senderHash(policy, sender string) [16]byte {
	var sum [32]byte
	g.mac(&sum, []byte("sender\x00"), []byte(policy), []byte{0}, []byte(senderNorm(sender)))
	var h [16]byte
	copy(h[:], sum[:16])
	return h
}

// senderNorm makes the forms of one sender equal, as the key that holds it
// counts them. An email address (an '@', after NFKC) is folded as Email
// keys fold it (canonFold); a phone number is canonicalised as Phone keys
// count it (canonPhone) and, for a key holding something else without an
// '@', folded too. senderNorm(v) is the same for a value as read and for
// its key's canonical form of it (canonPhone or canonFold are idempotent),
// so a token verified for one spelling serves every spelling the key
// counts as one.
func senderNorm(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "@") || (!isASCII(s) && strings.Contains(norm.NFKC.String(s), "@")) {
		return strings.TrimSpace(canonFold(s))
	}
	return strings.TrimSpace(canonPhone(canonFold(canonPhone(s))))
}

// hasSender reports whether the policy has a Sender key.
func (gd *Guard) hasSender() bool {
	for i := range gd.keys {
		if gd.keys[i].Sender {
			return true
		}
	}
	return false
}
