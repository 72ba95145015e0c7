package captchagate

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// Policy says when requests to a guarded route need a captcha. It names the
// keys the route is counted by; each key has its own thresholds. A request
// needs a captcha when any key trips: its failures in the window reached
// MaxFailures, or its send rate ran out. A hard Ceiling answers
// too_many_requests even to requests that solved a captcha.
type Policy struct {
	// Name identifies the policy in store keys, captchas and tokens: a token
	// minted for one policy is refused by every other. Required, unique per
	// Gate, at most 64 bytes.
	Name string

	// Keys the route is counted by. At least one.
	Keys []Key

	// MaxFailures is the default of Key.MaxFailures.
	MaxFailures int
	// Window is the default of Key.Window.
	Window time.Duration

	// Devices, if set, gives each known device of an account a failure
	// budget of its own (OWASP's device cookies): see Devices. Default nil,
	// off.
	Devices *Devices

	// FailureStatuses are the statuses of the wrapped handler that count as a
	// failure. Default 401 and 403. Statuses below 400 are successes; any other
	// status is neither, and so is a handler that writes nothing (no status,
	// no body). A handler can decide itself with Fail and Succeed.
	FailureStatuses []int

	// DryRun counts and reports as usual (events, logs) but never asks for
	// a captcha nor refuses a request past a ceiling: a request that would
	// have been is let through and reported as EventDryRun. For rolling a
	// policy out: watch what it would do before it does it. Default false.
	DryRun bool
}

// Key is one thing a Policy counts by, with its thresholds.
type Key struct {
	// Source extracts the key's value from the request (ClientIP, Header,
	// FormField, JSONField, Field, Query, Combine, SourceFunc,
	// BodySourceFunc). Required.
	Source Source

	// Identity says the value is a username, an email address or a phone
	// number. The key then counts the value in that kind's canonical form,
	// is required (unless Optional), never resets on success (an account
	// is shared by its owner and whoever guesses at it; a Combine with an
	// identity part is one client's and does), has a FailureCeiling and,
	// for an email address or a phone number, is a Sender, whatever those
	// fields say. Username, Email and Phone set it, so a key from them keeps its
	// meaning when thresholds are added:
	//
	//	k := captchagate.Phone(captchagate.JSONField("phone"))
	//	k.Rate, k.Burst = rate.Every(20*time.Minute), 3
	//
	// or in a literal:
	//
	//	{Source: captchagate.JSONField("phone"), Identity: captchagate.IdentityPhone,
	//		Rate: rate.Every(20 * time.Minute), Burst: 3}
	//
	// The Source of a Key from Username, Email or Phone carries the same
	// Identity, which a Key built from it with Identity unset takes.
	Identity Identity

	// MaxFailures is the number of failures in Window after which the key
	// needs a captcha: with 5, the sixth attempt needs one. 0 means the
	// policy's MaxFailures; negative disables failure counting for the key.
	MaxFailures int
	// Window is the fixed window failures are counted in. 0 means the policy's
	// Window, and 15 minutes if that is 0 too.
	Window time.Duration

	// Rate and Burst form a send-rate trigger (golang.org/x/time/rate
	// semantics): past it, requests need a captcha instead of getting a 429.
	// Rate 0 disables it; Burst defaults to 1.
	Rate  rate.Limit
	Burst int

	// Ceiling is a hard limit of requests reaching the handler per
	// CeilingWindow: past it, requests are answered too_many_requests with
	// Retry-After even with a solved captcha. 0 disables it. CeilingWindow
	// defaults to one hour.
	Ceiling       int
	CeilingWindow time.Duration

	// FailureCeiling is a hard limit of failures per FailureCeilingWindow:
	// past it, requests are answered too_many_requests with Retry-After even
	// with a solved captcha (NIST SP 800-63B 5.2.2 asks for at most 100
	// consecutive failures per account). It counts failures the way
	// MaxFailures does and is never reset by a success on the account-wide
	// key. Default 100 for an account key (a Key with an Identity, not a
	// Combine) that counts failures, off for other keys; negative disables
	// it. FailureCeilingWindow defaults to 24 hours. A known device
	// (Policy.Devices) counts on a ceiling of its own, so the owner still
	// gets through when the account's is reached.
	FailureCeiling       int
	FailureCeilingWindow time.Duration

	// ResetOnSuccess resets the key's failure counters when the handler
	// succeeds. Set it for keys of one client (username+IP, a device), never
	// for keys several clients share: an address-wide key, or the
	// account-wide key of an Identity, whose reset would hand an attacker
	// fresh guesses each time the owner signs in (NewGuard refuses it
	// there). A Combine with an Identity part implies it.
	ResetOnSuccess bool

	// Sender marks a key that holds where a code is sent (a phone number or
	// an email address). A verification that names a sender (Solution.Sender;
	// the dialect/idaas verify does) mints a token usable only by a request
	// whose Sender key has that value. IdentityEmail and IdentityPhone imply
	// it.
	Sender bool

	// Required answers invalid_request when the key is absent. Without it, an
	// absent key is skipped and the policy's other keys still count. An
	// account key (a Key with an Identity, or a Sender) is required unless
	// Optional: a request whose account the guard cannot read is refused,
	// never passed uncounted.
	Required bool
	// Optional lets an account key (Identity, Sender) be absent: the request
	// is then counted by the policy's other keys only. Use it only where the
	// handler itself refuses requests without the value.
	Optional bool

	// Allow lists values that bypass the policy: a request with one of them
	// is not counted by any of the policy's keys and never asked for a
	// captcha (no proof needed), as if it were not guarded. Values are
	// compared as the key counts them ("Monitor" allows "monitor").
	// Anyone who sends such a value bypasses the guard: list only values
	// nobody can abuse, such as a synthetic monitor's account whose
	// password is checked anyway, or a test number. Not for ClientIP,
	// ClientNet, Everyone or Combine keys: allow addresses with
	// Config.AllowNetworks.
	Allow []string
}

