// Package idaas is the dialect of the customer-identity service's slider
// verify (the seeds' "verify a slider captcha" document) for captchagate:
//
//	POST {prefix}verify
//	X-operating-sys-version, X-device-fingerprint, X-agent: device headers (required)
//	X-client-id: the app's id
//	{"point_json":"{\"x\":237.0,\"y\":5.0}","token":"<the captcha's id>","sender":"15200000000"}
//
// answered {"captcha_token":"…","expires_in":…}, the token bound to the
// sender (the captcha's policy needs a Key.Sender key). Errors are the
// seed's: HTTP 400 with a string error_code (IDAAS.SDK.PARAM.0001 to 0006
// for each missing or malformed parameter, checked in the seed's order,
// IDAAS.SDK.CAPTCHA.0002 for a failed check) and error_msg, beside the
// gate's own members (error, code, error_description, param, and for a
// failed check the fresh puzzle in captcha); see docs/challenges.md.
// Requests without point_json, token and sender are left to the gate's own
// verify.
//
// The puzzle's way through without sight (slider.Puzzle's digits, drawn and
// spoken) goes through the same verify: point_json carries the digits in
// place of a point ({"point_json":"123456",…}: six digits, spaces and
// dashes ignored), with the same token, sender
// and headers, so its token is bound to the sender as a point's is.
//
// It is built on captchagate's exported Dialect hook and Gate.Verify (and
// slider.IsDigits) only, as a third party would build one:
//
//	gate, err := captchagate.New(captchagate.Config{
//		Challenge: slider.Puzzle{},
//		Dialects:  []captchagate.Dialect{idaas.Dialect{ClientIDs: []string{clientID}}},
//	})
package idaas

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/slider"
)

// The dialect's wire codes, all invalid_request (HTTP 400); docs/challenges.md
// maps each to the seed's IDAAS.SDK.PARAM code. A sender that is too long,
// or that the captcha's policy cannot bind, is the gate's
// captchagate.CodeMalformedSender (4118).
const (
	CodeDeviceIncomplete captchagate.Code = 4111 // a required device header is missing
	CodeMissingClientID  captchagate.Code = 4112 // X-client-id is empty
	CodeUnknownClientID  captchagate.Code = 4113 // X-client-id names no registered app
	CodeMissingPoint     captchagate.Code = 4114 // point_json is empty
	CodeMalformedPoint   captchagate.Code = 4115 // point_json is neither {"x":number,"y":number} nor six digits
	CodeMissingToken     captchagate.Code = 4116 // token (the captcha's id) is empty
	CodeMissingSender    captchagate.Code = 4117 // sender is empty
)

// DeviceHeaders are the device headers the seed's verify must carry.
var deviceHeaders = []string{"X-operating-sys-version", "X-device-fingerprint", "X-agent"}

const maxPoint = 128 // point_json's longest form

// Dialect speaks the seed's verify. Its zero value accepts any X-client-id.
type Dialect struct {
	// ClientIDs, if set, are the X-client-id values accepted; others are
	// answered "app not registered" (4113).
	ClientIDs []string
}

type request struct {
	PointJSON string `json:"point_json"`
	Token     string `json:"token"`
	Sender    string `json:"sender"`
}

// ServeEndpoint implements captchagate.Dialect: it answers a verify whose
// body has point_json, token or sender.
func (d Dialect) ServeEndpoint(g *captchagate.Gate, w http.ResponseWriter, r *http.Request, endpoint string, body []byte) bool {
	if endpoint != "verify" {
		return false
	}
	p, ok := parse(r, body)
	if !ok {
		return false
	}
	tok, err := d.verify(g, r, p)
	if err != nil {
		writeError(g, w, r, err)
		return true
	}
	b, _ := json.Marshal(struct {
		Token     string `json:"captcha_token"`
		ExpiresIn int    `json:"expires_in"`
	}{tok.Value, int(tok.ExpiresIn / time.Second)})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
	return true
}

// parse reads the seed's members from a JSON or URL-encoded body; ok is
// false when the body is not the seed's (none of its members is there).
func parse(r *http.Request, body []byte) (request, bool) {
	var p request
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return p, false
		}
		p.PointJSON, p.Token, p.Sender = q.Get("point_json"), q.Get("token"), q.Get("sender")
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if json.Unmarshal(bytes.TrimSpace(body), &p) != nil {
			return p, false
		}
	default:
		return p, false
	}
	return p, p.PointJSON != "" || p.Token != "" || p.Sender != ""
}

// seedCodes are the seed's error codes and messages for the gate's codes
// its verify answers with: each parameter's own, and the failed check's.
var seedCodes = map[captchagate.Code][2]string{
	CodeDeviceIncomplete:               {"IDAAS.SDK.PARAM.0001", "Device information is incomplete"},
	CodeMissingClientID:                {"IDAAS.SDK.PARAM.0002", "clientId cannot be empty"},
	CodeUnknownClientID:                {"IDAAS.SDK.PARAM.0003", "The app is not registered, please register the app first"},
	CodeMissingPoint:                   {"IDAAS.SDK.PARAM.0004", "Point json cannot be empty"},
	CodeMalformedPoint:                 {"IDAAS.SDK.PARAM.0004", "Point json is not valid"},
	CodeMissingToken:                   {"IDAAS.SDK.PARAM.0005", "Token cannot be empty"},
	captchagate.CodeMalformedCaptchaID: {"IDAAS.SDK.PARAM.0005", "Token is not valid"},
	CodeMissingSender:                  {"IDAAS.SDK.PARAM.0006", "Sender cannot be empty"},
	captchagate.CodeMalformedSender:    {"IDAAS.SDK.PARAM.0006", "Sender is not valid"},
	captchagate.CodeCaptchaInvalid:     {"IDAAS.SDK.CAPTCHA.0002", "Graphic verification code verification failed"},
}

