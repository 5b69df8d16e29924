// What every panel's cards share: the element each stream renders into, and the words of its
// states without figures (loading, empty, disabled, error).
import { stateNote, unavailableNote } from "./util.js";

/** What every panel's cards share: the element of each stream, and its states without data. */
export class Cards {
  /**
   * @param contract  the stream contract
   * @param targets   {stream: element id} where it differs from the stream's name
   * @param empty     {stream: words} for event streams whose empty history means "nothing yet"
   */
  constructor(contract, targets = {}, empty = {}) {
    this.contract = contract;
    this.targets = targets;
    this.emptyWords = empty;
  }

  target(stream) { return this.targets[stream] || stream; }

  unavailable(stream, error) { unavailableNote(this.target(stream), error); }

  waiting(stream) { stateNote(this.target(stream), "loading", "waiting for data…"); }

  /** The subscription answered with no history. */
  empty(stream) {
    const node = document.getElementById(this.target(stream));
    if (!node || node.dataset.state === "ready") return;
    const words = this.emptyWords[stream];
    if (words) { stateNote(node, "empty", words); return; }
    const every = this.contract.intervalMs(stream);
    stateNote(node, "loading", every ? `waiting for the first sample (every ${every >= 1000 ? `${every / 1000} s` : `${every} ms`})` : "waiting for data…");
  }
}
