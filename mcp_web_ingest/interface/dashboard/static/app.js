// Web Ingest dashboard: follows a crawl job's progress while the job page is open. Text only (textContent), no HTML.
(function () {
  "use strict";
  var job = document.getElementById("job");
  if (!job || job.dataset.finished === "true") return;
  var id = job.dataset.jobId;

  function field(name) { return job.ownerDocument.querySelector('[data-field="' + name + '"]'); }
  function set(el, text) { if (el && el.textContent !== text) el.textContent = text; }
  function span(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    var s = Math.abs(seconds);
    if (s >= 86400) return Math.round(s / 86400) + " d";
    if (s >= 3600) return Math.round(s / 3600) + " h";
    if (s >= 60) return Math.round(s / 60) + " min";
    return Math.round(s) + " s";
  }
  function show(status) {
    Object.keys(status.counts).forEach(function (key) {
      set(job.querySelector('[data-count="' + key + '"]'), String(status.counts[key]));
    });
    var state = field("state");
    set(state, status.state);
    state.className = "badge state-" + status.state;
    set(field("pages_per_s"), String(status.pages_per_s));
    set(field("eta"), span(status.eta_s));
    set(field("elapsed"), span(status.elapsed_s));
    var bar = field("progress");
    bar.max = Math.max(status.counts.discovered, 1);
    bar.value = status.counts.fetched + status.counts.skipped;
    var list = field("failed");
    list.replaceChildren.apply(list, status.failed.map(function (f) {
      var li = document.createElement("li");
      var url = document.createElement("span");
      url.className = "url";
      url.textContent = f.url;
      var reason = document.createElement("span");
      reason.className = "reason";
      reason.textContent = f.reason;
      li.append(url, " ", reason);
      return li;
    }));
    field("no-failed").hidden = status.failed.length > 0;
    field("cancel-form").hidden = status.finished;
    job.dataset.finished = String(status.finished);
  }
  function poll() {
    fetch("/ui/api/jobs/" + encodeURIComponent(id), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (status) { show(status); if (!status.finished) setTimeout(poll, 1000); })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();