const (
	maxPolicyName   = 64
	maxKeyValue     = 256
	defaultWindow   = 15 * time.Minute
	defaultCeilWin  = time.Hour
	maxKeysInPolicy = 16
	// The default failure ceiling of an account key: NIST SP 800-63B's 100
	// consecutive failures, per day.
	defaultFailureCeiling = 100
	defaultFailCeilWin    = 24 * time.Hour
)

// Identity is what a key's value names, when it names an account or where
// a code is sent: it decides how the value is counted and the key's flags
// (see Key.Identity). The zero Identity says nothing: the value is counted as
// its Source gives it, with the flags the Key sets.
type Identity uint8

// The identities a key can have.
const (
	// IdentityUsername is an account name: NFKC, full Unicode case folding,
	// NFKC again (as Source.Fold), so every spelling strings.EqualFold or
	// NFKC equates counts as one ("ａｌｉｃｅ", "ALICE", "alice"; the
	// Kelvin sign and "k"; "ß" and "SS").
	IdentityUsername Identity = iota + 1
	// IdentityEmail is an email address: folded as IdentityUsername (the
	// whole address); the key is a Sender.
	IdentityEmail
	// IdentityPhone is a phone number in one digit form: NFKC (fullwidth
	// "＋１"), every Unicode decimal digit (Arabic-Indic, Devanagari, ...)
	// as its ASCII digit, Unicode spaces, dashes, '.', '(', ')' and '/'
	// removed, and a leading "00" written "+"; other characters are kept.
	// "+1 (555) 000-1234", "001 555 000 1234" and "＋１５５５０００１２３４"
	// are one number. The key is a Sender.
	IdentityPhone
)

// Username is a per-account key from src (IdentityUsername): folded to one
// canonical form (NFKC, Unicode case folding), required, with the default
// FailureCeiling, never reset on success. Set its thresholds on the Key it
// returns, or name IdentityUsername in a Key literal.
func Username(src Source) Key { return identityKey(src, IdentityUsername) }

// Email is like Username, for email addresses (IdentityEmail), and a Sender:
// a token verified for an address serves every spelling of it the key
// counts as one.
func Email(src Source) Key { return identityKey(src, IdentityEmail) }

// Phone is a per-number key from src (IdentityPhone), counted in one digit
// form (see IdentityPhone: "001 555 000 1234" is "+15550001234"),
// required, and a Sender.
func Phone(src Source) Key { return identityKey(src, IdentityPhone) }

func identityKey(src Source, id Identity) Key {
	return Key{Source: src.as(id), Identity: id, Sender: id.sender()}
}

// sender reports whether id names where a code is sent.
func (id Identity) sender() bool { return id == IdentityEmail || id == IdentityPhone }

// compiled policy

type guardKey struct {
	Key
	name        string
	prefix      []byte // policy, key name: the HMAC input before the value
	maxFailures int64
	window      time.Duration
	interval    time.Duration
	burst       int
	ceilWindow  time.Duration
	failCeil    int64 // the failure ceiling (0: none)
	failCeilWin time.Duration
	allow       map[string]struct{} // Allow, canonical
	// account: the key names an account (an Identity on a single source):
	// counted account-wide, never reset by a success, and what a known
	// device's cookie is bound to (Policy.Devices).
	account bool
}

