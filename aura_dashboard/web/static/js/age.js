// How old a value is, and when it is stale: past twice its stream's interval. Ages are measured
// on the server's clock (an envelope's `ts` is when it was sampled), corrected by the smallest
// delay seen between sampling and arrival, so a browser whose clock is off does not see
// everything stale (or nothing). Pure: the page's ticker (main.js) applies it to the DOM.
import { duration } from "./util.js";

export class Ages {
  constructor() { this.offsetMs = null; }

  /** A live envelope sampled at `ts` (s) arrived at `now` (ms). */
  observe(ts, now) {
    if (typeof ts !== "number") return;
    const delay = now - ts * 1000;
    if (this.offsetMs === null || delay < this.offsetMs) this.offsetMs = delay;
  }

  /** Milliseconds since the value sampled at `ts` (s), at `now` (ms). */
  ageMs(ts, now) { return Math.max(0, now - ts * 1000 - (this.offsetMs ?? 0)); }

  /** {stale, text}: stale past twice `intervalMs` (never for event streams, whose interval is
   * null: an alert or a debate is not old because nothing new happened). */
  describe(ts, intervalMs, now) {
    const age = this.ageMs(ts, now);
    const stale = typeof intervalMs === "number" && intervalMs > 0 && age > 2 * intervalMs;
    return { stale, ageMs: age, text: `${duration(age / 1000)} ago` };
  }
}
