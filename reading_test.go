package captchagate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

// tripRoute is a route counted by key alone (Required, 3 failures) whose
// handler answers 401 to everyone, so the fourth request of one account
// needs a captcha (428).
func tripRoute(t *testing.T, key captchagate.Key) (http.Handler, *int) {
	t.Helper()
	g, _ := newGate(t, nil)
	key.Required = true
	key.MaxFailures = 3
	calls := new(int)
	return g.Guard(captchagate.Policy{Name: "login", Keys: []captchagate.Key{key}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			*calls++
			w.WriteHeader(http.StatusUnauthorized)
		})), calls
}

func jsonBody(kv ...string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(m)
	return strings.TrimSuffix(b.String(), "\n")
}

// multipartBody returns a multipart/form-data body of the fields kv and
// its Content-Type.
func multipartBody(kv ...string) (string, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i := 0; i+1 < len(kv); i += 2 {
		mw.WriteField(kv[i], kv[i+1])
	}
	mw.Close()
	return b.String(), mw.FormDataContentType()
}

// Failures spread over spellings the application treats as one account
// (or one number) trip one counter: the fourth request needs a captcha. A
// different account is the control: not tripped.
func TestSpellingsTripOneCounter(t *testing.T) {
	t.Parallel()
	type group struct {
		name    string
		key     captchagate.Key
		field   string
		spells  []string
		another string
	}
	groups := []group{{
		name: "phone", key: captchagate.Phone(captchagate.JSONField("phone")), field: "phone",
		spells:  []string{"+1 (555) 000-1234", "001 555 000 1234", "＋１５５５０００１２３４", "+١ ٥٥٥ ٠٠٠ ١٢٣٤"},
		another: "+1 555 000 1235",
	}}
	for _, g := range usernameGroups {
		groups = append(groups, group{name: g[0], key: captchagate.Username(captchagate.JSONField("username")), field: "username",
			spells: g, another: g[0] + "x"})
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			h, _ := tripRoute(t, g.key)
			send := func(v string) int {
				return serve(h, "POST", "/login", jsonBody(g.field, v, "password", "wrong"), "Content-Type", "application/json").Code
			}
			for i := range 3 {
				require.Equal(t, http.StatusUnauthorized, send(g.spells[(i+1)%len(g.spells)]), "failure %d", i+1)
			}
			assert.Equal(t, http.StatusUnauthorized, send(g.another), "another account is not tripped")
			for _, s := range g.spells {
				assert.Equal(t, http.StatusPreconditionRequired, send(s), "%q after three failures of its spellings", s)
			}
		})
	}
}

