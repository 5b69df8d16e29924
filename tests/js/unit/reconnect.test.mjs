// The page's reconnect schedule (static/js/reconnect.js): for ever, capped, escalating.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ReconnectSchedule, backoffDelay } from "../../../aura_dashboard/web/static/js/reconnect.js";

const RECONNECT = { enabled: true, initial_delay_ms: 1000, backoff_multiplier: 2, max_delay_ms: 5000, max_attempts: 3 };

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

test("backoff grows by the multiplier and stops at the cap", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(RECONNECT, a)), [1000, 2000, 4000, 5000, 5000, 5000]);
});

test("attempts go on past max_attempts at the capped delay, escalating only", () => {
  const c = clock();
  const s = new ReconnectSchedule(RECONNECT, c.now);
  const delays = [];
  for (let i = 0; i < 50; i += 1) {
    delays.push(s.failed());
    assert.equal(s.escalated, i + 1 >= 3, `attempt ${i + 1}`);
    c.t += delays[i];
    s.starting();
  }
  assert.equal(delays.length, 50);
  assert.ok(delays.every((d) => d !== null && d <= 5000));
  assert.equal(delays.at(-1), 5000);
});

test("an open connection starts the schedule over", () => {
  const c = clock();
  const s = new ReconnectSchedule(RECONNECT, c.now);
  for (let i = 0; i < 4; i += 1) s.failed();
  assert.ok(s.escalated);
  s.opened();
  assert.equal(s.escalated, false);
  assert.equal(s.attempt, 0);
  assert.equal(s.scheduled, false);
  assert.equal(s.failed(), 1000);
});

test("the time away and until the next attempt, from the injected clock", () => {
  const c = clock();
  const s = new ReconnectSchedule(RECONNECT, c.now);
  assert.equal(s.secondsAway(), 0);
  s.failed();
  assert.ok(s.scheduled);
  assert.equal(s.secondsLeft(), 1);
  c.t += 42_000;
  s.starting();
  s.failed();
  assert.equal(s.secondsAway(), 42);
  assert.equal(s.secondsLeft(), 2);
  assert.equal(s.lostAt, 1_000_000, "the loss began at the first failure");
});

test("reconnecting switched off: nothing scheduled, the loss is escalated at once", () => {
  const s = new ReconnectSchedule({ ...RECONNECT, enabled: false });
  assert.equal(s.failed(), null);
  assert.equal(s.scheduled, false);
  assert.ok(s.escalated);
});
