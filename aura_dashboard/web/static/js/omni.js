// The omni_monitor panel: per-host system charts and figures, GPUs, temperatures, database,
// backends and alerts.
import uPlot from "/static/vendor/uPlot.esm.js";
import { Series } from "./series.js";
import { badge, bytes, el, kv, ms, muted, num, pct, pick, replace, table, time } from "./util.js";

const COLORS = ["#5aa9ff", "#3ecf8e", "#f5b942", "#ff7ab6"];
const sum = (obj, field) => Object.values(obj || {}).reduce((t, v) => t + (v && typeof v[field] === "number" ? v[field] : 0), 0);

const CHARTS = [
  { id: "cpu-mem", title: "CPU and memory (%)", range: [0, 100], fmt: (v) => `${v.toFixed(0)}%`, fields: [
    { name: "CPU %", value: (d) => d.cpu.percent },
    { name: "memory %", value: (d) => d.memory.percent },
  ] },
  { id: "network", title: "Network", fmt: (v) => bytes(v, true), fields: [
    { name: "received", value: (d) => sum(d.network, "bytes_recv_per_s") },
    { name: "sent", value: (d) => sum(d.network, "bytes_sent_per_s") },
  ] },
  { id: "disk-io", title: "Disk I/O", fmt: (v) => bytes(v, true), fields: [
    { name: "read", value: (d) => d.disk_io.read_bytes_per_s },
    { name: "write", value: (d) => d.disk_io.write_bytes_per_s },
  ] },
];

class Host {
  constructor(source, capacity, container) {
    this.source = source;
    this.series = CHARTS.map((c) => new Series(capacity, c.fields));
    this.figures = {};
    const figure = (key, label) => {
      this.figures[key] = el("div", { class: "value", "data-metric": key, text: "–" });
      return el("div", { class: "figure" }, this.figures[key], el("div", { class: "label", text: label }));
    };
    this.updated = el("span", { class: "muted" });
    this.gapNote = el("span", { class: "gapnote" });
    this.disks = el("div");
    this.extra = el("div", { class: "muted" });
    this.chartBoxes = CHARTS.map((c) => el("div", { class: "chart", "data-chart": c.id }, el("div", { class: "title", text: c.title })));
    this.node = el("div", { class: "host", "data-source": source },
      el("div", { class: "host-head" }, el("h3", { text: source }), this.updated, this.gapNote),
      el("div", { class: "figures" }, figure("cpu-percent", "CPU"), figure("memory-percent", "memory"),
        figure("load", "load (1/5/15 min)"), figure("net", "network in / out")),
      el("div", { class: "charts" }, this.chartBoxes), el("h3", { text: "Disk usage" }), this.disks, this.extra);
    container.append(this.node);
    this.plots = CHARTS.map((c, i) => new uPlot(plotOptions(c, this.chartBoxes[i]), this.series[i].columns(), this.chartBoxes[i]));
    new ResizeObserver(() => this.plots.forEach((p, i) => p.setSize({ width: width(this.chartBoxes[i]), height: 150 })))
      .observe(this.node);
  }

  add(envelope) { this.series.forEach((s) => s.add(envelope)); }