// Each shape of request the guard once read differently from net/http and
// encoding/json: three failures in that shape trip the account, which a
// fourth request (in the plain shape) finds tripped; another account is
// not.
func TestBodyShapesCount(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	type req struct {
		method, path, body string
		hdr                []string
	}
	form := func(body string) req {
		return req{"POST", "/login", body, []string{"Content-Type", "application/x-www-form-urlencoded"}}
	}
	js := func(body string) req {
		return req{"POST", "/login", body, []string{"Content-Type", "application/json"}}
	}
	multi := func(kv ...string) req {
		b, ct := multipartBody(kv...)
		return req{"POST", "/login", b, []string{"Content-Type", ct}}
	}
	for _, tc := range []struct {
		name          string
		key           captchagate.Key
		shape         func(i int) req // the i-th failure of alice, in the shape
		alice, bob    req             // plain requests
		bobNotTripped bool
	}{{
		name:  "JSON body with a form Content-Type, Field",
		key:   captchagate.Username(captchagate.Field("username")),
		shape: func(int) req { return form(jsonBody("username", "alice", "password", "x")) },
		alice: js(jsonBody("username", "alice")), bob: js(jsonBody("username", "bob")),
	}, {
		name:  "JSON body with a form Content-Type, FormField",
		key:   captchagate.Username(captchagate.FormField("username")),
		shape: func(int) req { return form(jsonBody("username", "alice", "password", "x")) },
		alice: form("username=alice"), bob: form("username=bob"),
	}, {
		name:  "JSON body read by FormField",
		key:   captchagate.Username(captchagate.FormField("username")),
		shape: func(int) req { return js(jsonBody("username", "alice", "password", "x")) },
		alice: form("username=alice"), bob: form("username=bob"),
	}, {
		name:  "multipart, FormField",
		key:   captchagate.Username(captchagate.FormField("username")),
		shape: func(int) req { return multi("password", "x", "username", "alice") },
		alice: form("username=alice"), bob: form("username=bob"),
	}, {
		name:  "multipart, Field",
		key:   captchagate.Username(captchagate.Field("username")),
		shape: func(int) req { return multi("username", "alice") },
		alice: js(jsonBody("username", "alice")), bob: js(jsonBody("username", "bob")),
	}, {
		name: "form Content-Type with a malformed parameter",
		key:  captchagate.Username(captchagate.FormField("username")),
		shape: func(int) req {
			return req{"POST", "/login", "username=alice", []string{"Content-Type", "Application/X-WWW-Form-Urlencoded; charset"}}
		},
		alice: form("username=alice"), bob: form("username=bob"),
	}, {
		// net/http reads a form body for POST, PUT and PATCH only: a GET
		// counts the query, which r.FormValue returns, not the body.
		name: "GET with a form body",
		key:  captchagate.Username(captchagate.FormField("username")),
		shape: func(i int) req {
			return req{"GET", "/login?username=alice", "username=mallory" + string(rune('a'+i)), []string{"Content-Type", "application/x-www-form-urlencoded"}}
		},
		alice: req{"GET", "/login?username=alice", "", nil},
		bob:   req{"GET", "/login?username=bob", "username=alice", []string{"Content-Type", "application/x-www-form-urlencoded"}},
	}, {
		name:  "deep nesting",
		key:   captchagate.Username(captchagate.JSONField("username")),
		shape: func(int) req { return js(`{"a":` + deep + `,"username":"alice"}`) },
		alice: js(jsonBody("username", "alice")), bob: js(jsonBody("username", "bob")),
	}, {
		// json.Decoder takes the first value; what follows is not read.
		name:  "a second JSON value",
		key:   captchagate.Username(captchagate.JSONField("username")),
		shape: func(i int) req { return js(`{"username":"alice"}` + jsonBody("username", "eve"+string(rune('a'+i)))) },
		alice: js(jsonBody("username", "alice")), bob: js(jsonBody("username", "bob")),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, _ := tripRoute(t, tc.key)
			do := func(r req) int { return serve(h, r.method, r.path, r.body, r.hdr...).Code }
			for i := range 3 {
				require.Equal(t, http.StatusUnauthorized, do(tc.shape(i)), "failure %d", i+1)
			}
			assert.Equal(t, http.StatusUnauthorized, do(tc.bob), "another account is not tripped")
			assert.Equal(t, http.StatusPreconditionRequired, do(tc.alice), "alice after three failures")
			assert.Equal(t, http.StatusPreconditionRequired, do(tc.shape(3)), "alice, in the shape")
		})
	}
}

