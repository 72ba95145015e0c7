package htmlform

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

// TestTextTables: a table for every language of the gate, each with every
// text and the placeholders of the English source.
func TestTextTables(t *testing.T) {
	require.ElementsMatch(t, captchagate.Languages(), keys(texts))
	ph := regexp.MustCompile(`\{[0-9]\}`)
	for lang, table := range texts {
		same := 0
		for id := range textCount {
			en, s := textEN[id], table[id]
			require.NotEmpty(t, en, "English text %d", id)
			if assert.NotEmpty(t, s, "%s: text %d (%q)", lang, id, en) {
				assert.Equal(t, ph.FindAllString(en, -1), ph.FindAllString(s, -1), "%s: %q", lang, s)
			}
			if en == s {
				same++
			}
		}
		if lang != "en" {
			assert.LessOrEqual(t, same, 1, "%s: texts left in English", lang)
		}
	}
}

// TestScriptKnowsTheText: widget.js's English is text_en.go's, under the
// keys the server renders into data-cg-text, so a translated key reaches
// the script and the script's default says the same.
func TestScriptKnowsTheText(t *testing.T) {
	js, err := os.ReadFile("assets/widget.js")
	require.NoError(t, err)
	start := strings.Index(string(js), "var messages = {")
	end := strings.Index(string(js[start:]), "};")
	require.True(t, start >= 0 && end > 0)
	block := string(js[start : start+end])
	entry := regexp.MustCompile(`(?m)^\s*([a-z_]+): "((?:[^"\\]|\\.)*)",?$`)
	inJS := map[string]string{}
	for _, m := range entry.FindAllStringSubmatch(block, -1) {
		inJS[m[1]] = strings.ReplaceAll(m[2], `\u2026`, "…")
	}
	named := map[string]bool{}
	for id, name := range textNames {
		if name == "" {
			continue
		}
		named[name] = true
		assert.Equal(t, textEN[id], inJS[name], name)
		said := strings.Contains(string(js), `T("`+name+`")`) || strings.Contains(string(js), " "+name+": 1")
		assert.True(t, said, "widget.js says %s", name)
	}
	for name := range inJS {
		assert.True(t, named[name], "widget.js's %s is rendered by the server", name)
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
