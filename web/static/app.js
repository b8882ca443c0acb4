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

  function t(key, values) {
    var text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    if (values) {
      text = text.replace(/\{(\w+)\}/g, function (m, name) {
        return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : m;
      });
    }
    return text;
  }

  /* ---------------------------------------------------------------- dates
   * The same three shapes as web/i18n.py format_datetime. */
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var partsFormat = null;
  function localParts(date) {
    if (!partsFormat) {
      var opts = { year: "numeric", month: "numeric", day: "numeric", hour: "2-digit",
                   minute: "2-digit", hourCycle: "h23", timeZone: tz };
      try {
        partsFormat = new Intl.DateTimeFormat("en-US", opts);
      } catch (e) {
        opts.timeZone = "UTC";
        partsFormat = new Intl.DateTimeFormat("en-US", opts);
      }
    }
    var p = {};
    partsFormat.formatToParts(date).forEach(function (x) { p[x.type] = x.value; });
    var hour = p.hour === "24" ? "00" : p.hour;
    return { y: +p.year, m: +p.month, d: +p.day, hm: ("0" + hour).slice(-2) + ":" + p.minute };
  }
  function fmtTime(iso, style) {
    if (!iso) { return ""; }
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return ""; }
    var l = localParts(date);
    var now = localParts(new Date());
    var zh = locale === "zh-CN";
    var md = zh ? l.m + "月" + l.d + "日" : MONTHS[l.m - 1] + " " + l.d;
    var full = zh ? l.y + "年" + md : md + ", " + l.y;
    if (style === "full") { return zh ? full + " " + l.hm : full + ", " + l.hm; }
    if (l.y === now.y && l.m === now.m && l.d === now.d) { return l.hm; }
    if (l.y === now.y) { return zh ? md + " " + l.hm : md + ", " + l.hm; }
    return full;
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
      var channel = setText(li, ".channel", t("platform." + c.platform));
      channel.dataset.platform = c.platform;
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

    function deliveryError(err) {
      if (!err) { return ""; }
      if (typeof err === "string") { return err; }
      var key = "delivery.error." + (err.code || "");
      if (err.code && Object.prototype.hasOwnProperty.call(strings, key)) { return strings[key]; }
      return err.message || err.code || "";
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
      setText(el, ".msg-text", m.text || "");
      var asSent = $(".as-sent", el);
      var differs = !!m.rendered_text && m.rendered_text !== m.text;
      asSent.hidden = !differs;
      setText(asSent, ".as-sent-text", differs ? m.rendered_text : "");
      var box = $(".attachments", el);
      box.textContent = "";
      (m.attachments || []).forEach(function (a) {
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
      var failedish = state === "failed" || state === "retry_wait";
      setText(footer, ".delivery-error", failedish ? deliveryError(m.delivery.error) : "");
      var retry = $(".retry", footer);
      retry.dataset.retry = m.id;
      retry.hidden = state !== "failed";
      retry.disabled = false;
    }
    function nearBottom() {
      return window.innerHeight + window.scrollY >= document.body.scrollHeight - 160;
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
      api("POST", "/api/messages/" + encodeURIComponent(button.dataset.retry) + "/retry")
        .then(function (res) {
          if (res.ok && res.json && res.json.id) { upsert(res.json); return; }
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
    var limit = parseInt(count.dataset.limit, 10) || 4096;
    var platform = root.dataset.platform;
    var key = newKey();
    var sending = false;
    var sendLabel = send.textContent;

    function weighted(value) {
      /* X counts most CJK characters as two and every URL as 23. */
      var urls = value.match(/https?:\/\/\S+/g) || [];
      var rest = value.replace(/https?:\/\/\S+/g, "");
      var n = urls.length * 23;
      Array.from(rest).forEach(function (ch) {
        var cp = ch.codePointAt(0);
        var light = cp <= 0x10ff || (cp >= 0x2000 && cp <= 0x200d) ||
          (cp >= 0x2010 && cp <= 0x201f) || (cp >= 0x2032 && cp <= 0x2037);
        n += light ? 1 : 2;
      });
      return n;
    }
    function length(value) { return platform === "x" ? weighted(value) : value.length; }
    function showError(message) {
      errorBox.textContent = message;
      errorBox.hidden = !message;
    }
    function refresh() {
      var n = length(text.value);
      count.textContent = t("js.count", { n: n, limit: limit });
      var over = n > limit;
      count.classList.toggle("over", over);
      count.title = over ? t("js.too_long") : "";
      send.disabled = sending || over || !text.value.trim();
    }
    text.addEventListener("input", refresh);
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
      if (sending || !value.trim() || length(value) > limit) { return; }
      sending = true;
      send.disabled = true;
      send.textContent = t("js.sending");
      showError("");
      api("POST", "/api/conversations/" + encodeURIComponent(convId) + "/messages",
          { text: value }, { "Idempotency-Key": key })
        .then(function (res) {
          if (res.ok) {
            if (res.json && res.json.id) { upsert(res.json); }
            if (text.value === value) { text.value = ""; }
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
     * (GET …/compose renders them with the real identity code), and the room left */
    api("GET", "/api/conversations/" + encodeURIComponent(convId) + "/compose").then(function (res) {
      if (!res.ok || !res.json) { return; }
      var c = res.json;
      var replyAs = document.getElementById("reply-as");
      var name = c.username || c.agent_name;
      if (name) {
        var identity = c.brand ? name + " · " + c.brand : name;
        replyAs.textContent = replyAs.dataset.template.replace("{identity}", identity);
      }
      var greeting = (c.before || c.greeting_preview || "").trim();
      var signature = (c.after || c.signature_preview || "").trim();
      [["greeting-preview", greeting], ["signature-preview", signature]].forEach(function (pair) {
        var line = document.getElementById(pair[0]);
        setText(line, ".value", pair[1]);
        line.hidden = !pair[1];
      });
      if (c.text_limit) {
        limit = Math.max(c.text_limit - (c.overhead || 0), 1);
        refresh();
      }
    }, function () {});

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

    function showPlatform() {
      form.querySelectorAll("fieldset.creds").forEach(function (fs) {
        var active = fs.dataset.platform === platform.value;
        fs.disabled = !active;
        fs.hidden = !active;
      });
    }
    platform.addEventListener("change", showPlatform);
    showPlatform();

    function body() {
      var p = platform.value;
      var prefix = "cred." + p + ".";
      var creds = {};
      var mode = null;
      var fs = form.querySelector('fieldset.creds[data-platform="' + p + '"]');
      fs.querySelectorAll("input, select").forEach(function (input) {
        if (input.name.indexOf(prefix) === 0) { creds[input.name.slice(prefix.length)] = input.value; }
        if (input.name === "mode") { mode = input.value; }
      });
      return {
        platform: p, name: form.elements.name.value, mode: mode,
        api_base_url: form.elements.api_base_url.value || null, credentials: creds
      };
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
        var key = "accounts.error." + err.code;
        result.className = "notice error";
        result.textContent = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key]
          : t("accounts.error.other", { message: err.message || "HTTP " + res.status });
      }, function () {
        testButton.disabled = false;
        result.className = "notice error";
        result.textContent = t("js.network");
      });
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
})();
