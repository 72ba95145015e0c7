package captchagate

import (
	"net/http"
	"slices"
	"strings"
)

// seedSpeaker is a Challenge that speaks the slider seed's verify: Slider,
// and types that embed it.
type seedSpeaker interface{ slider() Slider }

func (s Slider) slider() Slider { return s }

// The slider seed's device headers: the first three must be present.
var seedDeviceHeaders = []string{"X-operating-sys-version", "X-device-fingerprint", "X-agent"}

// serveSeedVerify answers the identity-service seed's verify request:
// point_json, token (the captcha's id) and sender in the body, device and
// client headers, and {"captcha_token": ...} on success, the token bound to
// sender. Each missing or malformed parameter has its own code, checked in
// the seed's order.
func (g *Gate) serveSeedVerify(w http.ResponseWriter, r *http.Request, sl Slider, p *params) error {
	for _, h := range seedDeviceHeaders {
		if strings.TrimSpace(r.Header.Get(h)) == "" {
			return invalid(CodeDeviceIncomplete, h, "Device information is incomplete")
		}
	}
	client := strings.TrimSpace(r.Header.Get("X-client-id"))
	if client == "" {
		return invalid(CodeMissingClientID, "X-client-id", "clientId cannot be empty")
	}
	if len(sl.ClientIDs) > 0 && !slices.Contains(sl.ClientIDs, client) {
		return invalid(CodeUnknownClientID, "X-client-id", "The app is not registered, please register the app first")
	}
	if strings.TrimSpace(p.PointJSON) == "" {
		return invalid(CodeMissingPoint, "point_json", "Point json cannot be empty")
	}
	if len(p.PointJSON) > sl.MaxAnswerLen() || !strings.HasPrefix(strings.TrimSpace(p.PointJSON), "{") {
		return invalid(CodeMalformedPoint, "point_json", `point_json must be {"x":number,"y":number}`)
	}
	if _, ok := parseSliderAnswer(p.PointJSON); !ok {
		return invalid(CodeMalformedPoint, "point_json", `point_json must be {"x":number,"y":number}`)
	}
	id := strings.TrimSpace(p.Token)
	if id == "" {
		return invalid(CodeMissingToken, "token", "Token cannot be empty")
	}
	if !validID(id) {
		return invalid(CodeMalformedCaptchaID, "token", "token is not a captcha id")
	}
	sender := strings.TrimSpace(p.Sender)
	if sender == "" {
		return invalid(CodeMissingSender, "sender", "Sender cannot be empty")
	}
	if len(sender) > maxKeyValue {
		return invalid(CodeMalformedSender, "sender", "sender is longer than 256 bytes")
	}
	return g.verify(w, r, id, p.PointJSON, sender)
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