// A body that reads as two different things (a form and JSON, or the
// query and the JSON) is refused: the guard cannot know which one the
// application uses. The same value both ways is no conflict.
func TestAmbiguousFieldsRefused(t *testing.T) {
	t.Parallel()
	formCT := []string{"Content-Type", "application/x-www-form-urlencoded"}
	jsonCT := []string{"Content-Type", "application/json"}
	mpBody, mpCT := multipartBody("username", "mallory")
	for _, tc := range []struct {
		name         string
		src          captchagate.Source
		key          func(captchagate.Source) captchagate.Key
		method, path string
		body         string
		hdr          []string
		refused      bool
		counted      string // without refusal
	}{
		{"form vs JSON phone, Field", captchagate.Field("phone"), captchagate.Phone, "POST", "/",
			`{"phone":"+15550001","x":"&phone=+1999"}`, formCT, true, ""},
		{"form vs JSON phone, FormField", captchagate.FormField("phone"), captchagate.Phone, "POST", "/",
			`{"phone":"+15550001","x":"&phone=+1999"}`, formCT, true, ""},
		{"form vs JSON username, JSONField", captchagate.JSONField("username"), captchagate.Username, "POST", "/",
			`{"username":"bob","x":"&username=alice"}`, formCT, true, ""},
		{"query vs JSON, FormField", captchagate.FormField("username"), captchagate.Username, "POST", "/?username=alice",
			`{"username":"bob"}`, jsonCT, true, ""},
		{"multipart vs query, FormField: the query first, as r.FormValue", captchagate.FormField("username"), captchagate.Username,
			"POST", "/?username=alice", mpBody, []string{"Content-Type", mpCT}, false, "alice"},
		{"query and JSON agree, FormField", captchagate.FormField("username"), captchagate.Username, "POST", "/?username=alice",
			`{"username":" alice "}`, jsonCT, false, "alice"},
		{"GET: the form body is not read", captchagate.FormField("phone"), captchagate.Phone, "GET", "/",
			`{"phone":"+15550001","x":"&phone=+1999"}`, formCT, false, "+15550001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body, hdr := tc.body, tc.hdr
			v, ok, err := captchagate.KeyValue(tc.key(tc.src).Source, request(tc.method, tc.path, body, hdr...))
			h, calls := tripRoute(t, tc.key(tc.src))
			w := serve(h, tc.method, tc.path, body, hdr...)
			if !tc.refused {
				require.NoError(t, err)
				assert.True(t, ok)
				assert.Equal(t, tc.counted, v)
				assert.Equal(t, http.StatusUnauthorized, w.Code)
				return
			}
			var e *captchagate.Error
			require.True(t, errors.As(err, &e), "error %v", err)
			assert.Equal(t, captchagate.CodeAmbiguousKey, e.Code)
			assert.Equal(t, tc.src.Name(), e.Param)
			assert.False(t, ok)
			assert.Equal(t, http.StatusBadRequest, w.Code, "refused as invalid_request")
			assert.Equal(t, "invalid_request", decodeError(t, w).Error)
			assert.Zero(t, *calls, "the handler never runs")
		})
	}
}

