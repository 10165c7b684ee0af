// extadmin live pages: push, then morph only what changed (extadmin/web/live.py says the protocol).
//
// An element with data-live-url listens to the server's event stream (data-live-events). On
// "change" it GETs its URL as htmx would (HX-Request) with If-None-Match, and morphs the answer
// into itself with idiomorph (static/vendor/idiomorph): elements with the same id are kept and
// only their differences applied, so focus, a text selection, the scroll position and an open
// <details> menu survive. When the stream cannot work (a proxy that buffers it: no "hello" within
// a few seconds; the server busy; the stream refused), the element polls its URL every 2 s with
// If-None-Match instead: 304 and no body while nothing changed.
// Without JavaScript the pages are whole and current when loaded; reload to update.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var HELLO_WAIT_MS = 5000;

  function status(text) {
    var out = document.querySelector("[data-live-status]");
    if (out) out.textContent = text;
  }

  // What the operator opened stays open: a <details> menu's "open" is the page's, not the server's.
  var KEEP = {
    beforeAttributeUpdated: function (name, el) {
      return !(name === "open" && el.tagName === "DETAILS");
    }
  };

  function Live(el) {
    this.el = el;
    this.id = el.id;
    this.url = el.dataset.liveUrl;
    this.etag = el.dataset.liveEtag || null;
    this.token = el.dataset.liveToken || "";
    this.busy = false;
    this.again = false;
    this.poller = null;
    this.source = null;
    this.updates = 0;
    this.announced = "";
  }

  Live.prototype.current = function () {
    return document.getElementById(this.id);
  };

  Live.prototype.refresh = function () {
    var self = this;
    if (self.busy) { self.again = true; return; }
    self.busy = true;
    var headers = {"HX-Request": "true", "HX-Current-URL": window.location.href};
    if (self.etag) headers["If-None-Match"] = self.etag;
    if (self.announced) headers["X-Live-Token"] = self.announced;  // the token the event said
    self.announced = "";
    fetch(self.url, {headers: headers, credentials: "same-origin", cache: "no-store", redirect: "follow"})
      .then(function (r) {
        // console.js (loaded before this on every page): reload, unless the page is being left.
        if (r.redirected && r.url.indexOf("/accounts/login/") !== -1) { window.extadminReloadForLogin(); return null; }
        if (r.status === 304 || !r.ok) return null;
        self.etag = r.headers.get("ETag") || self.etag;
        return r.text();
      })
      .then(function (html) {
        var el = self.current();
        if (html === null || html === undefined || !el) return;
        window.Idiomorph.morph(el, html, {morphStyle: "outerHTML", restoreFocus: true, callbacks: KEEP});
        self.updates += 1;
        document.dispatchEvent(new CustomEvent("extadmin:live-updated", {detail: {id: self.id, updates: self.updates}}));
      })
      .catch(function () { /* the next change or poll tries again */ })
      .then(function () {
        self.busy = false;
        if (self.again) { self.again = false; self.refresh(); }
      });
  };

  Live.prototype.poll = function (why) {
    if (this.source) { this.source.close(); this.source = null; }
    if (this.poller) return;
    var self = this;
    status("updating every 2 s (" + why + ")");
    self.poller = window.setInterval(function () { self.refresh(); }, POLL_MS);
    self.refresh();
  };

  Live.prototype.listen = function () {
    var self = this;
    var events = self.current().dataset.liveEvents;
    if (!window.EventSource || !events) { self.poll("no event stream in this browser"); return; }
    var sep = events.indexOf("?") === -1 ? "?" : "&";
    var source = new EventSource(events + sep + "since=" + encodeURIComponent(self.token));
    self.source = source;
    var hello = window.setTimeout(function () { self.poll("the event stream did not arrive"); }, HELLO_WAIT_MS);
    source.addEventListener("hello", function () {
      window.clearTimeout(hello);
      status("live");
    });
    source.addEventListener("change", function (e) {
      self.token = e.data;
      self.announced = e.data;
      self.refresh();
    });
    source.addEventListener("busy", function () {
      window.clearTimeout(hello);
      self.poll("the console has too many live pages open");
    });
    source.onerror = function () {
      // A bounded stream ends and the browser reconnects by itself (readyState CONNECTING);
      // CLOSED means it gave up (an error answer): poll instead.
      if (source.readyState === EventSource.CLOSED) { window.clearTimeout(hello); self.poll("the event stream was refused"); }
      else status("reconnecting…");
    };
  };

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.Idiomorph) return;
    var el = document.querySelector("[data-live-url]");
    if (!el || !el.id) return;
    var live = new Live(el);
    window.extadminLive = live;
    live.listen();
  });
})();
