package htmlform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/captchagate/captchagate"
)

// message says err in words for the visitor.
func message(err error) string {
	if err == nil {
		return ""
	}
	var ce *captchagate.Error
	if !errors.As(err, &ce) {
		return "Something went wrong. Please try again."
	}
	switch ce.Code {
	case captchagate.CodeCaptchaRequired:
		return "Please type the digits in the picture to continue."
	case captchagate.CodeCaptchaInvalid:
		return "That answer was not right, or it expired. Please try this new picture."
	case captchagate.CodeTooManyRequests:
		if ce.Captcha == nil {
			return "Too many attempts. Please try again in " + humanize(ce.RetryAfter) + "."
		}
		return "Please wait a moment before asking for another picture."
	case captchagate.CodeStoreUnavailable, captchagate.CodeVerifierUnavailable, captchagate.CodeRenderUnavailable:
		return "The security check is unavailable right now. Please try again in a minute."
	}
	return "Please check the form and try again."
}

func humanize(d time.Duration) string {
	switch {
	case d <= time.Minute:
		return "a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int((d+time.Minute-1)/time.Minute))
	case d < 2*time.Hour:
		return "an hour"
	}
	return fmt.Sprintf("%d hours", int((d+time.Hour-1)/time.Hour))
}

type widgetData struct {
	Captcha    *captchagate.Captcha
	Message    string
	Alert      bool // the message reports a problem (role=alert)
	RefreshURL string
	AudioURL   string
	ScriptURL  string
	StyleURL   string
	Lang       string
	// Other kinds than digits: the captcha as JSON for widget.js to mount.
	Mount string
}

var widgetTmpl = template.Must(template.New("widget").Parse(`<link rel="stylesheet" href="{{.StyleURL}}">
<fieldset class="captchagate" data-captchagate data-cg-refresh-url="{{.RefreshURL}}" data-cg-lang="{{.Lang}}">
<legend>Security check</legend>
{{- if .Message}}
<p class="captchagate-message" id="captchagate-message"{{if .Alert}} role="alert"{{end}} data-cg-message>{{.Message}}</p>
{{- end}}
{{- if .Mount}}
<div data-cg-mount data-cg-captcha="{{.Mount}}"></div>
<input type="hidden" name="captcha_token" data-cg-token>
<noscript><p class="captchagate-message" role="alert">This security check needs JavaScript.</p></noscript>
{{- else}}{{with .Captcha}}
<img class="captchagate-image" data-cg-image src="{{.ImageURL}}" width="240" height="80"
 alt="Security check picture of digits. If you cannot read it, use Play audio to hear the digits, or New picture.">
<div class="captchagate-buttons">
<button type="button" data-cg-play aria-describedby="captchagate-audio-help">Play audio</button>
<button type="button" data-cg-refresh>New picture</button>
<audio data-cg-audio preload="none" src="{{$.AudioURL}}"></audio>
<span id="captchagate-audio-help" class="captchagate-hint">Plays the digits aloud.</span>
</div>
<label for="captchagate-answer">Type the digits you see or hear</label>
<input id="captchagate-answer" name="captcha_answer" type="text" inputmode="numeric" autocomplete="off"
 autocapitalize="off" spellcheck="false" maxlength="32" required{{if $.Message}} aria-describedby="captchagate-message"{{end}}>
<p class="captchagate-status" data-cg-status aria-live="polite"></p>
{{- end}}{{end}}
</fieldset>
<script src="{{.ScriptURL}}" defer></script>
`))

func (f *Flow) widget(c *captchagate.Captcha, msg string, ce *captchagate.Error) template.HTML {
	d := widgetData{
		Captcha:    c,
		Message:    msg,
		Alert:      ce != nil && ce.Code != captchagate.CodeCaptchaRequired,
		RefreshURL: f.gate.URL("refresh"),
		ScriptURL:  f.gate.URL("widget.js"),
		StyleURL:   f.gate.URL("widget.css"),
		Lang:       f.lang,
	}
	if c != nil && c.Kind != "digits" {
		// The other kinds' pieces are built by widget.js, which puts the
		// token it earns in the hidden captcha_token field.
		b, _ := json.Marshal(c)
		d.Mount = string(b)
	} else if c != nil {
		d.AudioURL = c.AudioURL + "?lang=" + f.lang
	}
	var b bytes.Buffer
	if err := widgetTmpl.Execute(&b, d); err != nil {
		return template.HTML(template.HTMLEscapeString(msg))
	}
	return template.HTML(b.String())
}

func writeCaptcha(w http.ResponseWriter, c *captchagate.Captcha) {
	b, _ := json.Marshal(struct {
		Captcha *captchagate.Captcha `json:"captcha"`
	}{c})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}
