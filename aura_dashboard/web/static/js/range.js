// The time range every chart follows: live (the last points pushed), a preset reaching back
// (5 min ... 30 d, read from GET /api/history and extended by the live points at the right
// edge), or an absolute range chosen by dragging over a chart. The URL keeps the range, so a
// link shows the same thing. Each chart draws, in a range, the average as its line and the
// min-max as a band, and exports what it shows as CSV or JSON.
import { el } from "./util.js";

export const PRESETS = [["live", 0], ["5m", 300], ["1h", 3600], ["6h", 21600], ["24h", 86400], ["7d", 604800], ["30d", 2592000]];
const SPANS = new Map(PRESETS);
const BAND_FILL = ["rgba(90,169,255,0.18)", "rgba(62,207,142,0.18)", "rgba(245,185,66,0.18)", "rgba(255,122,182,0.18)"];
const REFRESH_MS = 5 * 60 * 1000;  // a long range is read again now and then, the live points coarsened

/** The range, from and to the URL: ?range=1h, or ?from=UNIX&to=UNIX after a zoom. */
export class TimeRange {
  constructor(getJson) {
    this.getJson = getJson;
    this.listeners = [];
    this.hosts = new Map();
    const params = new URLSearchParams(location.search);
    const from = Number(params.get("from")), to = Number(params.get("to"));
    if (params.has("from") && params.has("to") && Number.isFinite(from) && Number.isFinite(to) && from < to) {
      this.spec = { kind: "absolute", from, to };
    } else if (SPANS.get(params.get("range"))) {
      this.spec = { kind: "relative", name: params.get("range"), span: SPANS.get(params.get("range")) };
    } else {
      this.spec = { kind: "live" };
    }
    setInterval(() => { if (this.spec.kind === "relative") this.changed(false); }, REFRESH_MS);
  }

  get live() { return this.spec.kind === "live"; }

  /** [from, to] in UNIX seconds, or null when live. */
  bounds() {
    if (this.spec.kind === "absolute") return [this.spec.from, this.spec.to];
    if (this.spec.kind === "relative") { const now = Date.now() / 1000; return [now - this.spec.span, now]; }
    return null;
  }

  preset(name) {
    const span = SPANS.get(name);
    this.spec = span ? { kind: "relative", name, span } : { kind: "live" };
    this.changed();
  }

  zoom(from, to) {
    if (!(to - from > 1)) return;
    this.spec = { kind: "absolute", from: Math.floor(from), to: Math.ceil(to) };
    this.changed();
  }

  changed(url = true) {
    if (url) {
      const params = new URLSearchParams(location.search);
      for (const key of ["range", "from", "to"]) params.delete(key);
      if (this.spec.kind === "relative") params.set("range", this.spec.name);
      if (this.spec.kind === "absolute") { params.set("from", this.spec.from); params.set("to", this.spec.to); }
      const query = params.toString();
      history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
    }
    for (const fn of this.listeners) fn(this.spec);
  }

  onChange(fn) { this.listeners.push(fn); }

  /** The picker: one button per preset, the active one marked, in `container`. */
  picker(container) {
    const buttons = PRESETS.map(([name]) => el("button", { type: "button", class: "range-button", "data-range": name, text: name }));
    const absolute = el("span", { class: "range-abs muted" });
    const mark = () => {
      const active = this.spec.kind === "relative" ? this.spec.name : this.spec.kind === "live" ? "live" : null;
      for (const b of buttons) b.classList.toggle("active", b.dataset.range === active);
      absolute.textContent = this.spec.kind === "absolute"
        ? `${new Date(this.spec.from * 1000).toLocaleString()} – ${new Date(this.spec.to * 1000).toLocaleString()}` : "";
    };
    buttons.forEach((b) => b.addEventListener("click", () => this.preset(b.dataset.range)));
    this.onChange(mark);
    mark();
    const node = el("div", { class: "range", role: "group", "aria-label": "time range" }, buttons, absolute);
    container.append(node);
    return node;
  }

