// The API as the pages use it: the session (tokens in localStorage), requests that turn the
// API's `{"error","msg"}` answers into sentences, and token refresh.

const SESSION_KEY = 'predictloop.session';

/** An API failure, with the sentence to show (`message`) and the machine code. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = 'network', retryAfter = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    /** Seconds to wait before asking again (a 429's `Retry-After`), or null. */
    this.retryAfter = retryAfter;
  }
}

/** The claims of a JWT, for display only: the server checks every token itself. */
export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = part + '='.repeat((4 - (part.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

export function session() {
  try {
    const stored = JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null');
    if (stored?.access_token && claimsOf(stored.access_token)) return stored;
  } catch {
    // A damaged entry is the same as none.
  }
  return null;
}

function saveSession(tokens) {
  localStorage.setItem(
    SESSION_KEY,
    JSON.stringify({ access_token: tokens.access_token, refresh_token: tokens.refresh_token }),
  );
}

/** Forgets the stored tokens (this browser only: see `logOut` for the server's side). */
export function signOut() {
  localStorage.removeItem(SESSION_KEY);
}

/** `{name, role}` of the signed-in user, or null. */
export function currentUser() {
  const s = session();
  if (!s) return null;
  const claims = claimsOf(s.access_token);
  return { name: claims?.name ?? '?', role: claims?.role ?? 'user', id: claims?.sub };
}

/** A sentence for an answer that is not JSON or has no `msg`. */
function fallbackSentence(status) {
  if (status === 413) return 'The image is too large.';
  if (status === 429) return 'Too many requests: please wait a little and try again.';
  if (status >= 500) return 'The service is not available right now. Please try again shortly.';
  if (status === 404) return 'That was not found.';
  return `The request failed (HTTP ${status}).`;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: fall back to a sentence of our own.
  }
  const sentence =
    typeof body?.msg === 'string' && body.msg.trim() ? body.msg : fallbackSentence(response.status);
  const wait = Number(response.headers.get('Retry-After'));
  const retryAfter = Number.isFinite(wait) && wait > 0 ? wait : null;
  return new ApiError(sentence, { status: response.status, code: body?.error ?? 'http_error', retryAfter });
}

async function send(path, { method = 'GET', json, form, token, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  try {
    return await fetch(path, init);
  } catch {
    throw new ApiError('The server cannot be reached. Check your connection and try again.');
  }
}

async function parse(response) {
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

/** A public call (login, register): no token. */
export async function publicCall(path, options) {
  return parse(await send(path, options));
}

let refreshing = null;
const REFRESH_LOCK = 'predictloop-refresh';
/** An access token with less than this left is renewed before use. */
const RENEW_BEFORE_MS = 30_000;

function signedOut() {
  return new ApiError('Your session has ended. Please sign in again.', { status: 401, code: 'signed_out' });
}

/** Whether an access token still has a useful life (by its `exp`, on this clock). */
function lasts(token) {
  const exp = claimsOf(token)?.exp ?? 0;
  return exp * 1000 - Date.now() > RENEW_BEFORE_MS;
}

/**
 * The refresh itself. The stored tokens are read again first: another tab (Try it and the
 * dashboard share them) may have refreshed already, and sending the refresh token it spent
 * would make the server revoke the whole login as a reused token.
 */
async function refreshNow(stale) {
  const s = session();
  if (!s?.refresh_token) throw signedOut();
  if (s.access_token !== stale && lasts(s.access_token)) return s.access_token;
  try {
    const tokens = await publicCall('/token/refresh', { method: 'POST', json: { refresh_token: s.refresh_token } });
    saveSession(tokens);
    return tokens.access_token;
  } catch (e) {
    if (e.status === 401) {
      // Another tab (a browser without the lock) may have stored a newer pair meanwhile: its
      // access token still works until it expires, so the page is not sent to sign in yet.
      const now = session();
      if (now && now.refresh_token !== s.refresh_token && lasts(now.access_token)) return now.access_token;
      signOut();
      throw signedOut();
    }
    throw e;
  }
}

/** Resolves once the stored refresh token is no longer `seen` (another tab stored a new pair,
 * or signed out), or after `ms`. */
function storedSessionChange(seen, ms) {
  return new Promise((resolve) => {
    if (session()?.refresh_token !== seen) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      removeEventListener('storage', onStorage);
      resolve();
    };
    const onStorage = (event) => {
      if (event.key === SESSION_KEY || event.key === null) done();
    };
    const timer = setTimeout(done, ms);
    addEventListener('storage', onStorage);
  });
}

/** How long a tab that waited for another's refresh waits to see its tokens in storage. */
const OTHER_TAB_WAIT_MS = 2_000;
const NOT_TAKEN = Symbol('lock not taken');

/**
 * Trades the refresh token for a new pair; once at a time in this page however many calls need
 * it, and once at a time across the site's tabs where the browser has the Web Locks API.
 * `stale` is the access token that was refused or is about to expire: a different, still valid
 * one in storage means another tab has refreshed, and it is used instead. A tab that finds the
 * lock taken waits for the other tab's new pair to show in its storage (each tab's view of
 * localStorage is updated a moment after the write) before deciding to refresh itself.
 */
export function refreshSession(stale = session()?.access_token) {
  refreshing ??= (async () => {
    const locks = navigator.locks;
    if (!locks?.request) return refreshNow(stale);
    const seen = session()?.refresh_token;
    const first = await locks.request(REFRESH_LOCK, { ifAvailable: true }, (lock) => (lock ? refreshNow(stale) : NOT_TAKEN));
    if (first !== NOT_TAKEN) return first;
    return locks.request(REFRESH_LOCK, async () => {
      await storedSessionChange(seen, OTHER_TAB_WAIT_MS);
      return refreshNow(stale);
    });
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** A call with the session's token, refreshed once when it has expired. */
export async function call(path, options = {}) {
  const s = session();
  if (!s) throw new ApiError('Please sign in first.', { status: 401, code: 'signed_out' });
  let response = await send(path, { ...options, token: s.access_token });
  if (response.status === 401) {
    const token = await refreshSession(s.access_token);
    response = await send(path, { ...options, token });
  }
  return parse(response);
}

/** A valid access token now (refreshed when it is about to expire), for the WebSocket. */
export async function freshToken() {
  const s = session();
  if (!s) throw new ApiError('Please sign in first.', { status: 401, code: 'signed_out' });
  if (lasts(s.access_token)) return s.access_token;
  return refreshSession(s.access_token);
}

/**
 * "Sign out": asks the server to end the login (`POST /logout` revokes its refresh tokens, so
 * the stored one stops working even if it was copied), then forgets the tokens here. An access
 * token that has expired is refreshed first, as for any call; the login ends all the same. When
 * the server cannot be reached the tokens are forgotten anyway: the person asked to sign out.
 */
export async function logOut() {
  const s = session();
  try {
    if (s?.refresh_token) await call('/logout', { method: 'POST', json: { refresh_token: s.refresh_token } });
  } catch {
    // Signed out here in any case; the refresh token then lapses at its expiry.
  } finally {
    signOut();
  }
}

export async function signIn(username, password) {
  const tokens = await publicCall('/login', { method: 'POST', json: { username, password } });
  saveSession(tokens);
  return currentUser();
}

export async function register(username, password) {
  await publicCall('/register', { method: 'POST', json: { username, password } });
  return signIn(username, password);
}

/** Shows a sentence in a live region (`kind`: error, ok or info); empty text hides it. */
export function say(element, text, kind = 'error') {
  element.className = `notice ${kind}`;
  element.textContent = text;
}

/** The sentence of any failure: the API's own, else a generic one (never raw JSON). */
export function sentenceOf(error) {
  if (error instanceof ApiError) return error.message;
  return 'Something went wrong in the page. Please reload it and try again.';
}
