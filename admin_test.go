package captchagate_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
)

// Guard.Reset and Gate.Reset forget one value's counts, in the form the
// guard counts it, and nothing else's.
func TestResetByValue(t *testing.T) {
	a := newLoginApp(t, nil)
	ctx := context.Background()
	a.trip(t, "Alice")
	a.trip(t, "bob")

	// A spelling of alice the guard counts as hers resets her counter, by
	// the key's short name; bob's stays tripped.
	require.NoError(t, a.gate.Reset(ctx, "login", "username", "  ＡＬＩＣＥ "))
	assert.Equal(t, http.StatusUnauthorized, a.login(t, "alice", "wrong").Code, "alice's failures are forgotten")
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "bob", "wrong").Code, "bob's are not")
	require.NoError(t, a.gate.Reset(ctx, "login", "json:username", "BOB"))
	assert.Equal(t, http.StatusUnauthorized, a.login(t, "bob", "wrong").Code)

	// The address key by an address: 14 failures so far from 192.0.2.1,
	// 20 trip it; after its reset, 20 more do.
	require.NoError(t, a.gate.Reset(ctx, "login", "ip", "192.0.2.1"))
	for i := range 20 {
		user := "user" + string(rune('a'+i))
		require.Equal(t, http.StatusUnauthorized, a.login(t, user, "wrong").Code, "failure %d after the address's reset", i+1)
	}
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "zed", "wrong").Code, "the 21st of the address trips it again")

	// What Reset refuses.
	err := a.gate.Reset(ctx, "signup", "username", "alice")
	assert.ErrorIs(t, err, captchagate.ErrInvalidRequest)
	assert.ErrorContains(t, a.gate.Reset(ctx, "login", "password", "x"), `no key named "password"`)
	assert.ErrorContains(t, a.gate.Reset(ctx, "login", "username", "   "), "empty")
	assert.ErrorContains(t, a.gate.Reset(ctx, "login", "ip", "alice"), "not an address")
	gd, err := a.gate.NewGuard(captchagate.Policy{Name: "pair", MaxFailures: 3, Keys: []captchagate.Key{
		{Source: captchagate.Combine(captchagate.JSONField("username"), captchagate.ClientIP())}}})
	require.NoError(t, err)
	assert.ErrorContains(t, gd.Reset(ctx, "json:username+ip", "alice"), "Combine")
}

// A send rate and a ceiling are reset too: a number past both sends again.
func TestResetSendRate(t *testing.T) {
	g, _ := newGate(t, nil)
	phone := captchagate.Phone(captchagate.JSONField("phone"))
	phone.Rate, phone.Burst, phone.Ceiling = rate.Every(time.Hour), 2, 3
	gd, err := g.NewGuard(captchagate.Policy{Name: "sms", Keys: []captchagate.Key{phone}})
	require.NoError(t, err)
	h := gd.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	send := func(number string) int {
		return serve(h, "POST", "/sms", `{"phone":"`+number+`"}`, "Content-Type", "application/json").Code
	}
	require.Equal(t, http.StatusNoContent, send("+1 555 000 1234"))
	require.Equal(t, http.StatusNoContent, send("+15550001234"))
	require.Equal(t, http.StatusPreconditionRequired, send("+15550001234"), "the burst of 2 is spent")
	require.NoError(t, gd.Reset(context.Background(), "phone", "001 (555) 000-1234"))
	assert.Equal(t, http.StatusNoContent, send("+15550001234"), "a full bucket again")
	assert.Equal(t, http.StatusNoContent, send("+15550001234"), "and a ceiling counted from zero")
	assert.Equal(t, http.StatusPreconditionRequired, send("+15550001234"))
}