// encoding/json nests at most 10000 objects and arrays: the guard reads a
// body nested that deep, as the application's decoder does.
func TestJSONDepthAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{64, 65, 1000, 10000, 10001} {
		// The top-level object is one level.
		body := `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `,"username":"alice"}`
		var v struct{ Username string }
		decErr := json.NewDecoder(strings.NewReader(body)).Decode(&v)
		got, ok, err := captchagate.KeyValue(captchagate.JSONField("username"), request("POST", "/", body))
		require.NoError(t, err)
		if decErr != nil {
			assert.Greater(t, depth, 10000)
			assert.Equal(t, "", v.Username)
			continue
		}
		assert.True(t, ok, "depth %d", depth)
		assert.Equal(t, "alice", got, "depth %d", depth)
	}
}

// FuzzGuardReadsLikeApp builds request bodies from arbitrary values with
// encoding/json, url.Values and multipart.Writer, lets an application read
// them with json.NewDecoder(r.Body).Decode and with r.FormValue, and holds
// the guard to: the key it counts is the canonical form of what the
// application reads, or the request is refused (an ambiguous field, or an
// absent account key, which is Required).
func FuzzGuardReadsLikeApp(f *testing.F) {
	for _, s := range [][2]string{
		{"alice", "pw"}, {"\u212Aate", "&username=kate"}, {"+1 (555) 000-1234", "&username=+1999"}, {" Ａlice ", "x"},
		{"a\r\n--b\r\n", "username=z&"}, {"\xff", "\"}"}, {"", "&username=x"},
	} {
		for enc := range uint8(6) {
			f.Add(s[0], s[1], enc)
		}
	}
	f.Fuzz(func(t *testing.T, v, other string, enc uint8) {
		if len(v) > 300 || len(other) > 300 {
			return
		}
		method, path, body, ct := "POST", "/", "", ""
		switch enc % 6 {
		case 0:
			body, ct = jsonBody("password", other, "username", v), "application/json"
		case 1:
			body, ct = jsonBody("password", other, "username", v), "application/x-www-form-urlencoded"
		case 2:
			body, ct = url.Values{"password": {other}, "username": {v}}.Encode(), "application/x-www-form-urlencoded"
		case 3:
			body, ct = multipartBody("password", other, "username", v)
		case 4:
			body, ct = jsonBody("password", other, "username", v), "text/plain"
		case 5:
			method, path = "GET", "/?"+url.Values{"username": {v}}.Encode()
			body, ct = url.Values{"username": {other}}.Encode(), "application/x-www-form-urlencoded"
		}
		newReq := func() *http.Request {
			r := httptest.NewRequest(method, path, strings.NewReader(body))
			r.Header.Set("Content-Type", ct)
			return r
		}
		var decoded struct {
			Username string `json:"username"`
		}
		json.NewDecoder(newReq().Body).Decode(&decoded)
		formApp := newReq().FormValue("username")
		_, fromQuery := newReq().URL.Query()["username"]

		for _, id := range []struct {
			key   func(captchagate.Source) captchagate.Key
			canon func(string) string
		}{{captchagate.Username, captchagate.CanonFold}, {captchagate.Phone, captchagate.CanonPhone}} {
			want := func(app string) string {
				s := strings.TrimSpace(id.canon(strings.TrimSpace(app)))
				if len(s) > 256 {
					s = s[:256]
				}
				return s
			}
			for _, src := range []captchagate.Source{captchagate.FormField("username"), captchagate.Field("username"), captchagate.JSONField("username")} {
				got, ok, err := captchagate.KeyValue(id.key(src).Source, newReq())
				if err != nil {
					var e *captchagate.Error
					require.True(t, errors.As(err, &e) && e.Code == captchagate.CodeAmbiguousKey, "%s: %v", src.Name(), err)
					continue // refused
				}
				apps := []string{decoded.Username}
				if src.Name() == "form:username" || !fromQuery {
					apps = append(apps, formApp)
				}
				for _, app := range apps {
					if w := want(app); w != "" {
						require.True(t, ok, "%s absent; the application reads %q (body %q, %s)", src.Name(), app, body, ct)
						require.Equal(t, w, got, "%s; the application reads %q (body %q, %s)", src.Name(), app, body, ct)
					}
				}
			}
		}
	})
}

// FuzzJSONFirstValue holds JSONField to json.Decoder on arbitrary bodies,
// data after the first value and deep nesting included: where the
// application's decoder reads a username, the guard counts that username.
func FuzzJSONFirstValue(f *testing.F) {
	for _, s := range []string{
		`{"username":"alice"}`, `{"username":"alice"}{"username":"eve"}`, `{"username":"alice"} trailing`,
		`{"a":[[[[]]]],"username":"alice"}`, `{"Username":"a","USERNAME":"b"}[`, ` {"username":"a\u0062"}}}`,
		`{"username":"a","username":{"x":1}}`, `{"username":"a"`, `{"a":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `,"username":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v struct {
			Username string `json:"username"`
		}
		err := json.NewDecoder(bytes.NewReader(body)).Decode(&v)
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || len(bytes.TrimSpace(body)) == 0 || bytes.TrimSpace(body)[0] != '{' {
			return // the application's decoder reads no object
		}
		want := strings.TrimSpace(v.Username)
		if len(want) > 256 {
			want = want[:256]
		}
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		got, ok, gerr := captchagate.KeyValue(captchagate.JSONField("username"), r)
		require.NoError(t, gerr)
		if want == "" {
			return
		}
		require.True(t, ok, "absent; the application decodes %q from %q (%v)", v.Username, body, err)
		require.Equal(t, want, got, "body %q", body)
	})
}
