package captchagate_test

import (
	"bytes"
	"context"
	"image/png"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

func TestDigitsCheck(t *testing.T) {
	t.Parallel()
	d := captchagate.Digits{}
	secret := []byte{0, 4, 2, 9, 1, 7}
	for answer, want := range map[string]bool{
		"042917":         true,
		" 042-917 ":      true,
		"０４２９１７":         true,
		"":               false,
		"      ":         false,
		"04291":          false,
		"0429170":        false,
		"042918":         false,
		"04291x":         false,
		"042917\x00":     false,
		"4291 7":         false,
		"042917042917":   false,
		"٠٤٢٩١٧":         false, // other scripts' digits are not accepted
		"\xff\xfe042917": false,
	} {
		assert.Equal(t, want, check(d, secret, answer), "%q", answer)
	}
	assert.False(t, check(d, nil, ""), "an empty answer never solves an empty secret")
	assert.False(t, check(d, []byte{}, "   "))
}

func TestDigitsIssueAndRender(t *testing.T) {
	t.Parallel()
	d := captchagate.Digits{Length: 100, Width: 300, Height: 100}
	s, err := d.Issue(captchagate.IssueInfo{})
	require.NoError(t, err)
	assert.Len(t, s, 32+16, "length is capped at 32, and a 16-byte seed follows")
	for _, c := range s[:32] {
		assert.Less(t, c, byte(10))
	}
	s2, _ := d.Issue(captchagate.IssueInfo{})
	assert.NotEqual(t, s, s2)

	var b bytes.Buffer
	ct, err := d.Render(&b, "id", s, "png", "")
	require.NoError(t, err)
	assert.Equal(t, "image/png", ct)
	img, err := png.Decode(&b)
	require.NoError(t, err)
	assert.Equal(t, 300, img.Bounds().Dx())

	_, err = d.Render(&b, "id", []byte{10}, "png", "")
	assert.Error(t, err, "a secret that is not digits is refused, not drawn")
	_, err = d.Render(&b, "id", s, "gif", "")
	assert.Error(t, err)
}

func check(c captchagate.Challenge, secret []byte, answer string) bool {
	ok, err := c.Check(context.Background(), captchagate.CheckInfo{Secret: secret, Answer: answer})
	return ok && err == nil
}
