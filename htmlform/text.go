package htmlform

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/captchagate/captchagate"
)

// texts are the widget's tables, by language (captchagate.Languages).
var texts = map[string]*[textCount]string{
	"en": &textEN, "ru": &textRU, "zh": &textZH, "ja": &textJA,
	"pt": &textPT, "es": &textES, "de": &textDE, "fr": &textFR,
}

// audioLangs are the languages of Digits' audio (captchagate.Media.Langs).
var audioLangs = []string{"en", "ru", "zh", "ja", "pt"}

// say returns text id in lang with arg for its {0}.
func say(lang string, id textID, arg ...string) string {
	t, ok := texts[lang]
	if !ok || t[id] == "" {
		t = &textEN
	}
	s := t[id]
	if len(arg) > 0 {
		s = strings.Replace(s, "{0}", arg[0], 1)
	}
	return s
}

// textJSON is the text widget.js reads (data-cg-text), in lang.
func textJSON(lang string) string {
	m := make(map[string]string, textCount)
	for id, name := range textNames {
		if name != "" {
			m[name] = say(lang, textID(id))
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Language returns the language of r's widget: Options.Lang if set, else
// the gate's choice for r (captchagate.Gate.Language: WithLanguage,
// Accept-Language, Config.DefaultLanguage).
func (f *Flow) Language(r *http.Request) string {
	if f.lang != "" {
		return f.lang
	}
	return f.gate.Language(r)
}

// WidgetText returns, as JSON, the widget's text in r's language, for a
// page whose fetch() client calls captchagate.solve: put it in a
// data-cg-text attribute of the container or one of its ancestors
// (html/template escapes it), and the widget speaks that language.
func (f *Flow) WidgetText(r *http.Request) string { return textJSON(f.Language(r)) }

// withLanguage returns r with Options.Lang set for the gate, if set.
func (f *Flow) withLanguage(r *http.Request) *http.Request {
	if f.lang == "" {
		return r
	}
	return captchagate.WithLanguage(r, f.lang)
}
