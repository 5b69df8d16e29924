// Per-host time series for the charts: points kept in (epoch, seq) order, at most `capacity`,
// with a break (nulls) where an epoch ends, so a chart never draws a line across lost data.

export class Series {
  constructor(capacity, fields) {
    this.capacity = capacity;
    this.fields = fields;      // [{name, value: (data) => number|null}]
    this.points = [];          // {epoch, seq, ts, values: []}
    this.gaps = 0;
  }

  add(envelope) {
    const point = { epoch: envelope.epoch || 0, seq: envelope.seq, ts: envelope.ts,
      values: this.fields.map((f) => { try { const v = f.value(envelope.data); return typeof v === "number" ? v : null; } catch { return null; } }) };
    let i = this.points.length;
    while (i > 0 && before(point, this.points[i - 1])) i -= 1;
    const prev = this.points[i - 1];
    if (prev && prev.epoch === point.epoch && prev.seq === point.seq) return false;  // duplicate
    this.points.splice(i, 0, point);
    if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity);
    return true;
  }

  /** uPlot's columns: time, then one array per field; a null row where an epoch changes. */
  columns() {
    const cols = [[], ...this.fields.map(() => [])];
    let previous = null;
    for (const p of this.points) {
      if (previous && previous.epoch !== p.epoch) {
        cols[0].push((previous.ts + p.ts) / 2);
        for (let f = 0; f < this.fields.length; f += 1) cols[f + 1].push(null);
      }
      cols[0].push(p.ts);
      p.values.forEach((v, f) => cols[f + 1].push(v));
      previous = p;
    }
    return cols;
  }

  epochs() { return new Set(this.points.map((p) => p.epoch)).size; }
  seqs() { return this.points.map((p) => [p.epoch, p.seq]); }
  latest() { return this.points[this.points.length - 1]; }
}

function before(a, b) { return a.epoch < b.epoch || (a.epoch === b.epoch && a.seq < b.seq); }
