/* Canned replies in the reply box: "/" and a few letters list the matches (shortcut, title,
 * pinyin and its initials, body: the server searches), arrow keys and Enter or a click choose,
 * and the body is inserted in the customer's language with its placeholders filled. The three
 * suggested replies beside the box insert with one click. Written for this project; customer
 * and reply text is only ever written with textContent. */
(function () {
  "use strict";

  var form = document.getElementById("composer");
  var text = document.getElementById("reply-text");
  var pop = document.getElementById("canned-pop");
  if (!form || !text || !pop) { return; }
  var convId = form.dataset.conversation;
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var strings = {};
  try { strings = JSON.parse(document.getElementById("i18n").textContent || "{}"); } catch (e) { strings = {}; }
  function t(key) { return Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key; }

  var items = [];
  var active = -1;
  var token = null;
  var asked = 0;
  var timer = null;

  /* the "/word" just before the caret, at the start or after white space */
  function slashToken() {
    var pos = text.selectionStart;
    if (pos !== text.selectionEnd) { return null; }
    var m = /(^|\s)\/([^\s\/]{0,32})$/.exec(text.value.slice(0, pos));
    if (!m) { return null; }
    return { start: pos - m[2].length - 1, end: pos, q: m[2] };
  }
  function close() {
    pop.hidden = true;
    pop.textContent = "";
    items = [];
    active = -1;
    token = null;
    text.setAttribute("aria-expanded", "false");
    text.removeAttribute("aria-activedescendant");
  }
  function el(tag, cls, value) {
    var node = document.createElement(tag);
    node.className = cls;
    node.textContent = value;
    return node;
  }
  function draw() {
    pop.textContent = "";
    if (!items.length) {
      pop.appendChild(el("div", "canned-none", t("canned.js.none")));
    }
    items.forEach(function (item, i) {
      var option = document.createElement("div");
      option.className = "canned-option";
      option.id = "canned-option-" + i;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", i === active ? "true" : "false");
      option.dataset.shortcut = item.shortcut;
      option.appendChild(el("span", "canned-shortcut", "/" + item.shortcut));
      option.appendChild(el("span", "canned-title", item.title));
      option.appendChild(el("span", "canned-preview", (item.text || "").slice(0, 120)));
      option.addEventListener("mousedown", function (event) {
        event.preventDefault(); /* keep the focus (and the caret) in the reply box */
        choose(i);
      });
      pop.appendChild(option);
    });
    pop.hidden = false;
    text.setAttribute("aria-expanded", "true");
    if (active >= 0) {
      text.setAttribute("aria-activedescendant", "canned-option-" + active);
      var shown = document.getElementById("canned-option-" + active);
      if (shown && shown.scrollIntoView) { shown.scrollIntoView({ block: "nearest" }); }
    }
  }
  function lookup() {
    var found = slashToken();
    if (!found) { close(); return; }
    token = found;
    var mine = ++asked;
    var url = "/api/canned-replies?q=" + encodeURIComponent("/" + found.q) +
      "&conversation_id=" + encodeURIComponent(convId);
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (res) { return res.ok ? res.json() : { items: [] }; })
      .then(function (body) {
        if (mine !== asked || !slashToken()) { return; }
        items = body.items || [];
        active = items.length ? 0 : -1;
        draw();
      }, function () { /* offline: no list */ });
  }
  function insert(value, start, end) {
    var before = text.value.slice(0, start);
    text.value = before + value + text.value.slice(end);
    var caret = before.length + value.length;
    text.focus();
    text.setSelectionRange(caret, caret);
    text.dispatchEvent(new Event("input", { bubbles: true })); /* the counter and preview */
  }
  /* the filled text for this conversation, counted as one use */
  function use(item) {
    return fetch("/api/canned-replies/" + encodeURIComponent(item.id) + "/use", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "X-CSRF-Token": csrf },
      body: JSON.stringify({ conversation_id: convId })
    }).then(function (res) { return res.ok ? res.json() : item; }, function () { return item; });
  }
  function choose(i) {
    var item = items[i];
    /* the "/word" as it is now: typed on while the list was being fetched, it is longer than
       the one the list was asked for, and all of it is replaced */
    var where = slashToken() || token;
    close();
    if (!item || !where) { return; }
    use(item).then(function (filled) { insert(filled.text || item.text || "", where.start, where.end); });
  }

  text.setAttribute("aria-autocomplete", "list");
  text.setAttribute("aria-controls", "canned-pop");
  text.addEventListener("input", function () {
    clearTimeout(timer);
    if (!slashToken()) { close(); return; }
    timer = setTimeout(lookup, 80);
  });
  text.addEventListener("keydown", function (event) {
    if (pop.hidden) { return; }
    if (event.key === "Escape") { event.preventDefault(); close(); return; }
    if (!items.length) { return; }
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      var step = event.key === "ArrowDown" ? 1 : items.length - 1;
      active = (active + step) % items.length;
      draw();
    } else if ((event.key === "Enter" || event.key === "Tab") && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      choose(active);
    }
  });
  text.addEventListener("blur", function () { setTimeout(close, 150); });

  /* suggestions: the three canned replies most like what the customer wrote last */
  var box = document.getElementById("suggestions");
  var list = document.getElementById("suggest-list");
  function suggest() {
    fetch("/api/conversations/" + encodeURIComponent(convId) + "/suggestions",
          { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (res) { return res.ok ? res.json() : { items: [] }; })
      .then(function (body) {
        list.textContent = "";
        (body.items || []).forEach(function (item) {
          var button = el("button", "suggest-item", item.title);
          button.type = "button";
          button.dataset.shortcut = item.shortcut;
          button.title = (item.text || "").slice(0, 200);
          button.addEventListener("click", function () {
            use(item).then(function (filled) {
              var start = text.selectionStart;
              var end = text.selectionEnd;
              insert(filled.text || item.text || "", start, end);
            });
          });
          list.appendChild(button);
        });
        box.hidden = !list.childNodes.length;
      }, function () { /* offline: none */ });
  }
  if (box && list) {
    suggest();
    var thread = document.getElementById("thread");
    if (thread && window.MutationObserver) {
      var again = null;
      new MutationObserver(function (changes) {
        var inbound = changes.some(function (c) {
          return Array.prototype.some.call(c.addedNodes, function (n) {
            return n.classList && n.classList.contains("msg-in");
          });
        });
        if (inbound) { clearTimeout(again); again = setTimeout(suggest, 300); }
      }).observe(thread, { childList: true });
    }
  }
})();
