// The reconnect schedule of the page's one Socket.IO manager, apart from the socket so that it
// can be tested under Node: attempts go on for ever with the capped backoff of
// `websocket.reconnect`; `max_attempts` only says when the page stops calling the loss brief
// and says loudly that the server has been away long (a wall display must ride out a deploy).

/** Delay before reconnection attempt `attempt` (0-based): initial × multiplier^attempt, capped. */
export function backoffDelay(reconnect, attempt) {
  const delay = reconnect.initial_delay_ms * Math.pow(reconnect.backoff_multiplier, attempt);
  return Math.min(delay, reconnect.max_delay_ms);
}

export class ReconnectSchedule {
  /**
   * @param reconnect  websocket.reconnect: enabled, initial_delay_ms, backoff_multiplier,
   *                   max_delay_ms, max_attempts
   * @param now        the clock (ms), injectable for tests
   */
  constructor(reconnect, now = () => Date.now()) {
    this.reconnect = reconnect;
    this.now = now;
    this.attempt = 0;      // failed attempts since the last successful open
    this.retryAt = null;   // when the next attempt is due (ms), null when none is scheduled
    this.lostAt = null;    // when the connection was lost (ms), null while connected
  }

  /** A connection or an attempt failed: the delay (ms) before the next attempt, or null when
   * reconnecting is switched off (`websocket.reconnect.enabled`: only "retry now" then). */
  failed() {
    if (this.lostAt === null) this.lostAt = this.now();
    if (!this.reconnect.enabled) { this.retryAt = null; return null; }
    const delay = backoffDelay(this.reconnect, this.attempt);
    this.attempt += 1;
    this.retryAt = this.now() + delay;
    return delay;
  }

  /** An attempt starts now (scheduled or asked for). */
  starting() { this.retryAt = null; }

  /** The connection is open again. */
  opened() { this.attempt = 0; this.retryAt = null; this.lostAt = null; }

  /** Whether an attempt is waiting for its time. */
  get scheduled() { return this.retryAt !== null; }

  /** Past `max_attempts` failures in a row: the loss is long, tell people louder. */
  get escalated() { return this.lostAt !== null && (!this.reconnect.enabled || this.attempt >= this.reconnect.max_attempts); }

  /** Seconds until the next attempt (0 when due or none). */
  secondsLeft() { return this.retryAt === null ? 0 : Math.max(0, Math.ceil((this.retryAt - this.now()) / 1000)); }

  /** Seconds since the connection was lost (0 while connected). */
  secondsAway() { return this.lostAt === null ? 0 : Math.max(0, Math.round((this.now() - this.lostAt) / 1000)); }
}
