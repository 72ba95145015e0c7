// Drives the unmodified @webex/plugin-meetings' own password and captcha
// code (Meeting.fetchMeetingInfo, Meeting.verifyPassword and
// Meeting.refreshCaptcha, through MeetingInfoV2.fetchMeetingInfo and
// MeetingRequest.refreshCaptcha on the SDK's own HTTP stack) against the
// example server at process.argv[2] (http://127.0.0.1:port).
//
// It is run by examples/webex's Go test: stdout carries one JSON line per
// step for the test to check; when a captcha's code is needed it writes
// {"need":"answer","captchaID":…} and reads the code, a line on stdin (the
// test learns it in-process from the server's challenge). Everything else
// the SDK prints goes to stderr.
//
// Stubbed, as unrelated to the flow (and listed in docs/dialects.md):
//   - a browser's window and navigator (the SDK's media modules read the
//     user agent when they load);
//   - service discovery: services.waitForService answers the example
//     server's /wbxappapi/v1 for the wbxappapi service (the real one asks
//     Webex's U2C catalog);
//   - the access token: a placeholder (no Webex account; the example server
//     authenticates nobody);
//   - telemetry: the metrics plugins' submit calls do nothing;
//   - device registration and Locus: the Meeting is constructed directly
//     for a MEETING_ID destination with its MeetingInfoV2 provider, instead
//     of webex.meetings.create, which registers a device first.
'use strict';

const util = require('util');
const readline = require('readline');

for (const k of ['log', 'info', 'debug', 'warn', 'trace']) {
  console[k] = (...a) => process.stderr.write(util.format(...a) + '\n');
}

