package captchagate

import (
	"bytes"
	"encoding/json"
	"slices"
)

// Captcha describes an issued captcha to the client. URLs are absolute paths
// (or absolute URLs when Config.BaseURL is set).
type Captcha struct {
	ID       string
	Kind     string
	ImageURL string // "image_url", if the kind has a picture
	AudioURL string // "audio_url", if the kind has a sound
	// Extra holds the kind's own members, written beside the others: the
	// URLs of its other media (Media.Member, such as "piece_url") and what a
	// Describer adds ("site_key", "slider"). A member named like one of the
	// fields above is not written. Decoding keeps each unknown member here
	// as a json.RawMessage.
	Extra         map[string]any
	RefreshURL    string
	VerifyURL     string
	ExpiresIn     int // seconds
	RefreshesLeft int
}

// captchaFields are the members of Captcha's own fields, in the order they
// are written (the kind's members go between audio_url and refresh_url).
var captchaFields = []string{"id", "kind", "image_url", "audio_url", "refresh_url", "verify_url", "expires_in", "refreshes_left"}

func (c *Captcha) setExtra(name string, v any) {
	if c.Extra == nil {
		c.Extra = map[string]any{}
	}
	c.Extra[name] = v
}

// MarshalJSON writes the captcha as the protocol's "captcha" object
// (docs/protocol.md): id, kind, image_url and audio_url when set, the kind's
// members in name order, then refresh_url, verify_url, expires_in and
// refreshes_left.
func (c Captcha) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	member := func(name string, v any) error {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		j, err := json.Marshal(v)
		b.Write(j)
		return err
	}
	member("id", c.ID)
	member("kind", c.Kind)
	if c.ImageURL != "" {
		member("image_url", c.ImageURL)
	}
	if c.AudioURL != "" {
		member("audio_url", c.AudioURL)
	}
	names := make([]string, 0, len(c.Extra))
	for k := range c.Extra {
		if !slices.Contains(captchaFields, k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		if err := member(k, c.Extra[k]); err != nil {
			return nil, err
		}
	}
	member("refresh_url", c.RefreshURL)
	member("verify_url", c.VerifyURL)
	member("expires_in", c.ExpiresIn)
	member("refreshes_left", c.RefreshesLeft)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a "captcha" object, keeping the kind's members in
// Extra as json.RawMessage.
func (c *Captcha) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*c = Captcha{}
	fields := map[string]any{
		"id": &c.ID, "kind": &c.Kind, "image_url": &c.ImageURL, "audio_url": &c.AudioURL,
		"refresh_url": &c.RefreshURL, "verify_url": &c.VerifyURL, "expires_in": &c.ExpiresIn,
		"refreshes_left": &c.RefreshesLeft,
	}
	for k, v := range m {
		if dst, ok := fields[k]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return err
			}
			continue
		}
		c.setExtra(k, v)
	}
	return nil
}
