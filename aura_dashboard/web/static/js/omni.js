// The omni_monitor panel: per-host system charts and figures, GPUs, temperatures, database,
// backends and alerts.
import uPlot from "/static/vendor/uPlot.esm.min.js";
import { axisSteps, axisValue, formatValue } from "./contract.js";
import { HostRange, exportButtons, rangeOptions } from "./range.js";
import { Series } from "./series.js";
import { Cards } from "./cards.js";
import { palette } from "./theme.js";
import { announce, badge, el, fieldGrid, muted, replace, stamp, stateNote, table, time } from "./util.js";

const BASE_TITLE = document.title;
// "backend_down:ml" → "ml": alerts from servers before `target` was sent.
const targetOf = (id) => (String(id).includes(":") ? String(id).split(":").slice(1).join(":") : "");
const COLORS = ["#5aa9ff", "#3ecf8e", "#f5b942", "#ff7ab6"];
const sum = (obj, field) => Object.values(obj || {}).reduce((t, v) => t + (v && typeof v[field] === "number" ? v[field] : 0), 0);

// Each chart names the contract fields it draws (`path`: the series its history reads; a
// wildcard path is summed); the axis and legend format by their unit.
const CHARTS = [
  { id: "cpu-mem", title: "CPU and memory (%)", range: [0, 100], unit: "cpu.percent",
    thresholds: [{ key: "cpu_percent", label: "CPU limit" }, { key: "memory_percent", label: "memory limit" }], fields: [
    { name: "CPU %", path: "cpu.percent", value: (d) => d.cpu.percent },
    { name: "memory %", path: "memory.percent", value: (d) => d.memory.percent },
  ] },
  { id: "network", title: "Network", unit: "network.*.bytes_recv_per_s", fields: [
    { name: "received", path: "network.*.bytes_recv_per_s", value: (d) => sum(d.network, "bytes_recv_per_s") },
    { name: "sent", path: "network.*.bytes_sent_per_s", value: (d) => sum(d.network, "bytes_sent_per_s") },
  ] },
  { id: "disk-io", title: "Disk I/O", unit: "disk_io.read_bytes_per_s", fields: [
    { name: "read", path: "disk_io.read_bytes_per_s", value: (d) => d.disk_io.read_bytes_per_s },
    { name: "write", path: "disk_io.write_bytes_per_s", value: (d) => d.disk_io.write_bytes_per_s },
  ] },
];

class Host {
  constructor(contract, source, capacity, container, range, limits, moments) {
    this.contract = contract;
    this.limits = limits || {};
    this.source = source;
    this.series = CHARTS.map((c) => new Series(capacity, c.fields));
    this.range = new HostRange(range, source, CHARTS);
    this.figures = {};
    const figure = (key, label) => {
      this.figures[key] = el("div", { class: "value", "data-metric": key, text: "–" });
      return el("div", { class: "figure" }, this.figures[key], el("div", { class: "label", text: label }));
    };
    this.updated = el("span", { class: "muted" });
    this.gapNote = el("span", { class: "gapnote" });
    this.cores = el("div", { class: "cores", "aria-label": "CPU per core" });
    this.disks = el("div");
    this.extra = el("div", { class: "muted" });
    this.chartBoxes = CHARTS.map((c, i) => el("div", { class: "chart", "data-chart": c.id }, el("div", { class: "title", text: c.title },
      exportButtons(`aura-${source}-${c.id}`, () => this.range.rows(i, this.series[i].columns())))));
    this.node = el("div", { class: "host", "data-source": source },
      el("div", { class: "host-head" }, el("h3", { text: source }), this.updated, this.gapNote),
      el("div", { class: "figures" }, figure("cpu-percent", "CPU"), figure("memory-percent", "memory"),
        figure("load", "load (1/5/15 min)"), figure("net", "network in / out")),
      this.cores, el("div", { class: "charts" }, this.chartBoxes), el("h3", { text: "Disk usage" }), this.disks, this.extra);
    container.append(this.node);
    this.plots = CHARTS.map((c, i) => new uPlot(rangeOptions(range, c, plotOptions(c, contract.unit("system", c.unit), this.chartBoxes[i], limits, moments)),
      this.range.columns(i, this.series[i].columns()), this.chartBoxes[i]));
    // A chart is a picture to a screen reader: its name and the values it ends on.
    this.plots.forEach((p) => p.root.querySelector("canvas").setAttribute("role", "img"));
    range.onChange(() => this.range.load(() => this.render()));
    this.range.load(() => this.render());
    new ResizeObserver(() => this.plots.forEach((p, i) => p.setSize({ width: width(this.chartBoxes[i]), height: 150 })))
      .observe(this.node);
  }

