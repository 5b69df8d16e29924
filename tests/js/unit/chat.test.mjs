// Chat failures in words (static/js/panels.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { chatWords } from "../../../aura_dashboard/web/static/js/panels.js";

test("raw reasons become words", () => {
  assert.equal(chatWords(null, "ClientConnectorError: Cannot connect to host localhost:8000 ssl:default [Connect call failed]"),
    "the chat backend is unreachable");
  assert.equal(chatWords(null, "TimeoutError: no answer within 30 s"), "the chat backend did not answer in time");
  assert.equal(chatWords(null, "HTTP 503"), "the chat backend failed (HTTP 503)");
  assert.equal(chatWords(null, "HTTP 400"), "the chat backend refused the message (HTTP 400)");
  assert.equal(chatWords("queue_full", "the queue is full"), "the chat queue is full; try again in a moment");
  assert.equal(chatWords(null, "something else"), "something else");
});
