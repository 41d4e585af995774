// sloth-runner dashboard: live updates over server-sent events. No framework, no build step.
(function () {
  "use strict";
  var body = document.body;
  var dot = document.querySelector(".live-dot");
  if (!window.EventSource || !body.dataset.live) return;

  // one fetch at a time; news arriving meanwhile fetches once more when it is done
  var pending = false, again = false;
  function once(fetchIt) {
    if (pending) { again = true; return; }
    pending = true;
    fetchIt().finally(function () {
      pending = false;
      if (again) { again = false; once(fetchIt); }
    });
  }

  function refreshRows() {
    var rows = document.getElementById("runs-rows");
    if (!rows) return;
    once(function () {
      return fetch(rows.dataset.rows, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) rows.innerHTML = html; });
    });
  }

  function refreshRun() {
    // the whole run (graph, timeline, tasks) again, swapped in place
    once(function () {
      return fetch(window.location.href, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          var run = document.getElementById("run");
          if (html === null || !run) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("run");
          if (fresh) run.replaceWith(fresh);
        });
    });
  }

  var source = new EventSource(body.dataset.live);
  source.onopen = function () { if (dot) dot.classList.add("on"); };
  source.onerror = function () { if (dot) dot.classList.remove("on"); };
  source.addEventListener("runs", function (event) {
    var changed = JSON.parse(event.data);
    if (body.dataset.page === "runs") {
      refreshRows();
    } else if (body.dataset.page === "run") {
      var run = document.getElementById("run");
      if (run && changed.indexOf(run.dataset.run) >= 0) refreshRun();
    }
  });
  window.addEventListener("beforeunload", function () { source.close(); });
})();
