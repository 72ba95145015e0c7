// Package captchagate adds captcha gating to net/http applications: it counts
// failed attempts and send rates per key, and once a threshold trips, asks the
// client to solve a captcha before the request reaches the handler.
//
// # The flow
//
// A Gate owns the store, the secret and the kind of challenge:
//
//	gate, err := captchagate.New(captchagate.Config{Secret: key}) // in-memory store by default
//	defer gate.Close()
//	mux.Handle("/captcha/", gate.Handler()) // image, audio, refresh, verify, new
//
// A Policy names the keys a route is counted by, each with its thresholds, and
// Guard turns it into middleware:
//
//	login := captchagate.Policy{
//		Name: "login",
//		Keys: []captchagate.Key{
//			captchagate.Username(captchagate.JSONField("username")),            // 5 per username per 15 min
//			{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour}, // 20 per address per hour
//		},
//		MaxFailures: 5,
//		Window:      15 * time.Minute,
//	}
//	mux.Handle("POST /login", gate.Guard(login)(loginHandler))
//
// Then:
//
//  1. Below every threshold the request goes to the handler. Its response
//     status says whether it failed (401 and 403 by default; or the handler
//     calls Fail or Succeed). A failure stays counted; a success (a status
//     below 400, or Succeed) resets only the client's own keys (a known
//     device's, a username+address Combine: Key.ResetOnSuccess), never an
//     account-wide or address-wide one, so the owner's sign-in hands an
//     attacker no fresh guesses; a handler that writes nothing is neither.
//  2. Once a key has MaxFailures failures in its Window, or has used up its
//     send Rate, the next request without proof is answered 428 with
//     {"error":"captcha_required","error_code":4001,"captcha":{...}}: the
//     captcha's id and its image, audio, refresh and verify URLs.
//  3. The client shows the image (or plays the audio), POSTs the answer to
//     the verify URL and gets a captcha_token: short-lived, single-use, and
//     bound to the policy, the request's account keys and the key values
//     that tripped (a token solved for alice does not open bob's login; one
//     from POST new opens no tripped account). A proof is checked before it
//     is consumed: one refused for another request stays usable for its own.
//  4. The client retries the original request with the token in the
//     X-Captcha-Token header (or a captcha_token form or JSON field). HTML
//     forms can instead send captcha_id and captcha_answer with the request
//     itself.
//  5. A wrong answer burns the captcha (one answer per captcha) and the
//     response, captcha_invalid (4002), carries a fresh one.
//
// A Key's Ceiling is a hard limit that a captcha does not lift, for endpoints
// that cost money such as SMS codes: past it, too_many_requests (429) with
// Retry-After. An account key's FailureCeiling (100 failures a day by
// default) is the same for guesses: a captcha farm gets no more.
//
// # The owner's budget and the site's
//
// Policy.Devices gives the owner's known devices budgets of their own: a
// successful sign-in (Succeed) sets a signed device cookie bound to the
// account, and a request presenting it counts on that device's counters, so
// the account's captcha and failure ceiling, which an attacker can run up,
// never stop the owner's known browser. A key of Everyone is shared by every
// request: password spraying over many accounts, or SMS pumping over many
// numbers, trips it and asks every request for a captcha, and its Ceiling
// bounds the total.
//
// # The explicit mode
//
// Guard.Wrap reads key values from the request; a handler that parses the
// request itself can instead pass the values it parsed (Arg keys) to
// Guard.Begin, and report the outcome on the Attempt it gets: the same
// decision, proof handling and counting, with no second reading of the
// request that could differ from the application's.
//
// # Counting is atomic
//
// A failure counter is incremented before the handler runs and given back
// afterwards unless the request failed, so concurrent requests cannot all see a
// count below the threshold: with MaxFailures 5, 200 concurrent wrong
// passwords let at most 5 reach the handler. Captchas and tokens are consumed
// with the store's atomic Take: of 50 concurrent requests carrying one token,
// one gets through.
//
// # Keys
//
// ClientIP uses RemoteAddr unless Config.TrustedProxies names the proxies
// whose forwarded header (X-Forwarded-For, or RFC 7239 Forwarded) to
// believe, and groups IPv6 addresses by /64 (ClientNet groups wider); a
// request whose address cannot be resolved counts in one strict bucket,
// never uncounted. Header,
// Query, FormField and JSONField read request values (JSONField matches
// member names as encoding/json does, so what is counted is what the
// application decodes); SourceFunc and BodySourceFunc read any other (a path
// value, a cookie, a nested member, the user in the context) with a function
// of the application's. Combine joins them, and Fold and Normalize make the
// identities the application treats as one count as one. A Key's Identity
// (set by Username, Email and Phone) says the value is a username, an email
// address or a phone number: it is folded or normalised as such, the key is
// required (a request whose account the guard cannot read is refused, unless
// Key.Optional), never reset by a success, has a FailureCeiling and, for an
// address or a number, is a Sender, whatever thresholds the Key adds. Values are trimmed, cut to 256 bytes, and never
// stored: a shared store sees an HMAC under Config.Secret, the in-process
// store a seeded 64-bit hash.
//
// # Errors
//
// Every error is JSON (docs/protocol.md) unless Config.ErrorHandler renders
// it otherwise; it receives an *Error carrying the wire Code, the fresh
// Captcha and RetryAfter, and matches the sentinels (ErrCaptchaRequired, ...)
// with errors.Is. Store failures are logged, never shown to clients. Its
// Description is in the request's language (WithLanguage, else
// Accept-Language, else Config.DefaultLanguage; Gate.Language says which):
// en, ru, zh, ja, pt, es, de or fr. Codes and names are never translated.
//
// # Sessions and HTML forms
//
// A session layer attaches a Session to each request (WithSession): the gate
// then binds what it issues to the session, takes an inline answer's captcha
// from the session, and may answer with the session's own ErrorHandler.
// Package htmlform does this with gorilla/sessions and renders an accessible
// widget into an HTML form; its script also serves fetch() clients.
//
// # Stores
//
// The Store interface has one method per atomic operation. store/memstore is
// the default, bounded and in-process; store/redisstore shares one gate
// between instances through Redis; store/storetest is the conformance suite
// both pass, for other backends to run too. A store whose calls are round
// trips can also implement Batcher: a guard then hands it a request's
// counting at once and its give-backs without waiting (redisstore does): the
// next request on the same instance reads them, other instances once they are
// written, within the bound the store documents (see Batcher.Later). If the
// store fails, captcha verification and token consumption fail closed; the counting step follows
// Config.StoreFailure. A request waits on a shared store at most
// Config.StoreTimeout, and a client that hangs up cannot cancel the counting
// of its request.
//
// # Challenges
//
// Digits (github.com/dchest/captcha's distorted-digit images, and its digit
// recordings spoken over noise) is the default Challenge. Other kinds are
// packages of their own, built on the exported extension points only, as a
// third party would build one: slider (a puzzle), altcha (proof of work for
// the ALTCHA widget) and hosted (Turnstile, hCaptcha, reCAPTCHA). A
// Challenge issues a secret and checks an answer; a kind with media is a
// Renderer, and Describer, AnswerLimiter and AnswerValidator add the rest.
// The gate keeps everything else: storage, binding, expiry, single use,
// tokens, limits.
//
// # Dialects
//
// The gate's own wire shapes are in docs/protocol.md. A Dialect
// (Config.Dialects) speaks another client's: it answers the captcha
// endpoints' requests in its shape with the Gate's operations (Verify,
// Refresh, NewCaptcha, Lookup, Error), and, as a ProofReader, finds proof in
// guarded requests where its clients put it. Package dialect/idaas is the
// identity service's slider verify; docs/architecture.md shows the data path
// and where each extension point plugs in.
package captchagate
