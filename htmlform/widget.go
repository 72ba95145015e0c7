package htmlform

import (
	"bytes"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
)

// message says err in words for the visitor, in lang.
func message(err error, lang string) string {
	if err == nil {
		return ""
	}
	var ce *captchagate.Error
	if !errors.As(err, &ce) {
		return say(lang, tWentWrong)
	}
	switch ce.Code {
	case captchagate.CodeCaptchaRequired:
		return say(lang, tRequired)
	case captchagate.CodeCaptchaInvalid:
		return say(lang, tInvalid)
	case captchagate.CodeTooManyRequests:
		if ce.Captcha == nil {
			return say(lang, tTooManyIn, humanize(ce.RetryAfter, lang))
		}
		return say(lang, tRefreshWait)
	case captchagate.CodeStoreUnavailable, captchagate.CodeVerifierUnavailable, captchagate.CodeRenderUnavailable:
		return say(lang, tUnavailable)
	}
	return say(lang, tCheckForm)
}

func humanize(d time.Duration, lang string) string {
	switch {
	case d <= time.Minute:
		return say(lang, tMinute)
	case d < time.Hour:
		return say(lang, tMinutes, strconv.Itoa(int((d+time.Minute-1)/time.Minute)))
	case d < 2*time.Hour:
		return say(lang, tHour)
	}
	return say(lang, tHours, strconv.Itoa(int((d+time.Hour-1)/time.Hour)))
}

type widgetData struct {
	Captcha    *captchagate.Captcha
	Message    string
	Alert      bool // the message reports a problem (styled as one; every message is role=alert)
	RefreshURL string
	AudioURL   string
	ScriptURL  string
	StyleURL   string
	Lang       string // the text's language
	AudioLang  string // the audio's, for widget.js
	Text       widgetText
	TextJSON   string // the text widget.js says, in Lang (data-cg-text)
	// Other kinds than digits: the captcha as JSON for widget.js to mount.
	Mount string
}

// widgetText is the text of the server-rendered widget.
type widgetText struct {
	Legend, NoScript, ImageAlt, Play, NewPicture, AudioHelp, AnswerLabel string
	Replay, AudioLink, AnswerHelp, NoMorePics                            string
}

var widgetTmpl = template.Must(template.New("widget").Parse(`<link rel="stylesheet" href="{{.StyleURL}}">
<fieldset class="captchagate" data-captchagate lang="{{.Lang}}" data-cg-refresh-url="{{.RefreshURL}}" data-cg-lang="{{.AudioLang}}"
 data-cg-text="{{.TextJSON}}">
<legend>{{.Text.Legend}}</legend>
{{- if .Message}}
<p class="captchagate-message{{if .Alert}} captchagate-error{{end}}" id="captchagate-message" role="alert" data-cg-message>{{.Message}}</p>
{{- end}}
{{- if .Mount}}
<div data-cg-mount data-cg-captcha="{{.Mount}}"></div>
<input type="hidden" name="captcha_token" data-cg-token>
<noscript><p class="captchagate-message captchagate-error" role="alert">{{.Text.NoScript}}</p></noscript>
{{- else}}{{with .Captcha}}
<img class="captchagate-image" data-cg-image src="{{.ImageURL}}" width="240" height="80"
 alt="{{$.Text.ImageAlt}}">
<div class="captchagate-buttons">
<button type="button" data-cg-play aria-describedby="captchagate-audio-help">{{$.Text.Play}}</button>
<button type="button" data-cg-replay>{{$.Text.Replay}}</button>
<button type="button" data-cg-refresh{{if eq .RefreshesLeft 0}} disabled{{end}}>{{$.Text.NewPicture}}</button>
<audio data-cg-audio preload="none" src="{{$.AudioURL}}"></audio>
<span id="captchagate-audio-help" class="captchagate-hint">{{$.Text.AudioHelp}}</span>
</div>
<p class="captchagate-audio-link"><a data-cg-audio-link href="{{$.AudioURL}}" target="_blank" rel="noopener">{{$.Text.AudioLink}}</a></p>
<label for="captchagate-answer">{{$.Text.AnswerLabel}}</label>
<span id="captchagate-answer-help" class="captchagate-hint">{{$.Text.AnswerHelp}}</span>
<input id="captchagate-answer" name="captcha_answer" type="text" inputmode="numeric" autocomplete="off"
 autocapitalize="off" spellcheck="false" maxlength="32" required
 aria-describedby="{{if $.Message}}captchagate-message {{end}}captchagate-answer-help"{{if $.Message}} autofocus{{end}}>
<p class="captchagate-status" data-cg-status aria-live="polite">{{if eq .RefreshesLeft 0}}{{$.Text.NoMorePics}}{{end}}</p>
{{- end}}{{end}}
</fieldset>
<script src="{{.ScriptURL}}" defer></script>
`))

func (f *Flow) widget(c *captchagate.Captcha, msg string, ce *captchagate.Error, lang string) template.HTML {
	d := widgetData{
		Captcha:    c,
		Message:    msg,
		Alert:      ce != nil && ce.Code != captchagate.CodeCaptchaRequired,
		RefreshURL: f.gate.URL("refresh"),
		ScriptURL:  f.gate.URL("widget.js"),
		StyleURL:   f.gate.URL("widget.css"),
		Lang:       lang,
		AudioLang:  "en",
		Text: widgetText{
			Legend: say(lang, tLegend), NoScript: say(lang, tNoScript), ImageAlt: say(lang, tImageAlt),
			Play: say(lang, tPlay), NewPicture: say(lang, tNewPicture), AudioHelp: say(lang, tAudioHelp),
			AnswerLabel: say(lang, tAnswerLabel),
			Replay:      say(lang, tReplay), AudioLink: say(lang, tAudioLink), AnswerHelp: say(lang, tAnswerHelp),
			NoMorePics: say(lang, tNoMorePics),
		},
		TextJSON: textJSON(lang),
	}
	if slices.Contains(audioLangs, lang) {
		d.AudioLang = lang
	}
	if c != nil && c.Kind != "digits" {
		// The other kinds' pieces are built by widget.js, which puts the
		// token it earns in the hidden captcha_token field.
		b, _ := json.Marshal(c)
		d.Mount = string(b)
	} else if c != nil {
		// The gate's URL asks for the language where it is not the
		// audio's default; the widget asks for the default by name.
		d.AudioURL = c.AudioURL
		if !strings.Contains(d.AudioURL, "?") {
			d.AudioURL += "?lang=" + d.AudioLang
		}
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