  render() {
    this.plots.forEach((plot, i) => plot.setData(this.series[i].columns()));
    const last = this.series[0].latest();
    const epochs = this.series[0].epochs();
    this.gapNote.textContent = epochs > 1 ? `data lost across ${epochs - 1} break(s) (shown as gaps)` : "";
    if (!last) return;
    const d = this.lastData || {};
    this.figures["cpu-percent"].textContent = pct(d.cpu && d.cpu.percent);
    this.figures["memory-percent"].textContent = pct(d.memory && d.memory.percent);
    const load = d.cpu && d.cpu.load_avg;
    this.figures.load.textContent = Array.isArray(load) ? load.map((v) => num(v, 2)).join(" ") : "–";
    this.figures.net.textContent = `${bytes(sum(d.network, "bytes_recv_per_s"), true)} / ${bytes(sum(d.network, "bytes_sent_per_s"), true)}`;
    this.updated.textContent = `updated ${time(this.lastTs)} · ${d.cpu ? d.cpu.count : "?"} CPUs · ${bytes(d.memory && d.memory.total)} RAM`;
    const disks = Object.entries(d.disk || {}).map(([path, u]) => el("div", { class: "disk" },
      el("span", { text: path }),
      el("div", { class: `bar ${u.percent >= 90 ? "bad" : u.percent >= 75 ? "warn" : ""}` }, el("span", { style: `width:${Math.min(100, u.percent)}%` })),
      el("span", { class: "muted", text: `${pct(u.percent)} of ${bytes(u.total)}` })));
    for (const path of d.disk_missing || []) disks.push(el("div", { class: "disk" }, el("span", { text: path }), muted("path not found"), el("span")));
    replace(this.disks, disks.length ? disks : [muted("no disk paths monitored")]);
    const cg = d.cgroup;
    this.extra.textContent = cg ? `container limits: CPU ${num(cg.cpu_limit_cores, 2)} cores (${pct(cg.cpu_percent_of_limit)} used), memory ${bytes(cg.memory_limit_bytes)} (${pct(cg.memory_percent_of_limit)} used)` : "";
  }
}

function width(box) { return Math.max(200, box.clientWidth || 300); }

