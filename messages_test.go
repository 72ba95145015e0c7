package captchagate

import (
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var placeholder = regexp.MustCompile(`\{[0-9]\}`)

// TestMessageTables checks that every language has every message, with the
// placeholders of the English source (as many of each, in any order), and
// that its text is its own (not left in English).
func TestMessageTables(t *testing.T) {
	t.Parallel()
	require.Equal(t, len(languages), len(tables), "a table for each language")
	for _, lang := range languages {
		table := tables[lang]
		require.NotNil(t, table, lang)
		for id := msgNone + 1; id < msgCount; id++ {
			en, s := messagesEN[id], table[id]
			require.NotEmpty(t, en, "English message %d", id)
			if !assert.NotEmpty(t, s, "%s: message %d (%q)", lang, id, en) {
				continue
			}
			want, got := placeholder.FindAllString(en, -1), placeholder.FindAllString(s, -1)
			slices.Sort(want)
			slices.Sort(got)
			assert.Equal(t, want, got, "%s: placeholders of %q in %q", lang, en, s)
		}
	}
	// A translated table says most things in words of its own.
	for _, lang := range languages[1:] {
		same := 0
		for id := msgNone + 1; id < msgCount; id++ {
			if tables[lang][id] == messagesEN[id] {
				same++
			}
		}
		assert.LessOrEqual(t, same, 1, "%s: messages left in English", lang)
	}
}

// TestReasonsAreMessages: every reason a proof is refused for is said in
// every language, through its message.
func TestReasonsAreMessages(t *testing.T) {
	t.Parallel()
	all := []string{reasonUnknown, reasonExpired, reasonWrong, reasonMismatch, reasonSender, reasonLevel}
	require.Len(t, reasons, len(all))
	for _, r := range all {
		id, ok := reasons[r]
		require.True(t, ok, r)
		assert.Equal(t, r, messagesEN[id], "the reason's message is its English text")
	}
	assert.Equal(t, "captcha wrong answer; solve the new captcha", text("en", msgCaptchaRefusedSolve, []string{reasonWrong}))
	assert.Equal(t, "капча не принята: неверный ответ; решите новую капчу", text("ru", msgCaptchaRefusedSolve, []string{reasonWrong}))
	assert.Equal(t, "abgelaufen; bitte das neue Captcha lösen", text("de", msgSolveNew, []string{reasonExpired}))
	// The guard's reasons name what they refuse; the English text stays.
	e := said(&Error{}, msgSolveNew, "captcha_token "+reasonExpired)
	assert.Equal(t, "captcha_token expired; solve the new captcha", e.Description)
	assert.Equal(t, "captcha_token 无效：已过期；请完成新的验证码", text("zh", e.msg, e.args))
	e = said(&Error{}, msgSolveNew, "captcha "+reasonWrong)
	assert.Equal(t, "captcha wrong answer; solve the new captcha", e.Description)
	assert.Equal(t, "captcha refusé : mauvaise réponse ; résolvez le nouveau captcha", text("fr", e.msg, e.args))
	// A key named like a reason is a key name, not a reason.
	assert.Equal(t, "missing expired", text("en", msgMissingKey, []string{"expired"}))
	assert.Equal(t, "expired がありません", text("ja", msgMissingKey, []string{"expired"}))
}

func TestTextSubstitutes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		lang string
		id   msgID
		args []string
		want string
	}{
		{"en", msgBodyTooLarge, []string{"65536"}, "body larger than 65536 bytes"},
		{"fr", msgBodyTooLarge, []string{"65536"}, "corps de plus de 65536 octets"},
		{"zh", msgLangOneOf, []string{"en, ru"}, "lang 必须是以下之一：en, ru"},
		{"en", msgMissingKey, []string{"{0}{1}"}, "missing {0}{1}"}, // an argument is not read again
		{"en", msgMissingKey, nil, "missing "},                      // a missing argument is empty
		{"xx", msgInternal, nil, "internal error"},                  // an unknown language is English
	} {
		assert.Equal(t, c.want, text(c.lang, c.id, c.args))
	}
}
