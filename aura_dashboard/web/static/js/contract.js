// The stream contract as the server declares it (GET /api/streams): every panel with its
// streams, and every stream's fields with unit and meaning. The page keeps no table of its own
// and formats every value by its declared unit, never by guessing from a name or a magnitude.

const DIGITS = { percent: 1, watts: 1, celsius: 1, cores: 2, "1/s": 2, s: 2 };

/** `value` formatted for people, by the contract's unit. */
export function formatValue(value, unit) {
  if (value === null || value === undefined) return "–";
  switch (unit) {
    case "percent": return typeof value === "number" ? `${value.toFixed(DIGITS.percent)} %` : "–";
    case "ratio": return typeof value === "number" ? `${(value * 100).toFixed(1)} %` : "–";
    case "bytes": return bytes(value);
    case "bytes/s": return bytes(value, true);
    case "1/s": return typeof value === "number" ? `${value.toFixed(DIGITS["1/s"])} /s` : "–";
    case "ms": return typeof value === "number" ? (value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 1 : 0)} ms`) : "–";
    case "s": return typeof value === "number" ? `${value.toFixed(DIGITS.s)} s` : "–";
    case "celsius": return typeof value === "number" ? `${value.toFixed(DIGITS.celsius)} °C` : "–";
    case "watts": return typeof value === "number" ? `${value.toFixed(DIGITS.watts)} W` : "–";
    case "cores": return typeof value === "number" ? `${value.toFixed(DIGITS.cores)} cores` : "–";
    case "count": return typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toFixed(2)) : "–";
    case "unix_time": return typeof value === "number" ? new Date(value * 1000).toLocaleTimeString([], { hour12: false }) : "–";
    case "flag": return value ? "yes" : "no";
    case "object": return typeof value === "object" ? JSON.stringify(value) : String(value);
    default: return String(value);  // status, text, id
  }
}

/** An axis tick: like `formatValue`, without the decimals a round tick does not need
 * ("512 KiB/s", "1 MiB/s", "50 %"). */
export function axisValue(value, unit) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "";
  if (unit === "bytes" || unit === "bytes/s") {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = value, i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${+v.toFixed(2)} ${units[i]}${unit === "bytes/s" ? "/s" : ""}`;
  }
  if (unit === "percent") return `${+value.toFixed(1)} %`;
  if (unit === "ratio") return `${+(value * 100).toFixed(1)} %`;
  if (unit === "ms") return value >= 1000 ? `${+(value / 1000).toFixed(2)} s` : `${+value.toFixed(1)} ms`;
  return formatValue(value, unit);
}

/** Tick steps for an axis in `unit`: powers of 1024 for bytes (so ticks land on 256 KiB, 1 MiB). */
export function axisSteps(unit) {
  if (unit !== "bytes" && unit !== "bytes/s") return undefined;
  const steps = [];
  for (let k = 0; k <= 4; k += 1) for (const m of [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]) steps.push(m * 1024 ** k);
  return steps;
}

export function bytes(value, perSecond = false) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = value, i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}${perSecond ? "/s" : ""}`;
}

export class Contract {
  constructor(described) {
    this.update(described);
  }

  /** A newer description (a flag changed): which panels and streams are on now. */
  update(described) {
    this.panels = described.panels;
    this.streams = new Map(described.streams.map((s) => [s.name, s]));
    this.fields = new Map();
    for (const stream of described.streams) {
      for (const field of stream.fields) this.fields.set(`${stream.name} ${field.path}`, field);
    }
  }

  /** Whether `stream` runs now (its switches and its feature flag). */
  isOn(stream) { const s = this.streams.get(stream); return !s || s.on !== false; }

  field(stream, path) { return this.fields.get(`${stream} ${path}`); }

  /** The unit of a field; a field the contract does not declare is a bug, said in the console once. */
  unit(stream, path) {
    const field = this.field(stream, path);
    if (!field) {
      console.warn(`no field ${path} in the ${stream} stream's contract`);
      this.fields.set(`${stream} ${path}`, { path, unit: "text", meaning: path });
      return "text";
    }
    return field.unit;
  }

  format(stream, path, value) { return formatValue(value, this.unit(stream, path)); }

  meaning(stream, path) { return (this.field(stream, path) || { meaning: path }).meaning; }

  intervalMs(stream) { return (this.streams.get(stream) || {}).interval_ms ?? null; }

  /** The declared scalar fields of `stream` directly under `prefix` (no `*` or `[]`). */
  scalars(stream, prefix = "") {
    const s = this.streams.get(stream);
    if (!s) return [];
    return s.fields.filter((f) => f.path.startsWith(prefix) && !/[*[]/.test(f.path.slice(prefix.length))
      && !f.path.slice(prefix.length).includes(".") && f.unit !== "object");
  }
}
