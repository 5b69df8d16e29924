// Value ages and stale marking (static/js/age.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Ages } from "../../../aura_dashboard/web/static/js/age.js";
import { duration } from "../../../aura_dashboard/web/static/js/util.js";

test("stale past twice the interval, with the age in words", () => {
  const ages = new Ages();
  const ts = 1000;  // s
  assert.deepEqual(ages.describe(ts, 2000, 1000_000 + 3999), { stale: false, ageMs: 3999, text: "4 s ago" });
  const later = ages.describe(ts, 2000, 1000_000 + 42_000);
  assert.equal(later.stale, true);
  assert.equal(later.text, "42 s ago");
});

test("event streams (no interval) are never stale", () => {
  assert.equal(new Ages().describe(1, null, 10_000_000).stale, false);
});

test("a browser clock ahead of the server's is corrected by the smallest delay seen", () => {
  const ages = new Ages();
  // The browser's clock is 30 s ahead: live envelopes arrive "30.1 s" after they were sampled.
  ages.observe(100, 130_100);
  ages.observe(101, 131_300);
  assert.equal(ages.offsetMs, 30_100);
  assert.equal(ages.describe(101, 1000, 131_300).stale, false);
  assert.equal(ages.describe(101, 1000, 131_300 + 5000).stale, true);
  assert.equal(ages.describe(101, 1000, 131_300 + 5000).text, "5 s ago");
});

test("durations read as people say them", () => {
  assert.deepEqual([0, 42, 60, 125, 3600 * 2 + 60 * 5].map(duration), ["0 s", "42 s", "1 min", "2 min 5 s", "2 h 5 min"]);
});
