package captchagate

import (
	"net/http"
	"strings"
)

// A Dialect speaks one client's shapes of the captcha endpoints, on top of
// the gate's flow: a client SDK written for another service sends its own
// member names, expects its own answers and error codes. Register dialects
// in Config.Dialects; the gate's own shapes (docs/protocol.md) are always
// understood. Package dialect/idaas is one, for the identity service's
// slider verify; docs/architecture.md shows how to write one.
type Dialect interface {
	// ServeEndpoint answers a POST to the captcha endpoint named endpoint
	// (the path under Config.Prefix: "verify", "refresh", "new", or a name
	// of the dialect's own) if the request is in the dialect's shape, and
	// reports whether it did. false leaves the request to the next dialect
	// and then to the gate. body is the request's body, read by the gate
	// and bounded as its own endpoints' are. The dialect builds on the
	// Gate's operations (Verify, Refresh, NewCaptcha, Lookup) and answers
	// failures with Gate.Error or its own renderer.
	ServeEndpoint(g *Gate, w http.ResponseWriter, r *http.Request, endpoint string, body []byte) bool
}

// A ProofReader is a Dialect whose clients carry proof on guarded requests
// in their own shape (a token in the query, an answer in members of their
// own). A tripped request that carries none of the gate's own proof
// (TokenHeader, TokenField, IDField and AnswerField) is asked of each
// ProofReader in turn; the first that finds one decides.
type ProofReader interface {
	// ReadProof returns the proof r carries. body is r's body, read and
	// bounded by the guard (nil if it has none).
	ReadProof(r *http.Request, body []byte) (p Proof, ok bool)
}

// Proof is what a guarded request carries to pass a tripped policy: a
// captcha_token, or an answer to a captcha.
type Proof struct {
	Token     string
	CaptchaID string
	Answer    string
}

// dialectProof asks the ProofReader dialects, in order, for the proof r
// carries.
func (g *Gate) dialectProof(r *http.Request, body []byte) Proof {
	for _, d := range g.dialects {
		if pr, ok := d.(ProofReader); ok {
			if p, ok := pr.ReadProof(r, body); ok {
				p.Token, p.CaptchaID = strings.TrimSpace(p.Token), strings.TrimSpace(p.CaptchaID)
				return p
			}
		}
	}
	return Proof{}
}
