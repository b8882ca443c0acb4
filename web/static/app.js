/* Switchboard UI: live updates (Server-Sent Events), the reply box, small admin helpers.
 * Written for this project; no third-party code. Customer text is only ever written with
 * textContent, never as HTML. */
(function () {
  "use strict";

  var body = document.body;
  var locale = body.dataset.locale || "en";
  var tz = body.dataset.tz || "UTC";
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var strings = {};
  try {
    strings = JSON.parse(document.getElementById("i18n").textContent || "{}");
  } catch (e) {
    strings = {};
  }

  function has(key) { return Object.prototype.hasOwnProperty.call(strings, key); }
  function fill(text, values) {
    if (!values) { return text; }
    return text.replace(/\{(\w+)\}/g, function (m, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : m;
    });
  }
  function t(key, values) { return fill(has(key) ? strings[key] : key, values); }
  /* the first of `keys` the page has (a connector's own sentence before the generic one) */
  function first(keys, fallback, values) {
    for (var i = 0; i < keys.length; i++) {
      if (has(keys[i])) { return t(keys[i], values); }
    }
    return fallback;
  }
  /* plurals: the locale's CLDR category (Intl.PluralRules, as Babel on the server) */
  var pluralRules = null;
  function tn(key, n) {
    if (!pluralRules) {
      try { pluralRules = new Intl.PluralRules(locale); } catch (e) { pluralRules = null; }
    }
    var category = pluralRules ? pluralRules.select(n) : "other";
    var k = has(key + "." + category) ? key + "." + category : key + ".other";
    return t(k, { n: Number(n).toLocaleString(locale) });
  }
  /* a connector's strings live under platform.<name>. (web/i18n.py) */
  function platformKey(platform, key) { return "platform." + platform + "." + key; }
  /* web/pages.py platform_hue: a badge colour from the name (app.css data-hue) */
  function hueOf(platform) {
    var sum = 0;
    for (var i = 0; i < platform.length; i++) { sum += platform.charCodeAt(i); }
    return String(sum % 8);
  }
  function platformName(platform) {
    return platform ? first([platformKey(platform, "name")], platform) : "";
  }

  /* ---------------------------------------------------------------- dates
   * The same three shapes as web/i18n.py format_datetime, which builds them from the same
   * CLDR fields with Babel: time (HH:mm) today, month-day + time this year, else the date;
   * "full" is the date with the time. */
  var TIME = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  var SHAPES = {
    time: TIME,
    monthDayTime: { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
                    hourCycle: "h23" },
    date: { year: "numeric", month: "short", day: "numeric" },
    full: { year: "numeric", month: "short", day: "numeric", hour: "2-digit",
            minute: "2-digit", hourCycle: "h23" },
    day: { year: "numeric", month: "numeric", day: "numeric" }
  };
  var formats = {};
  function formatter(shape) {
    if (!formats[shape]) {
      var opts = {};
      Object.keys(SHAPES[shape]).forEach(function (k) { opts[k] = SHAPES[shape][k]; });
      opts.timeZone = tz;
      try {
        formats[shape] = new Intl.DateTimeFormat(locale, opts);
      } catch (e) {
        opts.timeZone = "UTC";
        formats[shape] = new Intl.DateTimeFormat(locale, opts);
      }
    }
    return formats[shape];
  }
  function dayOf(date) {
    var p = {};
    formatter("day").formatToParts(date).forEach(function (x) { p[x.type] = x.value; });
    return { y: p.year, key: p.year + "-" + p.month + "-" + p.day };
  }
  function fmtTime(iso, style) {
    if (!iso) { return ""; }
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return ""; }
    if (style === "full") { return formatter("full").format(date); }
    var day = dayOf(date);
    var today = dayOf(new Date());
    if (day.key === today.key) { return formatter("time").format(date); }
    if (day.y === today.y) { return formatter("monthDayTime").format(date); }
    return formatter("date").format(date);
  }

  /* ---------------------------------------------------------------- helpers */
  function $(selector, root) { return (root || document).querySelector(selector); }
  function setText(root, selector, text) {
    var el = $(selector, root);
    if (el) { el.textContent = text == null ? "" : String(text); }
    return el;
  }
  function byId(list, id) {
    var items = list.querySelectorAll("[data-id]");
    for (var i = 0; i < items.length; i++) {
      if (items[i].getAttribute("data-id") === id) { return items[i]; }
    }
    return null;
  }
  function newKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }
  function api(method, url, data, headers) {
    var h = { "Accept": "application/json", "X-CSRF-Token": csrf };
    if (data !== undefined) { h["Content-Type"] = "application/json"; }
    Object.keys(headers || {}).forEach(function (k) { h[k] = headers[k]; });
    return fetch(url, {
      method: method, headers: h, credentials: "same-origin",
      body: data === undefined ? undefined : JSON.stringify(data)
    }).then(function (res) {
      return res.text().then(function (text) {
        var json = null;
        try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
        return { ok: res.ok, status: res.status, json: json };
      });
    });
  }
  function errorMessage(res) {
    var err = res.json && res.json.error;
    return err ? (err.message || err.code) : "HTTP " + res.status;
  }

  /* ---------------------------------------------------------------- live updates
   * EventSource reconnects by itself and sends Last-Event-ID; when it gives up (the server
   * answered with an error) we open a new one with the last id we saw as `since`. */
  function live(path, params, handlers) {
    var indicator = document.getElementById("live");
    var lastId = params.since || "";
    var source = null;
    var retry = 1000;
    function url() {
      var q = [];
      Object.keys(params).forEach(function (k) {
        var v = k === "since" ? lastId : params[k];
        if (v) { q.push(encodeURIComponent(k) + "=" + encodeURIComponent(v)); }
      });
      return path + (q.length ? "?" + q.join("&") : "");
    }
    function status(on) {
      if (!indicator) { return; }
      indicator.hidden = false;
      indicator.classList.toggle("off", !on);
      setText(indicator, ".live-text", on ? t("live.on") : t("js.offline"));
    }
    function open() {
      source = new EventSource(url());
      source.onopen = function () { retry = 1000; status(true); };
      source.onerror = function () {
        status(false);
        if (source.readyState === EventSource.CLOSED) {
          window.setTimeout(open, retry);
          retry = Math.min(retry * 2, 30000);
        }
      };
      Object.keys(handlers).forEach(function (type) {
        source.addEventListener(type, function (event) {
          if (event.lastEventId) { lastId = event.lastEventId; }
          var data = null;
          try { data = JSON.parse(event.data); } catch (e) { return; }
          handlers[type](data);
        });
      });
      source.addEventListener("reload", function () {
        status(false);
        setText(indicator, ".live-text", t("js.reload"));
        window.setTimeout(function () { window.location.reload(); }, 300);
      });
      source.addEventListener("logout", function () {
        source.close();
        window.location.href = "/login";
      });
    }
    open();
    window.addEventListener("beforeunload", function () { if (source) { source.close(); } });
  }

  /* ---------------------------------------------------------------- inbox */
  function initInbox() {
    var root = document.getElementById("inbox");
    if (!root) { return; }
    var list = document.getElementById("conv-list");
    var empty = document.getElementById("inbox-empty");
    var template = document.getElementById("conv-row-template");
    var f = root.dataset;
    var firstPage = f.firstPage === "true";
    var hasMore = f.hasMore === "true";

    function matches(c) {
      if (f.status && f.status !== "all" && c.status !== f.status) { return false; }
      if (f.channel && c.platform !== f.channel) { return false; }
      if (f.who === "mine" && c.assignee_id !== f.me) { return false; }
      if (f.who === "unassigned" && c.assignee_id) { return false; }
      return true;
    }
    function fill(li, c) {
      li.setAttribute("data-id", c.id);
      li.dataset.status = c.status;
      li.dataset.platform = c.platform;
      li.dataset.assignee = c.assignee_id || "";
      li.dataset.ts = c.last_message_at || "";
      li.classList.toggle("has-unread", c.unread > 0);
      $(".conv-link", li).setAttribute("href", "/conversations/" + encodeURIComponent(c.id));
      var channel = setText(li, ".channel", platformName(c.platform));
      channel.dataset.platform = c.platform;
      channel.dataset.hue = hueOf(c.platform || "");
      var contact = c.contact || {};
      setText(li, ".name", contact.name || "");
      setText(li, ".handle", contact.handle ? "@" + contact.handle : "");
      setText(li, ".group", c.title || "");
      setText(li, ".preview", c.preview || "");
      var time = setText(li, ".time", fmtTime(c.last_message_at));
      time.setAttribute("datetime", c.last_message_at || "");
      var pill = setText(li, ".status-pill", t("status." + c.status));
      pill.dataset.status = c.status;
      var unread = setText(li, ".unread", c.unread);
      unread.hidden = !(c.unread > 0);
      unread.setAttribute("aria-label", tn("inbox.unread_count", c.unread || 0));
      unread.title = unread.getAttribute("aria-label");
    }
    function stamp(el) { return Date.parse(el.dataset.ts || "") || 0; }
    function place(li) {
      var ts = stamp(li);
      var rows = list.children;
      for (var i = 0; i < rows.length; i++) {
        if (rows[i] === li) { continue; }
        if (stamp(rows[i]) < ts) {
          if (rows[i] !== li.nextElementSibling) { list.insertBefore(li, rows[i]); }
          return;
        }
      }
      if (hasMore) { li.remove(); } else if (li.parentNode !== list || li.nextElementSibling) {
        list.appendChild(li);
      }
    }
    function updateEmpty() { empty.hidden = list.children.length > 0; }

    live("/api/events", { types: "conversation", since: f.since }, {
      conversation: function (c) {
        var row = byId(list, c.id);
        if (!firstPage) {
          if (row) { fill(row, c); }
          return;
        }
        if (!matches(c)) {
          if (row) { row.remove(); }
          updateEmpty();
          return;
        }
        var isNew = !row;
        if (isNew) { row = template.content.firstElementChild.cloneNode(true); }
        var moved = !isNew && row.dataset.ts !== (c.last_message_at || "");
        fill(row, c);
        place(row);
        if (isNew || moved) {
          row.classList.remove("fresh");
          void row.offsetWidth;
          row.classList.add("fresh");
        }
        updateEmpty();
      },
      conversation_deleted: function (c) {
        var row = byId(list, c.id);
        if (row) { row.remove(); }
        updateEmpty();
      }
    });
  }

  /* ---------------------------------------------------------------- conversation */
  function initConversation() {
    var root = document.getElementById("conversation");
    if (!root) { return; }
    var convId = root.dataset.id;
    var thread = document.getElementById("thread");
    var template = document.getElementById("message-template");
    var readTimer = null;
    var readPending = false;

    var platform = root.dataset.platform;

    /* the connector's sentence for its code, then the generic one, else the stored text */
    function deliveryError(err) {
      if (!err) { return ""; }
      if (typeof err === "string") { return err; }
      var fallback = err.message || err.code || "";
      if (!err.code) { return fallback; }
      return first([platformKey(platform, "error." + err.code), "delivery.error." + err.code],
                   fallback);
    }
    function fillMessage(el, m) {
      el.setAttribute("data-id", m.id);
      el.dataset.direction = m.direction;
      el.className = "msg msg-" + m.direction;
      var author = m.author && m.author.name ? m.author.name : (m.agent_name || "");
      setText(el, ".author", author);
      var time = setText(el, ".time", fmtTime(m.platform_ts));
      time.setAttribute("datetime", m.platform_ts || "");
      $(".edited", el).hidden = !m.edited;
      $(".deleted", el).hidden = !m.deleted_at;
      el.classList.toggle("msg-deleted", !!m.deleted_at);
      var textBox = setText(el, ".msg-text", m.text || "");
      var frame = $(".msg-html", el);
      /* sanitised HTML (a mail) in a frame that runs no script: srcdoc is an attribute */
      if (m.html) { frame.srcdoc = m.html; } else { frame.removeAttribute("srcdoc"); }
      frame.hidden = !m.html;
      textBox.hidden = !!m.html;
      var quoted = $(".quoted", el);
      quoted.hidden = !m.full_text;
      setText(quoted, ".quoted-text", m.full_text || "");
      var asSent = $(".as-sent", el);
      var differs = !!m.rendered_text && m.rendered_text !== m.text;
      asSent.hidden = !differs;
      setText(asSent, ".as-sent-text", differs ? m.rendered_text : "");
      var box = $(".attachments", el);
      box.textContent = "";
      (m.attachments || []).forEach(function (a) {
        if (a.inline && m.html) { return; }  /* shown inside the mail itself */
        var label = a.name || t("attachment." + a.type);
        if (!Object.prototype.hasOwnProperty.call(strings, "attachment." + a.type) && !a.name) {
          label = t("attachment.file");
        }
        var node;
        var image = a.type === "photo" || a.type === "sticker" || /^image\//.test(a.mime || "");
        if (a.url && image) {
          node = document.createElement("a");
          node.className = "attachment image";
          node.href = a.url;
          node.target = "_blank";
          node.rel = "noopener";
          var img = document.createElement("img");
          img.src = a.url;
          img.alt = label;
          img.loading = "lazy";
          node.appendChild(img);
        } else if (a.url) {
          node = document.createElement("a");
          node.className = "attachment file";
          node.href = a.url;
          node.target = "_blank";
          node.rel = "noopener";
          node.textContent = label;
        } else {
          node = document.createElement("span");
          node.className = "attachment file";
          node.textContent = label;
        }
        box.appendChild(node);
      });
      var footer = $(".delivery", el);
      if (m.direction !== "out") {
        if (footer) { footer.remove(); }
        el.dataset.state = "";
        return;
      }
      var state = m.delivery ? m.delivery.state || "" : "";
      el.dataset.state = state;
      var badge = setText(footer, ".badge", state ? t("delivery." + state) : "");
      badge.dataset.state = state;
      var attempts = m.delivery ? m.delivery.attempts || 0 : 0;
      if (attempts) { badge.title = tn("delivery.attempts", attempts); } else {
        badge.removeAttribute("title");
      }
      var failedish = state === "failed" || state === "retry_wait";
      setText(footer, ".delivery-error", failedish ? deliveryError(m.delivery.error) : "");
      var retry = $(".retry", footer);
      retry.dataset.retry = m.id;
      retry.hidden = state !== "failed";
      retry.disabled = false;
      /* the other ways the connector offers to send a failed reply (e.g. as a DM) */
      var alternatives = $(".alternatives", footer);
      alternatives.textContent = "";
      ((state === "failed" && m.delivery.alternatives) || []).forEach(function (alt) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "link retry-alt";
        button.dataset.retry = m.id;
        button.dataset.target = alt;
        button.textContent = first([platformKey(platform, "alternative." + alt),
                                    "delivery.alternative." + alt], alt);
        alternatives.appendChild(button);
      });
    }
    function nearBottom() {
      return window.innerHeight + window.scrollY >= document.body.scrollHeight - 160;
    }
    /* The live stream and an API answer can bring the same message in either order: the
     * stream's copy is looked up when the change happens, so an answer that arrives after the
     * stream already showed a later state (failed, sent) must not put "queued" back. */
    var streamed = {};
    function fromAnswer(m, mark) {
      if ((streamed[m.id] || 0) === (mark || 0)) { upsert(m); }
    }
    function upsert(m) {
      var el = byId(thread, m.id);
      if (el) {
        fillMessage(el, m);
        return;
      }
      var stick = nearBottom();
      el = template.content.firstElementChild.cloneNode(true);
      fillMessage(el, m);
      thread.appendChild(el);
      if (stick) { window.scrollTo(0, document.body.scrollHeight); }
    }
    function markRead() {
      readPending = false;
      api("POST", "/api/conversations/" + encodeURIComponent(convId) + "/read");
    }
    function scheduleRead() {
      if (document.visibilityState !== "visible") { readPending = true; return; }
      window.clearTimeout(readTimer);
      readTimer = window.setTimeout(markRead, 400);
    }
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && readPending) { markRead(); }
    });

    var statusPill = document.getElementById("conv-status");
    var assigneeName = document.getElementById("assignee-name");
    var assignMe = document.getElementById("assign-me");
    var select = document.getElementById("assignee-select");
    function agentName(id) {
      if (!id) { return assigneeName.dataset.none; }
      for (var i = 0; i < select.options.length; i++) {
        if (select.options[i].value === id) { return select.options[i].textContent; }
      }
      return id;
    }

    live("/api/events", { conversation: convId, since: root.dataset.since }, {
      message: function (m) {
        if (m.conversation_id !== convId) { return; }
        streamed[m.id] = (streamed[m.id] || 0) + 1;
        upsert(m);
        if (m.direction === "in") { scheduleRead(); }
      },
      conversation: function (c) {
        if (c.id !== convId) { return; }
        root.dataset.status = c.status;
        statusPill.dataset.status = c.status;
        statusPill.textContent = t("status." + c.status);
        assigneeName.textContent = agentName(c.assignee_id);
        assignMe.hidden = c.assignee_id === root.dataset.me;
        if (select.value !== (c.assignee_id || "none") && document.activeElement !== select) {
          select.value = c.assignee_id || "none";
        }
      }
    });

    thread.addEventListener("click", function (event) {
      var button = event.target.closest("[data-retry]");
      if (!button || button.disabled) { return; }
      button.disabled = true;
      var how = button.dataset.target ? { target: button.dataset.target } : undefined;
      var mark = streamed[button.dataset.retry];
      api("POST", "/api/messages/" + encodeURIComponent(button.dataset.retry) + "/retry", how)
        .then(function (res) {
          if (res.ok && res.json && res.json.id) { fromAnswer(res.json, mark); return; }
          button.disabled = false;
          if (!res.ok) { showError(t("js.retry_failed", { message: errorMessage(res) })); }
        }, function () {
          button.disabled = false;
          showError(t("js.network"));
        });
    });

    /* reply box */
    var form = document.getElementById("composer");
    var text = document.getElementById("reply-text");
    var send = document.getElementById("send");
    var count = document.getElementById("char-count");
    var errorBox = document.getElementById("compose-error");
    var key = newKey();
    var sending = false;
    var sendLabel = send.textContent;

    /* Length is the connector's to measure (UTF-16 units, weighted characters…): the server
     * answers GET …/compose?text= with {used, limit, over, fits} for the rendered reply. Until
     * the answer for the current text arrives, the count is estimated from the last answer
     * (the signature's share plus this text's length) and marked provisional. */
    var shown = { text: null, used: 0, limit: parseInt(count.dataset.limit, 10) || 0 };
    var limit = shown.limit;
    var overhead = 0;
    var measureTimer = null;
    var asked = 0;
    var MAX_QUERY = 6000; /* longer URLs would pass the server's request-line limit */

    function measure(value) {
      if (shown.text === value) { return shown; }
      return { text: value, used: overhead + value.length, limit: limit, estimate: true };
    }
    function showError(message) {
      errorBox.textContent = message;
      errorBox.hidden = !message;
    }
    function refresh() {
      var m = measure(text.value);
      count.textContent = m.limit ? t("js.count", { n: m.used, limit: m.limit }) : "";
      count.classList.toggle("estimate", !!m.estimate);
      var over = !!m.limit && m.used > m.limit;
      count.classList.toggle("over", over);
      count.title = over ? t("js.too_long") : "";
      send.disabled = sending || over || !text.value.trim();
    }
    /* what any answer teaches whatever the text: the limit and the frame's share */
    function learn(c, value) {
      var newer = typeof c.used === "number" && typeof c.limit === "number";
      limit = newer ? c.limit : (c.text_limit || limit);
      if (typeof c.overhead === "number") { overhead = c.overhead; } else if (newer && !value) {
        overhead = c.used;
      }
      return newer ? c.used : overhead + value.length; /* the older answer: no `used` */
    }
    function applyCompose(used, value) {
      shown = { text: value, used: used, limit: limit };
      refresh();
    }
    function ask(value) {
      var url = "/api/conversations/" + encodeURIComponent(convId) + "/compose";
      if (value) { url += "?text=" + encodeURIComponent(value); }
      if (url.length > MAX_QUERY) { return Promise.resolve(null); }
      var mine = ++asked;
      return api("GET", url).then(function (res) {
        if (!res.ok || !res.json) { return null; }
        var used = learn(res.json, value);
        /* only the newest question's answer is the counter; older ones still teach */
        if (mine === asked && text.value === value) { applyCompose(used, value); } else {
          refresh();
        }
        return res.json;
      }, function () { return null; });
    }
    function remeasure() {
      refresh();
      window.clearTimeout(measureTimer);
      measureTimer = window.setTimeout(function () { ask(text.value); }, 200);
    }
    text.addEventListener("input", remeasure);
    text.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submit();
      }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit();
    });
    function submit() {
      var value = text.value;
      var m = measure(value);
      if (sending || !value.trim() || (m.limit && m.used > m.limit)) { return; }
      sending = true;
      send.disabled = true;
      send.textContent = t("js.sending");
      showError("");
      api("POST", "/api/conversations/" + encodeURIComponent(convId) + "/messages",
          { text: value }, { "Idempotency-Key": key })
        .then(function (res) {
          if (res.ok) {
            if (res.json && res.json.id) { fromAnswer(res.json, 0); }
            if (text.value === value) { text.value = ""; remeasure(); }
            key = newKey();
            window.scrollTo(0, document.body.scrollHeight);
          } else {
            if (res.status >= 400 && res.status < 500 && res.status !== 409) { key = newKey(); }
            showError(t("js.send_failed", { message: errorMessage(res) }));
          }
        }, function () {
          showError(t("js.network")); /* same key next time: the server may have it already */
        })
        .then(function () {
          sending = false;
          send.textContent = sendLabel;
          refresh();
          text.focus();
        });
    }

    /* what the customer will see: the name, the greeting and signature around the text
     * (GET …/compose renders them with the connector's own code), and the room left */
    ask("").then(function (c) {
      if (!c) { return; }
      var replyAs = document.getElementById("reply-as");
      var name = c.shown_name || c.username || c.agent_name;
      if (name) {
        var identity = c.brand ? name + " · " + c.brand : name;
        replyAs.textContent = replyAs.dataset.template.replace("{identity}", identity);
      }
      var greeting = (c.before || "").trim();
      var signature = (c.after || "").trim();
      [["greeting-preview", greeting], ["signature-preview", signature]].forEach(function (pair) {
        var line = document.getElementById(pair[0]);
        setText(line, ".value", pair[1]);
        line.hidden = !pair[1];
      });
      if (text.value) { ask(text.value); }
    });

    refresh();
    window.scrollTo(0, document.body.scrollHeight);
  }

  /* ---------------------------------------------------------------- accounts */
  function initAccounts() {
    var form = document.getElementById("account-form");
    if (!form) { return; }
    var platform = document.getElementById("account-platform");
    var result = document.getElementById("test-result");
    var testButton = document.getElementById("account-test");

    var apiBase = document.getElementById("account-api-base");
    function showPlatform() {
      form.querySelectorAll("fieldset.creds").forEach(function (fs) {
        var active = fs.dataset.platform === platform.value;
        fs.disabled = !active;
        fs.hidden = !active;
      });
      /* the connector's default API base URL, as a hint */
      apiBase.placeholder = first([platformKey(platform.value, "api_base_url")], "");
    }
    platform.addEventListener("change", showPlatform);
    showPlatform();

    function body() {
      var p = platform.value;
      var prefix = "cred." + p + ".";
      var optPrefix = "opt." + p + ".";
      var creds = {};
      var options = {};
      var mode = null;
      var fs = form.querySelector('fieldset.creds[data-platform="' + p + '"]');
      fs.querySelectorAll("input, select").forEach(function (input) {
        if (input.name.indexOf(prefix) === 0) { creds[input.name.slice(prefix.length)] = input.value; }
        if (input.name.indexOf(optPrefix) === 0) {
          /* typed as the inputs are: the server checks them against the connector's fields */
          var value = input.type === "checkbox" ? input.checked
            : input.type === "number" ? (input.value === "" ? null : Number(input.value))
            : (input.value || null);
          options[input.name.slice(optPrefix.length)] = value;
        }
        if (input.name === "mode") { mode = input.value; }
      });
      var out = {
        platform: p, name: form.elements.name.value, mode: mode,
        api_base_url: form.elements.api_base_url.value || null, credentials: creds
      };
      if (Object.keys(options).length) { out.options = options; }
      return out;
    }
    testButton.addEventListener("click", function (event) {
      event.preventDefault();
      var old = document.getElementById("account-result");
      if (old) { old.hidden = true; }
      result.hidden = false;
      result.className = "notice";
      result.textContent = t("js.testing");
      testButton.disabled = true;
      api("POST", "/api/accounts/test", body()).then(function (res) {
        testButton.disabled = false;
        if (res.ok) {
          var who = res.json.username ? "@" + res.json.username : (res.json.display_name || "");
          result.className = "notice success";
          result.textContent = t("accounts.test_ok", { name: who });
          return;
        }
        var err = (res.json && res.json.error) || {};
        var keys = err.code ? [platformKey(platform.value, "error." + err.code),
                               "accounts.error." + err.code] : [];
        result.className = "notice error";
        result.textContent = first(keys, t("accounts.error.other",
                                           { message: err.message || "HTTP " + res.status }));
      }, function () {
        testButton.disabled = false;
        result.className = "notice error";
        result.textContent = t("js.network");
      });
    });
  }

  /* ---------------------------------------------------------------- failed replies */
  function initFailed() {
    var list = document.getElementById("failed-list");
    if (!list) { return; }
    list.addEventListener("click", function (event) {
      var button = event.target.closest("[data-retry]");
      if (!button || button.disabled) { return; }
      button.disabled = true;
      api("POST", "/api/messages/" + encodeURIComponent(button.dataset.retry) + "/retry")
        .then(function (res) {
          if (res.ok) {
            var item = button.closest(".failed-item");
            if (item) { item.remove(); }
            document.getElementById("failed-empty").hidden = list.children.length > 0;
            return;
          }
          button.disabled = false;
          button.title = t("js.retry_failed", { message: errorMessage(res) });
        }, function () { button.disabled = false; });
    });
  }

  /* ---------------------------------------------------------------- colours of labels */
  function initLabels() {
    document.querySelectorAll(".label-dot[data-color]").forEach(function (dot) {
      if (/^#[0-9a-fA-F]{6}$/.test(dot.dataset.color)) { dot.style.background = dot.dataset.color; }
    });
  }

  /* ---------------------------------------------------------------- who else is here
   * The conversation page says "I have it open" every 15 s and "I am typing" while the reply
   * box changes; other agents' notes arrive as SSE `presence` events (web/event_hub.py). */
  function initPresence() {
    var root = document.getElementById("conversation");
    var box = document.getElementById("presence");
    if (!root || !box) { return; }
    var convId = root.dataset.id;
    var me = root.dataset.me;
    var url = "/api/conversations/" + encodeURIComponent(convId) + "/presence";
    var others = {};
    function show() {
      var lines = Object.keys(others).map(function (id) {
        var p = others[id];
        return t(p.state === "typing" ? "presence.typing" : "presence.viewing", { name: p.name });
      });
      box.textContent = lines.join(" · ");
      box.hidden = lines.length === 0;
    }
    /* one at a time: "viewing" on load and "typing" a moment later, sent side by side, may
     * be stored in the other order and leave the others reading "has it open" */
    var sending = Promise.resolve();
    function say(state) {
      sending = sending.then(function () { return api("POST", url, { state: state }); })
        .catch(function () { return null; });
    }
    say("viewing");
    window.setInterval(function () { say("viewing"); }, 15000);
    var typingAt = 0;
    var text = document.getElementById("reply-text");
    if (text) {
      text.addEventListener("input", function () {
        var now = Date.now();
        if (now - typingAt > 5000) { typingAt = now; say("typing"); }
      });
    }
    window.addEventListener("pagehide", function () {
      fetch(url, { method: "POST", keepalive: true, credentials: "same-origin",
                   headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
                   body: JSON.stringify({ state: "left" }) });
    });
    live("/api/events", { types: "presence", conversation: convId }, {
      presence: function (p) {
        if (p.agent_id === me) { return; }
        if (p.state === "left") { delete others[p.agent_id]; } else {
          others[p.agent_id] = { name: p.agent_name, state: p.state };
        }
        show();
      }
    });
  }

  /* ---------------------------------------------------------------- everywhere */
  function initCommon() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var submitter = event.submitter;
      var question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
      if (question && !window.confirm(question)) { event.preventDefault(); }
    });
    document.addEventListener("click", function (event) {
      var button = event.target.closest("[data-copy]");
      if (!button) { return; }
      var selectIt = function () {
        /* no Clipboard API (plain http): select the URL so Ctrl+C copies it */
        var code = button.parentNode.querySelector("code");
        if (code) { window.getSelection().selectAllChildren(code); }
      };
      if (!navigator.clipboard) { selectIt(); return; }
      navigator.clipboard.writeText(button.dataset.copy).then(function () {
        button.textContent = button.dataset.done;
      }, selectIt);
    });
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      if (!el.closest("template") && el.getAttribute("datetime")) {
        el.title = fmtTime(el.getAttribute("datetime"), "full");
      }
    });
  }

  initCommon();
  initInbox();
  initConversation();
  initAccounts();
  initFailed();
  initLabels();
  initPresence();
})();
