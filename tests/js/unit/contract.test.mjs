// Values and axis ticks by the contract's unit (static/js/contract.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { axisSteps, axisValue, formatValue } from "../../../aura_dashboard/web/static/js/contract.js";

test("axis ticks are round, with units and no needless decimals", () => {
  assert.equal(axisValue(512 * 1024, "bytes/s"), "512 KiB/s");
  assert.equal(axisValue(2 * 1024 * 1024, "bytes/s"), "2 MiB/s");
  assert.equal(axisValue(50, "percent"), "50 %");
  assert.equal(axisValue(1670, "ms"), "1.67 s");
  assert.equal(axisValue(null, "percent"), "");
});

test("byte axes step in powers of two of 1024", () => {
  const steps = axisSteps("bytes/s");
  assert.ok(steps.includes(256 * 1024) && steps.includes(1024 ** 2) && !steps.includes(500_000));
  assert.equal(axisSteps("percent"), undefined);
});

test("values format by their declared unit", () => {
  assert.equal(formatValue(1670, "ms"), "1.67 s");
  assert.equal(formatValue(0.72, "ratio"), "72.0 %");
  assert.equal(formatValue(null, "ms"), "–");
});
