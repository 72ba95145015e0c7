#!/usr/bin/env bash
# asr.sh [N] [LANG]: how well an off-the-shelf speech recogniser
# (pocketsphinx, with a grammar of digit words: the best case for a
# machine that knows the answer is digits) transcribes N fresh Digits
# captchas' sounds. For people it is a floor of intelligibility; for an
# attacker, what a free recogniser gets without training on our voice.
# Needs: apt-get install pocketsphinx pocketsphinx-en-us sox (English only).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
lang=${2:-en}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run ./bench/asr -n "$n" -out "$tmp" -lang "$lang"
cat > "$tmp/digits.gram" <<'G'
#JSGF V1.0;
grammar digits;
public <digits> = ( zero | oh | one | two | three | four | five | six | seven | eight | nine )+ ;
G
exact=0 total=0 dist=0
for wav in "$tmp"/*.wav; do
  want=$(cat "${wav%.wav}.txt")
  sox "$wav" -r 16000 -b 16 "$tmp/in16.wav" 2>/dev/null
  hyp=$(pocketsphinx_continuous -infile "$tmp/in16.wav" -jsgf "$tmp/digits.gram" -logfn /dev/null 2>/dev/null |
    tr 'A-Z' 'a-z' | sed -e 's/zero/0/g; s/\boh\b/0/g; s/one/1/g; s/two/2/g; s/three/3/g; s/four/4/g; s/five/5/g' \
      -e 's/six/6/g; s/seven/7/g; s/eight/8/g; s/nine/9/g' | tr -cd '0-9')
  d=$(python3 -c 'import sys
a,b=sys.argv[1],sys.argv[2]
p=list(range(len(b)+1))
for i,ca in enumerate(a,1):
    c=[i]
    for j,cb in enumerate(b,1):
        c.append(min(p[j]+1,c[j-1]+1,p[j-1]+(ca!=cb)))
    p=c
print(p[-1])' "$want" "$hyp")
  total=$((total+1)); dist=$((dist+d))
  [ "$want" = "$hyp" ] && exact=$((exact+1))
done
echo "captchas: $total, transcribed exactly: $exact ($((100*exact/total))%), digit errors (edit distance): $dist of $((6*total)) digits ($((100*dist/(6*total)))%)"
