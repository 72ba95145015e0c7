// driver.js runs the unmodified CloudBase auth SDK (@cloudbase/oauth) against
// the server at process.argv[2] (its apiOrigin; apiPath is the SDK's default
// "/auth"): the SDK's own request wrapper detects each captcha_required,
// asks POST /v1/captcha/data for the captcha, hands it to the captcha UI
// hook (captchaOptions.openURIWithCallback), caches the token it resolves
// with and retries the request with captcha_token in the query.
//
// The UI hook is the one of the SDK's captcha guide (the seed's adapter): it
// parses the URL with the SDK's parseCaptcha, shows the picture (here: asks
// the Go test, which reads the answer from the gate's challenge in-process),
// verifies with auth.verifyCaptchaData and, after a refused answer,
// refreshes with auth.createCaptchaData, as the SDK's own modal does.
//
// Protocol, one JSON object a line: the driver writes events to stdout
// ({"event":"captcha","state","token"} asks for an answer, which the test
// writes to stdin as {"answer":"…"}); it ends with {"event":"done"} and
// exit status 0, or {"event":"error"} and status 1.
//
// Stubs, unrelated to the captcha flow: storage (the SDK's default is the
// browser's localStorage, absent in node) is an in-memory SimpleStorage.
'use strict'

const readline = require('node:readline')
const { CloudbaseOAuth } = require('@cloudbase/oauth')
const { parseCaptcha } = require('@cloudbase/utilities/dist/cjs/libs/util')

const apiOrigin = process.argv[2]
if (!apiOrigin) {
  console.error('usage: node driver.js http://127.0.0.1:PORT')
  process.exit(2)
}

const emit = (ev) => process.stdout.write(JSON.stringify(ev) + '\n')

// Answers from the test, in order.
const lines = readline.createInterface({ input: process.stdin })
const waiting = []
const queued = []
lines.on('line', (l) => {
  const v = JSON.parse(l)
  if (waiting.length) waiting.shift()(v)
  else queued.push(v)
})
const nextAnswer = () => new Promise((resolve) => {
  if (queued.length) resolve(queued.shift())
  else waiting.push(resolve)
})

// The in-memory SimpleStorage (stub of localStorage).
const mem = new Map()
const storage = {
  getItem: async (k) => (mem.has(k) ? mem.get(k) : null),
  removeItem: async (k) => { mem.delete(k) },
  setItem: async (k, v) => { mem.set(k, String(v)) },
  getItemSync: (k) => (mem.has(k) ? mem.get(k) : null),
  removeItemSync: (k) => { mem.delete(k) },
  setItemSync: (k, v) => { mem.set(k, String(v)) },
}

let auth

// The captcha UI: the SDK calls it with `${data}?state=…&token=…`.
async function openURIWithCallback(url) {
  const parsed = parseCaptcha(url)
  if (parsed.error) throw parsed
  let { captchaData, state, token } = parsed
  for (;;) {
    emit({ event: 'captcha', state, token, image: captchaData.slice(0, 22) })
    const { answer } = await nextAnswer()
    try {
      const res = await auth.verifyCaptchaData({ token, key: answer })
      emit({ event: 'verified', state, expires_in: res.expires_in })
      return res
    } catch (err) {
      emit({ event: 'refused', state, error: err.error, error_code: err.error_code })
      const fresh = await auth.createCaptchaData({ state })
      captchaData = fresh.data
      token = fresh.token
    }
  }
}

async function attempt(name, f) {
  try {
    const res = await f()
    emit({ event: name, ok: true, keys: Object.keys(res || {}).sort() })
  } catch (err) {
    emit({ event: name, ok: false, error: err.error, error_code: err.error_code })
  }
}

async function main() {
  const oauth = new CloudbaseOAuth({
    apiOrigin,
    clientId: 'captchagate-demo',
    storage,
    i18n: { LANG_HEADER_KEY: 'Accept-Language', lang: 'en' },
    captchaOptions: { openURIWithCallback },
  })
  oauth.initializeSession()
  auth = oauth.authApi

  for (let i = 0; i < 5; i++) {
    await attempt('signin', () => auth.signIn({ username: 'alice', password: `guess-${i}` }))
  }
  await attempt('signin', () => auth.signIn({ username: 'alice', password: 'wonderland' }))
  for (let i = 0; i < 3; i++) {
    await attempt('send', () => auth.getVerification({ phone_number: '13800000000', target: 'ANY', usage: 'SIGN_IN' }))
  }
  emit({ event: 'done' })
}

main().then(() => process.exit(0), (err) => {
  emit({ event: 'error', error: String(err && (err.error || err.message || err)) })
  process.exit(1)
})