func compilePolicy(p Policy) ([]guardKey, []int, error) {
	if p.Name == "" {
		return nil, nil, errors.New("captchagate: policy needs a Name")
	}
	if len(p.Name) > maxPolicyName {
		return nil, nil, errors.New("captchagate: policy name longer than 64 bytes")
	}
	if len(p.Keys) == 0 {
		return nil, nil, fmt.Errorf("captchagate: policy %q has no keys", p.Name)
	}
	if len(p.Keys) > maxKeysInPolicy {
		return nil, nil, fmt.Errorf("captchagate: policy %q has more than %d keys", p.Name, maxKeysInPolicy)
	}
	keys := make([]guardKey, len(p.Keys))
	seen := map[string]bool{}
	for i, k := range p.Keys {
		if k.Source.extract == nil {
			return nil, nil, fmt.Errorf("captchagate: policy %q key %d has no Source", p.Name, i)
		}
		if seen[k.Source.name] {
			return nil, nil, fmt.Errorf("captchagate: policy %q counts %s twice", p.Name, k.Source.name)
		}
		seen[k.Source.name] = true
		gk, err := compileKey(p, k)
		if err != nil {
			return nil, nil, fmt.Errorf("captchagate: policy %q key %s %w", p.Name, k.Source.name, err)
		}
		keys[i] = gk
	}
	statuses := p.FailureStatuses
	if len(statuses) == 0 {
		statuses = []int{http.StatusUnauthorized, http.StatusForbidden}
	}
	for _, s := range statuses {
		if s < 400 || s > 599 {
			return nil, nil, fmt.Errorf("captchagate: policy %q: failure status %d is not an error status", p.Name, s)
		}
	}
	return keys, append([]int(nil), statuses...), nil
}

// compileKey applies k's Identity and the policy's defaults to k; its error
// completes "policy P key K ...".
func compileKey(p Policy, k Key) (guardKey, error) {
	gk := guardKey{Key: k, name: k.Source.name}
	switch id := cmp.Or(k.Identity, k.Source.identity); {
	case id > IdentityPhone:
		return gk, fmt.Errorf("has an unknown Identity %d", id)
	case id != 0 && k.Source.raw && k.Source.parts == nil:
		// ClientIP, ClientNet: an Identity would make the address reset
		// on success, so an attacker's own logins would wipe its count.
		return gk, errors.New("has an Identity on an address key (ClientIP, ClientNet): addresses are counted without one")
	case id != 0:
		gk.Identity = id
		gk.Source = k.Source.as(id)
		gk.Sender = gk.Sender || id.sender()
		gk.account = k.Source.parts == nil
		// A Combine with an identity part (username+IP) is one client's:
		// reset on its success.
		gk.ResetOnSuccess = gk.ResetOnSuccess || !gk.account
	}
	if gk.account && k.ResetOnSuccess {
		return gk, errors.New("resets on success, but is an account-wide key: an attacker would regain its guesses each time the owner signs in; count a Combine of the account and the address (or Policy.Devices) for a per-client reset")
	}
	if (gk.Identity != 0 || gk.Sender) && !k.Optional {
		gk.Required = true
	}
	switch {
	case k.MaxFailures > 0:
		gk.maxFailures = int64(k.MaxFailures)
	case k.MaxFailures == 0 && p.MaxFailures > 0:
		gk.maxFailures = int64(p.MaxFailures)
	}
	gk.window = cmp.Or(k.Window, p.Window, defaultWindow)
	switch {
	case gk.window < 0:
		return gk, errors.New("has a negative Window")
	case k.Rate < 0 || k.Burst < 0 || k.Ceiling < 0 || k.CeilingWindow < 0:
		return gk, errors.New("has a negative limit")
	}
	if k.Rate > 0 && k.Rate != rate.Inf {
		gk.interval = max(time.Duration(float64(time.Second)/float64(k.Rate)), 1)
		gk.burst = max(k.Burst, 1)
	}
	if k.Ceiling > 0 {
		gk.ceilWindow = cmp.Or(k.CeilingWindow, defaultCeilWin)
	}
	switch {
	case k.FailureCeiling > 0:
		gk.failCeil = int64(k.FailureCeiling)
	case k.FailureCeiling == 0 && gk.account && gk.maxFailures > 0:
		gk.failCeil = defaultFailureCeiling
	}
	if k.FailureCeilingWindow < 0 {
		return gk, errors.New("has a negative FailureCeilingWindow")
	}
	if gk.failCeil > 0 {
		gk.failCeilWin = cmp.Or(k.FailureCeilingWindow, defaultFailCeilWin)
	}
	if gk.maxFailures == 0 && gk.interval == 0 && k.Ceiling == 0 && gk.failCeil == 0 {
		return gk, errors.New("has no MaxFailures, Rate, Ceiling or FailureCeiling")
	}
	return gk, nil
}