globalThis.window = {
  navigator: {userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'},
  location: {hostname: 'localhost'},
  addEventListener() {},
  removeEventListener() {},
};
Object.defineProperty(globalThis, 'navigator', {value: globalThis.window.navigator, configurable: true});

const base = process.argv[2];
if (!base) {
  process.stderr.write('usage: node driver.js http://127.0.0.1:port\n');
  process.exit(2);
}

const lines = readline.createInterface({input: process.stdin});
const pending = [];
lines.on('line', (l) => {
  const next = pending.shift();
  if (next) next(l.trim());
});

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function answerOf(captchaID) {
  return new Promise((resolve) => {
    pending.push(resolve);
    say({need: 'answer', captchaID});
  });
}

async function main() {
  const WebexCore = require('@webex/webex-core').default;
  require('@webex/plugin-meetings');
  const Meeting = require('@webex/plugin-meetings/dist/meeting/index.js').default;
  const MeetingInfoV2 = require('@webex/plugin-meetings/dist/meeting-info/meeting-info-v2.js').default;
  const {WBXAPPAPI_SERVICE} = require('@webex/plugin-meetings/dist/constants.js');

  const webex = new WebexCore({
    credentials: {access_token: 'placeholder-token'},
    config: {logger: {level: 'error'}, meetings: {experimental: {enableUnifiedMeetings: true}}},
  });
  if (!webex.ready) await new Promise((r) => webex.once('ready', r));

  // Service discovery: the wbxappapi service is the example server.
  webex.internal.services.waitForService = async ({name}) => {
    if (name === WBXAPPAPI_SERVICE) return `${base}/wbxappapi/v1`;
    throw new Error(`stub: no service ${name}`);
  };
  // Telemetry.
  const nop = async () => {};
  if (webex.internal.metrics) webex.internal.metrics.submitClientMetrics = nop;
  if (webex.internal.newMetrics) {
    webex.internal.newMetrics.submitClientEvent = () => {};
    webex.internal.newMetrics.submitInternalEvent = () => {};
    webex.internal.newMetrics.submitBehavioralEvent = () => {};
    webex.internal.newMetrics.submitOperationalEvent = () => {};
  }

  const provider = new MeetingInfoV2(webex);
  const newMeeting = (key) =>
    new Meeting(
      {userId: 'user', deviceUrl: `${base}/device`, orgId: 'org', locus: null, destination: key,
        destinationType: 'MEETING_ID', meetingInfoProvider: provider},
      {parent: webex}
    );

  const state = (m) => ({
    passwordStatus: m.passwordStatus,
    failureReason: m.meetingInfoFailureReason,
    code: m.meetingInfoFailureCode,
    captchaID: m.requiredCaptcha ? m.requiredCaptcha.captchaId : null,
  });

  // step runs the SDK call f and reports its outcome with the meeting's state.
  async function step(flow, name, m, f) {
    let result = null;
    let error = null;
    try {
      result = await f();
    } catch (e) {
      error = e && e.name ? e.name : String(e);
    }
    const r = result && typeof result === 'object' ? {...result} : result;
    if (r && r.requiredCaptcha) r.requiredCaptcha = r.requiredCaptcha.captchaId;
    say({flow, step: name, result: r, error, state: state(m)});
  }

  // image fetches the captcha's picture (and sound) as a page would show it.
  async function media(flow, m) {
    const c = m.requiredCaptcha;
    const img = await fetch(c.verificationImageURL);
    const png = Buffer.from(await img.arrayBuffer());
    const snd = c.verificationAudioURL ? await fetch(c.verificationAudioURL) : null;
    const wav = snd ? Buffer.from(await snd.arrayBuffer()) : Buffer.alloc(0);
    say({flow, step: 'media', captchaID: c.captchaId, imageStatus: img.status, imageType: img.headers.get('content-type'),
      png: png.subarray(1, 4).toString(), audioStatus: snd ? snd.status : 0, wav: wav.subarray(0, 4).toString(),
      refreshURL: c.refreshURL});
  }

  // trip: the SDK's probe without a password, three wrong passwords, and the
  // fourth, which meets the captcha.
  async function trip(flow, m) {
    await step(flow, 'probe', m, () => m.fetchMeetingInfo({}));
    for (let i = 1; i <= 4; i++) {
      await step(flow, `wrong-password-${i}`, m, () => m.verifyPassword(`guess-${i}`, undefined));
    }
  }

  const pw = 'sesame';

  // 1: wrong passwords, the captcha, its image, right code and password.
  {
    const f = 'right', m = newMeeting('111111111');
    await trip(f, m);
    await media(f, m);
    const code = await answerOf(m.requiredCaptcha.captchaId);
    await step(f, 'right-code-right-password', m, () => m.verifyPassword(pw, code));
  }
  // 2: a wrong code, then the new captcha answered.
  {
    const f = 'wrong-code', m = newMeeting('222222222');
    await trip(f, m);
    await media(f, m);
    const code = await answerOf(m.requiredCaptcha.captchaId);
    const wrong = code.split('').map((d) => String((Number(d) + 1) % 10)).join('');
    await step(f, 'wrong-code-right-password', m, () => m.verifyPassword(pw, wrong));
    await media(f, m);
    await step(f, 'right-code-right-password', m, async () => m.verifyPassword(pw, await answerOf(m.requiredCaptcha.captchaId)));
  }
  // 3: two refreshes, then the last captcha answered.
  {
    const f = 'refresh', m = newMeeting('333333333');
    await trip(f, m);
    for (let i = 1; i <= 2; i++) {
      await step(f, `refresh-${i}`, m, () => m.refreshCaptcha());
      await media(f, m);
    }
    await step(f, 'right-code-right-password', m, async () => m.verifyPassword(pw, await answerOf(m.requiredCaptcha.captchaId)));
  }
  // 4: a right code with a wrong password (the SDK then refreshes the used
  // captcha), then the new captcha and the right password.
  {
    const f = 'used', m = newMeeting('444444444');
    await trip(f, m);
    await media(f, m);
    await step(f, 'right-code-wrong-password', m, async () => m.verifyPassword('guess-5', await answerOf(m.requiredCaptcha.captchaId)));
    await media(f, m);
    await step(f, 'right-code-right-password', m, async () => m.verifyPassword(pw, await answerOf(m.requiredCaptcha.captchaId)));
  }
  say({done: true});
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`driver failed: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  }
);
