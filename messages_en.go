package captchagate

// msgID names a message of the gate: an error's description, said in the
// request's language (lang.go). English (this file) is the source; each
// language has a table of its own (messages_xx.go) with the same
// placeholders, {0}, {1}..., substituted in order.
type msgID uint8

// The messages. msgNone: the error was not said with a message (a
// Dialect's own error), and keeps its Description.
const (
	msgNone msgID = iota
	msgNoEndpoint
	msgUseMethod
	msgNoFormat
	msgNotCaptchaID
	msgLangOneOf
	msgContentType
	msgBodyUTF8
	msgMustBeString
	msgBodyJSON
	msgBodyForm
	msgIDRequired
	msgAnswerRequired
	msgAnswerMalformed
	msgAnswerKind
	msgSenderLong
	msgSenderUnbound
	msgCaptchaRefused
	msgCaptchaRefusedRetry
	msgCaptchaRefusedSolve
	msgTokenRefusedSolve
	msgRefreshLimit
	msgUnknownUsed
	msgUnknownUsedExpired
	msgPolicyRequired
	msgPolicyUnknown
	msgTooManyCaptchas
	msgTooManyMedia
	msgTwoValues
	msgMissingKey
	msgBodyTooLarge
	msgBodyUnreadable
	msgLimitReached
	msgSolveNew
	msgTokenRequiredSolve
	msgTokenRequired
	msgNotToken
	msgIDWithAnswer
	msgInternal
	msgUnavailable
	msgReasonUnknown
	msgReasonExpired
	msgReasonWrong
	msgReasonMismatch
	msgReasonSender
	msgReasonLevel
	msgCount
)

var messagesEN = [msgCount]string{
	msgNoEndpoint:          "no such endpoint",
	msgUseMethod:           "use {0}",
	msgNoFormat:            "no such format",
	msgNotCaptchaID:        "captcha_id is not a captcha id",
	msgLangOneOf:           "lang must be one of {0}",
	msgContentType:         "Content-Type must be application/json or application/x-www-form-urlencoded",
	msgBodyUTF8:            "body is not valid UTF-8",
	msgMustBeString:        "{0} must be a string",
	msgBodyJSON:            "body is not a valid JSON object",
	msgBodyForm:            "body is not a valid form",
	msgIDRequired:          "captcha_id is required",
	msgAnswerRequired:      "captcha_answer is required",
	msgAnswerMalformed:     "captcha_answer is too long or not text",
	msgAnswerKind:          "captcha_answer is not an answer of this kind of captcha",
	msgSenderLong:          "sender is longer than 256 bytes",
	msgSenderUnbound:       "sender cannot be bound: the captcha's policy has no Sender key",
	msgCaptchaRefused:      "captcha {0}",
	msgCaptchaRefusedRetry: "captcha {0}; retry the original request for a new one",
	msgCaptchaRefusedSolve: "captcha {0}; solve the new captcha",
	msgTokenRefusedSolve:   "captcha_token {0}; solve the new captcha",
	msgRefreshLimit:        "refresh limit reached; answer this captcha",
	msgUnknownUsed:         "unknown or used captcha",
	msgUnknownUsedExpired:  "unknown, used or expired captcha",
	msgPolicyRequired:      "policy is required",
	msgPolicyUnknown:       "policy names no guarded policy",
	msgTooManyCaptchas:     "too many captchas requested; retry later",
	msgTooManyMedia:        "too many captcha images or sounds requested; retry later",
	msgTwoValues:           "the body gives two values of {0}",
	msgMissingKey:          "missing {0}",
	msgBodyTooLarge:        "body larger than {0} bytes",
	msgBodyUnreadable:      "body could not be read",
	msgLimitReached:        "limit reached; retry later",
	msgSolveNew:            "{0}; solve the new captcha",
	msgTokenRequiredSolve:  "captcha_token required; solve the captcha and retry",
	msgTokenRequired:       "captcha_token required",
	msgNotToken:            "captcha_token is not a captcha token",
	msgIDWithAnswer:        "captcha_id is required with captcha_answer",
	msgInternal:            "internal error",
	msgUnavailable:         "temporarily unavailable, retry later",
	msgReasonUnknown:       "unknown or already used",
	msgReasonExpired:       "expired",
	msgReasonWrong:         "wrong answer",
	msgReasonMismatch:      "issued for another request",
	msgReasonSender:        "verified for another sender",
	msgReasonLevel:         "issued at a lower difficulty than this request needs",
}
