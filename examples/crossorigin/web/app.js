// The page's client of the API on another origin. Every call is a fetch
// with Content-Type: application/json, which the browser preflights.
"use strict";
(function () {
  const api = document.querySelector('meta[name="captchagate-api"]').content;
  const $ = function (id) { return document.getElementById(id); };
  const form = $("login"), status = $("status"), box = $("captcha"), answer = $("captcha-answer");
  let captcha = null; // the captcha to solve before the next sign-in, as the API sent it

  function say(text, kind) {
    status.textContent = text;
    status.dataset.kind = kind || "";
  }

  function showCaptcha(c) {
    captcha = c;
    $("captcha-image").src = c.image_url; // absolute URLs on the API's origin (Config.BaseURL)
    $("captcha-audio").src = c.audio_url;
    answer.value = "";
    answer.required = true;
    box.hidden = false;
    answer.focus();
  }

  function hideCaptcha() {
    captcha = null;
    answer.required = false;
    box.hidden = true;
  }

  // post sends body as JSON and returns the response and its JSON body ({}
  // if it has none). step names the call for the error shown when fetch
  // itself fails: the network, or the browser refusing a cross-origin answer.
  async function post(step, url, body, headers) {
    let res;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
        body: JSON.stringify(body),
      });
    } catch (e) {
      const err = new Error(step + ": " + e.message);
      err.step = step;
      throw err;
    }
    let data = {};
    try { data = await res.json(); } catch (e) { /* not JSON: keep {} */ }
    return { res: res, data: data };
  }

  async function signIn() {
    let token = "";
    if (captcha) {
      say("Checking the answer…");
      const v = await post("verify", captcha.verify_url, { captcha_id: captcha.id, captcha_answer: answer.value });
      if (!v.res.ok) {
        if (v.data.captcha) {
          showCaptcha(v.data.captcha); // a wrong answer consumes the captcha; here is a fresh one
          say("That answer was not right. Type the digits of the new picture.", "error");
        } else {
          hideCaptcha();
          say("The captcha could not be checked (" + (v.data.error || v.res.status) + "). Sign in again.", "error");
        }
        return;
      }
      token = v.data.captcha_token;
      hideCaptcha();
    }
    say("Signing in…");
    const r = await post("login", api + "/api/login",
      { username: $("username").value, password: $("password").value },
      token ? { "X-Captcha-Token": token } : {});
    switch (r.res.status) {
      case 200:
        form.hidden = true;
        say("Welcome, " + r.data.user + ". You are signed in.", "ok");
        return;
      case 401:
        say("Wrong username or password.", "error");
        return;
      case 428: // captcha_required
      case 403: // captcha_invalid: the token was refused; a fresh captcha comes with it
        if (r.data.captcha) {
          showCaptcha(r.data.captcha);
          say("Too many attempts: type the digits in the picture, then sign in again.", "error");
          return;
        }
        break;
      case 429: {
        const after = r.res.headers.get("Retry-After"); // readable because the API exposes it
        say("Too many attempts. Try again" + (after ? " in " + after + " seconds." : " later."), "error");
        return;
      }
    }
    say("The server answered " + r.res.status + (r.data.error ? " (" + r.data.error + ")" : "") + ".", "error");
  }

  // busy runs f with the form's buttons disabled, shows a fetch failure, and
  // counts the runs done in form.dataset.done.
  async function busy(f) {
    const buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    delete status.dataset.failed;
    try {
      await f();
    } catch (e) {
      status.dataset.failed = e.step || "page";
      say("Could not call the API (" + e.message + ").", "error");
    } finally {
      buttons.forEach(function (b) { b.disabled = false; });
      form.dataset.done = String(Number(form.dataset.done || 0) + 1);
    }
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    busy(signIn);
  });

  $("captcha-refresh").addEventListener("click", function () {
    busy(async function () {
      const r = await post("refresh", captcha.refresh_url, { captcha_id: captcha.id });
      if (r.res.ok && r.data.captcha) {
        showCaptcha(r.data.captcha);
        say("New picture loaded.");
      } else {
        say("No new picture (" + (r.data.error || r.res.status) + ").", "error");
      }
    });
  });
})();