// Key.Allow and Config.AllowNetworks bypass counting: a listed value or
// network is never asked for a captcha and counts on no key, not even the
// address it shares with others.
func TestAllowlists(t *testing.T) {
	policy := loginPolicy
	policy.Keys = []captchagate.Key{captchagate.Username(captchagate.JSONField("username")),
		{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour}}
	policy.Keys[0].Allow = []string{"Monitor"}
	a := newLoginAppWith(t, policy, func(c *captchagate.Config) {
		c.AllowNetworks = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	})
	for i := range 30 {
		require.Equal(t, http.StatusUnauthorized, a.login(t, " MONITOR", "wrong").Code, "allowed value, failure %d", i+1)
	}
	// The address those 30 came from counted none of them: 19 failures of
	// others stay under its 20.
	for i := range 19 {
		require.Equal(t, http.StatusUnauthorized, a.login(t, "u"+string(rune('a'+i)), "wrong").Code)
	}
	for _, addr := range []string{"10.1.2.3:5", "[2001:db8::7]:5", "[::ffff:10.9.9.9]:5"} {
		for i := range 8 {
			require.Equal(t, http.StatusUnauthorized, a.login(t, "carol", "wrong", "RemoteAddr", addr).Code, "%s, failure %d", addr, i+1)
		}
	}
	// carol's counter counted none of those 24 failures: from elsewhere,
	// her 5 failures trip it.
	for i := range 5 {
		require.Equal(t, http.StatusUnauthorized, a.login(t, "carol", "wrong", "RemoteAddr", "192.0.2.50:1").Code, "failure %d", i+1)
	}
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "carol", "wrong", "RemoteAddr", "192.0.2.50:1").Code)

	// Check says the same.
	gd, err := a.gate.NewGuard(captchagate.Policy{Name: "check", MaxFailures: -1, Keys: []captchagate.Key{
		{Source: captchagate.ClientIP(), Ceiling: 1}}})
	require.NoError(t, err)
	h := gd.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	serve(h, "GET", "/", "", "RemoteAddr", "192.0.2.9:1")
	assert.ErrorIs(t, gd.Check(request("GET", "/", "", "RemoteAddr", "192.0.2.9:1")), captchagate.ErrTooManyRequests)
	serve(h, "GET", "/", "", "RemoteAddr", "10.0.0.1:1")
	assert.NoError(t, gd.Check(request("GET", "/", "", "RemoteAddr", "10.0.0.1:1")))

	// What New and NewGuard refuse.
	_, err = captchagate.New(captchagate.Config{AllowNetworks: []netip.Prefix{{}}})
	assert.ErrorContains(t, err, "AllowNetworks[0]")
	_, err = a.gate.NewGuard(captchagate.Policy{Name: "bad", MaxFailures: 3, Keys: []captchagate.Key{
		{Source: captchagate.ClientIP(), Allow: []string{"192.0.2.1"}}}})
	assert.ErrorContains(t, err, "Config.AllowNetworks")
}

// Dry run counts and reports, and refuses nothing.
func TestDryRun(t *testing.T) {
	policy := loginPolicy
	policy.Name, policy.DryRun = "login", true
	policy.Keys = append([]captchagate.Key{}, loginPolicy.Keys...)
	policy.Keys[1].Ceiling = 9
	a := newLoginAppWith(t, policy, nil)
	for i := range 12 {
		require.Equal(t, http.StatusUnauthorized, a.login(t, "alice", "wrong").Code, "failure %d", i+1)
	}
	assert.EqualValues(t, 12, a.calls.Load(), "every request reached the handler")
	var tripped, captchas, limits int
	for _, e := range a.events.list {
		switch e.Kind {
		case captchagate.EventTripped:
			tripped++
			assert.True(t, e.DryRun)
			assert.Equal(t, "json:username", e.Key)
		case captchagate.EventDryRun:
			assert.True(t, e.DryRun)
			assert.Equal(t, "dry_run", e.Outcome())
			switch e.Reason {
			case "captcha":
				captchas++
			case "limit":
				limits++
				assert.Equal(t, "ip", e.Key)
			}
		case captchagate.EventCaptchaIssued:
			t.Errorf("a captcha was issued in dry run")
		}
	}
	assert.Equal(t, 1, tripped, "the fifth failure trips alice's counter")
	assert.Equal(t, 4, captchas, "failures 6 to 9 would have needed a captcha")
	assert.Equal(t, 3, limits, "requests 10 to 12 are past the ceiling of 9")
	gd, _ := a.gate.NewGuard(captchagate.Policy{Name: "dry", DryRun: true, Keys: []captchagate.Key{{Source: captchagate.ClientIP(), Ceiling: 1}}})
	h := gd.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	serve(h, "GET", "/", "")
	assert.NoError(t, gd.Check(request("GET", "/", "")), "Check: nothing is ever asked in dry run")
}

