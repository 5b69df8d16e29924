// A stream's numbering on the client (static/js/sequence.js): out-of-order arrivals, the
// floor a resubscription asks from, envelopes held across an `epoch` resubscription, holes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HOLE_REPAIR_MS, StreamSequence } from "../../../aura_dashboard/web/static/js/sequence.js";

const env = (seq, source = "node-a") => ({ stream: "system", seq, source });
const seqs = (list) => list.map((e) => e.seq);
const ack = (history, { gap = false, epoch = "E1" } = {}) => ({ ok: true, epoch, gap: { system: gap }, history: { system: history } });

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

function subscribed(history = [env(1), env(2), env(3)], now) {
  const s = new StreamSequence(now);
  assert.deepEqual(s.request(), {});
  s.acked(ack(history), "system");
  return s;
}

test("envelopes from two instances out of order are each taken once, and the floor waits for the missing one", () => {
  const s = subscribed();
  assert.deepEqual(seqs(s.arrived(env(5, "node-b"))), [5]);
  assert.equal(s.floor, 3);
  assert.equal(s.lastSeq, 5);
  assert.deepEqual(seqs(s.arrived(env(4))), [4], "a late one is not a duplicate");
  assert.equal(s.floor, 5);
  assert.deepEqual(s.arrived(env(4)), [], "a real duplicate is");
  assert.deepEqual(s.arrived(env(2)), [], "so is one below the floor");
});

test("a resubscription asks since the floor, not the highest seq, and takes the replay once", () => {
  const s = subscribed();
  s.arrived(env(4));
  s.arrived(env(6, "node-b"));  // 5 never came (its instance died between storing and sending)
  assert.deepEqual(s.request(), { since: 4, epoch: "E1" });
  const answer = s.acked(ack([env(5, "node-b"), env(6, "node-b"), env(7)]), "system");
  assert.equal(answer.gap, false);
  assert.equal(answer.resumed, true);
  assert.deepEqual(seqs(answer.history), [5, 7], "6 was had already");
  assert.equal(s.floor, 7);
});

test("after an epoch notice, envelopes of the new epoch wait for the answer and join the new epoch after its history", () => {
  const s = subscribed();
  s.arrived(env(4));
  assert.equal(s.epoch, 0);
  s.request();  // the `epoch` notice: resubscribing with the old epoch's numbers
  // B's 54 is emitted here before the answer, whose history was read before it was stored.
  assert.deepEqual(s.arrived(env(54, "node-b")), [], "held, not taken into the old epoch");
  const answer = s.acked(ack([env(52), env(53)], { gap: true, epoch: "E2" }), "system");
  assert.equal(answer.gap, true);
  assert.equal(s.epoch, 1);
  assert.deepEqual(seqs(answer.history), [52, 53]);
  assert.deepEqual(seqs(answer.live), [54]);
  assert.ok(answer.live.every((e) => e.epoch === 1));
  assert.equal(s.floor, 54);
  assert.deepEqual(s.request(), { since: 54, epoch: "E2" });
});

test("held envelopes the history also holds are taken once", () => {
  const s = subscribed();
  s.request();
  s.arrived(env(5));
  const answer = s.acked(ack([env(4), env(5)]), "system");
  assert.deepEqual(seqs(answer.history), [4, 5]);
  assert.deepEqual(answer.live, []);
});

test("a hole is outstanding only after HOLE_REPAIR_MS, and not while an answer is awaited", () => {
  const c = clock();
  const s = subscribed(undefined, c.now);
  s.arrived(env(5));
  assert.equal(s.holeOutstanding(), false);
  c.t += HOLE_REPAIR_MS - 1;
  assert.equal(s.holeOutstanding(), false);
  c.t += 1;
  assert.equal(s.holeOutstanding(), true);
  s.repairing();
  s.request();
  assert.equal(s.holeOutstanding(), false);
  assert.equal(s.repairs, 1);
  s.acked(ack([env(4), env(5)]), "system");
  assert.equal(s.floor, 5);
  c.t += HOLE_REPAIR_MS * 2;
  assert.equal(s.holeOutstanding(), false, "filled");
});

test("a hole filled live in time is never outstanding", () => {
  const c = clock();
  const s = subscribed(undefined, c.now);
  s.arrived(env(5));
  c.t += 100;
  s.arrived(env(4));
  c.t += HOLE_REPAIR_MS * 2;
  assert.equal(s.holeOutstanding(), false);
});

test("envelopes of two instances interleaving, each hole filled in time, never make an outstanding hole", () => {
  const c = clock();
  const s = subscribed(undefined, c.now);
  // node-a's odd seqs arrive on time, node-b's even ones two steps (400 ms) late: some seq is
  // always missing, never the same one for long.
  for (let i = 0; i < 100; i += 1) {
    s.arrived(env(5 + 2 * i));
    if (i >= 1) s.arrived(env(4 + 2 * (i - 1), "node-b"));
    assert.ok(s.floor < s.lastSeq, "a hole is open");
    c.t += 200;
    assert.equal(s.holeOutstanding(), false, `at step ${i}`);
  }
  assert.equal(s.floor, 4 + 2 * 99 - 1);
});

test("an abandoned subscribe stops holding; a first subscribe with no history starts at the first envelope", () => {
  const s = new StreamSequence();
  s.request();
  s.arrived(env(9));
  s.abandoned();
  assert.equal(s.awaiting, false);
  assert.deepEqual(s.held, []);
  s.request();
  s.acked(ack([]), "system");
  assert.equal(s.floor, null);
  assert.deepEqual(seqs(s.arrived(env(9))), [9]);
  assert.equal(s.floor, 9);
  assert.equal(s.seen.size, 0, "nothing above the floor is kept");
});
