// gemmalog serve: the pages' script. Every text from the logs is inserted as text
// (textContent, createTextNode), never as HTML; the server's CSP allows no inline script.
(function () {
  "use strict";

  // -- small helpers ------------------------------------------------------------------------

  const BIDI_AND_CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
  const COLLAPSE_AT = 1500;
  const PALETTE = ["#2f6fde", "#d9480f", "#2b8a3e", "#ae3ec9", "#e8590c", "#1098ad", "#c2255c", "#5c940d", "#364fc7", "#862e9c"];

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "href") node.setAttribute("href", safeHref(value));
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Links are only ever built by this script, to this server's own pages.
  function safeHref(value) {
    const text = String(value);
    return text.startsWith("/") && !text.startsWith("//") ? text : "#";
  }

  // A log text shown literally: bidi overrides, NUL and other controls made visible.
  function literal(text, node) {
    node = node || el("span");
    const s = text === null || text === undefined ? "" : String(text);
    let at = 0;
    for (const m of s.matchAll(BIDI_AND_CONTROL)) {
      if (m.index > at) node.append(document.createTextNode(s.slice(at, m.index)));
      const code = m[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
      node.append(el("span", { class: "ctl", title: "control character", text: "U+" + code }));
      at = m.index + m[0].length;
    }
    if (at < s.length) node.append(document.createTextNode(s.slice(at)));
    return node;
  }

  // A long text shows its start and a button to show the rest.
  function longText(text, cls) {
    const s = text === null || text === undefined ? "" : String(text);
    const box = el("div");
    const pre = el("pre", { class: "text " + (cls || "") });
    box.append(pre);
    if (s.length <= COLLAPSE_AT) {
      literal(s, pre);
      return box;
    }
    literal(s.slice(0, COLLAPSE_AT), pre);
    pre.append(document.createTextNode("…"));
    const more = el("button", {
      type: "button",
      text: "show all " + s.length.toLocaleString() + " characters",
      onclick: () => { pre.textContent = ""; literal(s, pre); more.remove(); },
    });
    box.append(more);
    return box;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") {
      if (!Number.isFinite(value)) return String(value);
      if (Number.isInteger(value)) return value.toLocaleString();
      const d = digits === undefined ? 4 : digits;
      return Math.abs(value) >= 1000 ? value.toFixed(1) : Number(value.toPrecision(d)).toString();
    }
    return String(value);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.round(seconds);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + r + "s";
  }

  async function api(path, options) {
    let response;
    try {
      response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    } catch (err) {
      throw new Error("the server did not answer (" + err.message + "); is gemmalog serve still running?");
    }
    const type = response.headers.get("content-type") || "";
    if (!type.startsWith("application/json")) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response;
    }
    const body = await response.json();
    if (!response.ok) {
      const error = new Error(body && body.error ? body.error : "HTTP " + response.status);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function banner(message, kind) {
    let box = document.getElementById("banner");
    if (!box) {
      box = el("div", { id: "banner" });
      document.getElementById("main").prepend(box);
    }
    box.className = message ? "banner " + (kind || "") : "hidden";
    box.textContent = message || "";
  }

  function runIdFromPath() {
    const parts = location.pathname.split("/");
    return decodeURIComponent(parts[2] || "");
  }

  function runUrl(runId, tail) {
    return "/runs/" + encodeURIComponent(runId) + (tail || "");
  }

  function apiRun(runId, tail) {
    return "/api/runs/" + encodeURIComponent(runId) + (tail || "");
  }

  function nav(runId, here) {
    const box = document.getElementById("nav");
    box.append(el("a", { href: "/", text: "Runs", class: here === "runs" ? "here" : null }));
    if (runId) {
      box.append(el("a", { href: runUrl(runId), text: "Curves · doctor · SQL", class: here === "run" ? "here" : null }));
      box.append(el("a", { href: runUrl(runId, "/rollouts"), text: "Rollouts", class: here === "rollouts" ? "here" : null }));
    }
  }

  // A stream of the server's change events; calls onChange at most once in flight.
  function watch(query, handlers) {
    const live = document.getElementById("live");
    const dot = el("span", { class: "live-dot" });
    const label = el("span", { text: "connecting" });
    live.replaceChildren(dot, label);
    const source = new EventSource("/api/stream" + query);
    // a page left for another closes its stream (the browser allows six connections a server)
    window.addEventListener("pagehide", () => source.close());
    source.addEventListener("hello", () => { dot.className = "live-dot on"; label.textContent = "live"; });
    source.addEventListener("error", (e) => {
      if (e.data) {
        const data = JSON.parse(e.data);
        banner(data.error);
        source.close();
      }
      dot.className = "live-dot";
      label.textContent = "reconnecting";
    });
    source.addEventListener("open", () => { dot.className = "live-dot on"; label.textContent = "live"; });
    for (const [name, fn] of Object.entries(handlers)) {
      source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    }
    return source;
  }

  // Run `fn` now, and once more after it if asked again meanwhile (never two at once).
  function serial(fn) {
    let running = false, again = false;
    return async function run() {
      if (running) { again = true; return; }
      running = true;
      try { await fn(); } catch (err) { banner(err.message); }
      running = false;
      if (again) { again = false; run(); }
    };
  }

  // -- the runs page ---------------------------------------------------------------------------

  async function runsPage() {
    nav(null, "runs");
    const main = document.getElementById("main");
    const table = el("table", { class: "grid", id: "runs" });
    const compare = el("button", { class: "primary", type: "button", text: "Compare selected", disabled: true });
    const problems = el("div", { id: "problems" });
    main.replaceChildren(el("h1", { text: "Runs" }), el("div", { class: "toolbar" }, compare,
      el("span", { class: "muted", text: "Tick runs to overlay their curves." })), problems, table);
    const picked = new Set();
    compare.addEventListener("click", () => {
      const ids = [...picked];
      if (ids.length) location.href = runUrl(ids[0], "?compare=" + encodeURIComponent(ids.slice(1).join(",")));
    });
    let pending = 0;
    const load = serial(async () => {
      const body = await api("/api/runs");
      banner(null);
      problems.replaceChildren(...body.problems.map((p) => el("div", { class: "banner note" }, literal(p))));
      const head = el("tr", {}, ["", "status", "name", "run", "steps", "duration", "last reward", "accuracy", "doctor", "started (UTC)"]
        .map((h) => el("th", { text: h })));
      const rows = body.runs.map((r) => {
        const box = el("input", { type: "checkbox", checked: picked.has(r.run) ? true : null,
          onchange: (e) => { e.target.checked ? picked.add(r.run) : picked.delete(r.run); compare.disabled = picked.size < 1; } });
        return el("tr", { dataset: { run: r.run } },
          el("td", {}, box),
          el("td", {}, el("span", { class: "badge " + (r.status || ""), text: r.status || "unknown" })),
          el("td", {}, el("a", { href: runUrl(r.run) }, literal(r.name || r.run))),
          el("td", { class: "muted" }, literal(r.run)),
          el("td", { class: "num", text: fmt(r.steps) }),
          el("td", { class: "num", text: duration(r.duration_s) }),
          el("td", { class: "num", text: fmt(r.last_reward) }),
          el("td", { class: "num", text: r.accuracy === null ? "—" : (100 * r.accuracy).toFixed(1) + "%" }),
          el("td", {}, doctorBadges(r)),
          el("td", { class: "muted", text: (r.start || "").replace("T", " ").slice(0, 19) }));
      });
      table.replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
      if (!body.runs.length) table.replaceChildren(el("tr", {}, el("td", { text: "No runs under " + body.roots.join(", ") + " yet." })));
      // doctor counts fill in from the server's worker: ask again a few times
      if (body.runs.slice(0, 50).some((r) => r.doctor === null) && pending < 20) {
        pending += 1;
        setTimeout(load, 1500);
      }
    });
    watch("", { runs: () => load() });
    await load();
  }

  function doctorBadges(r) {
    if (!r.doctor) return el("span", { class: "muted", text: "…" });
    const out = [];
    for (const sev of ["error", "warning", "info"]) {
      if (r.doctor[sev]) out.push(el("a", { href: runUrl(r.run, "#doctor"), class: "badge " + sev, text: r.doctor[sev] + " " + sev }));
    }
    return out.length ? el("span", {}, out) : el("span", { class: "muted", text: "ok" });
  }

  // -- the run page ----------------------------------------------------------------------------

  const ORDER = ["loss", "reward/total", "reward", "accuracy", "kl", "entropy", "completions/length_tokens",
    "completions/mean_length", "learning_rate", "grad_norm"];

  function rank(name) {
    const exact = ORDER.indexOf(name);
    if (exact >= 0) return exact;
    if (name.startsWith("reward/") || name.startsWith("rewards/")) return 2.5;
    if (name.startsWith("completions/")) return 6.5;
    if (name.startsWith("system/")) return 50;
    if (name.startsWith("generation/")) return 40;
    return 20;
  }

  function smooth(values, weight) {
    if (!weight) return values;
    const out = new Array(values.length);
    let last = 0, debias = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null || v === undefined) { out[i] = null; continue; }
      last = last * weight + (1 - weight) * v;
      debias = debias * weight + (1 - weight);
      out[i] = last / debias;
    }
    return out;
  }

  class RunData {
    constructor(runId) { this.runId = runId; this.series = new Map(); this.lastStep = null; this.t0 = null; }
    key(s) { return s.phase + "\u0000" + s.name; }
    merge(body, since) {
      for (const s of body.series) {
        const key = this.key(s);
        let have = this.series.get(key);
        if (!have || since === null) {
          have = { name: s.name, phase: s.phase, steps: [], values: [], ts: [] };
          this.series.set(key, have);
        }
        let keep = have.steps.length;
        while (since !== null && keep > 0 && have.steps[keep - 1] > since) keep--;
        have.steps.length = keep; have.values.length = keep; have.ts.length = keep;
        for (let i = 0; i < s.steps.length; i++) {
          have.steps.push(s.steps[i]); have.values.push(s.values[i]); have.ts.push(s.ts[i]);
          if (s.ts[i] !== null && (this.t0 === null || s.ts[i] < this.t0)) this.t0 = s.ts[i];
        }
      }
      if (body.last_step !== null && (this.lastStep === null || body.last_step > this.lastStep)) this.lastStep = body.last_step;
    }
    async load() {
      const since = this.lastStep;
      const query = since === null ? "" : "?since_step=" + Math.max(0, since - 1);
      this.merge(await api(apiRun(this.runId, "/metrics" + query)), since === null ? null : Math.max(0, since - 1));
    }
  }

  class Charts {
    constructor(box) { this.box = box; this.plots = new Map(); this.smoothing = 0; this.x = "step"; }
    draw(runs) {
      const names = new Map();
      runs.forEach((data, r) => {
        for (const s of data.series.values()) {
          if (!names.has(s.name)) names.set(s.name, []);
          names.get(s.name).push({ run: r, data, s });
        }
      });
      const ordered = [...names.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
      for (const name of ordered) this.drawOne(name, names.get(name), runs.length > 1);
      for (const [name, plot] of this.plots) {
        if (!names.has(name)) { plot.chart.destroy(); plot.box.remove(); this.plots.delete(name); }
      }
      // keep the on-screen order
      for (const name of ordered) this.box.append(this.plots.get(name).box);
    }
    drawOne(name, members, several) {
      const tables = members.map(({ data, s }) => {
        const xs = this.x === "step" ? s.steps : s.ts.map((t) => (t === null ? null : t - data.t0));
        const pairs = xs.map((x, i) => [x, s.values[i]]).filter((p) => p[0] !== null).sort((a, b) => a[0] - b[0]);
        const xsSorted = [], ys = [];
        for (const [x, y] of pairs) {
          if (xsSorted.length && xsSorted[xsSorted.length - 1] === x) { ys[ys.length - 1] = y; continue; }
          xsSorted.push(x); ys.push(y);
        }
        return [xsSorted, smooth(ys, this.smoothing)];
      });
      const joined = tables.length === 1 ? tables[0] : uPlot.join(tables);
      const labels = members.map(({ data, s }) => (several ? data.runId + " · " : "") + s.phase);
      let plot = this.plots.get(name);
      const signature = labels.join("\u0001") + "|" + this.x;
      if (plot && plot.signature !== signature) {
        plot.chart.destroy(); plot.box.remove(); this.plots.delete(name); plot = null;
      }
      if (!plot) {
        const box = el("div", { class: "chart", dataset: { name } }, el("h3", {}, literal(name)));
        this.box.append(box);
        const width = Math.max(320, box.clientWidth - 14);
        const opts = {
          width, height: 210,
          scales: { x: { time: false } },
          axes: [{ label: this.x === "step" ? "step" : "seconds since start" }, { size: 64 }],
          series: [{ label: this.x }, ...labels.map((label, i) => ({
            label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false, points: { show: false },
          }))],
          legend: { live: true },
        };
        const chart = new uPlot(opts, joined, box);
        plot = { chart, box, signature };
        this.plots.set(name, plot);
      } else {
        plot.chart.setData(joined);
      }
      const last = members.reduce((m, { s }) => Math.max(m, s.steps.length ? s.steps[s.steps.length - 1] : -Infinity), -Infinity);
      plot.box.dataset.lastStep = String(last);
      plot.box.dataset.points = String(joined[0].length);
    }
    resize() {
      for (const plot of this.plots.values()) plot.chart.setSize({ width: Math.max(320, plot.box.clientWidth - 14), height: 210 });
    }
  }

  async function runPage() {
    const runId = runIdFromPath();
    nav(runId, "run");
    const main = document.getElementById("main");
    const title = el("h1", {}, literal(runId));
    const facts = el("div", { class: "summary", id: "facts" });
    const lastStep = el("b", { id: "last-step", text: "—" });
    const smoothing = el("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: "0", id: "smoothing" });
    const xAxis = el("select", { id: "x-axis" }, el("option", { value: "step", text: "step" }), el("option", { value: "time", text: "wall time" }));
    const compareBox = el("select", { id: "compare", multiple: true, size: "3" });
    const filter = el("input", { type: "search", placeholder: "filter curves", id: "curve-filter" });
    const chartsBox = el("div", { class: "charts", id: "charts" });
    const tabs = el("div", { class: "tabs" });
    const sections = {
      curves: el("section", { id: "curves" },
        el("div", { class: "toolbar" },
          el("label", {}, "smoothing", smoothing),
          el("label", {}, "x", xAxis),
          el("label", {}, "overlay runs", compareBox),
          el("label", {}, filter),
          el("span", {}, "last step ", lastStep)),
        chartsBox),
      doctor: el("section", { id: "doctor" }),
      sql: el("section", { id: "sql" }),
    };
    for (const name of Object.keys(sections)) {
      tabs.append(el("button", { type: "button", text: name === "sql" ? "SQL" : name[0].toUpperCase() + name.slice(1),
        dataset: { tab: name }, onclick: () => show(name) }));
    }
    function show(name) {
      for (const [key, section] of Object.entries(sections)) section.classList.toggle("hidden", key !== name);
      for (const b of tabs.children) b.classList.toggle("on", b.dataset.tab === name);
      if (name === "curves") charts.resize();
      if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
    }
    main.replaceChildren(title, facts,
      el("p", {}, el("a", { href: runUrl(runId, "/rollouts"), text: "Open the rollouts →" })),
      tabs, ...Object.values(sections));

    const charts = new Charts(chartsBox);
    const primary = new RunData(runId);
    let others = [];
    const params = new URLSearchParams(location.search);
    const wanted = (params.get("compare") || "").split(",").filter(Boolean);

    const redraw = () => {
      charts.draw([primary, ...others]);
      const needle = filter.value.toLowerCase();
      for (const plot of charts.plots.values()) plot.box.classList.toggle("hidden", !!needle && !plot.box.dataset.name.toLowerCase().includes(needle));
      lastStep.textContent = primary.lastStep === null ? "—" : String(primary.lastStep);
    };
    smoothing.addEventListener("input", () => { charts.smoothing = Number(smoothing.value); redraw(); });
    xAxis.addEventListener("change", () => { charts.x = xAxis.value; redraw(); });
    filter.addEventListener("input", redraw);
    window.addEventListener("resize", () => charts.resize());

    const loadOthers = async (ids) => {
      others = ids.map((id) => new RunData(id));
      await Promise.all(others.map((d) => d.load().catch((err) => banner(d.runId + ": " + err.message))));
      redraw();
    };
    compareBox.addEventListener("change", () => loadOthers([...compareBox.selectedOptions].map((o) => o.value)));

    const refreshFacts = async () => {
      const body = await api(apiRun(runId));
      const s = body.summary, run = s.run;
      title.replaceChildren(literal(run.name || runId), " ", el("span", { class: "badge " + run.status, text: run.status }));
      const pairs = [["run", runId], ["steps", fmt(run.steps)], ["events", fmt(run.events)], ["wall time", duration(run.duration_s)],
        ["completions", fmt(s.completions.count)]];
      for (const [phase, acc] of Object.entries(s.accuracy)) pairs.push(["accuracy " + phase, (100 * acc.accuracy).toFixed(1) + "%"]);
      if (s.read_errors) pairs.push(["unreadable lines", fmt(s.read_errors)]);
      if (body.remote) pairs.push(["copied from", body.remote.url]);
      facts.replaceChildren(...pairs.map(([k, v]) => el("div", {}, el("b", { text: k }), literal(v))));
      if (body.remote && body.remote.error) banner(body.remote.error);
    };

    const curves = serial(async () => {
      await primary.load();
      banner(null);
      redraw();
    });
    const doctor = doctorPanel(sections.doctor, runId);
    sqlPanel(sections.sql, runId);
    let factsAt = 0;
    watch("?run=" + encodeURIComponent(runId), {
      change: () => {
        curves();
        doctor.refresh();
        if (Date.now() - factsAt > 3000) { factsAt = Date.now(); refreshFacts().catch((e) => banner(e.message)); }
      },
      gone: (data) => banner(data.error),
      remote: (data) => banner(data.error),
    });
    const tab = location.hash.slice(1);
    show(tab in sections ? tab : "curves");
    try {
      await Promise.all([refreshFacts(), curves(), doctor.refresh()]);
    } catch (err) { banner(err.message); }
    api("/api/runs").then((body) => {
      for (const r of body.runs) {
        if (r.run === runId) continue;
        compareBox.append(el("option", { value: r.run, selected: wanted.includes(r.run) ? true : null }, literal(r.name + " · " + r.run)));
      }
      if (wanted.length) loadOthers(wanted);
    }).catch((err) => banner(err.message));
  }

  function doctorPanel(box, runId) {
    let last = 0;
    const list = el("div", { id: "findings" });
    const note = el("p", { class: "muted" });
    box.append(el("h2", { text: "Doctor" }), note, list);
    const load = serial(async () => {
      const body = await api(apiRun(runId, "/doctor"));
      last = Date.now();
      note.textContent = body.error ? body.error : body.findings.length ? "" : "Every health check passed.";
      list.replaceChildren(...body.findings.map((f) => finding(f, runId)));
    });
    return { refresh: () => (Date.now() - last > 5000 ? load() : Promise.resolve()) };
  }

  function finding(f, runId) {
    const marks = new Map();
    for (const ex of f.examples || []) {
      if (ex.step === undefined) continue;
      if (!marks.has(ex.step)) marks.set(ex.step, []);
      if (ex.sample !== undefined) marks.get(ex.step).push(ex.sample);
    }
    const stepLink = (step) => el("a", {
      class: "doctor-link",
      href: runUrl(runId, "/rollouts?step=" + step + (marks.has(step) ? "&mark=" + marks.get(step).join(",") : "")),
      text: "step " + step,
    });
    const steps = f.steps || [];
    const shown = steps.length > 12 ? [...steps.slice(0, 6), ...steps.slice(-6)] : steps;
    const examples = (f.examples || []).map((ex) => el("div", { class: "example" },
      el("div", { class: "muted" }, ex.step !== undefined ? stepLink(ex.step) : null,
        ex.sample !== undefined ? " sample " + ex.sample : "", ex.total_reward !== undefined ? " · reward " + fmt(ex.total_reward) : "",
        ex.correct !== undefined ? (ex.correct ? " · correct" : " · wrong") : ""),
      longText(ex.text)));
    return el("div", { class: "finding " + f.severity, dataset: { check: f.check } },
      el("div", {}, el("span", { class: "badge " + f.severity, text: f.severity }), el("b", {}, literal(f.title)), " ",
        el("span", { class: "muted" }, literal(f.check))),
      el("div", { class: "text" }, literal(f.message)),
      shown.length ? el("div", { class: "steps" }, "at ", shown.map(stepLink), steps.length > shown.length ? " … (" + steps.length + " steps)" : "") : null,
      examples.length ? el("details", { open: true }, el("summary", { text: "examples" }), examples) : null);
  }

  const EXAMPLES = [
    ["Reward per function over steps", "SELECT reward_fn, step, avg(value) AS mean_reward, count(*) AS samples\nFROM rewards WHERE phase = 'train'\nGROUP BY ALL ORDER BY reward_fn, step"],
    ["Accuracy curve, train and eval", "SELECT phase, step, accuracy, cumulative_accuracy FROM accuracy ORDER BY phase, step"],
    ["The twenty worst completions", "SELECT step, sample, total_reward, question, answer, true_answer\nFROM completions WHERE NOT isnan(total_reward)\nORDER BY total_reward ASC LIMIT 20"],
    ["Loss curve", "SELECT step, value AS loss FROM metrics WHERE name = 'loss' ORDER BY step"],
    ["Metric names", "SELECT name, count(*) AS points, min(step), max(step) FROM metrics GROUP BY name ORDER BY name"],
    ["Unreadable lines", "SELECT * FROM gemmalog_read_errors"],
  ];

  function sqlPanel(box, runId) {
    const text = el("textarea", { class: "sql", id: "sql-text", spellcheck: "false" });
    text.value = EXAMPLES[0][1];
    const pick = el("select", { id: "sql-examples" }, el("option", { value: "", text: "example queries…" }),
      EXAMPLES.map(([label], i) => el("option", { value: String(i), text: label })));
    pick.addEventListener("change", () => { if (pick.value) text.value = EXAMPLES[Number(pick.value)][1]; });
    const result = el("div", { class: "result", id: "sql-result" });
    const note = el("p", { class: "muted", id: "sql-note" });
    const runIt = async () => {
      note.textContent = "running…";
      try {
        const body = await api("/api/sql", { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ run: runId, sql: text.value }) });
        note.textContent = body.rows.length + " rows" + (body.truncated ? " (the first 1000; the CSV has every row)" : "");
        result.replaceChildren(el("table", { class: "grid" },
          el("thead", {}, el("tr", {}, body.columns.map((c) => el("th", {}, literal(c))))),
          el("tbody", {}, body.rows.map((row) => el("tr", {}, row.map((v) => el("td", {}, cell(v))))))));
      } catch (err) {
        note.textContent = "";
        result.replaceChildren(el("div", { class: "banner" }, literal(err.message)));
      }
    };
    const csv = async () => {
      try {
        const response = await api("/api/sql", { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ run: runId, sql: text.value, format: "csv" }) });
        const url = URL.createObjectURL(await response.blob());
        const a = el("a", { download: "gemmalog-query.csv" });
        a.href = url;
        document.body.append(a); a.click(); a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (err) { result.replaceChildren(el("div", { class: "banner" }, literal(err.message))); }
    };
    box.append(el("h2", { text: "SQL (read-only)" }),
      el("p", { class: "muted", text: "Views: events, metrics, rewards, completions, generation, system, reward_stats, accuracy, runs, gemmalog_read_errors." }),
      el("div", { class: "toolbar" }, pick, el("button", { class: "primary", type: "button", id: "sql-run", text: "Run", onclick: runIt }),
        el("button", { type: "button", id: "sql-csv", text: "Download CSV", onclick: csv })),
      text, note, result);
  }

  function cell(v) {
    if (v === null || v === undefined) return el("span", { class: "muted", text: "NULL" });
    if (typeof v === "object") return literal(JSON.stringify(v));
    if (typeof v === "number") return document.createTextNode(fmt(v, 6));
    return String(v).length > 200 || String(v).includes("\n") ? longText(v) : literal(v);
  }

  // -- the rollouts page -----------------------------------------------------------------------

  async function rolloutsPage() {
    const runId = runIdFromPath();
    nav(runId, "rollouts");
    const params = new URLSearchParams(location.search);
    const marked = new Set((params.get("mark") || "").split(",").filter(Boolean).map(Number));
    const main = document.getElementById("main");
    const slider = el("input", { type: "range", class: "slider", id: "step-slider", min: "0", max: "0", value: "0" });
    const stepLabel = el("b", { id: "step-label", text: "—" });
    const follow = el("input", { type: "checkbox", id: "follow" });
    const phase = el("select", { id: "phase" }, el("option", { value: "", text: "all phases" }));
    const minReward = el("input", { type: "number", step: "any", id: "min-reward", placeholder: "min" });
    const maxReward = el("input", { type: "number", step: "any", id: "max-reward", placeholder: "max" });
    const correct = el("select", { id: "correct" }, [["", "any"], ["yes", "correct"], ["no", "wrong"], ["unknown", "unknown"]]
      .map(([v, t]) => el("option", { value: v, text: t })));
    const minLength = el("input", { type: "number", id: "min-length", placeholder: "min" });
    const maxLength = el("input", { type: "number", id: "max-length", placeholder: "max" });
    const search = el("input", { type: "search", id: "search", placeholder: "search text" });
    const sort = el("select", { id: "sort" }, [["sample", "sample"], ["reward-desc", "reward ↓"], ["reward-asc", "reward ↑"],
      ["advantage-desc", "advantage ↓"], ["length-desc", "length ↓"], ["length-asc", "length ↑"]].map(([v, t]) => el("option", { value: v, text: t })));
    const counts = el("span", { id: "counts", class: "muted" });
    const groupsBox = el("div", { id: "groups" });
    const history = el("div", { id: "history" });
    main.replaceChildren(el("h1", {}, "Rollouts of ", literal(runId)),
      el("div", { class: "toolbar" },
        el("button", { type: "button", text: "◀", id: "prev", onclick: () => move(-1) }), slider,
        el("button", { type: "button", text: "▶", id: "next", onclick: () => move(1) }),
        el("span", {}, "step ", stepLabel), el("label", {}, follow, "follow live")),
      el("div", { class: "toolbar" },
        el("label", {}, "phase", phase), el("label", {}, "reward", minReward, "–", maxReward),
        el("label", {}, "correct", correct), el("label", {}, "length", minLength, "–", maxLength),
        el("label", {}, search), el("label", {}, "sort", sort), counts),
      history, groupsBox);

    let steps = [];
    let data = null;
    let scrolled = false;
    let wantedStep = params.has("step") ? Number(params.get("step")) : null;

    const loadSteps = async () => {
      const body = await api(apiRun(runId, "/steps"));
      steps = body.steps;
      const phases = new Set(Object.values(body.phases).flat());
      for (const p of phases) {
        if (![...phase.options].some((o) => o.value === p)) phase.append(el("option", { value: p, text: p }));
      }
      slider.max = String(Math.max(0, steps.length - 1));
      if (!steps.length) {
        groupsBox.replaceChildren(el("p", { class: "muted", text: "No completions logged yet." }));
      }
    };
    const showStep = serial(async () => {
      if (!steps.length) return;
      let index = wantedStep === null ? steps.length - 1 : steps.indexOf(wantedStep);
      if (index < 0) {
        banner("step " + wantedStep + " has no completions; showing the nearest step with some", "note");
        index = steps.findIndex((s) => s >= wantedStep);
        if (index < 0) index = steps.length - 1;
      }
      slider.value = String(index);
      const step = steps[index];
      stepLabel.textContent = String(step);
      const query = "?step=" + step + (phase.value ? "&phase=" + encodeURIComponent(phase.value) : "");
      data = await api(apiRun(runId, "/completions" + query));
      const url = new URL(location.href);
      url.searchParams.set("step", String(step));
      history.replaceChildren();
      window.history.replaceState(null, "", url.pathname + url.search);
      render();
    });
    const move = (delta) => {
      const index = Math.min(steps.length - 1, Math.max(0, Number(slider.value) + delta));
      wantedStep = steps[index];
      follow.checked = false;
      showStep();
    };
    slider.addEventListener("input", () => { wantedStep = steps[Number(slider.value)]; follow.checked = false; showStep(); });
    phase.addEventListener("change", () => showStep());
    for (const input of [minReward, maxReward, correct, minLength, maxLength, search, sort]) {
      input.addEventListener(input.tagName === "SELECT" ? "change" : "input", () => render());
    }

    function passes(c) {
      const total = c.total_reward;
      if (minReward.value !== "" && !(total !== null && total >= Number(minReward.value))) return false;
      if (maxReward.value !== "" && !(total !== null && total <= Number(maxReward.value))) return false;
      if (correct.value === "yes" && c.correct !== true) return false;
      if (correct.value === "no" && c.correct !== false) return false;
      if (correct.value === "unknown" && c.correct !== null) return false;
      const length = c.length_tokens !== null ? c.length_tokens : c.length;
      if (minLength.value !== "" && !(length !== null && length >= Number(minLength.value))) return false;
      if (maxLength.value !== "" && !(length !== null && length <= Number(maxLength.value))) return false;
      const needle = search.value.toLowerCase();
      if (needle) {
        const hay = [c.model_output, c.question, c.prompt, c.answer, c.true_answer].filter(Boolean).join("\n").toLowerCase();
        if (!hay.includes(needle)) return false;
      }
      return true;
    }

    const SORTS = {
      sample: (a, b) => a.sample - b.sample,
      "reward-desc": (a, b) => (b.total_reward ?? -Infinity) - (a.total_reward ?? -Infinity),
      "reward-asc": (a, b) => (a.total_reward ?? Infinity) - (b.total_reward ?? Infinity),
      "advantage-desc": (a, b) => (b.advantage ?? -Infinity) - (a.advantage ?? -Infinity),
      "length-desc": (a, b) => ((b.length_tokens ?? b.length) || 0) - ((a.length_tokens ?? a.length) || 0),
      "length-asc": (a, b) => ((a.length_tokens ?? a.length) || 0) - ((b.length_tokens ?? b.length) || 0),
    };

    function render() {
      if (!data) return;
      let shown = 0, total = 0;
      const boxes = data.groups.map((g) => {
        const members = [...g.completions].sort(SORTS[sort.value]);
        const cards = members.map((c) => {
          total += 1;
          const visible = passes(c);
          if (visible) shown += 1;
          return completionCard(c, data.reward_functions, marked.has(c.sample), visible);
        });
        const prompt = g.prompt !== null ? g.prompt : g.question;
        return el("div", { class: "group" + (cards.some((c) => !c.classList.contains("hidden")) ? "" : " hidden") },
          el("div", { class: "head" },
            el("b", { text: g.phase }),
            el("span", {}, "mean reward ", fmt(g.mean_reward), " · std ", fmt(g.reward_std)),
            el("span", {}, "answer: ", literal(g.true_answer)),
            el("button", { type: "button", class: "across", text: "this prompt across steps", onclick: () => acrossSteps(prompt) })),
          longText(prompt, "prompt"),
          el("div", { class: "completions" }, cards));
      });
      counts.textContent = shown + " of " + total + " completions shown · advantages computed (scale: " + data.scale_rewards + ")";
      groupsBox.replaceChildren(...boxes);
      const first = groupsBox.querySelector(".completion.marked");
      if (first && !scrolled) { scrolled = true; first.scrollIntoView({ block: "center" }); }
      if (!data.groups.length) groupsBox.replaceChildren(el("p", { class: "muted", text: "No completions at this step for this phase." }));
    }

    async function acrossSteps(prompt) {
      try {
        const body = await api(apiRun(runId, "/prompt?text=" + encodeURIComponent(prompt)));
        history.replaceChildren(el("div", { class: "group" },
          el("div", { class: "head" }, el("b", { text: "This prompt across steps" }),
            el("button", { type: "button", text: "close", onclick: () => history.replaceChildren() })),
          longText(prompt, "prompt"),
          el("table", { class: "grid" },
            el("thead", {}, el("tr", {}, ["step", "phase", "completions", "mean reward", "min", "max", "accuracy", "mean length"].map((h) => el("th", { text: h })))),
            el("tbody", {}, body.steps.map((r) => el("tr", {},
              el("td", {}, el("a", { href: runUrl(runId, "/rollouts?step=" + r.step), text: String(r.step) })),
              el("td", { text: r.phase }), el("td", { class: "num", text: fmt(r.completions) }),
              el("td", { class: "num", text: fmt(r.mean_reward) }), el("td", { class: "num", text: fmt(r.min_reward) }),
              el("td", { class: "num", text: fmt(r.max_reward) }),
              el("td", { class: "num", text: r.accuracy === null ? "—" : (100 * r.accuracy).toFixed(0) + "%" }),
              el("td", { class: "num", text: fmt(r.mean_length) })))))));
      } catch (err) { banner(err.message); }
    }

    watch("?run=" + encodeURIComponent(runId), {
      change: serial(async () => {
        const before = steps.length;
        await loadSteps();
        if (follow.checked && steps.length !== before) { wantedStep = steps[steps.length - 1]; await showStep(); }
      }),
      gone: (d) => banner(d.error),
      remote: (d) => banner(d.error),
    });
    follow.addEventListener("change", () => { if (follow.checked) { wantedStep = steps[steps.length - 1]; showStep(); } });
    try {
      await loadSteps();
      await showStep();
    } catch (err) { banner(err.message); }
  }

  function completionCard(c, functions, isMarked, visible) {
    const length = c.length_tokens !== null ? c.length_tokens + " tokens" : c.length + " chars";
    const verdict = c.correct === true ? el("span", { class: "good", text: "✓ correct" })
      : c.correct === false ? el("span", { class: "bad", text: "✗ wrong" }) : el("span", { class: "muted", text: "? unknown" });
    const scores = el("table", {}, functions.map((fn) => el("tr", {}, el("td", {}, literal(fn)),
      el("td", { class: "num", text: fmt(c.rewards[fn]) }))));
    return el("div", {
      class: "completion" + (isMarked ? " marked" : "") + (visible ? "" : " hidden"),
      dataset: { sample: String(c.sample), step: String(c.step) },
    },
    el("div", { class: "facts" },
      el("b", { text: "#" + c.sample }), verdict,
      el("span", {}, "reward ", el("b", { text: fmt(c.total_reward) })),
      el("span", { title: "computed from the group's total rewards, as TRL does" }, "advantage ", el("b", { text: fmt(c.advantage, 3) })),
      el("span", { text: length }),
      c.truncated ? el("span", { class: "bad", text: "truncated" }) : null,
      c.answer !== null ? el("span", {}, "answer: ", literal(c.answer)) : null),
    scores, longText(c.model_output, "completion-text"));
  }

  // -- start ---------------------------------------------------------------------------------

  const pages = { runs: runsPage, run: runPage, rollouts: rolloutsPage };
  const start = pages[document.body.dataset.page];
  if (start) start().catch((err) => banner(err.message));
})();
