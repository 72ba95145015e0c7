package digitsimg

import (
	"bytes"
	"testing"
)

// One seed, one drawing; another seed, another; the drawing has the size
// asked for and something drawn in it.
func TestNewIsTheSeedsAlone(t *testing.T) {
	digits := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	a := New([16]byte{1}, digits, 240, 80)
	if b := New([16]byte{1}, digits, 240, 80); !bytes.Equal(a.Pix, b.Pix) {
		t.Fatal("one seed drew two pictures")
	}
	if c := New([16]byte{2}, digits, 240, 80); bytes.Equal(a.Pix, c.Pix) {
		t.Fatal("two seeds drew one picture")
	}
	if r := a.Bounds(); r.Dx() != 240 || r.Dy() != 80 {
		t.Fatalf("picture of %v", r)
	}
	drawn := 0
	for _, p := range a.Pix {
		if p != 0 {
			drawn++
		}
	}
	if drawn < 240*80/20 {
		t.Fatalf("only %d pixels drawn", drawn)
	}
}
