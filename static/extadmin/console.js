// extadmin console: the upload form's drop zone, its chosen files (removable) and progress bar, and
// keeping live parts honest.
// Everything here is an enhancement: without JavaScript the forms post and the pages render.
(function () {
  "use strict";

  function formatBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    if (n < 1024 * 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + " MB";
    return (n / 1024 / 1024 / 1024).toFixed(2) + " GB";
  }

  function showChosen(input) {
    var out = document.getElementById("chosen-files");
    if (!out) return;
    var names = Array.prototype.map.call(input.files, function (f) { return f.name + " (" + formatBytes(f.size) + ")"; });
    out.textContent = names.length ? names.join(", ") : "";
    listChosen(input);
  }

  // Each chosen file with a Remove button: take one out of the selection before sending (say, the
  // one the last try refused). Without JavaScript the browser's own file picker is all there is.
  function listChosen(input) {
    var list = document.getElementById("chosen-list");
    if (!list || typeof DataTransfer === "undefined") return;
    list.textContent = "";
    Array.prototype.forEach.call(input.files, function (f, i) {
      var li = document.createElement("li");
      li.dataset.file = f.name;
      var name = document.createElement("code");
      name.textContent = f.name;
      var size = document.createElement("span");
      size.className = "muted";
      size.textContent = formatBytes(f.size);
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-file";
      remove.textContent = "✕ Remove";
      remove.setAttribute("aria-label", "Remove " + f.name + " from the selection");
      remove.addEventListener("click", function () { removeChosen(input, i); });
      li.append(name, size, remove);
      list.appendChild(li);
    });
  }

  function removeChosen(input, index) {
    var kept = new DataTransfer();
    Array.prototype.forEach.call(input.files, function (f, i) { if (i !== index) kept.items.add(f); });
    input.files = kept.files;
    showChosen(input);
    var next = document.querySelector("#chosen-list .remove-file") || input;
    next.focus();
  }

  // After the last byte is sent the server still validates, unpacks and saves before it answers.
  // The page asks it where it is (the phase its import reached, under this submission's random
  // id); until the server has said, the line says only that those steps are under way.
  var PHASE_WORDS = {validating: "validating", unpacking: "unpacking", saving: "saving"};

  function newUploadId(form) {
    var field = form.querySelector("input[name=upload_id]");
    if (!field) return;
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    field.value = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function processingPhase(form, text, total) {
    var started = Date.now(), said = "", stopped = false;
    var field = form.querySelector("input[name=upload_id]");
    function tick() {
      var s = Math.round((Date.now() - started) / 1000);
      text.textContent = "uploaded " + formatBytes(total) + " (100%); processing on the server: " +
        (said || "validating, unpacking, saving") + "… " + s + " s";
    }
    function ask() {
      if (stopped || !field || !field.value || !form.dataset.phaseUrl || !window.fetch) return;
      fetch(form.dataset.phaseUrl + "?id=" + encodeURIComponent(field.value), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (doc) {
          if (stopped || !doc || !PHASE_WORDS[doc.phase]) return;
          said = PHASE_WORDS[doc.phase] + (doc.detail ? " " + doc.detail : "");
          form.dataset.serverPhase = doc.phase;
          tick();
        })
        .catch(function () { /* the generic words stay */ });
    }
    tick();
    ask();
    var timer = window.setInterval(function () { tick(); ask(); }, 500);
    return function stop() { stopped = true; window.clearInterval(timer); };
  }

  function refuse(result, message) {
    result.innerHTML = "";
    var div = document.createElement("div");
    div.className = "refusal";
    div.setAttribute("role", "alert");
    div.textContent = message;
    result.appendChild(div);
  }

  // "Not allowed: The form was sent without a valid security token…", from a whole error page.
  function pageSummary(xhr) {
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var heading = doc.querySelector("main h1, h1");
    var first = doc.querySelector("main p, p");
    var text = [heading, first].filter(Boolean).map(function (el) { return el.textContent.trim(); }).join(": ");
    return text || "the server answered HTTP " + xhr.status + " (" + (xhr.statusText || "error") + "); see its log";
  }

  // Dropped X.zip.sig files go to the signature field, the packages to the file field: the server
  // pairs them by name (X.zip.sig with X.zip).
  function splitSignatures(form, input, files) {
    var sigInput = form.querySelector("input[type=file][name=signature]");
    if (!sigInput || typeof DataTransfer === "undefined") { input.files = files; return; }
    var zips = new DataTransfer(), sigs = new DataTransfer();
    Array.prototype.forEach.call(files, function (f) {
      (/\.sig$/i.test(f.name) ? sigs : zips).items.add(f);
    });
    input.files = zips.files;
    if (sigs.files.length) sigInput.files = sigs.files;
  }

  function setupUpload(form) {
    var zone = document.getElementById("dropzone");
    var input = form.querySelector("input[type=file]");
    var progress = document.getElementById("upload-progress");
    var text = document.getElementById("upload-progress-text");
    var result = document.getElementById("upload-result");

    newUploadId(form);
    input.addEventListener("change", function () { showChosen(input); });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) {
        splitSignatures(form, input, e.dataTransfer.files);
        showChosen(input);
      }
    });

    form.addEventListener("htmx:beforeRequest", function (e) {
      if (e.target !== form) return;
      var max = parseInt(form.dataset.maxBytes, 10);
      var total = Array.prototype.reduce.call(input.files, function (s, f) { return s + f.size; }, 0);
      if (max && total > max) {
        // Refused before sending a byte; the server would refuse it too (413) and keep nothing.
        e.preventDefault();
        refuse(result, "upload: the upload is larger than the limit of " + form.dataset.maxText + "; nothing was sent");
        return;
      }
      progress.hidden = false;
      progress.value = 0;
      text.textContent = "uploading…";
      form.classList.add("busy");
    });
    var phase = null;
    form.addEventListener("htmx:xhr:progress", function (e) {
      if (!e.detail.lengthComputable || !e.detail.total || phase) return;
      var pct = Math.round((e.detail.loaded / e.detail.total) * 100);
      progress.value = pct;
      text.textContent = pct + "% of " + formatBytes(e.detail.total) + " uploaded";
      if (e.detail.loaded >= e.detail.total) {
        progress.removeAttribute("value");  // indeterminate: the bytes are sent, the server is working
        phase = processingPhase(form, text, e.detail.total);
        form.dataset.phase = "processing";
      }
    });
    form.addEventListener("htmx:afterRequest", function (e) {
      if (e.target !== form) return;
      if (phase) phase();
      phase = null;
      delete form.dataset.phase;
      delete form.dataset.serverPhase;
      newUploadId(form);  // the next submission is another upload
      progress.value = 100;
      form.classList.remove("busy");
      var status = e.detail.xhr.status;
      var summary = document.getElementById("upload-summary");
      if (!status) text.textContent = "";
      else if (status >= 400) text.textContent = summary ? "refused: see each file below" : "refused";
      else if (e.detail.xhr.getResponseHeader("HX-Redirect")) text.textContent = "imported; opening the package page…";
      else if (summary) {
        text.textContent = "imported: see each file below";
        input.value = "";  // sent and kept: a second click must not import them again
        showChosen(input);
      } else text.textContent = "checked";
    });
    form.addEventListener("htmx:sendError", function () {
      refuse(result, "upload: the connection closed before an answer came (is the file over the limit of " +
        form.dataset.maxText + "?); nothing was kept");
    });
    // Refusals come as a part for #upload-result. Any other error answer is a whole page (Django's
    // 403, 404 or 500 page, a proxy's 502): nested in the form it would break the page, and a 5xx is
    // not swapped at all. Say what it says, in the refusal's place.
    // htmx fires beforeSwap on the swap's target, not on the form.
    result.addEventListener("htmx:beforeSwap", function (e) {
      if (e.detail.requestConfig.elt !== form) return;
      var xhr = e.detail.xhr;
      if (xhr.status < 400 || (e.detail.shouldSwap && !/^\s*<!doctype/i.test(xhr.responseText || ""))) return;
      e.detail.shouldSwap = false;
      refuse(result, "upload: " + pageSummary(xhr));
    });
  }

  // "3 min 5 s", as nodes.presenters.format_duration words it on the server.
  function formatDuration(seconds) {
    seconds = Math.max(seconds, 0);
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds >= 10 ? Math.round(seconds) + " s" : seconds.toFixed(1) + " s";
    var minutes = Math.floor(seconds / 60), sec = Math.floor(seconds) % 60;
    if (minutes < 60) return sec ? minutes + " min " + sec + " s" : minutes + " min";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 24) return minutes ? hours + " h " + minutes + " min" : hours + " h";
    var days = Math.floor(hours / 24);
    hours = hours % 24;
    return hours ? days + " d " + hours + " h" : days + " d";
  }

  // Relative times (<time datetime="…" data-since>) stay true after the page is drawn: counted on
  // every second, by the server's clock (the page's data-now says how far the browser's is off).
  var skew = 0;
  function measureSkew() {
    var now = Date.parse(document.documentElement.getAttribute("data-now") || "");
    if (!isNaN(now)) skew = now - Date.now();
  }
  function tick() {
    var now = Date.now() + skew;
    Array.prototype.forEach.call(document.querySelectorAll("time[data-since]"), function (el) {
      var at = Date.parse(el.getAttribute("datetime") || "");
      if (isNaN(at)) return;
      var text = formatDuration((now - at) / 1000);
      if (el.textContent !== text) el.textContent = text;
    });
  }

  // Changes to the counts marked data-announce are said in #live-announcer, politely, whatever
  // replaced them (a poll's swap, a pushed morph): the live region itself is never replaced.
  function announced() {
    return Array.prototype.map.call(document.querySelectorAll("[data-announce]"), function (el) {
      var label = el.getAttribute("data-announce");
      return (label ? label + ": " : "") + el.textContent.replace(/\s+/g, " ").trim();
    }).join(". ");
  }
  function watchAnnouncements() {
    var live = document.getElementById("live-announcer");
    if (!live || typeof MutationObserver === "undefined") return;
    var last = announced(), timer = null;
    new MutationObserver(function (records) {
      if (records.every(function (r) { return live.contains(r.target); })) return;
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        var now = announced();
        if (now !== last) { last = now; live.textContent = now; }
      }, 300);
    }).observe(document.body, {childList: true, subtree: true, characterData: true});
  }

  // A live or polled part whose session expired reloads the page, which then shows the login. Not
  // once the page is being left: a part answered after "Log out" has ended the session would
  // otherwise reload the page over the logout's own navigation (to the identity provider's logout,
  // after a single sign-on), and the provider's session would stay. live.js asks here too.
  var leaving = false;
  window.addEventListener("beforeunload", function () { leaving = true; });
  window.extadminReloadForLogin = function () {
    if (!leaving) window.location.reload();
  };

  // A polled part whose session expired would swap the login page into itself: reload instead.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var url = e.detail.xhr && e.detail.xhr.responseURL;
    if (url && url.indexOf("/accounts/login/") !== -1) {
      e.preventDefault();
      window.extadminReloadForLogin();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("upload-form");
    if (form) setupUpload(form);
    watchAnnouncements();
    measureSkew();
    tick();
    window.setInterval(tick, 1000);
  });
})();