  /** For the browser console and the tests. */
  debug() {
    const hosts = {};
    for (const [source, h] of this.hosts) hosts[source] = h.debug();
    return { ...this.spec, bounds: this.bounds(), hosts };
  }
}

/** uPlot options with, per chart field, min and max series (hidden from the legend) and a band
 * between them; dragging over the chart zooms every chart to the selection. */
export function rangeOptions(range, chart, options) {
  const n = chart.fields.length;
  const extra = [];
  const bands = [];
  chart.fields.forEach((f, i) => {
    extra.push({ label: `${f.name} min`, class: "band-edge", stroke: "transparent", width: 0, points: { show: false }, spanGaps: false });
    extra.push({ label: `${f.name} max`, class: "band-edge", stroke: "transparent", width: 0, points: { show: false }, spanGaps: false });
    bands.push({ series: [n + 2 * i + 2, n + 2 * i + 1], fill: BAND_FILL[i % BAND_FILL.length] });
  });
  const fixed = (u, min, max) => {
    const b = range.bounds();
    return b || (min === max ? [min - 1, max + 1] : [min, max]);
  };
  return {
    ...options,
    series: [...options.series, ...extra],
    bands,
    scales: { ...options.scales, x: { time: true, range: fixed } },
    cursor: { ...(options.cursor || {}), drag: { x: true, y: false, setScale: false } },
    hooks: {
      ...(options.hooks || {}),
      setSelect: [(u) => {
        if (u.select.width < 4) return;
        const from = u.posToVal(u.select.left, "x"), to = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        range.zoom(from, to);
      }],
    },
  };
}

/** One host's charts in a range: the history read for it, extended by live points. */
export class HostRange {
  constructor(range, source, charts) {
    this.range = range;
    this.source = source;
    this.charts = charts;       // [{id, fields: [{name, path}]}]
    this.data = null;           // per chart: {t, avg: [[]], min: [[]], max: [[]], counts: []}
    this.step = null;
    this.tier = null;
    this.loading = 0;
    this.error = null;
    range.hosts.set(source, this);
  }

  /** Read the range from the server; `onLoaded` redraws. */
  async load(onLoaded) {
    const b = this.range.bounds();
    if (!b) { this.data = null; onLoaded(); return; }
    const token = ++this.loading;
    const paths = [...new Set(this.charts.flatMap((c) => c.fields.map((f) => f.path)))];
    const query = new URLSearchParams({ from: b[0].toFixed(3), to: b[1].toFixed(3), source: this.source, fields: paths.join(",") });
    try {
      const answer = await this.range.getJson(`/api/history/system?${query}`);
      if (token !== this.loading) return;
      this.step = answer.step;
      this.tier = answer.tier;
      this.error = null;
      this.data = this.charts.map((c) => columnsOf(answer, c));
    } catch (err) {
      if (token !== this.loading) return;
      this.error = String(err.message || err);
      this.data = this.charts.map((c) => ({ t: [], avg: c.fields.map(() => []), min: c.fields.map(() => []), max: c.fields.map(() => []), counts: [] }));
    }
    onLoaded();
  }