// seedError is the seed's error body, HTTP 400: its string error_code and
// error_msg, with the gate's own members beside them (error, code,
// error_description, param, and for a failed check the fresh puzzle in
// captcha), which the seed's clients ignore and the gate's widget reads.
type seedError struct {
	SeedCode    string               `json:"error_code"`
	SeedMsg     string               `json:"error_msg"`
	Error       string               `json:"error"`
	Code        captchagate.Code     `json:"code"`
	Description string               `json:"error_description,omitempty"`
	Param       string               `json:"param,omitempty"`
	Captcha     *captchagate.Captcha `json:"captcha,omitempty"`
}

// writeError answers err in the seed's shape when the seed has a code for
// it (a parameter, or the failed check), and in the gate's otherwise (too
// many requests, a store failure).
func writeError(g *captchagate.Gate, w http.ResponseWriter, r *http.Request, err error) {
	var e *captchagate.Error
	if !errors.As(err, &e) {
		g.Error(w, r, err)
		return
	}
	seed, ok := seedCodes[e.Code]
	if !ok {
		g.Error(w, r, err)
		return
	}
	b, _ := json.Marshal(seedError{seed[0], seed[1], e.Code.Name(), e.Code, e.Description, e.Param, e.Captcha})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusBadRequest)
	w.Write(append(b, '\n'))
}

func invalid(code captchagate.Code, param, desc string) error {
	return &captchagate.Error{Code: code, Param: param, Description: desc}
}

// verify checks the request's shape in the seed's order, before the gate
// spends the captcha.
func (d Dialect) verify(g *captchagate.Gate, r *http.Request, p request) (captchagate.Token, error) {
	var none captchagate.Token
	for _, h := range deviceHeaders {
		if strings.TrimSpace(r.Header.Get(h)) == "" {
			return none, invalid(CodeDeviceIncomplete, h, "Device information is incomplete")
		}
	}
	client := strings.TrimSpace(r.Header.Get("X-client-id"))
	if client == "" {
		return none, invalid(CodeMissingClientID, "X-client-id", "clientId cannot be empty")
	}
	if len(d.ClientIDs) > 0 && !slices.Contains(d.ClientIDs, client) {
		return none, invalid(CodeUnknownClientID, "X-client-id", "The app is not registered, please register the app first")
	}
	if strings.TrimSpace(p.PointJSON) == "" {
		return none, invalid(CodeMissingPoint, "point_json", "Point json cannot be empty")
	}
	if !validPoint(p.PointJSON) && (len(p.PointJSON) > maxPoint || !slider.IsDigits(strings.TrimSpace(p.PointJSON))) {
		return none, invalid(CodeMalformedPoint, "point_json", `point_json must be {"x":number,"y":number}, or the puzzle's six digits`)
	}
	id := strings.TrimSpace(p.Token)
	if id == "" {
		return none, invalid(CodeMissingToken, "token", "Token cannot be empty")
	}
	sender := strings.TrimSpace(p.Sender)
	if sender == "" {
		// The gate's checks of the id come first, as in the seed's order.
		if err := malformedID(g, r, id); err != nil {
			return none, err
		}
		return none, invalid(CodeMissingSender, "sender", "Sender cannot be empty")
	}
	tok, err := g.Verify(r, captchagate.Solution{CaptchaID: id, Answer: p.PointJSON, Sender: sender})
	var e *captchagate.Error
	if errors.As(err, &e) && e.Code == captchagate.CodeMalformedCaptchaID {
		e.Param = "token" // the seed's name for the captcha's id
	}
	return tok, err
}

// malformedID returns the gate's error for an id that is not a captcha id,
// without spending anything: Verify with an empty answer refuses the id
// first, and else the answer.
func malformedID(g *captchagate.Gate, r *http.Request, id string) error {
	_, err := g.Verify(r, captchagate.Solution{CaptchaID: id})
	var e *captchagate.Error
	if errors.As(err, &e) && e.Code == captchagate.CodeMalformedCaptchaID {
		e.Param = "token"
		return e
	}
	return nil
}

// validPoint reports whether s is {"x":number,"y":number}, as the seed
// sends it.
func validPoint(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) > maxPoint || !strings.HasPrefix(s, "{") {
		return false
	}
	var pt struct {
		X *float64 `json:"x"`
		Y *float64 `json:"y"`
	}
	dec := json.NewDecoder(strings.NewReader(s))
	return dec.Decode(&pt) == nil && pt.X != nil && pt.Y != nil && !dec.More()
}
