/* captchagate widget: no dependencies. Wires every [data-captchagate] the
 * server rendered (form pages), and offers captchagate.solve(container, body)
 * for fetch() clients that receive captcha_required / captcha_invalid. */
(function () {
  "use strict";

  var messages = {
    captcha_required: "Please type the digits in the picture to continue.",
    captcha_invalid: "That answer was not right, or it expired. Please try this new picture.",
    too_many_requests: "Too many attempts. Please wait a little and try again.",
    service_unavailable: "The security check is unavailable right now. Please try again in a minute.",
    network: "The connection failed. Please try again."
  };

  function $(root, sel) { return root.querySelector(sel); }

  function post(url, body) {
    var init = { method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (body) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        return { status: res.status, data: data };
      });
    });
  }

  function say(root, text) {
    var s = $(root, "[data-cg-status]");
    if (s) { s.textContent = text; }
  }

  function show(root, c) {
    var img = $(root, "[data-cg-image]"), audio = $(root, "[data-cg-audio]"), input = $(root, "input");
    var lang = root.getAttribute("data-cg-lang") || "en";
    root.setAttribute("data-cg-id", c.id);
    img.src = c.image_url;
    if (audio) {
      audio.pause();
      audio.src = c.audio_url + (c.audio_url.indexOf("?") < 0 ? "?lang=" + lang : "");
      audio.load();
    }
    var refresh = $(root, "[data-cg-refresh]");
    if (refresh) { refresh.disabled = c.refreshes_left === 0; }
    if (input) { input.value = ""; }
  }

  // wire attaches the buttons of one widget. refreshURL(root) says where a
  // refresh goes and what it sends.
  function wire(root, refreshRequest) {
    var play = $(root, "[data-cg-play]"), refresh = $(root, "[data-cg-refresh]"), audio = $(root, "[data-cg-audio]");
    if (play && audio) {
      play.addEventListener("click", function () {
        audio.currentTime = 0;
        var p = audio.play();
        say(root, "Playing the digits.");
        if (p && p.catch) { p.catch(function () { say(root, "Your browser could not play the audio."); }); }
      });
    }
    if (refresh) {
      refresh.addEventListener("click", function () {
        refresh.disabled = true;
        var req = refreshRequest(root);
        post(req.url, req.body).then(function (r) {
          if (r.status === 200 && r.data.captcha) {
            show(root, r.data.captcha);
            say(root, "New picture loaded.");
            $(root, "input").focus();
          } else {
            refresh.disabled = false;
            say(root, messages[r.data.error] || r.data.error_description || messages.network);
          }
        }, function () {
          refresh.disabled = false;
          say(root, messages.network);
        });
      });
    }
  }

  function sessionRefresh(root) { return { url: root.getAttribute("data-cg-refresh-url"), body: null }; }
  function idRefresh(root) { return { url: root._cgRefreshURL, body: { captcha_id: root.getAttribute("data-cg-id") } }; }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, attrs[k]); } }
    if (text) { e.textContent = text; }
    return e;
  }

  var seq = 0;

  // solve shows the captcha of a captcha_required / captcha_invalid body in
  // container and resolves to a captcha_token once the visitor answers it.
  function solve(container, body, opts) {
    opts = opts || {};
    var c = body && body.captcha;
    if (!c) { return Promise.reject(new Error("captchagate: the response carries no captcha")); }
    var n = ++seq, msgId = "captchagate-msg-" + n, inputId = "captchagate-in-" + n;
    container.textContent = "";
    var form = el("form", { "class": "captchagate-form", "data-captchagate": "", "data-cg-lang": opts.lang || "en", novalidate: "" });
    form._cgRefreshURL = c.refresh_url.split("?")[0];
    var fs = el("fieldset", { "class": "captchagate" });
    fs.appendChild(el("legend", {}, "Security check"));
    var msg = el("p", { "class": "captchagate-message", id: msgId, "data-cg-message": "" },
      messages[body.error] || messages.captcha_required);
    if (body.error && body.error !== "captcha_required") { msg.setAttribute("role", "alert"); }
    fs.appendChild(msg);
    fs.appendChild(el("img", { "class": "captchagate-image", "data-cg-image": "", width: "240", height: "80",
      alt: "Security check picture of digits. If you cannot read it, use Play audio to hear the digits, or New picture." }));
    var buttons = el("div", { "class": "captchagate-buttons" });
    buttons.appendChild(el("button", { type: "button", "data-cg-play": "" }, "Play audio"));
    buttons.appendChild(el("button", { type: "button", "data-cg-refresh": "" }, "New picture"));
    buttons.appendChild(el("audio", { "data-cg-audio": "", preload: "none" }));
    fs.appendChild(buttons);
    fs.appendChild(el("label", { "for": inputId }, "Type the digits you see or hear"));
    fs.appendChild(el("input", { id: inputId, name: "captcha_answer", type: "text", inputmode: "numeric",
      autocomplete: "off", autocapitalize: "off", spellcheck: "false", maxlength: "32", required: "",
      "aria-describedby": msgId }));
    fs.appendChild(el("button", { type: "submit", "data-cg-submit": "" }, opts.submitLabel || "Verify"));
    fs.appendChild(el("p", { "class": "captchagate-status", "data-cg-status": "", "aria-live": "polite" }));
    form.appendChild(fs);
    container.appendChild(form);
    show(form, c);
    wire(form, idRefresh);
    var input = $(form, "input");
    input.focus();
    var verifyURL = c.verify_url;

    return new Promise(function (resolve) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var answer = input.value.trim();
        if (!answer) { msg.textContent = "Please type the digits first."; msg.setAttribute("role", "alert"); input.focus(); return; }
        var submit = $(form, "[data-cg-submit]");
        submit.disabled = true;
        post(verifyURL, { captcha_id: form.getAttribute("data-cg-id"), captcha_answer: answer }).then(function (r) {
          submit.disabled = false;
          if (r.status === 200 && r.data.captcha_token) {
            container.textContent = "";
            resolve(r.data.captcha_token);
            return;
          }
          msg.textContent = messages[r.data.error] || r.data.error_description || messages.network;
          msg.setAttribute("role", "alert");
          say(form, "");
          if (r.data.captcha) { show(form, r.data.captcha); }
          input.focus();
        }, function () {
          submit.disabled = false;
          msg.textContent = messages.network;
        });
      });
    });
  }

  function init() {
    var roots = document.querySelectorAll("[data-captchagate][data-cg-refresh-url]");
    for (var i = 0; i < roots.length; i++) {
      if (!roots[i]._cgWired && $(roots[i], "[data-cg-image]")) {
        roots[i]._cgWired = true;
        wire(roots[i], sessionRefresh);
      }
    }
  }

  window.captchagate = { solve: solve, messages: messages };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
