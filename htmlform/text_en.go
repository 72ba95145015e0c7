package htmlform

// textID names a piece of the widget's text, said in the request's
// language. English (this file) is the source; each language has a table
// of its own (text_xx.go) with the same placeholders, {0}, substituted.
type textID uint8

// The widget's text.
const (
	tRequired textID = iota
	tInvalid
	tTooMany
	tTooManyIn
	tMinute
	tMinutes
	tHour
	tHours
	tRefreshWait
	tUnavailable
	tCheckForm
	tWentWrong
	tNetwork
	tLegend
	tNoScript
	tImageAlt
	tPlay
	tNewPicture
	tAudioHelp
	tAnswerLabel
	tPlaying
	tNoAudio
	tLoaded
	tVerify
	tTypeFirst
	tComplete
	tSliderHint
	tSliderAlt
	tPiecePosition
	tCheckPosition
	tChecking
	tAltchaHint
	tVerifying
	tLoadFailed
	tHostedHint
	tNoPending // a refresh with no captcha pending in the session (a JSON error)
	tUseDigits // the slider's way to its digits (picture and sound)
	tDigitsHint
	tDigitsAlt
	tPause
	tReplay
	tPaused
	tAudioLink
	tAnswerHelp
	tNoMorePics
	textCount
)

// textNames are the keys of the text widget.js reads from data-cg-text;
// "" for text only the server says.
var textNames = [textCount]string{
	tRequired:      "captcha_required",
	tInvalid:       "captcha_invalid",
	tTooMany:       "too_many_requests",
	tUnavailable:   "service_unavailable",
	tNetwork:       "network",
	tLegend:        "legend",
	tImageAlt:      "image_alt",
	tPlay:          "play",
	tNewPicture:    "new_picture",
	tAnswerLabel:   "answer_label",
	tPlaying:       "playing",
	tNoAudio:       "no_audio",
	tLoaded:        "loaded",
	tVerify:        "verify",
	tTypeFirst:     "type_first",
	tComplete:      "complete",
	tSliderHint:    "slider_hint",
	tSliderAlt:     "slider_alt",
	tPiecePosition: "piece_position",
	tCheckPosition: "check_position",
	tChecking:      "checking",
	tAltchaHint:    "altcha_hint",
	tVerifying:     "verifying",
	tLoadFailed:    "load_failed",
	tHostedHint:    "hosted_hint",
	tUseDigits:     "use_digits",
	tDigitsHint:    "digits_hint",
	tDigitsAlt:     "digits_alt",
	tPause:         "pause",
	tReplay:        "replay",
	tPaused:        "paused",
	tAudioLink:     "audio_link",
	tAnswerHelp:    "answer_help",
	tNoMorePics:    "no_more_pictures",
}

var textEN = [textCount]string{
	tRequired:      "Please type the digits in the picture to continue.",
	tInvalid:       "That answer was not right, or it expired. Please try this new picture.",
	tTooMany:       "Too many attempts. Please wait a little and try again.",
	tTooManyIn:     "Too many attempts. Please try again in {0}.",
	tMinute:        "a minute",
	tMinutes:       "{0} minutes",
	tHour:          "an hour",
	tHours:         "{0} hours",
	tRefreshWait:   "Please wait a moment before asking for another picture.",
	tUnavailable:   "The security check is unavailable right now. Please try again in a minute.",
	tCheckForm:     "Please check the form and try again.",
	tWentWrong:     "Something went wrong. Please try again.",
	tNetwork:       "The connection failed. Please try again.",
	tLegend:        "Security check",
	tNoScript:      "This security check needs JavaScript.",
	tImageAlt:      "Security check picture of digits. If you cannot read it, use Play audio to hear the digits, or New picture.",
	tPlay:          "Play audio",
	tNewPicture:    "New picture",
	tAudioHelp:     "Plays the digits aloud.",
	tAnswerLabel:   "Type the digits you see or hear",
	tPlaying:       "Playing the digits.",
	tNoAudio:       "Your browser could not play the audio.",
	tLoaded:        "New picture loaded.",
	tVerify:        "Verify",
	tTypeFirst:     "Please type the digits first.",
	tComplete:      "Security check complete. You can send the form now.",
	tSliderHint:    "Slide the piece into the gap in the picture.",
	tSliderAlt:     "Puzzle picture with a gap. Move the piece with the slider below.",
	tPiecePosition: "Piece position",
	tCheckPosition: "Check position",
	tChecking:      "Checking…",
	tAltchaHint:    "Checking that you are not a robot. This takes a moment.",
	tVerifying:     "Verifying…",
	tLoadFailed:    "The security check could not load. Please reload the page.",
	tHostedHint:    "Please complete the security check.",
	tNoPending:     "no captcha to refresh",
	tUseDigits:     "Use an audio or digits challenge instead",
	tDigitsHint:    "Type the digits you see in the picture or hear when you play the audio.",
	tDigitsAlt:     "Security check picture of digits. If you cannot read it, use Play audio to hear the digits.",
	tPause:         "Pause audio",
	tReplay:        "Play from the start",
	tPaused:        "Audio paused.",
	tAudioLink:     "Open the audio in a new tab",
	tAnswerHelp:    "The picture and the audio have the same digits.",
	tNoMorePics:    "No more new pictures for this check. Type the digits you see, or use the audio.",
}
