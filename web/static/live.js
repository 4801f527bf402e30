// The admin WebSocket (`/ws`): joins the admins' room, reconnects by itself with a growing delay,
// and asks for what it missed (`last_event_id`) each time it comes back.

import { freshToken } from './api.js';

const MAX_DELAY_MS = 15_000;
/** Event ids already handled, so a replay never shows one twice. */
const REMEMBERED = 500;

export class LiveFeed {
  /**
   * `onEvent(name, data, id)` for each event; `onStatus(online, sentence)` when the connection
   * comes or goes; `onRefused(code)` when the caller is refused for good (`forbidden`, or
   * `signed_out` once the session cannot be renewed).
   */
  constructor({ onEvent, onStatus, onRefused }) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onRefused = onRefused;
    this.lastEventId = null;
    this.seen = [];
    this.attempts = 0;
    this.socket = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.#connect();
  }

  stop() {
    this.stopped = true;
    this.socket?.close(1000, 'page closed');
  }

  /** Drops the connection as a network failure would (the page's "Reconnect now" uses it). */
  reconnectNow() {
    this.attempts = 0;
    this.socket?.close(4000, 'reconnect');
  }

  async #connect() {
    let token;
    try {
      token = await freshToken();
    } catch (e) {
      if (e.status === 401) {
        this.onRefused('signed_out');
        return;
      }
      this.#retry();
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams({ access_token: token });
    if (this.lastEventId) params.set('last_event_id', this.lastEventId);
    const socket = new WebSocket(`${scheme}//${location.host}/ws?${params}`);
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.attempts = 0;
      socket.send(JSON.stringify({ event: 'join_admin' }));
      this.onStatus(true, this.lastEventId ? 'Live again: missed events replayed.' : 'Live: new events appear as they happen.');
    });
    socket.addEventListener('message', (message) => this.#receive(message.data));
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      this.#retry();
    });
  }

  #retry() {
    const delay = Math.min(MAX_DELAY_MS, 1000 * 2 ** this.attempts);
    this.attempts += 1;
    this.onStatus(false, `Disconnected: trying again in ${Math.round(delay / 1000)} s.`);
    setTimeout(() => {
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
      if (message.data?.error === 'forbidden') {
        this.stopped = true;
        this.onRefused('forbidden');
      } else {
        this.onStatus(true, sentence);
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
