// Region pickers (the region_picker macro of _forms.html): cascading selects, province down to
// village, loaded from GET /api/v1/regions?parent=CODE, that fill the code input beside them.
// A code already in the input (typed, or the last order's) opens the selects at its place.
(function () {
  "use strict";
  var API = "/api/v1/regions";
  var children = {}; // parent code ("" for provinces) -> promise of its regions, one fetch each

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.json();
    });
  }
  function childrenOf(code) {
    var key = code || "";
    if (!children[key]) {
      children[key] = getJSON(code ? API + "?parent=" + encodeURIComponent(code) : API);
      children[key].catch(function () { delete children[key]; }); // try again next time
    }
    return children[key];
  }
  // The regions from the province down to the code, each {code, name, level, parent_code}.
  function pathTo(code, tail) {
    return getJSON(API + "/" + encodeURIComponent(code)).then(function (region) {
      tail = [region].concat(tail || []);
      return region.parent_code ? pathTo(region.parent_code, tail) : tail;
    });
  }

  function setUp(box) {
    if (box.dataset.ready) return; // the script runs once per picker on the page
    box.dataset.ready = "1";
    var words = JSON.parse(box.dataset.words);
    var input = box.querySelector("input");
    var selects = box.querySelector(".region-selects");
    var place = box.querySelector(".region-place");
    var chosen = []; // the region chosen in each select, top down
    var turn = 0; // a newer choice makes older answers moot

    function say(text) { place.textContent = text; }
    function showName() { say(chosen.map(function (r) { return r.name; }).join(" ")); }

    // Drop the selects below depth, then offer the regions (if any) as the next one.
    function offer(depth, regions, selected) {
      while (selects.children.length > depth) selects.removeChild(selects.lastChild);
      if (!regions.length) return;
      var id = input.id + "-" + depth;
      var wrap = document.createElement("div");
      wrap.className = "region-level";
      var label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = words.levels[regions[0].level] || regions[0].level;
      var select = document.createElement("select");
      select.id = id;
      select.add(new Option(words.choose, ""));
      regions.forEach(function (r) { select.add(new Option(r.name, r.code, false, r.code === selected)); });
      select.addEventListener("change", function () { choose(depth, regions, select.value); });
      wrap.appendChild(label);
      wrap.appendChild(select);
      selects.appendChild(wrap);
    }

    function choose(depth, regions, code) {
      var mine = ++turn;
      var region = regions.filter(function (r) { return r.code === code; })[0];
      offer(depth + 1, []);
      chosen.length = depth;
      if (region) chosen.push(region);
      input.value = region ? region.code : depth ? chosen[depth - 1].code : "";
      showName();
      if (!region) return;
      childrenOf(region.code).then(function (below) {
        if (mine === turn) offer(depth + 1, below);
      }, failed);
    }

    function failed() { say(words.failed); }

    // Open the selects at the code's place: its ancestors chosen, the level below offered.
    function openAt(code) {
      var mine = ++turn;
      say(words.loading);
      pathTo(code).then(function (path) {
        var lists = [null].concat(path).map(function (r) { return childrenOf(r && r.code); });
        return Promise.all(lists).then(function (levels) {
          if (mine !== turn) return;
          chosen = path;
          path.forEach(function (r, depth) { offer(depth, levels[depth], r.code); });
          offer(path.length, levels[path.length]);
          showName();
        });
      }).catch(function (error) {
        if (mine !== turn) return;
        if (error.message !== "404") return failed();
        say(words.unknown); // start again from the provinces
        chosen = [];
        start(mine);
      });
    }

    function start(mine) {
      childrenOf("").then(function (provinces) {
        if (mine === turn) offer(0, provinces);
      }, failed);
    }

    input.addEventListener("change", function () {
      var code = input.value.trim();
      var current = chosen.length ? chosen[chosen.length - 1].code : "";
      if (/^[0-9]{6,12}$/.test(code) && code !== current) openAt(code);
    });
    selects.hidden = false;
    if (/^[0-9]{6,12}$/.test(input.value.trim())) openAt(input.value.trim());
    else start(turn);
  }

  document.querySelectorAll("[data-region-picker]").forEach(setUp);
})();
