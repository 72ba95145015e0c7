// Package slidersecret is the layout of a slider puzzle's secret, shared by
// package slider and the tests that solve puzzles the way a person would
// (the secret itself never leaves the server).
package slidersecret

import "encoding/binary"

// Len is the length of a secret: x, y (uint16 each), background, flip and
// grain seed (8 bytes).
const Len = 13

// Parts are the fields of a secret.
type Parts struct {
	X, Y  int
	BG    int
	Flip  bool
	Grain uint64
}

// Parse splits secret into its parts.
func Parse(secret []byte) (Parts, bool) {
	if len(secret) != Len {
		return Parts{}, false
	}
	return Parts{
		X:     int(binary.BigEndian.Uint16(secret[0:2])),
		Y:     int(binary.BigEndian.Uint16(secret[2:4])),
		BG:    int(secret[4]),
		Flip:  secret[5]&1 == 1,
		Grain: binary.BigEndian.Uint64(secret[5:13]) | 1, // xorshift needs a non-zero seed
	}, true
}