function plotOptions(chart, box) {
  const axis = { stroke: "#8a94a3", grid: { stroke: "#2a303b", width: 1 }, ticks: { stroke: "#2a303b" } };
  return {
    width: width(box), height: 150,
    series: [{}, ...chart.fields.map((f, i) => ({ label: f.name, stroke: COLORS[i], width: 1.5, spanGaps: false,
      fill: i === 0 ? "rgba(90,169,255,0.08)" : undefined, value: (u, v) => (v === null ? "–" : chart.fmt(v)) }))],
    scales: { y: chart.range ? { range: chart.range } : { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [axis, { ...axis, size: 84, values: (u, splits) => splits.map((v) => chart.fmt(v)) }],
    cursor: { drag: { x: false, y: false } },
  };
}

export class OmniPanel {
  constructor(capacity) {
    this.capacity = capacity;
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
          if (!this.hosts.size) container.replaceChildren();
          host = new Host(source, this.capacity, container);
          this.hosts.set(source, host);
        }
        host.add(envelope);
        if (!host.lastTs || envelope.ts >= host.lastTs) { host.lastTs = envelope.ts; host.lastData = envelope.data || {}; }
        this.dirty.add(host);
      }
    } else if (stream === "alerts") {
      for (const envelope of list) {
        const alert = envelope.data || {};
        this.alerts.set(`${envelope.source}|${alert.id}`, { ...alert, source: envelope.source, ts: envelope.ts });
      }
      this.dirty.add("alerts");
    } else {
      for (const envelope of list) (this.latest[stream] ||= {})[envelope.source || "unknown"] = envelope;
      this.dirty.add(stream);
    }
    this.schedule();
  }

  unavailable(stream, error) {
    const text = `not available: ${error.code}${error.message ? ` (${error.message})` : ""}`;
    const target = stream === "system" ? "hosts" : stream;
    replace(target, muted(text));
    const node = document.getElementById(target);
    if (node) node.dataset.unavailable = error.code;
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
    if (stream === "gpu") replace("gpu", bySource.map(([s, e]) => block(s, gpu(e.data))));
    if (stream === "temperature") replace("temperature", bySource.map(([s, e]) => block(s, temperature(e.data))));
    if (stream === "database") replace("database", bySource.map(([s, e]) => block(s, database(e.data))));
    if (stream === "backends") replace("backends", bySource.map(([s, e]) => block(s, backends(e.data))));
    if (stream === "alerts") this.renderAlerts();
  }

  renderAlerts() {
    const all = [...this.alerts.values()].sort((a, b) =>
      (a.state === "firing" ? 0 : 1) - (b.state === "firing" ? 0 : 1) || b.ts - a.ts);
    if (!all.length) { replace("alerts", muted("no alerts")); return; }
    replace("alerts", table([
      { label: "state", value: (a) => badge(a.state, a.state === "firing" ? "bad" : "ok") },
      { label: "severity", value: (a) => badge(a.severity || "–", a.severity === "critical" ? "bad" : "warn") },
      { label: "alert", value: (a) => a.message || a.id },
      { label: "value", num: true, value: (a) => num(a.value) },
      { label: "threshold", num: true, value: (a) => num(a.threshold) },
      { label: "host", value: (a) => a.source },
      { label: "since", value: (a) => time(a.ts) },
    ], all.slice(0, 50)));
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

function gpu(data) {
  if (!Array.isArray(data)) return data && data.available === false
    ? el("div", {}, badge("no GPU", "neutral"), " ", muted(data.reason || "")) : kv(data);
  if (!data.length) return muted("no GPU");
  return table([
    { label: "#", value: (g) => g.index },
    { label: "name", value: (g) => g.name },
    { label: "util", num: true, value: (g) => pct(g.utilization_percent) },
    { label: "memory", num: true, value: (g) => `${bytes(g.memory_used)} / ${bytes(g.memory_total)}` },
    { label: "temp", num: true, value: (g) => (typeof g.temperature_c === "number" ? `${g.temperature_c} °C` : "–") },
    { label: "power", num: true, value: (g) => (typeof g.power_w === "number" ? `${num(g.power_w)} W` : "–") },
    { label: "procs", num: true, value: (g) => (Array.isArray(g.processes) ? g.processes.length : "–") },
  ], data);
}

function temperature(data) {
  if (!data || data.available === false) return unavailableNote(data || {});
  const sensors = data.sensors || data;
  const rows = [];
  for (const [chip, labels] of Object.entries(sensors)) {
    if (!labels || typeof labels !== "object") continue;
    for (const [label, value] of Object.entries(labels)) {
      const c = typeof value === "number" ? value : pick(value, ["current", "celsius"]);
      rows.push({ chip, label, c });
    }
  }
  if (!rows.length) return muted("no sensors");
  return table([{ label: "chip", value: (r) => r.chip }, { label: "sensor", value: (r) => r.label },
    { label: "°C", num: true, value: (r) => num(r.c) }], rows);
}

function database(data) {
  if (!data) return muted("no data");
  return el("div", {},
    el("div", {}, badge(data.status || "unknown"), " ", el("span", { class: "muted", text: ms(data.latency_ms) })),
    el("div", { class: "kv", style: "margin-top:6px" },
      ...[["connections", `${data.connections ?? "–"} / ${data.max_connections ?? "–"}`],
        ["size", bytes(data.size_bytes)], ["transactions/s", num(data.transactions_per_s)],
        ["cache hit ratio", typeof data.cache_hit_ratio === "number" ? pct(data.cache_hit_ratio * (data.cache_hit_ratio <= 1 ? 100 : 1)) : "–"],
        ["longest query", typeof data.longest_query_s === "number" ? `${num(data.longest_query_s, 2)} s` : "–"],
        ...(data.reason || data.error ? [["reason", data.reason || data.error]] : [])]
        .flatMap(([k, v]) => [el("span", { class: "k", text: k }), el("span", { class: "v", text: v })])));
}

function backends(data) {
  const all = (data && (data.backends || data)) || {};
  const entries = Array.isArray(all) ? all.map((b) => [b.name || b.id, b]) : Object.entries(all).filter(([, b]) => b && typeof b === "object");
  if (!entries.length) return muted("no backends");
  return table([
    { label: "backend", value: ([name]) => name },
    { label: "status", value: ([, b]) => badge(b.status) },
    { label: "latency", num: true, value: ([, b]) => ms(b.latency_ms) },
    { label: "HTTP", num: true, value: ([, b]) => b.http_status ?? "–" },
    { label: "errors", num: true, value: ([, b]) => (typeof b.error_rate === "number" ? pct(b.error_rate * (b.error_rate <= 1 ? 100 : 1)) : "–") },
    { label: "last ok", value: ([, b]) => (typeof b.last_ok === "number" ? time(b.last_ok) : b.last_ok || "–") },
  ], entries);
}
