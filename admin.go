package captchagate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
)

// Admin actions: resetting the counts of one value, the allowlists, dry run.

// Reset forgets the counts of value under key of gd's policy: its failures,
// its failure ceiling, its request ceiling and its send rate, as an admin
// action or after the owner reset their password. key names the key as
// events do ("json:username", "ip"), or by the part after the colon
// ("username") when only one key of the policy has that part. value is
// counted as the guard counts requests' values: "ALICE " resets "alice",
// "001 555 000 1234" resets "+15550001234"; for ClientIP and ClientNet it
// is an address ("192.0.2.1", "2001:db8::1"), reset with its /64 or its
// network.
//
// It resets only the value's counters of this policy: not the counters of
// the account's known devices (Policy.Devices), and not those of a Combine,
// whose values hold more than one part (Reset refuses a Combine key). Captchas
// and tokens already issued stay valid. A store failure is returned, wrapped
// in an error matching ErrStoreUnavailable.
func (gd *Guard) Reset(ctx context.Context, key, value string) error {
	i, err := gd.keyIndex(key)
	if err != nil {
		return err
	}
	ev := getEval()
	defer putEval(ev)
	k := &gd.keys[i]
	v, err := gd.g.canonicalValue(k, value, ev.buf[:0])
	if err != nil {
		return fmt.Errorf("captchagate: policy %q key %s: %w", gd.name, k.name, err)
	}
	gd.g.counter.hashKey(ev, i, k.prefix, v)
	for _, kind := range [...]counterKind{ceilingCount, failureCount, failureCeil, sendRate} {
		op := ev.addOp(kind, i)
		op.Kind = OpReset
	}
	gd.g.counter.run(ctx, ev, ev.ops, ev.notes)
	defer ev.dropOps()
	for j := range ev.ops {
		if err := ev.ops[j].Err; err != nil {
			return unavailableError(err)
		}
	}
	return nil
}

// Reset is Guard.Reset on the guard of policy: an admin handler that knows
// only the policy's name can reset a user's counts. It fails with an error
// matching ErrInvalidRequest for a policy no guard of g has.
func (g *Gate) Reset(ctx context.Context, policy, key, value string) error {
	gd, ok := g.policy(policy)
	if !ok {
		return invalid(CodeUnknownPolicy, "policy", msgPolicyUnknown)
	}
	return gd.Reset(ctx, key, value)
}

// keyIndex finds the key named name: its full name, or the part after its
// colon when that is unique in the policy.
func (gd *Guard) keyIndex(name string) (int, error) {
	found := -1
	for i := range gd.keys {
		n := gd.keys[i].name
		if n == name {
			return i, nil
		}
		if _, short, ok := strings.Cut(n, ":"); ok && short == name {
			if found >= 0 {
				return 0, fmt.Errorf("captchagate: policy %q has more than one key named %q; use the full name (%s, %s)", gd.name, name, gd.keys[found].name, n)
			}
			found = i
		}
	}
	if found < 0 {
		return 0, fmt.Errorf("captchagate: policy %q has no key named %q", gd.name, name)
	}
	return found, nil
}

// canonicalValue returns v as key k counts a request's value, appended to
// dst: trimmed, folded, in its identity's form, bounded; for an address
// key, the address as a request from it is counted.
func (g *Gate) canonicalValue(k *guardKey, v string, dst []byte) ([]byte, error) {
	var in input
	src := k.Source
	switch {
	case src.parts != nil:
		return nil, errors.New("is a Combine: its values cannot be named by one value")
	case src.raw:
		a, err := netip.ParseAddr(v)
		if err != nil && src.name != "site" {
			return nil, fmt.Errorf("value %q is not an address", v)
		}
		in.r = &http.Request{RemoteAddr: netip.AddrPortFrom(a.Unmap(), 1).String(), Header: http.Header{}}
		if !a.IsValid() {
			in.r.RemoteAddr = ""
		}
	default:
		src.extract = func(_ *input, dst []byte) ([]byte, bool) { return append(dst, v...), true }
	}
	in.g = g
	out, ok := src.value(&in, dst)
	if !ok {
		return nil, errors.New("value is empty")
	}
	return out, nil
}

// compileAllow canonicalises k's allowlist (Key.Allow).
func (g *Gate) compileAllow(k *guardKey) error {
	if len(k.Allow) == 0 {
		return nil
	}
	if k.Source.raw {
		return errors.New("has an Allow list, but its values are addresses or parts: allow networks with Config.AllowNetworks")
	}
	k.allow = make(map[string]struct{}, len(k.Allow))
	for _, v := range k.Allow {
		c, err := g.canonicalValue(k, v, nil)
		if err != nil {
			return fmt.Errorf("in its Allow list: %w", err)
		}
		k.allow[string(c)] = struct{}{}
	}
	return nil
}

// allowedNet reports whether r's client address is in Config.AllowNetworks.
func (g *Gate) allowedNet(r *http.Request) bool {
	if len(g.allowNets) == 0 {
		return false
	}
	a, ok := g.ips.clientAddr(r)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range g.allowNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// dryRunPass reports, for a guard in dry run, a request it would have
// refused (limited: a ceiling) or asked for a captcha (ev.tripped), and
// clears the trip: the request goes on to the handler, counted.
func (gd *Guard) dryRunPass(r *http.Request, ev *eval, limited bool) {
	if !limited && ev.tripped == 0 {
		return
	}
	reason := "captcha"
	if limited {
		reason = "limit"
	}
	g := gd.g
	if g.onEvent != nil || g.logger.Enabled(context.Background(), slog.LevelInfo) {
		which := ev.tripped
		if limited {
			which = ev.limited
		}
		i := 0
		for ; i < len(gd.keys) && !which.has(i); i++ {
		}
		e := Event{Kind: EventDryRun, Policy: gd.name, Reason: reason, DryRun: true, Request: r}
		if i < len(gd.keys) {
			e.Key, e.Value = gd.keys[i].name, gd.eventValue(ev, i)
		}
		g.emit(e)
	}
	ev.tripped = 0
}
