// The Cloud jobs page and the Cloud job tab. Every value from the server (and so from the cloud) is
// put on the page as text (textContent / attributes), never parsed as HTML.
"use strict";

(function () {
  const script = document.getElementById("cj-js");
  const ROOT = script.src.replace(/static\/cloudjobs\.js(\?.*)?$/, "");
  // The Airflow UI that embeds this page: its base (the part before our mount point) for task links.
  const AIRFLOW = ROOT.replace(/cloudjobs\/$/, "");
  const REFRESH_MS = 5000;
  const view = document.body.dataset.view;

  // -- theme: follow the Airflow UI around the iframe (light / dark), else the system setting ----------
  function parentIsDark() {
    try {
      const root = window.parent.document.documentElement;
      if (root.classList.contains("dark") || root.dataset.theme === "dark") return true;
      if (root.classList.contains("light") || root.dataset.theme === "light") return false;
      const scheme = window.parent.getComputedStyle(root).colorScheme;
      if (scheme === "dark") return true;
      if (scheme === "light") return false;
    } catch (e) {
      /* not embedded, or another origin */
    }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }
  function applyTheme() {
    const root = document.documentElement;
    root.dataset.theme = parentIsDark() ? "dark" : "light";
    // The exact background and text colours of the UI around us, when we can read them.
    root.style.removeProperty("--bg");
    root.style.removeProperty("--fg");
    try {
      const outer = window.parent.getComputedStyle(window.parent.document.documentElement).backgroundColor;
      const text = window.parent.getComputedStyle(window.parent.document.body).color;
      if (window.parent !== window && outer && outer !== "rgba(0, 0, 0, 0)") root.style.setProperty("--bg", outer);
      if (window.parent !== window && text) root.style.setProperty("--fg", text);
    } catch (e) {
      /* not embedded */
    }
  }
  applyTheme();
  try {
    if (window.parent !== window) {
      new MutationObserver(applyTheme).observe(window.parent.document.documentElement, {
        attributes: true,
        attributeFilter: ["class", "data-theme", "style"],
      });
    }
  } catch (e) {
    /* ignore */
  }
  if (window.matchMedia) {
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);
  }

  // -- tiny DOM helpers --------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function safeUrl(url) {
    try {
      const parsed = new URL(String(url), window.location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }
  function link(url, text, external) {
    const href = safeUrl(url);
    if (!href) return el("span", { class: "cj-muted", text: "—" });
    return el("a", {
      href,
      target: external ? "_blank" : "_top",
      rel: external ? "noopener noreferrer" : null,
      text,
    });
  }
  function taskUrl(row) {
    const enc = encodeURIComponent;
    let url = `${AIRFLOW}dags/${enc(row.dag_id)}/runs/${enc(row.run_id)}/tasks/${enc(row.task_id)}`;
    if (row.map_index >= 0) url += `/mapped/${row.map_index}`;
    return url;
  }
  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
  }
  function relative(iso) {
    if (!iso) return "";
    const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    const abs = Math.abs(seconds);
    const text =
      abs < 90 ? `${abs}s` : abs < 5400 ? `${Math.round(abs / 60)}m` : `${(abs / 3600).toFixed(1)}h`;
    return seconds >= 0 ? `in ${text}` : `${text} ago`;
  }
  function phaseBadge(phase) {
    const name = phase ? String(phase) : "NOT LOADED";
    return el("span", { class: `cj-badge cj-phase-${name.replace(/[^A-Z]/g, "")}`, text: name });
  }
  function stateBadge(state) {
    const name = state ? String(state) : "none";
    return el("span", { class: `cj-state cj-state-${name.replace(/[^a-z_]/g, "")}`, text: name });
  }
  function progressBar(job) {
    const value = job && typeof job.progress === "number" ? Math.max(0, Math.min(100, job.progress)) : null;
    const bar = el("div", {
      class: "cj-progress",
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": value === null ? null : Math.round(value),
      title: value === null ? "no progress reported" : `${value.toFixed(0)}%`,
    });
    const fill = el("div", { class: `cj-fill cj-phase-${job && job.phase ? job.phase : "NONE"}` });
    fill.style.width = `${value === null ? 0 : value}%`;
    bar.append(fill);
    return el("div", { class: "cj-progress-wrap" }, bar, el("span", { class: "cj-pct", text: value === null ? "—" : `${value.toFixed(0)}%` }));
  }
  function subJobCount(job) {
    const subs = (job && job.sub_jobs) || [];
    if (!subs.length) return "—";
    const done = subs.filter((s) => s.phase === "SUCCEEDED").length;
    const failed = subs.filter((s) => s.phase === "FAILED").length;
    return `${done}/${subs.length} done` + (failed ? `, ${failed} failed` : "");
  }
  function resource(job) {
    if (!job) return "—";
    return job.resource_name || job.resource_id || "—";
  }
  function jobError(row, short) {
    if (!row.error) return null;
    const text = `Could not read the job: ${row.error}`;
    if (!short || text.length <= 70) return el("div", { class: "cj-error", text });
    return el("div", { class: "cj-error", title: text, text: `${text.slice(0, 67)}…` });
  }
  // A run id like manual__2026-12-01T10:02:19.707066+00:00 may wrap after its "__" and at its "T".
  function breakable(text) {
    const parts = String(text).split(/(?<=__|T)/);
    return parts.flatMap((part, i) => (i ? [el("wbr"), part] : [part]));
  }

  // Airflow 3.2+ signs the UI in with its _token cookie, which fetch sends; Airflow 3.1 keeps the token in
  // this origin's storage under "token" and sends it as a header, and so does this page. A stale stored
  // token is dropped for one more try on the cookie alone.
  function storedToken() {
    try {
      return window.localStorage.getItem("token");
    } catch (e) {
      return null;
    }
  }
  function fetchJson(path, token) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    return fetch(ROOT + path, { credentials: "same-origin", headers });
  }

  async function getJson(path) {
    const token = storedToken();
    let response = await fetchJson(path, token);
    if (token && (response.status === 401 || response.status === 403)) response = await fetchJson(path, null);
    if (!response.ok) {
      let detail = "";
      try {
        detail = (await response.json()).detail || "";
      } catch (e) {
        /* not JSON */
      }
      throw new Error(`HTTP ${response.status}${detail ? `: ${detail}` : ""}`);
    }
    return response.json();
  }

  // -- the Cloud jobs page -----------------------------------------------------------------------
  function waitRow(row, finished) {
    const job = row.job;
    const cells = [
      el(
        "td",
        { class: "cj-task" },
        el("div", {}, el("span", { class: "cj-muted", text: `${row.dag_id} › ` }), el("a", { href: taskUrl(row), target: "_top", text: row.task_id + (row.map_index >= 0 ? ` [${row.map_index}]` : "") }), " ", stateBadge(row.state)),
        el("div", { class: "cj-mono cj-run", title: "run id" }, breakable(row.run_id)),
      ),
      el("td", { text: (row.service || "—").toUpperCase() }),
      el("td", { class: "cj-mono cj-jobid", text: row.job_id || "—" }),
      el("td", { class: "cj-resource", text: resource(job) }),
      el("td", { class: "cj-phase-cell" }, phaseBadge(job ? job.phase : row.error ? "LOOKUP FAILED" : null), jobError(row, true)),
      el("td", {}, progressBar(job)),
      el("td", { class: "cj-nowrap", text: subJobCount(job) }),
      finished
        ? el("td", { title: fmtTime(row.end_date), text: row.end_date ? relative(row.end_date) : "—" })
        : el("td", { title: fmtTime(row.deadline), text: row.deadline ? relative(row.deadline) : "—" }),
      el("td", { class: "cj-nowrap" }, row.console_url ? link(row.console_url, "Console ↗", true) : el("span", { class: "cj-muted", text: "—" })),
    ];
    return el("tr", { "data-job-id": row.job_id || "" }, cells);
  }
  function waitTable(rows, finished) {
    const head = ["DAG › task, run", "Service", "Job ID", "Resource", "Phase", "Progress", "Sub-jobs", finished ? "Ended" : "Deadline", "Console"];
    return el(
      "div",
      { class: "cj-table-wrap" },
      el(
        "table",
        { class: "cj-table", id: finished ? "cj-finished" : "cj-in-flight" },
        el("thead", {}, el("tr", {}, head.map((h) => el("th", { text: h })))),
        el("tbody", {}, rows.map((r) => waitRow(r, finished))),
      ),
    );
  }
  async function refreshList() {
    const status = document.getElementById("cj-status");
    const content = document.getElementById("cj-content");
    try {
      const data = await getJson("api/waits");
      content.replaceChildren(
        el("h2", { text: `In flight (${data.in_flight.length})` }),
        data.in_flight.length
          ? waitTable(data.in_flight, false)
          : el("p", { class: "cj-empty", text: "No task is waiting on a cloud job right now." }),
        el("h2", { text: `Recently finished (${data.finished.length})` }),
        data.finished.length
          ? waitTable(data.finished, true)
          : el("p", { class: "cj-empty", text: "No cloud-job task finished in the last 24 hours." }),
      );
      status.textContent = `Deferred and poking waits on cloud jobs, live from the cloud. Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (e) {
      status.textContent = `Could not load the cloud jobs (${e.message}); retrying.`;
    }
    setTimeout(refreshList, REFRESH_MS);
  }

  // -- the Cloud job tab -------------------------------------------------------------------------
  function tiFromPath() {
    const parts = window.location.pathname.split("/");
    const at = parts.lastIndexOf("ti");
    return parts.slice(at + 1, at + 5);
  }
  function subJobTree(subs) {
    if (!subs || !subs.length) return null;
    return el(
      "ul",
      { class: "cj-tree" },
      subs.map((s) =>
        el(
          "li",
          {},
          el(
            "div",
            { class: "cj-node" },
            phaseBadge(s.phase),
            el("span", { class: "cj-node-type", text: s.job_type || "job" }),
            el("span", { class: "cj-mono cj-muted", text: s.job_id || "" }),
            typeof s.progress === "number" ? el("span", { class: "cj-muted", text: `${s.progress.toFixed(0)}%` }) : null,
            s.resource_name ? el("span", { text: s.resource_name }) : null,
          ),
          s.phase === "FAILED" && (s.message || s.error_code)
            ? el("div", { class: "cj-error", text: [s.error_code, s.message].filter(Boolean).join(": ") })
            : null,
          subJobTree(s.sub_jobs),
        ),
      ),
    );
  }
  function field(label, value, cls) {
    return [el("dt", { text: label }), el("dd", { class: cls || null }, value === null || value === undefined || value === "" ? "—" : value)];
  }
  function renderTask(row) {
    const job = row.job;
    const title = document.getElementById("cj-title");
    title.textContent = `Cloud job of ${row.task_id}`;
    if (!row.job_id) {
      return [
        el("p", { class: "cj-empty", text: row.operator && /^Cloud/.test(row.operator) ? "This task has not started a cloud job yet." : "This task does not wait on a cloud job." }),
      ];
    }
    const failed = job && job.phase === "FAILED";
    const parts = [
      el(
        "div",
        { class: "cj-summary" },
        phaseBadge(job && job.phase),
        el("span", { class: "cj-status-raw", text: job && job.status ? `raw status ${job.status}` : "" }),
        progressBar(job),
        stateBadge(row.state),
      ),
    ];
    if (failed) {
      parts.push(el("div", { class: "cj-error cj-error-big", id: "cj-job-error" }, el("strong", { text: `${job.error_code || "FAILED"}` }), el("div", { text: job.message || "The job failed." })));
    }
    const err = jobError(row);
    if (err) parts.push(err);
    parts.push(
      el(
        "dl",
        { class: "cj-fields" },
        field("Service", (row.service || "").toUpperCase()),
        field("Job ID", row.job_id, "cj-mono cj-jobid"),
        field("Job type", job && job.job_type),
        field("Resource", job && [job.resource_name, job.resource_id].filter(Boolean).join(" · ")),
        field("Project", row.project_id || "(the connection's)"),
        field("Path ids", row.path_params ? Object.entries(row.path_params).map(([k, v]) => `${k}=${v}`).join(", ") : null, "cj-mono"),
        field(
          "Connection",
          row.conn_known ? row.conn_id : row.job_source === "xcom" ? null : `${row.conn_id} (the default: the task did not record its connection)`,
        ),
        field("Created", job && fmtTime(job.created_at)),
        field("Started", job && fmtTime(job.started_at)),
        field("Ended", job && fmtTime(job.ended_at)),
        field("Deadline", row.deadline ? `${fmtTime(row.deadline)} (${relative(row.deadline)})` : null),
        field("Message", job && !failed ? job.message : null),
        field("Console", row.console_url ? link(row.console_url, "Open in the cloud console ↗", true) : null),
        field(
          "Data",
          row.job_source === "xcom"
            ? "final job, from the task's XCom"
            : row.job_source === "cloud"
              ? `live from the cloud, ${row.checked_seconds_ago}s ago`
              : "not loaded yet",
        ),
      ),
    );
    const subs = job && job.sub_jobs;
    parts.push(el("h2", { text: `Sub-jobs${subs && subs.length ? ` (${subJobCount(job)})` : ""}` }));
    parts.push(subJobTree(subs) || el("p", { class: "cj-empty", text: "No sub-jobs." }));
    return parts;
  }
  async function refreshTask() {
    const status = document.getElementById("cj-status");
    const content = document.getElementById("cj-content");
    const [dag, run, task, mapIndex] = tiFromPath();
    let again = true;
    try {
      const path = ["api", "ti", dag, run, task, mapIndex].join("/");
      const data = await getJson(path);
      const row = data.task;
      content.replaceChildren(...renderTask(row));
      again = !(row.job && row.job.is_terminal) && !["success", "failed", "skipped", "upstream_failed", "removed"].includes(row.state);
      status.textContent = `${row.dag_id} · ${row.run_id} · try ${row.try_number}` + (again ? ` · updated ${new Date().toLocaleTimeString()}` : "");
    } catch (e) {
      status.textContent = `Could not load the job (${e.message}); retrying.`;
    }
    if (again) setTimeout(refreshTask, REFRESH_MS);
  }

  if (view === "ti") refreshTask();
  else refreshList();
})();