// Lockout events say which account by a keyed hash, never by the value
// (unless the app asks): the same for every spelling, another for another
// account, and not in the logs.
func TestEventValue(t *testing.T) {
	var logs bytes.Buffer
	a := newLoginApp(t, func(c *captchagate.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	for _, user := range []string{"Alice", "ＡＬＩＣＥ", "bob"} {
		a.events.reset()
		for range 5 {
			a.login(t, user, "wrong")
		}
		a.login(t, user, "wrong")
		require.NoError(t, a.gate.Reset(context.Background(), "login", "username", user))
	}
	values := map[string]bool{}
	for _, e := range a.events.list {
		if e.Kind == captchagate.EventTripped {
			values[e.Value] = true
		}
	}
	// Events of bob only now (reset); alice's Value is compared below.
	hash := regexp.MustCompile(`^h:[0-9a-f]{32}$`)
	var alice []string
	a2 := newLoginApp(t, nil)
	for _, user := range []string{"Alice", "ＡＬＩＣＥ", "bob"} {
		a2.events.reset()
		a2.trip(t, user)
		for _, e := range a2.events.list {
			if e.Kind == captchagate.EventTripped && e.Key == "json:username" {
				require.Regexp(t, hash, e.Value)
				alice = append(alice, e.Value)
			}
		}
		require.NoError(t, a2.gate.Reset(context.Background(), "login", "username", user))
	}
	require.Len(t, alice, 3)
	assert.Equal(t, alice[0], alice[1], "one account, one hash, whatever the spelling")
	assert.NotEqual(t, alice[0], alice[2], "another account, another hash")
	assert.Len(t, values, 1, "bob's")
	for _, e := range a.events.list {
		assert.NotContains(t, strings.ToLower(e.Value), "bob")
	}
	assert.Contains(t, logs.String(), "value=h:", "the log names the account by its hash")
	assert.NotContains(t, strings.ToLower(logs.String()), "alice")
	assert.NotContains(t, logs.String(), "bob")

	// Opted in: the value, as counted; still not in the logs.
	logs.Reset()
	raw := newLoginApp(t, func(c *captchagate.Config) {
		c.RawEventValues = true
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	raw.trip(t, "ＡＬＩＣＥ")
	var got []string
	for _, e := range raw.events.list {
		if e.Kind == captchagate.EventTripped {
			got = append(got, e.Value)
		}
	}
	assert.Equal(t, []string{"alice"}, got)
	assert.NotContains(t, logs.String(), "alice")
}

// Event.Mode says how a captcha was solved: "image", or "audio" when its
// sound was fetched first; Outcome names each step.
func TestEventModeAndOutcome(t *testing.T) {
	a := newLoginApp(t, nil)
	outcomes := func() (out []string) {
		for _, e := range a.events.list {
			if e.CaptchaID != "" {
				out = append(out, e.Outcome()+"/"+e.Mode)
			}
		}
		a.events.reset()
		return out
	}
	c := a.trip(t, "alice")
	assert.Equal(t, []string{"issued/image"}, outcomes())
	fresh := refresh(t, a.mux, c.ID)
	assert.Equal(t, []string{"refreshed/image"}, outcomes())

	require.Equal(t, http.StatusOK, serve(a.mux, "GET", fresh.AudioURL, "").Code)
	w := verify(a.mux, fresh.ID, "000000")
	require.Equal(t, http.StatusForbidden, w.Code)
	next := decodeError(t, w).Captcha
	assert.Equal(t, []string{"wrong/audio", "issued/image"}, outcomes())
	require.Equal(t, http.StatusOK, serve(a.mux, "GET", next.AudioURL, "").Code)
	solve(t, a.mux, next.ID)
	assert.Equal(t, []string{"solved/audio"}, outcomes())

	c = a.trip(t, "bob")
	outcomes()
	solve(t, a.mux, c.ID)
	assert.Equal(t, []string{"solved/image"}, outcomes(), "no sound fetched: read")
}

// EventHooks calls each hook in turn and skips nil ones.
func TestEventHooks(t *testing.T) {
	var got []string
	h := captchagate.EventHooks(func(e captchagate.Event) { got = append(got, "a:"+e.Outcome()) }, nil,
		func(e captchagate.Event) { got = append(got, "b:"+e.Outcome()) })
	h(captchagate.Event{Kind: captchagate.EventTripped})
	assert.Equal(t, []string{"a:tripped", "b:tripped"}, got)
}

// One account has one Event.Value across the policies that count it.
func TestEventValueAcrossPolicies(t *testing.T) {
	events := &eventLog{}
	g, _ := newGate(t, func(c *captchagate.Config) { c.OnEvent = events.hook })
	fail := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	login := g.Guard(captchagate.Policy{Name: "login", MaxFailures: 1, Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}})(fail)
	reset := g.Guard(captchagate.Policy{Name: "reset", MaxFailures: 1, Keys: []captchagate.Key{captchagate.Username(captchagate.FormField("user"))}})(fail)
	serve(login, "POST", "/login", `{"username":"Alice"}`, "Content-Type", "application/json")
	serve(reset, "POST", "/reset", "user=ALICE", "Content-Type", "application/x-www-form-urlencoded")
	var values []string
	for _, e := range events.list {
		if e.Kind == captchagate.EventTripped {
			values = append(values, e.Policy+" "+e.Value)
		}
	}
	require.Len(t, values, 2)
	assert.Equal(t, values[0][len("login "):], values[1][len("reset "):])
}
