#!/usr/bin/env bash
# roundtrip.sh: the client's side of captchagate's protocol, in curl. Against
# the demo (or any server with its JSON login API), it posts wrong passwords
# until the server answers 428 captcha_required, saves the captcha's picture,
# asks you for its digits, posts them to the captcha's verify_url, and signs
# in with the captcha_token in the X-Captcha-Token header (then shows that
# the token works once).
#
#   go run ./examples/login &                 # http://localhost:8080
#   bash examples/curl/roundtrip.sh           # or: roundtrip.sh http://host:port
#
# Environment: LOGIN_PATH (default /api/login), LOGIN_USER (alice),
# LOGIN_PASSWORD (wonderland). Needs only bash, curl, sed and grep (no jq).
set -euo pipefail

base=${1:-http://localhost:8080}
base=${base%/}
login_path=${LOGIN_PATH:-/api/login}
user=${LOGIN_USER:-alice}
pass=${LOGIN_PASSWORD:-wonderland}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# post URL JSON [curl options...]: POSTs JSON, prints the status; the body
# is left in $dir/body.
post() {
	local url=$1 data=$2
	shift 2
	curl -sS -o "$dir/body" -w '%{http_code}' -H 'Content-Type: application/json' "$@" --data-binary "$data" "$url"
}

# member NAME: the string member NAME of the JSON body (one line, as the
# gate writes it); empty if absent.
member() {
	sed -n 's/.*"'"$1"'":"\([^"]*\)".*/\1/p' "$dir/body" | head -n 1
}

# abs URL: the URL the server sent, made absolute (the gate sends paths
# unless its Config.BaseURL is set).
abs() {
	case $1 in
	http://* | https://*) echo "$1" ;;
	*) echo "$base$1" ;;
	esac
}

echo "1. wrong passwords for $user until the server asks for a captcha"
status=
for ((i = 1; i <= 30; i++)); do
	status=$(post "$base$login_path" "{\"username\":\"$user\",\"password\":\"not-$pass\"}")
	echo "   POST $login_path -> $status $(member error)"
	[ "$status" = 428 ] && break
done
if [ "$status" != 428 ]; then
	echo "no captcha after $((i - 1)) wrong passwords" >&2
	exit 1
fi
grep -q '"error":"captcha_required"' "$dir/body"
id=$(member id)
image_url=$(member image_url)
audio_url=$(member audio_url)
verify_url=$(member verify_url)
echo "   captcha id: $id"

echo "2. the picture: GET $image_url"
status=$(curl -sS -o "$dir/captcha.png" -w '%{http_code}' "$(abs "$image_url")")
echo "   -> $status, saved to $dir/captcha.png"
[ "$status" = 200 ]

echo "3. open $dir/captcha.png (or play $(abs "$audio_url")) and type the digits:"
read -r answer
answer=${answer//[^0-9]/} # the digits only: the answer goes into JSON

echo "4. the answer: POST $verify_url"
status=$(post "$(abs "$verify_url")" "{\"captcha_id\":\"$id\",\"captcha_answer\":\"$answer\"}")
if [ "$status" != 200 ]; then
	echo "   -> $status $(member error)"
	echo "the answer was refused; run again for a new captcha" >&2
	exit 1
fi
token=$(member captcha_token)
echo "   -> $status: a captcha_token (valid $(sed -n 's/.*"expires_in":\([0-9]*\).*/\1/p' "$dir/body") s, once)"

echo "5. sign in again, with the right password and the token in X-Captcha-Token"
status=$(post "$base$login_path" "{\"username\":\"$user\",\"password\":\"$pass\"}" -H "X-Captcha-Token: $token")
echo "   POST $login_path -> $status $(cat "$dir/body")"
[ "$status" = 200 ]

echo "6. the same token again"
status=$(post "$base$login_path" "{\"username\":\"$user\",\"password\":\"$pass\"}" -H "X-Captcha-Token: $token")
echo "   POST $login_path -> $status $(member error)"
