// What a client knows of one stream's numbering (docs/protocol.md, "Subscribing"): the epoch
// its `seq`s belong to, which of them arrived, the floor below which every one did, and the
// envelopes held while a resubscription is on its way. No socket here: connection.js feeds it.
//
// - Envelopes of one stream reach a client from several instances (each instance's own at once,
//   the others' through the message queue), so they may arrive out of order: a `seq` is taken
//   once whatever its order (`seen`), and `floor` is the highest `seq` with every one below it
//   taken. A resubscription asks `since: floor`, never the highest `seq`: an envelope still
//   missing below it is then replayed from the buffer, or the answer is `gap`.
// - A hole (a `seq` missing below the highest) that outlives `HOLE_REPAIR_MS` is asked for
//   again (`holeOutstanding`): an instance killed between storing an envelope and sending it
//   leaves one that nothing else would ever fill.
// - After an `epoch` notice the next envelopes belong to the new epoch while the client still
//   holds the old one's numbers: they are held (`awaiting`) until the resubscription's
//   answer has opened the new epoch, then taken after its history.

export const HOLE_REPAIR_MS = 3000;

export class StreamSequence {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.epoch = 0;            // the client's own count of epochs (a chart break each)
    this.serverEpoch = null;   // the server's token of the numbering (the ack's `epoch`)
    this.seen = new Set();     // the seqs taken above `floor` (arrived ahead of a missing one)
    this.floor = null;         // every seq <= floor of this epoch was taken (or is older)
    this.lastSeq = null;       // the highest seq taken
    this.awaiting = false;     // a subscribe is on its way: envelopes wait in `held`
    this.held = [];
    this.holeAt = null;        // since when floor + 1 has been missing (null: no hole)
    this.repairs = 0;          // resubscriptions made to fill a hole (for people and tests)
  }

  /** The subscribe payload's `since`/`epoch` for a request about to be sent; from now on
   * envelopes are held until `acked`. */
  request() {
    this.awaiting = true;
    this.held = [];
    if (this.floor === null) return {};
    return this.serverEpoch ? { since: this.floor, epoch: this.serverEpoch } : { since: this.floor };
  }

  /** An envelope that arrived live: the fresh ones to show now ([] while held). */
  arrived(envelope) {
    if (this.awaiting) { this.held.push(envelope); return []; }
    return this.take([envelope]);
  }

  /** The subscribe's answer (ok): {gap, resumed, history, live}, history and live being the
   * fresh envelopes to show, in that order. */
  acked(ack, stream) {
    const resumed = this.floor !== null;
    const gap = !!(ack.gap && ack.gap[stream]);
    this.serverEpoch = ack.epoch || null;
    if (gap) {
      // What was missed is gone (the buffer moved on, or the numbering began again): a new
      // epoch, so old and new sequence numbers never mix.
      this.epoch += 1;
      this.seen.clear();
      this.floor = null;
      this.lastSeq = null;
      this.holeAt = null;
    }
    const historyList = (ack.history && ack.history[stream]) || [];
    if (this.floor === null && historyList.length) {
      this.floor = Math.min(...historyList.map((e) => e.seq)) - 1;
    }
    const history = this.take(historyList);
    const held = this.held;
    this.held = [];
    this.awaiting = false;
    return { gap, resumed, history, live: this.take(held) };
  }

  /** The subscribe failed or the connection went: nothing more is held for it. */
  abandoned() {
    this.awaiting = false;
    this.held = [];
  }

  /** The fresh envelopes among `envelopes` (each `seq` once), tagged with the client epoch. */
  take(envelopes) {
    const fresh = [];
    for (const envelope of envelopes) {
      if (!envelope || typeof envelope.seq !== "number" || this.seen.has(envelope.seq)) continue;
      if (this.floor !== null && envelope.seq <= this.floor) continue;  // older than what we hold
      if (this.floor === null) this.floor = envelope.seq - 1;
      this.seen.add(envelope.seq);
      if (this.lastSeq === null || envelope.seq > this.lastSeq) this.lastSeq = envelope.seq;
      fresh.push({ ...envelope, epoch: this.epoch });
    }
    const before = this.floor;
    while (this.seen.has(this.floor + 1)) {  // what is below the floor needs no duplicate check
      this.floor += 1;
      this.seen.delete(this.floor);
    }
    // The hole timed is the one just above the floor: one that fills starts the clock again for
    // the next (two instances' envelopes interleaving keep some seq in flight most of the time).
    if (this.floor < this.lastSeq) {
      if (this.holeAt === null || this.floor !== before) this.holeAt = this.now();
    } else {
      this.holeAt = null;
    }
    return fresh;
  }

  /** Whether a hole has been open for `HOLE_REPAIR_MS` or more (ask for it again). */
  holeOutstanding() {
    return !this.awaiting && this.holeAt !== null && this.now() - this.holeAt >= HOLE_REPAIR_MS;
  }

  /** A resubscription to fill the hole is about to be sent. */
  repairing() {
    this.repairs += 1;
    this.holeAt = null;
  }
}
