// The station's scanning page (logistics/station.py). Every scan gets the phone's own name for
// it (scan_id) and the phone's time, and is written to this phone's queue (localStorage)
// before anything is sent: a village with no signal loses nothing. The queue goes to
// POST /api/v1/scans one scan at a time, in the order they were made; a scan leaves it when
// answered (2xx: recorded, or already recorded; 4xx: refused, with the reason), and stays
// through a network error or a 5xx, to be sent again when the phone is back online.
// The camera reads labels with the browser's BarcodeDetector, else with the vendored ZXing
// decoder (WebAssembly), fetched only then.
(function () {
  "use strict";
  var root = document.getElementById("station");
  if (!root) return;
  var words = JSON.parse(document.getElementById("station-words").textContent);
  var csrf = root.dataset.csrf;
  // One queue per account: another account signed in on this phone must not send its scans.
  var KEY = "originlive.scans." + root.dataset.staff;
  var KEEP_ANSWERED = 50;
  var RETRY_MS = 15000;
  var LABEL = /^OL[0-9]{10}$/;
  var SEAL = /^[A-Za-z0-9-]{4,24}$/;

  function $(id) { return document.getElementById(id); }
  var form = $("scan-form");
  var codeInput = $("f-code");
  var note = $("scan-note");
  var list = $("queue-list");
  var stateLine = $("queue-state");
  var inFlight = null;   // the scan_id being sent now
  var paused = false;    // signed out or no longer staff: wait for the next page
  var recordedSince = 0; // scans recorded since the node's list was last fetched
  var memory = null;     // the queue, when this browser keeps nothing (storage refused)

  function fill(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key] == null ? "" : values[key]; });
  }
  function say(text) { note.textContent = text || ""; }

  // The queue
  function load() {
    if (memory) return memory.slice();
    try { return JSON.parse(localStorage.getItem(KEY) || "[]"); } catch (e) { return []; }
  }
  function save(scans) {
    var answered = scans.filter(function (s) { return s.state !== "pending"; });
    var drop = answered.length - KEEP_ANSWERED;
    if (drop > 0) {
      var gone = {};
      answered.slice(0, drop).forEach(function (s) { gone[s.id] = true; });
      scans = scans.filter(function (s) { return !gone[s.id]; });
    }
    try { localStorage.setItem(KEY, JSON.stringify(scans)); memory = null; }
    catch (e) { memory = scans; }  // private mode or full: kept while the page is open
  }
  function update(id, changes) {
    var scans = load();
    scans.forEach(function (s) { if (s.id === id) Object.keys(changes).forEach(function (k) { s[k] = changes[k]; }); });
    save(scans);
  }

  function two(n) { return String(n).padStart(2, "0"); }
  // The phone's local time with its offset, as the API wants it: 2026-05-09T14:03:07.120+08:00.
  function phoneTime(d) {
    var offset = -d.getTimezoneOffset();
    var sign = offset >= 0 ? "+" : "-";
    offset = Math.abs(offset);
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) +
      "T" + two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()) +
      "." + String(d.getMilliseconds()).padStart(3, "0") +
      sign + two(Math.floor(offset / 60)) + ":" + two(offset % 60);
  }
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    // randomUUID is only there on HTTPS (or localhost); a station on plain HTTP still gets one.
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  // What a code names, as station.read_code reads it: a parcel's label or a bag's seal.
  function readCode(text) {
    var code = (text.normalize ? text.normalize("NFKC") : text).replace(/\s+/g, "");
    if (LABEL.test(code.toUpperCase())) return { kind: "parcel", code: code.toUpperCase() };
    if (SEAL.test(code)) return { kind: "bag", code: code };
    return null;
  }
  function chosen() {
    var radio = form.querySelector('input[name="status"]:checked');
    return radio ? radio.value : null;
  }
  function number(name) {
    var value = Number(form.elements[name].value);
    return Number.isInteger(value) && value >= 1 && value <= 99 ? value : null;
  }

  // A scan as the API takes it, or null (and the field to fix) when the form is not ready.
  function scanOf(label) {
    var status = chosen();
    if (!status) { say(words.choose_status); return null; }
    var body = { scan_id: newId(), status: status, happened_at: phoneTime(new Date()) };
    body[label.kind === "parcel" ? "parcel_code" : "bag_seal"] = label.code;
    if (status === "ready_for_pickup") {
      body.shelf = number("shelf");
      body.layer = number("layer");
      if (!body.shelf || !body.layer) {
        say(words.shelf_needed);
        form.elements[body.shelf ? "layer" : "shelf"].focus();
        return null;
      }
    }
    var reason = form.elements.reason.value.trim();
    if (reason && (status === "failed_attempt" || status === "returned")) body.reason = reason;
    return body;
  }
  function enqueue(label) {
    var body = scanOf(label);
    if (!body) return false;
    var scans = load();
    scans.push({ id: body.scan_id, body: body, state: "pending", code: label.code, kind: label.kind });
    save(scans);  // kept before it is sent
    render();
    send();
    return true;
  }

  // Sending, one at a time and in order
  function answer(response) {
    return response.json().then(function (data) { return data; }, function () { return {}; })
      .then(function (data) { return { status: response.status, data: data || {}, headers: response.headers }; });
  }
  function send() {
    if (inFlight || paused) return;
    var next = load().filter(function (s) { return s.state === "pending"; })[0];
    if (!next) { refreshParcels(); return; }
    if (navigator.onLine === false) { render(); return; }
    inFlight = next.id;
    render();
    fetch("/api/v1/scans", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(next.body)
    }).then(answer).then(function (got) {
      inFlight = null;
      var code = got.status;
      if (code >= 200 && code < 300) {
        var recorded = got.data.recorded || [];
        update(next.id, {
          state: code === 200 ? "duplicate" : "recorded",
          parcels: recorded.length,
          off_route: recorded.some(function (r) { return r.off_route; }),
          clock_off: recorded.some(function (r) { return r.clock_off; })
        });
        recordedSince += 1;
      } else if (code === 401 || code === 403) {
        // About who sends, not the scan: keep it until someone signs in here again.
        paused = true;
      } else if (code === 408 || code === 429) {
        // Busy: it goes again with the next try.
      } else if (code >= 400 && code < 500) {
        update(next.id, { state: "refused", detail: got.data.detail || got.data.title || String(code) });
      } else {
        render();
        return;  // 5xx: the server's trouble; try again later, in the same order
      }
      render();
      if (!paused && code !== 408 && code !== 429) send();
    }, function () {
      inFlight = null;  // no connection: it stays first in the queue
      render();
    });
  }
  window.addEventListener("online", send);
  window.addEventListener("offline", render);
  setInterval(send, RETRY_MS);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") send(); else stopCamera();
  });
  // Another tab of this page changed the queue.
  window.addEventListener("storage", function (e) { if (e.key === KEY) render(); });

  // The node's parcels, fetched again once the queue has emptied after recording scans.
  function refreshParcels() {
    if (!recordedSince) return;
    recordedSince = 0;
    fetch("/station/parcels", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var holder = document.createElement("template");
        holder.innerHTML = html;
        var fresh = holder.content.querySelector("#parcels");
        var old = $("parcels");
        if (fresh && old) old.replaceWith(fresh);
      }, function () {});
  }

  // What the queue shows: newest first.
  function clock(iso) {
    var at = new Date(iso);
    return isNaN(at) ? "" : two(at.getHours()) + ":" + two(at.getMinutes()) + ":" + two(at.getSeconds());
  }
  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }
  function outcome(scan) {
    if (scan.id === inFlight) return words.sending;
    if (scan.state === "pending") return words.pending;
    if (scan.state === "refused") return words.refused;
    if (scan.state === "duplicate") return words.duplicate;
    if (scan.body.status === "ready_for_pickup") return words.shelved;
    return words.recorded;
  }
  function render() {
    var scans = load();
    var waiting = scans.filter(function (s) { return s.state === "pending"; }).length;
    var offline = navigator.onLine === false;
    $("queue").hidden = false;
    var parts = [offline ? words.offline : words.online];
    if (waiting) parts.push(fill(words.waiting, { n: waiting }));
    if (paused) parts.push(words.sign_in);
    stateLine.textContent = parts.join(" · ");
    stateLine.className = "queue-state" + (offline || paused ? " offline" : "");
    list.textContent = "";
    scans.slice().reverse().forEach(function (scan) {
      var li = element("li");
      li.dataset.scan = scan.id;
      li.dataset.code = scan.code;
      li.dataset.state = scan.id === inFlight ? "sending" : scan.state;
      li.appendChild(element("b", "code", scan.code));
      li.appendChild(document.createTextNode(" " + (words.statuses[scan.body.status] || scan.body.status) + " "));
      var time = element("time", null, clock(scan.body.happened_at));
      time.dateTime = scan.body.happened_at;
      li.appendChild(time);
      li.appendChild(document.createTextNode(" · "));
      li.appendChild(element("span", "outcome", outcome(scan)));
      if (scan.kind === "bag" && scan.parcels != null) {
        li.appendChild(document.createTextNode(" (" + fill(words.parcels, { n: scan.parcels }) + ")"));
      }
      if (scan.off_route) li.appendChild(element("span", "flag", words.off_route));
      if (scan.clock_off) li.appendChild(element("span", "flag", words.clock_off));
      if (scan.detail) li.appendChild(element("span", "detail", scan.detail));
      list.appendChild(li);
    });
  }

  // Typed codes
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var typed = codeInput.value;
    var label = readCode(typed);
    if (!label) {
      say(fill(words.not_a_label, { code: typed.trim().slice(0, 40) }));
      codeInput.focus();
      return;
    }
    if (enqueue(label)) {
      say(fill(words.queued, { code: label.code }));
      codeInput.value = "";
      codeInput.focus();
    }
  });

  // The camera
  var video = $("camera-video");
  var startButton = $("camera-start");
  var stopButton = $("camera-stop");
  var stream = null;
  var detect = null;
  var decoder = null;  // the ZXing decoder's loading, once
  var lastSeen = {};   // a label held in view is one scan: "code status" -> when last seen

  function nativeDetector() {
    if (!("BarcodeDetector" in window)) return Promise.resolve(null);
    return window.BarcodeDetector.getSupportedFormats().then(function (formats) {
      if (formats.indexOf("code_128") < 0 || formats.indexOf("qr_code") < 0) return null;
      var detector = new window.BarcodeDetector({ formats: ["code_128", "qr_code"] });
      return function (source) {
        return detector.detect(source).then(function (found) {
          return found.map(function (barcode) { return barcode.rawValue; });
        });
      };
    }, function () { return null; });
  }
  function loadDecoder() {
    if (!decoder) {
      decoder = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = root.dataset.decoder;
        script.onload = function () {
          var zxing = window.ZXingWASM;
          // Our own copy of the .wasm, never the package's default CDN.
          zxing.prepareZXingModule({
            overrides: {
              locateFile: function (path, prefix) {
                return path.slice(-5) === ".wasm" ? root.dataset.wasm : prefix + path;
              }
            },
            fireImmediately: true
          }).then(function () { resolve(zxing); }, reject);
        };
        script.onerror = reject;
        document.head.appendChild(script);
      });
      decoder.catch(function () { decoder = null; });  // a later try fetches it again
    }
    return decoder.then(function (zxing) {
      var canvas = document.createElement("canvas");
      var context = canvas.getContext("2d", { willReadFrequently: true });
      return function (source) {
        var width = source.videoWidth, height = source.videoHeight;
        if (!width || !height) return Promise.resolve([]);
        canvas.width = width;
        canvas.height = height;
        context.drawImage(source, 0, 0, width, height);
        var options = { formats: ["Code128", "QRCode"], tryHarder: true, maxNumberOfSymbols: 1 };
        return zxing.readBarcodes(context.getImageData(0, 0, width, height), options)
          .then(function (results) {
            return results.filter(function (r) { return r.isValid; }).map(function (r) { return r.text; });
          });
      };
    }, function () { throw { decoder: true }; });
  }
  function seen(text) {
    var label = readCode(text);
    if (!label) { say(fill(words.not_a_label, { code: text.slice(0, 40) })); return; }
    var key = label.code + " " + chosen();
    var now = Date.now();
    var before = lastSeen[key];
    lastSeen[key] = now;
    if (before && now - before < 3000) return;  // still the same label in front of the camera
    if (enqueue(label)) {
      say(fill(words.queued, { code: label.code }));
      if (navigator.vibrate) navigator.vibrate(80);
    }
  }
  function look() {
    if (!stream || !detect) return;
    detect(video).then(function (texts) { texts.forEach(seen); }, function () {})
      .then(function () { if (stream) setTimeout(look, 200); });
  }
  function stopCamera() {
    if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
    stream = null;
    video.srcObject = null;
    $("camera").hidden = true;
    stopButton.hidden = true;
    startButton.hidden = !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }
  function startCamera() {
    say(words.starting_camera);
    startButton.hidden = true;
    navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } }
    }).then(function (media) {
      stream = media;
      video.srcObject = media;
      $("camera").hidden = false;
      stopButton.hidden = false;
      return video.play();
    }).then(function () {
      return detect ? detect : nativeDetector().then(function (native) { return native || loadDecoder(); });
    }).then(function (reader) {
      detect = reader;
      say("");
      look();
    }).catch(function (error) {
      stopCamera();
      say(error && error.decoder ? words.decoder_failed : words.camera_failed);
    });
  }
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    startButton.hidden = false;
    startButton.addEventListener("click", startCamera);
    stopButton.addEventListener("click", stopCamera);
  }

  // Pick-up: needs the network (the code is checked there), so it is sent at once, not queued.
  var pickup = $("pickup-form");
  var result = $("pickup-result");
  var pickupId = null;  // kept while a try went unanswered: sent again, it is the same pick-up
  function show(text, ok) {
    result.textContent = "";
    result.appendChild(element("span", ok ? "ok" : "alert", text));
    if (!ok) result.lastChild.setAttribute("role", "alert");
  }
  pickup.addEventListener("submit", function (event) {
    event.preventDefault();
    var label = readCode(pickup.elements.parcel_code.value);
    if (!label || label.kind !== "parcel") { show(words.label_needed, false); return; }
    var code = pickup.elements.pickup_code.value;
    var body = {
      scan_id: pickupId || (pickupId = newId()),
      pickup_code: (code.normalize ? code.normalize("NFKC") : code).trim()
    };
    var by = pickup.elements.collected_by.value.trim();
    if (by) body.collected_by = by;
    fetch("/api/v1/parcels/" + label.code + "/pickup", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(answer).then(function (got) {
      if (got.status >= 500) { show(words.pickup_offline, false); return; }
      pickupId = null;
      if (got.status === 200) {
        show(fill(words.collected, { code: label.code }), true);
        pickup.reset();
        recordedSince += 1;
        refreshParcels();
      } else if (got.status === 423) {
        var seconds = Number(got.headers.get("Retry-After")) || 900;
        show(fill(words.locked, { minutes: Math.max(1, Math.ceil(seconds / 60)) }), false);
      } else {
        var detail = got.data.detail || String(got.status);
        var left = /(\d+) tries left/.exec(detail);
        show(left ? fill(words.wrong_code, { n: left[1] }) : detail, false);
        if (left) { pickup.elements.pickup_code.value = ""; pickup.elements.pickup_code.focus(); }
      }
    }, function () {
      show(words.pickup_offline, false);
    });
  });

  render();
  send();
})();
