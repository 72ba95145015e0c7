/* captchagate widget: no dependencies. Wires every [data-captchagate] the
 * server rendered (form pages), and offers captchagate.solve(container, body)
 * for fetch() clients that receive captcha_required / captcha_invalid.
 * Its text is English unless the server rendered the text of another
 * language in a data-cg-text attribute (JSON) on the widget, the container
 * or an ancestor (htmlform's Flow.WidgetText), or solve gets opts.text. */
(function () {
  "use strict";

  var messages = {
    captcha_required: "Please type the digits in the picture to continue.",
    captcha_invalid: "That answer was not right, or it expired. Please try this new picture.",
    too_many_requests: "Too many attempts. Please wait a little and try again.",
    service_unavailable: "The security check is unavailable right now. Please try again in a minute.",
    network: "The connection failed. Please try again.",
    legend: "Security check",
    image_alt: "Security check picture of digits. If you cannot read it, use Play audio to hear the digits, or New picture.",
    play: "Play audio",
    new_picture: "New picture",
    answer_label: "Type the digits you see or hear",
    playing: "Playing the digits.",
    no_audio: "Your browser could not play the audio.",
    loaded: "New picture loaded.",
    verify: "Verify",
    type_first: "Please type the digits first.",
    complete: "Security check complete. You can send the form now.",
    slider_hint: "Slide the piece into the gap in the picture.",
    slider_alt: "Puzzle picture with a gap. Move the piece with the slider below.",
    piece_position: "Piece position",
    check_position: "Check position",
    checking: "Checking\u2026",
    altcha_hint: "Checking that you are not a robot. This takes a moment.",
    verifying: "Verifying\u2026",
    load_failed: "The security check could not load. Please reload the page.",
    hosted_hint: "Please complete the security check.",
    use_digits: "Use an audio or digits challenge instead",
    digits_hint: "Type the digits you see in the picture or hear when you play the audio.",
    digits_alt: "Security check picture of digits. If you cannot read it, use Play audio to hear the digits.",
    pause: "Pause audio",
    replay: "Play from the start",
    paused: "Audio paused.",
    audio_link: "Open the audio in a new tab",
    answer_help: "The picture and the audio have the same digits.",
    no_more_pictures: "No more new pictures for this check. Type the digits you see, or use the audio."
  };

  // texts returns the text function of node: the nearest data-cg-text's
  // (or opts.text), English where it says nothing.
  function texts(node, opts) {
    var t = opts && opts.text;
    for (var n = node; !t && n && n.getAttribute; n = n.parentNode) {
      var s = n.getAttribute("data-cg-text");
      if (s) { try { t = JSON.parse(s); } catch (e) { t = null; } }
    }
    return function (k) { return (t && t[k]) || messages[k]; };
  }

  // problem says the error of a response body: the widget's words for its
  // kind, else the server's description (in the request's language).
  var errorNames = { captcha_required: 1, captcha_invalid: 1, too_many_requests: 1, service_unavailable: 1 };
  function problem(T, data) {
    data = data || {};
    if (Object.prototype.hasOwnProperty.call(errorNames, data.error)) { return T(data.error); }
    return data.error_description || T("network");
  }

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
    var lang = root.getAttribute("data-cg-lang") || "en"; // the audio's
    root.setAttribute("data-cg-id", c.id);
    img.src = c.image_url;
    var src = c.audio_url + (c.audio_url.indexOf("?") < 0 ? "?lang=" + lang : "");
    if (audio) {
      audio.pause();
      audio.src = src;
      audio.load();
    }
    var link = $(root, "[data-cg-audio-link]");
    if (link) { link.href = src; }
    var refresh = $(root, "[data-cg-refresh]");
    if (refresh) { refresh.disabled = c.refreshes_left === 0; }
    if (input) { input.value = ""; }
    return c.refreshes_left === 0;
  }

  // wire attaches the buttons of one widget. refreshURL(root) says where a
  // refresh goes and what it sends.
  function wire(root, refreshRequest) {
    var play = $(root, "[data-cg-play]"), refresh = $(root, "[data-cg-refresh]"), audio = $(root, "[data-cg-audio]");
    var replay = $(root, "[data-cg-replay]");
    var T = root._cgText || texts(root);
    // Play toggles play and pause (a pause keeps the place); Play from the
    // start replays. Both are buttons: Enter and Space work.
    function start(fromStart) {
      if (fromStart) { audio.currentTime = 0; }
      var p = audio.play();
      say(root, T("playing"));
      if (p && p.catch) { p.catch(function () { say(root, T("no_audio")); }); }
    }
    function label() { if (play) { play.textContent = audio.paused ? T("play") : T("pause"); } }
    if (play && audio) {
      play.addEventListener("click", function () {
        if (audio.paused) { start(false); } else { audio.pause(); say(root, T("paused")); }
        label();
      });
      audio.addEventListener("play", label);
      audio.addEventListener("pause", label);
      audio.addEventListener("ended", label);
      audio.addEventListener("emptied", label);
    }
    if (replay && audio) { replay.addEventListener("click", function () { start(true); label(); }); }
    if (refresh) {
      refresh.addEventListener("click", function () {
        refresh.disabled = true;
        var req = refreshRequest(root);
        post(req.url, req.body).then(function (r) {
          if (r.status === 200 && r.data.captcha) {
            var last = show(root, r.data.captcha);
            // The button disables itself at the limit: say so in words.
            say(root, T("loaded") + (last ? " " + T("no_more_pictures") : ""));
            $(root, "input").focus();
          } else {
            refresh.disabled = false;
            say(root, problem(T, r.data));
          }
        }, function () {
          refresh.disabled = false;
          say(root, T("network"));
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

  // tell puts text in msg, a live region from its creation; a problem
  // (error) makes it role=alert before its text changes, and is styled as
  // one, with an icon that survives forced colours.
  function tell(msg, text, error) {
    if (error && msg.getAttribute("role") !== "alert") { msg.setAttribute("role", "alert"); }
    msg.classList.toggle("captchagate-error", !!error);
    msg.textContent = text;
  }

  function focusable(e) {
    return e && e.isConnected && e !== document.body && !e.disabled && typeof e.focus === "function" &&
      e.getClientRects().length > 0;
  }

  // leave empties a solved widget's container; if focus was inside, it
  // goes to opts.focusAfter, else to what had it before the widget came,
  // else to the submit button of the container's form, else to the
  // nearest control after the container, else the nearest before it.
  function leave(container, before, opts) {
    var had = container.contains(document.activeElement);
    container.textContent = "";
    if (!had) { return; }
    var cands = [opts.focusAfter, before];
    var form = container.closest && container.closest("form");
    if (form) { cands.push(form.querySelector("[type=submit]")); }
    var all = document.querySelectorAll("a[href],button,input:not([type=hidden]),select,textarea,[tabindex]:not([tabindex='-1'])");
    var prev = [];
    for (var i = 0; i < all.length; i++) {
      if (container.compareDocumentPosition(all[i]) & 4) { cands.push(all[i]); } else { prev.unshift(all[i]); }
    }
    cands = cands.concat(prev);
    for (var j = 0; j < cands.length; j++) {
      if (focusable(cands[j])) {
        cands[j].focus();
        if (document.activeElement === cands[j]) { return; }
      }
    }
  }

  // solve shows the captcha of a captcha_required / captcha_invalid body in
  // container and resolves to a captcha_token once the visitor answers it.
  // The captcha's kind picks the piece: digits (picture and audio), slider
  // (drag or arrow keys), altcha (the ALTCHA widget, loaded by the page),
  // or a hosted service's widget (turnstile, hcaptcha, recaptcha,
  // recaptcha_v3). Digits: focus goes to the widget's start; once solved,
  // to opts.focusAfter if given, else a sensible control near it.
  function solve(container, body, opts) {
    opts = opts || {};
    var c = body && body.captcha;
    if (!c) { return Promise.reject(new Error("captchagate: the response carries no captcha")); }
    var T = texts(container, opts);
    if (kinds[c.kind]) { return kinds[c.kind](container, body, opts, T); }
    var n = ++seq, msgId = "captchagate-msg-" + n, inputId = "captchagate-in-" + n, helpId = inputId + "-help";
    var before = document.activeElement;
    container.textContent = "";
    var form = el("form", { "class": "captchagate-form", "data-captchagate": "", "data-cg-lang": opts.lang || "en", novalidate: "" });
    form._cgRefreshURL = c.refresh_url.split("?")[0];
    form._cgText = T;
    // The fieldset takes focus (its legend is the widget's start); the
    // message is an alert from the start, so each text put in it is said.
    var fs = el("fieldset", { "class": "captchagate", tabindex: "-1" });
    fs.appendChild(el("legend", {}, T("legend")));
    var msg = el("p", { "class": "captchagate-message", id: msgId, role: "alert", "data-cg-message": "" });
    fs.appendChild(msg);
    fs.appendChild(el("img", { "class": "captchagate-image", "data-cg-image": "", width: "240", height: "80",
      alt: T("image_alt") }));
    var buttons = el("div", { "class": "captchagate-buttons" });
    buttons.appendChild(el("button", { type: "button", "data-cg-play": "" }, T("play")));
    buttons.appendChild(el("button", { type: "button", "data-cg-replay": "" }, T("replay")));
    buttons.appendChild(el("button", { type: "button", "data-cg-refresh": "" }, T("new_picture")));
    buttons.appendChild(el("audio", { "data-cg-audio": "", preload: "none" }));
    fs.appendChild(buttons);
    var linkP = el("p", { "class": "captchagate-audio-link" });
    linkP.appendChild(el("a", { "data-cg-audio-link": "", href: "#", target: "_blank", rel: "noopener" }, T("audio_link")));
    fs.appendChild(linkP);
    fs.appendChild(el("label", { "for": inputId }, T("answer_label")));
    fs.appendChild(el("span", { id: helpId, "class": "captchagate-hint" }, T("answer_help")));
    fs.appendChild(el("input", { id: inputId, name: "captcha_answer", type: "text", inputmode: "numeric",
      autocomplete: "off", autocapitalize: "off", spellcheck: "false", maxlength: "32", required: "",
      "aria-describedby": msgId + " " + helpId }));
    fs.appendChild(el("button", { type: "submit", "data-cg-submit": "" }, opts.submitLabel || T("verify")));
    fs.appendChild(el("p", { "class": "captchagate-status", "data-cg-status": "", "aria-live": "polite" }));
    form.appendChild(fs);
    container.appendChild(form);
    var failed = body.error && body.error !== "captcha_required";
    tell(msg, failed ? problem(T, body) : T("captcha_required"), failed);
    if (show(form, c)) { say(form, T("no_more_pictures")); }
    wire(form, idRefresh);
    var input = $(form, "input");
    fs.focus();
    var verifyURL = c.verify_url;

    return new Promise(function (resolve) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var answer = input.value.trim();
        if (!answer) { tell(msg, T("type_first"), true); input.focus(); return; }
        var submit = $(form, "[data-cg-submit]");
        submit.disabled = true;
        post(verifyURL, { captcha_id: form.getAttribute("data-cg-id"), captcha_answer: answer }).then(function (r) {
          submit.disabled = false;
          if (r.status === 200 && r.data.captcha_token) {
            leave(container, before, opts);
            resolve(r.data.captcha_token);
            return;
          }
          tell(msg, problem(T, r.data), true);
          say(form, "");
          if (r.data.captcha && show(form, r.data.captcha)) { say(form, T("no_more_pictures")); }
          input.focus();
        }, function () {
          submit.disabled = false;
          tell(msg, T("network"), true);
        });
      });
    });
  }

  function init() {
    var mounts = document.querySelectorAll("[data-cg-mount]");
    for (var m = 0; m < mounts.length; m++) { mount(mounts[m]); }
    var roots = document.querySelectorAll("[data-captchagate][data-cg-refresh-url]");
    for (var i = 0; i < roots.length; i++) {
      if (!roots[i]._cgWired && $(roots[i], "[data-cg-image]")) {
        roots[i]._cgWired = true;
        wire(roots[i], sessionRefresh);
      }
    }
  }

  // mount builds the piece of a server-rendered widget for a kind other
  // than digits; the token goes in the form's hidden captcha_token field.
  function mount(node) {
    if (node._cgWired) { return; }
    node._cgWired = true;
    var root = node.parentNode, c;
    try { c = JSON.parse(node.getAttribute("data-cg-captcha")); } catch (e) { return; }
    var msg = $(root, "[data-cg-message]"), T = texts(node);
    solve(node, { error: "captcha_required", captcha: c }, { inline: true }).then(function (tok) {
      $(root, "[data-cg-token]").value = tok;
      node.textContent = T("complete");
      if (msg) { msg.removeAttribute("role"); msg.textContent = ""; }
    });
  }

  // frame builds the fieldset every kind shares and returns its parts.
  function frame(container, body, hint, opts, T) {
    var n = ++seq, msgId = "captchagate-msg-" + n;
    container.textContent = "";
    // Mounted inside a server-rendered form, the piece must not be a form.
    var form = el(opts.inline ? "div" : "form", { "class": "captchagate-form", "data-captchagate": "", novalidate: "" });
    var fs = el(opts.inline ? "div" : "fieldset", { "class": opts.inline ? "captchagate-inline" : "captchagate" });
    if (!opts.inline) { fs.appendChild(el("legend", {}, T("legend"))); }
    var msg = el("p", { "class": "captchagate-message", id: msgId, "aria-live": "assertive", "data-cg-message": "" });
    fs.appendChild(msg);
    var slot = el("div", { "class": "captchagate-slot" });
    fs.appendChild(slot);
    var status = el("p", { "class": "captchagate-status", "data-cg-status": "", "aria-live": "polite" });
    fs.appendChild(status);
    form.appendChild(fs);
    container.appendChild(form);
    if (!opts.inline) { form.addEventListener("submit", function (ev) { ev.preventDefault(); }); }
    var failed = body.error && body.error !== "captcha_required";
    tell(msg, failed ? problem(T, body) : hint, failed);
    return { form: form, msg: msg, msgId: msgId, slot: slot, status: status,
      problem: function (text) { tell(msg, text, true); } };
  }

  // verifyAnswer posts an answer (or, for the slider with opts.sender, the
  // seed's point_json/token/sender with opts.headers) and resolves to
  // {token} or {error, captcha}.
  function verifyAnswer(c, answer, opts, T) {
    var body = { captcha_id: c.id, captcha_answer: answer };
    var init = { method: "POST", credentials: "same-origin", headers: { "Accept": "application/json", "Content-Type": "application/json" } };
    if (c.kind === "slider" && opts.sender) {
      body = { point_json: answer, token: c.id, sender: opts.sender };
      for (var h in (opts.headers || {})) { if (Object.prototype.hasOwnProperty.call(opts.headers, h)) { init.headers[h] = opts.headers[h]; } }
    }
    init.body = JSON.stringify(body);
    return fetch(c.verify_url, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (res.status === 200 && data.captcha_token) { return { token: data.captcha_token }; }
        return { error: problem(T, data), captcha: data.captcha };
      });
    }, function () { return { error: T("network") }; });
  }

  var kinds = {};

  // The slider: drag the piece (or the range under it) to the gap; arrow
  // keys move it one pixel of the picture, Page Up/Down the browser's big
  // step (a tenth of the way in Chromium), and Enter or Check sends it.
  // The board scales down to its container (down to a 320 px wide phone):
  // the range counts the picture's own pixels, the piece is placed in
  // percent of the picture, and a drag's screen pixels are converted to the
  // picture's, so the answer is always in the pixels the gate checks.
  // "Use an audio or digits challenge instead" (when the captcha has the
  // digits' media) turns the widget to the same captcha's digits: their
  // picture, Play audio and a field, sent to the same verify with the same
  // id; a refusal's new captcha stays in digits.
  kinds.slider = function (container, body, opts, T) {
    var f = frame(container, body, T("slider_hint"), opts, T);
    var c = body.captcha;
    return new Promise(function (resolve) {
      var board, bg, piece, range, check, busy = false, digits = false;
      function build() {
        var g = c.slider || { width: 320, height: 160, piece_width: 48, y: 5 };
        f.slot.textContent = "";
        board = el("div", { "class": "captchagate-board", style: "max-width:" + g.width + "px" });
        bg = el("img", { src: c.image_url, width: g.width, height: g.height, alt: T("slider_alt"), draggable: "false" });
        piece = el("img", { src: c.piece_url, width: g.piece_width, height: g.height, alt: "", draggable: "false", "data-cg-piece": "",
          style: "width:" + (100 * g.piece_width / g.width) + "%" });
        board.appendChild(bg);
        board.appendChild(piece);
        f.slot.appendChild(board);
        var id = f.msgId + "-range";
        f.slot.appendChild(el("label", { "for": id }, T("piece_position")));
        range = el("input", { id: id, type: "range", min: "0", max: String(g.width - g.piece_width), step: "1", value: "0",
          "data-cg-range": "", "aria-describedby": f.msgId, style: "max-width:" + g.width + "px" });
        f.slot.appendChild(range);
        check = el("button", { type: "button", "data-cg-submit": "" }, T("check_position"));
        f.slot.appendChild(check);
        if (c.digits_image_url && c.audio_url) {
          var alt = el("button", { type: "button", "data-cg-use-digits": "" }, T("use_digits"));
          alt.addEventListener("click", function () { digits = true; f.msg.textContent = T("digits_hint"); buildDigits(); });
          f.slot.appendChild(alt);
        }
        function place() { piece.style.left = (100 * range.value / g.width) + "%"; }
        place();
        range.addEventListener("input", place);
        range.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); send(); } });
        range.addEventListener("pointerup", send);
        check.addEventListener("click", send);
        var start = null;
        piece.addEventListener("pointerdown", function (ev) {
          // Picture pixels per screen pixel, as the board is drawn now.
          start = { x: ev.clientX, v: +range.value, k: g.width / (board.clientWidth || g.width) };
          piece.setPointerCapture(ev.pointerId);
          ev.preventDefault();
        });
        piece.addEventListener("pointermove", function (ev) {
          if (!start) { return; }
          range.value = String(Math.max(0, Math.min(+range.max, Math.round(start.v + (ev.clientX - start.x) * start.k))));
          place();
        });
        piece.addEventListener("pointerup", function () { if (start) { start = null; send(); } });
      }
      // buildDigits shows the captcha's digits: their picture, their sound
      // behind Play audio, and a labelled field whose Enter sends them.
      function buildDigits() {
        f.slot.textContent = "";
        var id = f.msgId + "-digits";
        f.slot.appendChild(el("img", { "class": "captchagate-image", "data-cg-digits-image": "", src: c.digits_image_url,
          width: "240", height: "80", alt: T("digits_alt") }));
        var audio = el("audio", { "data-cg-audio": "", preload: "none", src: c.audio_url });
        var play = el("button", { type: "button", "data-cg-play": "" }, T("play"));
        play.addEventListener("click", function () {
          audio.currentTime = 0;
          var p = audio.play();
          f.status.textContent = T("playing");
          if (p && p.catch) { p.catch(function () { f.status.textContent = T("no_audio"); }); }
        });
        f.slot.appendChild(play);
        f.slot.appendChild(audio);
        f.slot.appendChild(el("label", { "for": id }, T("answer_label")));
        var input = el("input", { id: id, type: "text", inputmode: "numeric", autocomplete: "off", autocapitalize: "off",
          spellcheck: "false", maxlength: "32", "data-cg-digits": "", "aria-describedby": f.msgId });
        f.slot.appendChild(input);
        var submit = el("button", { type: "button", "data-cg-submit": "" }, T("verify"));
        f.slot.appendChild(submit);
        function sendDigits() {
          var answer = input.value.trim();
          if (!answer) { f.problem(T("type_first")); input.focus(); return; }
          // The same verify as a point: with opts.sender, the seed's
          // point_json carries the digits, bound to the same sender.
          send(answer, opts);
        }
        input.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); sendDigits(); } });
        submit.addEventListener("click", sendDigits);
        input.focus();
      }
      function send(answer, sendOpts) {
        if (busy) { return; }
        busy = true;
        f.status.textContent = T("checking");
        var y = (c.slider && c.slider.y) || 5;
        if (typeof answer !== "string") { answer = JSON.stringify({ x: +range.value, y: y }); sendOpts = opts; }
        verifyAnswer(c, answer, sendOpts, T).then(function (r) {
          busy = false;
          if (r.token) { container.textContent = ""; resolve(r.token); return; }
          f.status.textContent = "";
          f.problem(r.error);
          if (r.captcha) {
            c = r.captcha;
            if (digits) { buildDigits(); } else { build(); range.focus(); }
          }
        });
      }
      build();
      range.focus();
    });
  };

  // ALTCHA: the page loads the altcha widget (npm package altcha); this
  // puts one in the container, pointed at the captcha's challenge, and
  // verifies its payload when it has solved it (no picture, no input). The
  // first challenge solves itself; after a refusal the next one waits for
  // the visitor's click (or Space on its checkbox), so a refusing server
  // never sets off a loop. The frame's live status says "Verifying…" from
  // the widget's start of work to the gate's answer; once solved, focus (if it was in the widget)
  // goes where leave puts it, not to the page body.
  kinds.altcha = function (container, body, opts, T) {
    var before = document.activeElement;
    var f = frame(container, body, T("altcha_hint"), opts, T);
    var c = body.captcha;
    var first = true;
    return new Promise(function (resolve) {
      function build() {
        f.slot.textContent = "";
        var w = document.createElement("altcha-widget");
        w.setAttribute("challenge", c.challenge_url);
        w.setAttribute("name", "captcha_answer");
        if (first) { w.setAttribute("auto", "onload"); }
        first = false;
        w.setAttribute("hidefooter", "");
        // The widget names its checkbox by its state, which is heard only
        // with focus on it; while it fetches and solves (often by itself,
        // focus elsewhere) the frame's live status says so in words.
        w.addEventListener("statechange", function (ev) {
          var st = ev.detail && ev.detail.state;
          var text = st === "verifying" || st === "verified" ? T("verifying") : "";
          if (f.status.textContent !== text) { f.status.textContent = text; }
        });
        w.addEventListener("verified", function (ev) {
          f.status.textContent = T("verifying");
          verifyAnswer(c, ev.detail.payload, opts, T).then(function (r) {
            if (r.token) { leave(container, before, opts); resolve(r.token); return; }
            f.status.textContent = "";
            f.problem(r.error);
            // A refusal without a new captcha (a payload the gate could
            // not read, or no answer at all) left this one unspent: a new
            // widget for it, waiting for a click, not one stuck at
            // "Verified".
            if (r.captcha) { c = r.captcha; }
            build();
          });
        });
        f.slot.appendChild(w);
      }
      if (!window.customElements || !customElements.get("altcha-widget")) {
        f.problem(T("load_failed"));
      }
      build();
    });
  };

  // Hosted services: their script (opts.scriptURL overrides where it is
  // loaded from) renders their widget; its response token is the answer.
  // Once solved, focus leaves the widget as for ALTCHA.
  var hosted = {
    turnstile: { global: "turnstile", url: "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit" },
    hcaptcha: { global: "hcaptcha", url: "https://js.hcaptcha.com/1/api.js?render=explicit" },
    recaptcha: { global: "grecaptcha", url: "https://www.google.com/recaptcha/api.js?render=explicit" },
    recaptcha_v3: { global: "grecaptcha", url: "https://www.google.com/recaptcha/api.js?render=" }
  };
  var loading = {};
  function load(kind, url) {
    if (!loading[url]) {
      loading[url] = new Promise(function (resolve, reject) {
        if (window[hosted[kind].global]) { resolve(); return; }
        var s = el("script", { src: url, async: "" });
        s.onload = function () { resolve(); };
        s.onerror = reject;
        document.head.appendChild(s);
      });
    }
    return loading[url];
  }
  function hostedKind(kind) {
    return function (container, body, opts, T) {
      var before = document.activeElement;
      var f = frame(container, body, T("hosted_hint"), opts, T);
      var c = body.captcha, spec = hosted[kind];
      var url = opts.scriptURL || (kind === "recaptcha_v3" ? spec.url + encodeURIComponent(c.site_key) : spec.url);
      return new Promise(function (resolve) {
        function done(response) {
          f.status.textContent = T("verifying");
          verifyAnswer(c, response, opts, T).then(function (r) {
            if (r.token) { leave(container, before, opts); resolve(r.token); return; }
            f.status.textContent = "";
            f.problem(r.error);
            if (r.captcha) { c = r.captcha; render(); }
          });
        }
        function render() {
          f.slot.textContent = "";
          var api = window[spec.global];
          if (kind === "recaptcha_v3") {
            api.ready(function () { api.execute(c.site_key, { action: c.action || "submit" }).then(done); });
            return;
          }
          var box = el("div", { "data-cg-hosted": kind });
          f.slot.appendChild(box);
          var o = { sitekey: c.site_key, callback: done };
          if (c.action && kind === "turnstile") { o.action = c.action; }
          api.render(box, o);
        }
        load(kind, url).then(render, function () { f.problem(T("load_failed")); });
      });
    };
  }
  for (var k in hosted) { if (Object.prototype.hasOwnProperty.call(hosted, k)) { kinds[k] = hostedKind(k); } }

  window.captchagate = { solve: solve, messages: messages };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