  add(envelope) {
    this.series.forEach((s) => s.add(envelope));
    this.range.live(envelope, CHARTS.map((c) => c.fields.map((f) => { try { return f.value(envelope.data); } catch { return null; } })));
  }

  render() {
    this.plots.forEach((plot, i) => plot.setData(this.range.columns(i, this.series[i].columns())));
    const last = this.series[0].latest();
    const epochs = this.series[0].epochs();
    this.gapNote.textContent = epochs > 1 ? `data lost across ${epochs - 1} break(s) (shown as gaps)` : "";
    if (!last) return;
    stamp(this.node, "system", this.lastTs);
    this.plots.forEach((plot, i) => {
      const now = this.series[i].latest();
      const unit = this.contract.unit("system", CHARTS[i].unit);
      plot.root.querySelector("canvas").setAttribute("aria-label", `${CHARTS[i].title} chart of ${this.source}; now ${
        CHARTS[i].fields.map((f, j) => `${f.name} ${formatValue(now ? now.values[j] : null, unit)}`).join(", ")}`);
    });
    const d = this.lastData || {};
    const f = (path, value) => this.contract.format("system", path, value);
    this.figures["cpu-percent"].textContent = f("cpu.percent", d.cpu && d.cpu.percent);
    this.figures["memory-percent"].textContent = f("memory.percent", d.memory && d.memory.percent);
    const load = d.cpu && d.cpu.load_avg;
    this.figures.load.textContent = Array.isArray(load) ? load.map((v) => v.toFixed(2)).join(" ") : "–";
    this.figures.net.textContent = `${f("network.*.bytes_recv_per_s", sum(d.network, "bytes_recv_per_s"))} / ${f("network.*.bytes_sent_per_s", sum(d.network, "bytes_sent_per_s"))}`;
    this.updated.textContent = `updated ${time(this.lastTs)} · ${d.cpu ? d.cpu.count : "?"} CPUs · ${f("memory.total", d.memory && d.memory.total)} RAM`;
    // Per core, when monitoring.system.cpu.include_per_cpu sends them.
    const cores = d.cpu && Array.isArray(d.cpu.per_cpu) ? d.cpu.per_cpu : [];
    replace(this.cores, cores.map((v, i) => el("div", { class: "core", title: `CPU ${i}: ${f("cpu.per_cpu[]", v)}` },
      el("div", { class: `bar ${v >= (this.limits.cpu_percent ?? 101) ? "bad" : ""}` }, el("span", { style: `width:${Math.min(100, v)}%` })),
      el("span", { class: "muted", text: `${i} · ${f("cpu.per_cpu[]", v)}` }))));
    const disks = Object.entries(d.disk || {}).map(([path, u]) => el("div", { class: "disk" },
      el("span", { text: path }),
      el("div", { class: `bar ${u.percent >= 90 ? "bad" : u.percent >= 75 ? "warn" : ""}` }, el("span", { style: `width:${Math.min(100, u.percent)}%` })),
      el("span", { class: "muted", text: `${f("disk.*.percent", u.percent)} of ${f("disk.*.total", u.total)}` })));
    for (const path of d.disk_missing || []) disks.push(el("div", { class: "disk" }, el("span", { text: path }), muted("path not found"), el("span")));
    replace(this.disks, disks.length ? disks : [muted("no disk paths monitored")]);
    const cg = d.cgroup;
    this.extra.textContent = cg ? `container limits: CPU ${f("cgroup.cpu_limit_cores", cg.cpu_limit_cores)} (${f("cgroup.cpu_percent_of_limit", cg.cpu_percent_of_limit)} used), memory ${f("cgroup.memory_limit_bytes", cg.memory_limit_bytes)} (${f("cgroup.memory_percent_of_limit", cg.memory_percent_of_limit)} used)` : "";
  }
}

