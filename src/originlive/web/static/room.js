// The live room: video (the browser's own HLS, else hls.js fetched on demand), the room's
// socket (state, comments, likes, viewers, the pinned offer, purchases, status), chat and likes.
(function () {
  "use strict";
  var room = document.getElementById("room");
  if (!room) return;
  var words = JSON.parse(document.getElementById("room-words").textContent);
  var video = document.getElementById("player");
  var feed = document.getElementById("feed");
  var errorBox = document.getElementById("room-error");
  var note = document.getElementById("player-note");
  var status = room.dataset.status;
  var lastSeq = 0;
  var playing = false;
  var socket = null;
  var pendingLikes = 0;

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, key) { return values[key] == null ? "" : values[key]; });
  }
  function money(cents, currency) {
    var sign = cents < 0 ? "-" : "";
    cents = Math.abs(cents);
    var yuan = Math.floor(cents / 100).toLocaleString("en-US");
    var fen = String(cents % 100).padStart(2, "0");
    return sign + (currency === "CNY" ? "¥" : currency + " ") + yuan + "." + fen;
  }
  function $(id) { return document.getElementById(id); }

  // Video
  function play() {
    if (playing || status !== "live") return;
    playing = true;
    note.textContent = words.waiting;
    var src = room.dataset.playback;
    if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = src;
    } else {
      var script = document.createElement("script");
      script.src = room.dataset.hls;
      script.onload = function () {
        if (!window.Hls || !window.Hls.isSupported()) return;
        var hls = new window.Hls({ liveSyncDurationCount: 3, manifestLoadingMaxRetry: 30 });
        hls.loadSource(src);
        hls.attachMedia(video);
      };
      document.head.appendChild(script);
    }
    video.addEventListener("playing", function () { note.textContent = ""; });
    // A stream that is not up yet (the encoder is connecting): try again shortly.
    video.addEventListener("error", function () {
      if (status !== "live") return;
      setTimeout(function () { video.src = src; video.load(); }, 2000);
    });
    var started = video.play();
    if (started && started.catch) started.catch(function () {});
  }

  // The feed: comments and purchases, newest last, at most 100 kept.
  function add(node) {
    feed.appendChild(node);
    while (feed.children.length > 100) feed.removeChild(feed.firstChild);
    feed.scrollTop = feed.scrollHeight;
  }
  function comment(event) {
    var li = document.createElement("li");
    li.dataset.seq = event.seq;
    var who = document.createElement("b");
    who.textContent = event.user ? event.user.name || event.user.display_name || "" : "";
    li.appendChild(who);
    li.appendChild(document.createTextNode(" " + event.text));
    add(li);
  }
  function purchase(event) {
    var li = document.createElement("li");
    li.className = "purchase";
    var text = fill(words.bought, { county: event.county || "", item: event.item || "" });
    if (event.others) text += " " + fill(words.others, { count: event.others });
    li.textContent = text;
    add(li);
  }

  // The pinned offer and its countdown
  var ends = null;
  function offer(o) {
    var box = $("offer");
    if (!o) { box.hidden = true; ends = null; return; }
    box.hidden = false;
    box.dataset.offer = o.id;
    $("offer-title").textContent = o.title;
    $("offer-price").textContent = money(o.price_cents, o.currency);
    $("offer-left").textContent = o.remaining;
    $("offer-quantity").textContent = o.quantity;
    $("offer-buy").href = "/offers/" + o.id + "/buy";
    ends = o.ends_at ? Date.parse(o.ends_at) : null;
    tick();
  }
  function tick() {
    var out = $("offer-countdown");
    if (!ends) { out.textContent = "–"; return; }
    var left = Math.max(0, Math.round((ends - Date.now()) / 1000));
    var m = Math.floor(left / 60), s = left % 60;
    out.textContent = m + ":" + String(s).padStart(2, "0");
  }
  setInterval(tick, 1000);
  if ($("offer-countdown").dataset.ends) { ends = Date.parse($("offer-countdown").dataset.ends); tick(); }

  function setStatus(value) {
    status = value;
    room.dataset.status = value;
    var badge = $("room-status");
    badge.textContent = words[value] || value;
    badge.className = "badge status-" + value;
    if (value === "live") play();
    if (value === "ended") note.textContent = words.ended_note;
  }

  // The socket
  function handle(event) {
    if (event.type === "error") {
      errorBox.hidden = false;
      errorBox.textContent = words.errors[event.code] || event.code;
      setTimeout(function () { errorBox.hidden = true; }, 4000);
      return;
    }
    if (event.type === "state") {
      lastSeq = event.seq || 0;
      feed.textContent = "";
      (event.comments || []).forEach(comment);
      $("room-likes").textContent = event.likes;
      $("room-viewers").textContent = event.viewers;
      offer(event.pinned || null);
      setStatus((event.session && event.session.status) || event.status || status);
      return;
    }
    if (event.seq && event.seq <= lastSeq) return;
    if (event.seq) lastSeq = event.seq;
    switch (event.type) {
      case "comment": comment(event); break;
      case "likes": $("room-likes").textContent = event.likes != null ? event.likes : event.count; break;
      case "viewers": $("room-viewers").textContent = event.viewers != null ? event.viewers : event.count; break;
      case "pin": offer(event.offer); break;
      case "stock":
        if ($("offer").dataset.offer == String(event.offer_id)) $("offer-left").textContent = event.remaining;
        break;
      case "purchase": purchase(event); break;
      case "status": setStatus(event.status); break;
      case "moderation":
        if (event.action === "delete") {
          var gone = feed.querySelector('li[data-seq="' + event.comment_seq + '"]');
          if (gone) gone.remove();
        }
        break;
    }
  }
  var delay = 1000;
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + room.dataset.room);
    socket.onopen = function () { delay = 1000; };
    socket.onmessage = function (m) { handle(JSON.parse(m.data)); };
    socket.onclose = function (e) {
      if (e.code >= 4400 && e.code < 4500) return;  // refused: banned, no such room
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  }
  connect();
  play();

  // Chat and likes
  var form = $("say");
  if (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var input = $("say-text");
      var text = input.value.trim();
      if (!text || !socket || socket.readyState !== 1) return;
      socket.send(JSON.stringify({ type: "comment", text: text }));
      input.value = "";
    });
  }
  // Likes are sent at most once a second, counted together.
  $("like").addEventListener("click", function () { pendingLikes += 1; });
  setInterval(function () {
    if (pendingLikes && socket && socket.readyState === 1) {
      socket.send(JSON.stringify({ type: "like", count: Math.min(pendingLikes, 100) }));
      pendingLikes = 0;
    }
  }, 1000);
})();
