// The admin WebSocket (`/ws`): joins the admins' room, reconnects by itself with a growing delay,
// and asks for what it missed (`last_event_id`) each time it comes back.

import { claimsOf, freshToken, refreshSession } from './api.js';

const MAX_DELAY_MS = 15_000;
/** Event ids already handled, so a replay never shows one twice. */
const REMEMBERED = 500;
/**
 * Attempts in a row that closed before `open` after which the session is renewed. A refused
 * upgrade (401: a token the server no longer accepts) looks to the page like any other failed
 * connection; a new token is the cure when that is the cause.
 */
const FAILED_OPENS_BEFORE_REFRESH = 2;
/** The server closes a socket when its token expires: reconnect this long before. */
const RENEW_BEFORE_EXPIRY_MS = 20_000;
/** A socket is never renewed sooner than this after it opened. */
const MIN_RENEW_DELAY_MS = 5_000;

export class LiveFeed {
  /**
   * `onEvent(name, data, id)` for each event; `onStatus(online, sentence, kind)` when the
   * connection comes or goes (`kind`: `live`, `offline`, or `degraded` for a connection that
   * is up but missed something); `onRefused(code)` when the caller is refused for good
   * (`forbidden`, or `signed_out` once the session cannot be renewed); `onGap(sentence)` when
   * the server could not replay what was missed (the caller should reload its data); `onLive()`
   * each time the connection opens.
   */
  constructor({ onEvent, onStatus, onRefused, onGap = () => {}, onLive = () => {} }) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onRefused = onRefused;
    this.onGap = onGap;
    this.onLive = onLive;
    this.lastEventId = null;
    this.seen = [];
    this.attempts = 0;
    this.failedOpens = 0;
    this.refreshTried = false;
    this.socket = null;
    this.stopped = false;
    this.retryTimer = null;
    this.renewTimer = null;
    this.renewing = false;
  }

  start() {
    this.stopped = false;
    this.#connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.renewTimer);
    this.socket?.close(1000, 'page closed');
  }

  /**
   * Drops the connection as a network failure would and connects again at once (the page's
   * "Reconnect now" uses it); while waiting to retry, it retries now.
   */
  reconnectNow() {
    this.attempts = 0;
    if (this.socket) {
      this.socket.close(4000, 'reconnect');
    } else if (!this.stopped && this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.#connect();
    }
  }

  async #connect() {
    this.retryTimer = null;
    let token;
    try {
      if (this.failedOpens >= FAILED_OPENS_BEFORE_REFRESH && !this.refreshTried) {
        // Only once until a socket opens again: when the new token does not help, the cause
        // is elsewhere (the service is down) and the backoff alone applies.
        this.refreshTried = true;
        token = await refreshSession();
      } else {
        token = await freshToken();
      }
    } catch (e) {
      if (e.status === 401) {
        this.stopped = true;
        this.onRefused('signed_out');
        return;
      }
      this.#retry();
      return;
    }
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams({ access_token: token });
    if (this.lastEventId) params.set('last_event_id', this.lastEventId);
    const socket = new WebSocket(`${scheme}//${location.host}/ws?${params}`);
    this.socket = socket;
    let opened = false;
    socket.addEventListener('open', () => {
      opened = true;
      this.attempts = 0;
      this.failedOpens = 0;
      this.refreshTried = false;
      socket.send(JSON.stringify({ event: 'join_admin' }));
      const back = this.lastEventId && !this.renewing;
      this.renewing = false;
      this.onStatus(true, back ? 'Live again: missed events replayed.' : 'Live: new events appear as they happen.', 'live');
      this.#scheduleRenewal(socket, token);
      this.onLive();
    });
    socket.addEventListener('message', (message) => this.#receive(message.data));
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      clearTimeout(this.renewTimer);
      if (this.stopped) return;
      if (socket.renewing) {
        // A planned renewal: straight back, asking for what passed meanwhile.
        this.renewing = true;
        this.#connect();
        return;
      }
      if (!opened) this.failedOpens += 1;
      this.#retry();
    });
  }

  /** Reconnects with a fresh token shortly before this one expires (the server would close). */
  #scheduleRenewal(socket, token) {
    clearTimeout(this.renewTimer);
    const exp = claimsOf(token)?.exp;
    if (!exp) return;
    const delay = Math.max(MIN_RENEW_DELAY_MS, exp * 1000 - Date.now() - RENEW_BEFORE_EXPIRY_MS);
    this.renewTimer = setTimeout(() => {
      if (this.socket !== socket || this.stopped) return;
      socket.renewing = true;
      socket.close(4001, 'token renewal');
    }, delay);
  }

  #retry() {
    this.renewing = false;
    const delay = Math.min(MAX_DELAY_MS, 1000 * 2 ** this.attempts);
    this.attempts += 1;
    this.onStatus(false, `Disconnected: trying again in ${Math.round(delay / 1000)} s.`, 'offline');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.stopped) this.#connect();
    }, delay);
  }

  #receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.event === 'error') {
      const sentence = message.data?.msg ?? 'The server refused the live feed.';
      const code = message.data?.error;
      if (code === 'forbidden') {
        this.stopped = true;
        this.onRefused('forbidden');
      } else if (code === 'replay_unavailable') {
        // The id we resumed from is of no use any more: forget it, so the next reconnect does
        // not ask again, and let the page reload what it shows.
        this.lastEventId = null;
        this.onStatus(true, `Live, but events missed while disconnected could not be replayed: ${sentence}`, 'degraded');
        this.onGap(sentence);
      } else {
        this.onStatus(true, sentence, 'degraded');
      }
      return;
    }
    if (message.id) {
      if (this.seen.includes(message.id)) return;
      this.seen.push(message.id);
      if (this.seen.length > REMEMBERED) this.seen.shift();
      this.lastEventId = message.id;
    }
    this.onEvent(message.event, message.data, message.id);
  }
}