  /** A live point extends the right edge of a preset range (merged into the last step). */
  live(envelope, values) {
    if (this.range.spec.kind !== "relative" || !this.data || !this.step) return;
    const b = this.range.bounds();
    const t = this.tier === "live" && this.step < 1 ? envelope.ts : Math.floor(envelope.ts / this.step) * this.step;
    this.data.forEach((d, i) => {
      const row = values[i];
      const last = d.t.length - 1;
      if (last >= 0 && d.t[last] === t) {
        const n = d.counts[last] || 1;
        row.forEach((v, f) => {
          if (typeof v !== "number") return;
          d.min[f][last] = d.min[f][last] === null ? v : Math.min(d.min[f][last], v);
          d.max[f][last] = d.max[f][last] === null ? v : Math.max(d.max[f][last], v);
          d.avg[f][last] = d.avg[f][last] === null ? v : (d.avg[f][last] * n + v) / (n + 1);
        });
        d.counts[last] = n + 1;
      } else if (last < 0 || t > d.t[last]) {
        d.t.push(t);
        d.counts.push(1);
        row.forEach((v, f) => { const x = typeof v === "number" ? v : null; d.avg[f].push(x); d.min[f].push(x); d.max[f].push(x); });
      }
      while (d.t.length && d.t[0] < b[0]) {
        d.t.shift(); d.counts.shift();
        for (const arr of [...d.avg, ...d.min, ...d.max]) arr.shift();
      }
    });
  }

  /** uPlot's data for chart `i`: [t, avg..., min, max, min, max...]; live: the pushed points. */
  columns(i, liveColumns) {
    if (this.range.live || !this.data) {
      const nulls = liveColumns[0].map(() => null);
      return [...liveColumns, ...liveColumns.slice(1).flatMap(() => [nulls, nulls])];
    }
    const d = this.data[i];
    return [d.t, ...d.avg, ...d.min.flatMap((m, f) => [m, d.max[f]])];
  }

  /** What chart `i` shows, as rows: for the CSV and JSON export. */
  rows(i, liveColumns) {
    const chart = this.charts[i];
    const cols = this.columns(i, liveColumns);
    const n = chart.fields.length;
    return cols[0].map((t, r) => {
      const row = { time: new Date(t * 1000).toISOString(), t };
      chart.fields.forEach((f, k) => {
        row[`${f.name} avg`] = cols[1 + k][r];
        row[`${f.name} min`] = cols[1 + n + 2 * k][r];
        row[`${f.name} max`] = cols[2 + n + 2 * k][r];
      });
      return row;
    });
  }

  debug() {
    return { tier: this.tier, step: this.step, error: this.error,
      charts: (this.data || []).map((d) => ({ points: d.t.filter((_, r) => d.avg.some((a) => a[r] !== null)).length,
        first: d.t[0], last: d.t[d.t.length - 1] })) };
  }
}

/** A chart's columns from a history answer: each chart field sums the series of its path
 * (every interface, say); its band is the sum of their mins to the sum of their maxes. */
function columnsOf(answer, chart) {
  const series = Object.values(answer.fields);
  const pick = (path, kind) => {
    const parts = series.filter((s) => s.field === path).map((s) => s[kind]);
    return answer.t.map((_, r) => {
      let total = null;
      for (const p of parts) if (typeof p[r] === "number") total = (total ?? 0) + p[r];
      return total;
    });
  };
  return {
    t: answer.t.slice(),
    avg: chart.fields.map((f) => pick(f.path, "avg")),
    min: chart.fields.map((f) => pick(f.path, "min")),
    max: chart.fields.map((f) => pick(f.path, "max")),
    counts: answer.t.map(() => 1),
  };
}

/** CSV and JSON buttons that download what a chart shows. */
export function exportButtons(name, rows) {
  const download = (format) => {
    const data = rows();
    let body;
    if (format === "json") body = JSON.stringify(data, null, 1);
    else {
      const header = data.length ? Object.keys(data[0]) : ["time"];
      const cell = (v) => (v === null || v === undefined ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
      body = [header.join(","), ...data.map((row) => header.map((h) => cell(row[h])).join(","))].join("\n") + "\n";
    }
    const link = el("a", { href: URL.createObjectURL(new Blob([body], { type: format === "json" ? "application/json" : "text/csv" })),
      download: `${name}.${format}` });
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  };
  return el("span", { class: "export" },
    ...["csv", "json"].map((format) => {
      const b = el("button", { type: "button", class: "export-button", "data-export": format, text: format.toUpperCase() });
      b.addEventListener("click", () => download(format));
      return b;
    }));
}
