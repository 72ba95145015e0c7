// solve.mjs: altcha-lib's own v2 solver (solveChallenge, unmodified)
// against a captchagate ALTCHA v2 challenge, driven by
// examples/challenges/node_altcha_test.go.
//
//   node solve.mjs '{"challenge_url":"http://127.0.0.1:…/captcha/ID.json",
//                    "verify_url":"http://127.0.0.1:…/captcha/verify","captcha_id":"ID",
//                    "replay":true,"hmac_secret":"…"}'
//
// It fetches the challenge, solves it with altcha-lib's solveChallenge and
// the node deriveKey of the challenge's algorithm, builds the payload as the
// altcha widget does (base64 of {challenge:{parameters,signature},solution}),
// posts it to verify_url (when given) and, with replay, posts it again. With
// hmac_secret it also runs altcha-lib's verifySolution on the solution.
// It prints one JSON object: what it sent and what the server answered.
import { solveChallenge, verifySolution } from 'altcha-lib';
import * as sha from 'altcha-lib/algorithms/sha';
import * as pbkdf2 from 'altcha-lib/algorithms/pbkdf2';

const args = JSON.parse(process.argv[2] || '{}');

function deriveKeyFor(algorithm) {
  if (algorithm.startsWith('PBKDF2/')) {
    return pbkdf2.deriveKey;
  }
  return sha.deriveKey;
}

async function post(url, body) {
  const resp = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: reported as text
  }
  return { status: resp.status, body: json, text: json ? undefined : text };
}

const out = {};
const resp = await fetch(args.challenge_url);
out.challenge_status = resp.status;
const challenge = await resp.json();
const deriveKey = deriveKeyFor(challenge.parameters.algorithm);
const solution = await solveChallenge({ challenge, deriveKey, timeout: 60_000 });
if (!solution) {
  out.error = 'no solution';
  console.log(JSON.stringify(out));
  process.exit(1);
}
out.counter = solution.counter;
// As the widget (altcha 3.x) writes a v2 payload.
const payload = Buffer.from(
  JSON.stringify({
    challenge: { parameters: challenge.parameters, signature: challenge.signature },
    solution,
  }),
).toString('base64');
if (args.hmac_secret) {
  const r = await verifySolution({ challenge, solution, deriveKey, hmacSignatureSecret: args.hmac_secret });
  out.lib_verified = r.verified;
  out.lib_invalid_signature = r.invalidSignature;
}
if (args.verify_url) {
  out.first = await post(args.verify_url, { captcha_id: args.captcha_id, captcha_answer: payload });
  if (args.replay) {
    out.replay = await post(args.verify_url, { captcha_id: args.captcha_id, captcha_answer: payload });
  }
}
console.log(JSON.stringify(out));
