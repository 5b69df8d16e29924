// Per-host points in (epoch, seq) order with a break between epochs (static/js/series.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Series } from "../../../aura_dashboard/web/static/js/series.js";

const fields = [{ name: "cpu", value: (d) => d.cpu }];
const env = (epoch, seq, ts, cpu) => ({ epoch, seq, ts, data: { cpu } });

test("points out of order are put in order, duplicates dropped, capacity kept", () => {
  const s = new Series(3, fields);
  assert.equal(s.add(env(0, 2, 2, 20)), true);
  assert.equal(s.add(env(0, 1, 1, 10)), true);
  assert.equal(s.add(env(0, 2, 2, 20)), false);
  s.add(env(0, 3, 3, 30));
  s.add(env(0, 4, 4, 40));
  assert.deepEqual(s.seqs(), [[0, 2], [0, 3], [0, 4]]);
});

test("a new epoch (a restart) is drawn after the old one with a null between", () => {
  const s = new Series(10, fields);
  s.add(env(0, 40, 10, 1));
  s.add(env(0, 41, 11, 2));
  s.add(env(1, 3, 20, 3));  // the new server's seq is smaller: the epoch orders it
  assert.equal(s.epochs(), 2);
  assert.deepEqual(s.columns(), [[10, 11, 15.5, 20], [1, 2, null, 3]]);
  assert.equal(s.latest().seq, 3);
});

test("a value the field cannot read is a null, not a crash", () => {
  const s = new Series(5, [{ name: "x", value: (d) => d.missing.deep }]);
  s.add(env(0, 1, 1, 5));
  assert.deepEqual(s.columns(), [[1], [null]]);
});