function width(box) { return Math.max(200, box.clientWidth || 300); }

// A line of odd width drawn on a whole pixel coordinate straddles two pixels, each half as
// strong (a faint blur); half a pixel over, it fills the pixel `v` exactly.
const crisp = (v, lineWidth) => (lineWidth % 2 ? v + 0.5 : v);

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
  86400, 172800, 604800, 2592000];

const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });

function plotOptions(chart, unit, box, limits, moments = () => []) {
  const axis = { stroke: () => palette().muted, grid: { stroke: () => palette().line, width: 1 }, ticks: { stroke: () => palette().line } };
  const lines = (chart.thresholds || []).map((t) => ({ ...t, value: limits[t.key] })).filter((t) => typeof t.value === "number");
  return {
    width: width(box), height: 150,
    series: [{ value: (u, v) => (v == null ? "–" : clock(v)) }, ...chart.fields.map((f, i) => ({ label: f.name, stroke: COLORS[i], width: 1.5, spanGaps: false,
      fill: i === 0 ? "rgba(90,169,255,0.08)" : undefined, value: (u, v) => formatValue(v, unit) }))],
    scales: { y: chart.range ? { range: chart.range } : { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    // Ticks on whole seconds at least: the labels have seconds, so finer ones repeated a label.
    axes: [{ ...axis, space: 70, incrs: TIME_STEPS, values: (u, splits) => (u.timeTicks = splits.map(clock)) },
      { ...axis, size: 76, incrs: axisSteps(unit), values: (u, splits) => splits.map((v) => axisValue(v, unit)) }],
    // One cursor across every chart: the same moment everywhere.
    cursor: { drag: { x: false, y: false }, sync: { key: "aura-charts" } },
    hooks: {
      // The configured thresholds (monitoring.thresholds) as dashed lines.
      draw: [(u) => {
        const ctx = u.ctx;
        // What this draw put on the canvas, in canvas pixels (window.aura.charts() shows it;
        // the browser tests read the canvas there).
        const drawn = { thresholds: [], marks: [] };
        u.drawn = drawn;
        // The moments alerts of this host fired: a thin mark, red for critical.
        const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
        for (const m of moments()) {
          if (!(m.ts >= xmin && m.ts <= xmax)) continue;
          const x = Math.round(u.valToPos(m.ts, "x", true));
          drawn.marks.push({ ts: m.ts, severity: m.severity, x, top: u.bbox.top, height: u.bbox.height });
          ctx.save();
          ctx.strokeStyle = m.severity === "critical" ? palette().bad : palette().warn;
          ctx.globalAlpha = 0.7;
          ctx.lineWidth = Math.max(1, Math.round(devicePixelRatio));
          ctx.beginPath();
          ctx.moveTo(crisp(x, ctx.lineWidth), u.bbox.top);
          ctx.lineTo(crisp(x, ctx.lineWidth), u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        }
        const ys = lines.map((line) => Math.round(u.valToPos(line.value, "y", true)));
        const textHeight = 11 * devicePixelRatio, gap = 3 * devicePixelRatio;
        lines.forEach((line, i) => {
          const y = ys[i];
          // The label sits above its line, unless another line would cross it there (two
          // limits close together, 80 % and 85 %): then below.
          const crossed = ys.some((other, j) => j !== i && other < y && other >= y - gap - textHeight - 1);
          const baseline = crossed ? y + gap + textHeight : y - gap;
          const text = `${line.label} ${line.value} %`;
          ctx.save();
          ctx.strokeStyle = palette().bad;
          ctx.lineWidth = Math.max(1, Math.round(devicePixelRatio));
          ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(u.bbox.left, crisp(y, ctx.lineWidth));
          ctx.lineTo(u.bbox.left + u.bbox.width, crisp(y, ctx.lineWidth));
          ctx.stroke();
          ctx.fillStyle = palette().bad;
          ctx.font = `${textHeight}px sans-serif`;
          // Labels alternate left and right, so two limits close together stay readable.
          ctx.textAlign = i % 2 ? "right" : "left";
          const x = i % 2 ? u.bbox.left + u.bbox.width - 4 * devicePixelRatio : u.bbox.left + 4 * devicePixelRatio;
          ctx.fillText(text, x, baseline);
          const w = ctx.measureText(text).width;
          drawn.thresholds.push({ key: line.key, value: line.value, y, left: u.bbox.left, width: u.bbox.width,
            label: { left: i % 2 ? x - w : x, right: i % 2 ? x : x + w, top: baseline - textHeight, bottom: baseline } });
          ctx.restore();
        });
      }],
    },
  };
}

export class OmniPanel extends Cards {
  /** @param limits  monitoring.thresholds (the charts draw them) */
  constructor(contract, capacity, range, limits = {}) {
    super(contract, { system: "hosts" }, { alerts: "no alerts firing" });
    this.limits = limits;
    this.charted = new Set(["system"]);
    this.capacity = capacity;
    this.range = range;
    this.hosts = new Map();
    this.alerts = new Map();
    this.latest = {};       // stream -> {source -> envelope}
    this.dirty = new Set();
  }

  envelopes(stream, list, info) {
    if (stream === "system") {
      for (const envelope of list) {
        const source = envelope.source || "unknown";
        let host = this.hosts.get(source);
        if (!host) {
          const container = document.getElementById("hosts");
          if (!this.hosts.size) { container.replaceChildren(); container.dataset.state = "ready"; }
          host = new Host(this.contract, source, this.capacity, container, this.range, this.limits,
            () => this.alertMoments(source));
          this.hosts.set(source, host);
          this.offerHosts();
        }
        host.add(envelope);
        if (!host.lastTs || envelope.ts >= host.lastTs) { host.lastTs = envelope.ts; host.lastData = envelope.data || {}; }
        this.dirty.add(host);
      }
    } else if (stream === "alerts") {
      for (const envelope of list) {
        const alert = envelope.data || {};
        const key = `${envelope.source}|${alert.id}`;
        const before = this.alerts.get(key);
        if (!info.history && alert.state === "firing" && (!before || before.state !== "firing")) {
          announce(`Alert: ${alert.message}`);
        }
        this.alerts.set(`${envelope.source}|${alert.id}`, { ...alert, source: envelope.source, ts: envelope.ts });
      }
      this.dirty.add("alerts");
    } else {
      if (stream === "backends" && list.length && this.onBackends) this.onBackends(list[list.length - 1].data);
      for (const envelope of list) (this.latest[stream] ||= {})[envelope.source || "unknown"] = envelope;
      this.dirty.add(stream);
    }
    this.schedule();
  }

  unavailable(stream, error) {
    if (stream === "system" && this.hosts.size) {
      // Keep the hosts (their charts and last figures, marked stale) and say why they stopped.
      const note = document.getElementById("hosts-note");
      note.hidden = false;
      note.dataset.state = error.code === "stream_disabled" ? "disabled" : "error";
      note.textContent = error.code === "stream_disabled"
        ? "System monitoring is switched off: the figures below are the last ones sampled."
        : `System figures not available: ${error.message || error.code}`;
      return;
    }
    super.unavailable(stream, error);
  }

  /** Data flows again: the note about a stream switched off goes. */
  available(stream) {
    if (stream === "system") document.getElementById("hosts-note").hidden = true;
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      for (const item of this.dirty) {
        if (item instanceof Host) item.render();
        else this.renderStream(item);
      }
      this.dirty.clear();
    });
  }

  renderStream(stream) {
    const bySource = Object.entries(this.latest[stream] || {});
    const multi = bySource.length > 1;
    const block = (source, node) => (multi ? el("div", {}, el("h3", { text: source }), node) : node);
    const c = this.contract;
    if (stream === "gpu") replace("gpu", bySource.map(([s, e]) => block(s, gpu(c, e.data))));
    if (stream === "temperature") replace("temperature", bySource.map(([s, e]) => block(s, temperature(c, e.data))));
    if (stream === "database") replace("database", bySource.map(([s, e]) => block(s, database(c, e.data))));
    if (stream === "backends") replace("backends", bySource.map(([s, e]) => block(s, backends(c, e.data))));
    if (stream === "dashboard") replace("dashboard", bySource.map(([s, e]) => block(s, itself(c, e.data))));
    if (stream === "alerts") this.renderAlerts();
    else if (bySource.length) stamp(stream, stream, Math.min(...bySource.map(([, e]) => e.ts)));
  }

  renderAlerts() {
    const all = [...this.alerts.values()];
    const firing = all.filter((a) => a.state === "firing")
      .sort((a, b) => (b.severity === "critical") - (a.severity === "critical") || b.since - a.since);
    const resolved = all.filter((a) => a.state !== "firing").sort((a, b) => b.ts - a.ts).slice(0, 50);
    const count = document.getElementById("alert-count");
    count.hidden = !firing.length;
    count.textContent = `${firing.length} alert${firing.length === 1 ? "" : "s"} firing`;
    count.className = `badge ${firing.some((a) => a.severity === "critical") ? "bad" : "warn"}`;
    document.title = firing.length ? `(${firing.length}) ${BASE_TITLE}` : BASE_TITLE;
    this.redraw();  // the charts' alert marks
    if (!all.length) { stateNote("alerts", "empty", "no alerts firing"); return; }
    const row = (a) => el("div", { class: `alert ${a.state} sev-${a.severity}`, "data-alert": a.id },
      el("div", { class: "alert-head" },
        badge(a.severity, a.state !== "firing" ? "neutral" : a.severity === "critical" ? "bad" : "warn"),
        el("strong", { class: "alert-target", text: a.target || targetOf(a.id) || a.source || "" }),
        el("span", { class: "alert-message", text: a.message }),
        a.state === "firing"
          ? el("span", { class: "muted" }, "firing for ", el("span", { "data-since": a.since, text: "…" }))
          : el("span", { class: "muted", text: `resolved ${time(a.ts)}` }),
        this.multiHost() ? el("span", { class: "muted", text: `on ${a.source}` }) : null),
      a.detail ? this.toggle(`detail|${a.source}|${a.id}`, el("details", { class: "alert-detail" },
        el("summary", { text: "details" }), el("code", { text: a.detail }))) : null);
    replace("alerts",
      firing.length ? firing.map(row) : el("p", { class: "state empty", text: "no alerts firing" }),
      resolved.length ? this.toggle("resolved", el("details", { class: "resolved-list" },
        el("summary", { text: `${resolved.length} resolved` }), resolved.map(row))) : null);
  }

  /** A <details> that stays open (or closed) across renders. */
  toggle(key, details) {
    this.open ||= new Set();
    details.open = this.open.has(key);
    details.addEventListener("toggle", () => (details.open ? this.open.add(key) : this.open.delete(key)));
    return details;
  }

  multiHost() { return this.hosts.size > 1; }

  /** In a cluster, a picker: every host, or one. */
  offerHosts() {
    const picker = document.getElementById("host-picker");
    if (!picker.dataset.wired) {
      picker.dataset.wired = "true";
      picker.addEventListener("change", () => this.showHosts());
    }
    const picked = picker.value || "";
    picker.replaceChildren(el("option", { value: "", text: `all ${this.hosts.size} hosts` }),
      ...[...this.hosts.keys()].sort().map((source) => el("option", { value: source, text: source })));
    picker.value = this.hosts.has(picked) ? picked : "";
    picker.parentElement.hidden = this.hosts.size < 2;
    this.showHosts();
  }

  showHosts() {
    const picked = document.getElementById("host-picker").value;
    for (const [source, host] of this.hosts) host.node.hidden = !!picked && source !== picked;
  }

  /** When this host's alerts fired (the charts mark them). */
  alertMoments(source) {
    return [...this.alerts.values()].filter((a) => a.source === source && typeof a.since === "number")
      .map((a) => ({ ts: a.since, severity: a.severity }));
  }

  /** The theme changed, or the alert marks: charts draw again, as they are. (uPlot's redraw()
   * with its default sets the x range again to the one it had, undoing a setData of the same
   * frame; redraw(false) only paints.) */
  redraw() { for (const host of this.hosts.values()) host.plots.forEach((p) => p.redraw(false)); }

  /** Each host's charts: the cursor-sync key, and what the last draw put on the canvas. */
  charts() {
    const hosts = {};
    for (const [source, host] of this.hosts) {
      hosts[source] = host.plots.map((p, i) => ({ id: CHARTS[i].id, sync: p.cursor.sync && p.cursor.sync.key,
        cursor: p.cursor.left, timeTicks: p.timeTicks || [], ...(p.drawn || { thresholds: [], marks: [] }) }));
    }
    return hosts;
  }

  debug() {
    const hosts = {};
    for (const [source, host] of this.hosts) {
      hosts[source] = { points: host.series[0].points.length, seqs: host.series[0].seqs(),
        epochs: host.series[0].epochs(), cpu: host.figures["cpu-percent"].textContent };
    }
    return hosts;
  }
}

function unavailableNote(data) {
  return el("div", {}, badge("not available", "neutral"), " ", muted(data.reason || ""));
}

function gpu(c, data) {
  if (!Array.isArray(data)) return el("div", {}, badge("no GPU", "neutral"), " ", muted(data.reason));
  if (!data.length) return muted("no GPU");
  const f = (path) => (g) => c.format("gpu", `[].${path}`, g[path]);
  return table([
    { label: "#", value: (g) => g.index },
    { label: "name", value: (g) => g.name },
    { label: "util", num: true, value: f("utilization_percent") },
    { label: "memory", num: true, value: (g) => `${c.format("gpu", "[].memory_used", g.memory_used)} / ${c.format("gpu", "[].memory_total", g.memory_total)}` },
    { label: "temp", num: true, value: f("temperature_c") },
    { label: "power", num: true, value: f("power_w") },
    { label: "procs", num: true, value: (g) => (Array.isArray(g.processes) ? g.processes.length : "–") },
  ], data);
}

function temperature(c, data) {
  if (data.available === false) return unavailableNote(data);
  const rows = [];
  for (const [chip, labels] of Object.entries(data.sensors)) {
    for (const [label, value] of Object.entries(labels)) rows.push({ chip, label, value });
  }
  if (!rows.length) return muted("no sensors");
  return table([{ label: "chip", value: (r) => r.chip }, { label: "sensor", value: (r) => r.label },
    { label: "temperature", num: true, value: (r) => c.format("temperature", "sensors.*.*", r.value) }], rows);
}

function database(c, data) {
  return el("div", {},
    el("div", {}, badge(data.status), " ", el("span", { class: "muted", text: c.format("database", "latency_ms", data.latency_ms) })),
    fieldGrid(c, "database", { ...data, status: undefined, latency_ms: undefined }));
}

function backends(c, data) {
  const entries = Object.entries(data);
  if (!entries.length) return muted("no backends");
  const f = (path) => ([, b]) => c.format("backends", `*.${path}`, b[path]);
  return table([
    { label: "backend", value: ([name]) => name },
    { label: "status", value: ([, b]) => badge(b.status) },
    { label: "latency", num: true, value: f("latency_ms") },
    { label: "HTTP", num: true, value: f("http_status") },
    { label: "errors", num: true, value: f("error_rate") },
    { label: "last ok", value: f("last_ok") },
  ], entries);
}

function itself(c, data) {
  const clients = Object.values(data.clients).reduce((t, n) => t + n, 0);
  return el("div", {}, fieldGrid(c, "dashboard", data.process, "process."),
    fieldGrid(c, "dashboard", data),
    el("div", { class: "muted", text: `${clients} client connection(s) · ${Object.values(data.mailboxes).reduce((t, n) => t + n, 0)} value(s) waiting for slow listeners` }));
}
