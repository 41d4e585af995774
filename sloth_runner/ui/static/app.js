// sloth-runner dashboard: live updates over server-sent events. No framework, no build step.
(function () {
  "use strict";
  var body = document.body;
  var dot = document.querySelector(".live-dot");
  if (!window.EventSource || !body.dataset.live) return;

  var pending = false;
  function refreshRows() {
    var rows = document.getElementById("runs-rows");
    if (!rows || pending) return;
    pending = true;
    fetch(rows.dataset.rows, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) rows.innerHTML = html; })
      .finally(function () { pending = false; });
  }

  function refreshRun() {
    // the whole run (graph, timeline, tasks) again, swapped in place
    var run = document.getElementById("run");
    if (!run || pending) return;
    pending = true;
    fetch(window.location.href, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("run");
        if (fresh) run.replaceWith(fresh);
      })
      .finally(function () { pending = false; });
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
