#!/usr/bin/env node
// The Try it page and the dashboard's gate in Firefox (Debian's firefox-esr, headless), driven
// over WebDriver BiDi, Firefox's own remote protocol. playwright-core only drives its patched
// Firefox builds, so this speaks the protocol directly: a short, real path through the pages
// rather than the whole Chromium suite.
//
//   BASE_URL       the gateway, e.g. http://127.0.0.1:8080 (required)
//   ADMIN_USERNAME, ADMIN_PASSWORD   an admin, for the dashboard (required)
//   FIREFOX_PATH   the browser (default /usr/bin/firefox-esr)
//   SCREENSHOT_DIR where the PNGs go (default target/web-screenshots)
//
// Needs Node's WebSocket client: run with `node --experimental-websocket` on Node 20.

import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

const BASE_URL = (process.env.BASE_URL || '').replace(/\/+$/, '');
const FIREFOX = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr';
const ADMIN_USERNAME = process.env.ADMIN_USERNAME || '';
const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD || '';
const SCREENSHOT_DIR = path.resolve(process.env.SCREENSHOT_DIR || 'target/web-screenshots');
if (typeof WebSocket === 'undefined') {
  console.error('this Node.js has no WebSocket client: run it with `node --experimental-websocket` (Node 20)');
  process.exit(2);
}
if (!BASE_URL || !ADMIN_USERNAME || !ADMIN_PASSWORD) {
  console.error('BASE_URL, ADMIN_USERNAME and ADMIN_PASSWORD are required');
  process.exit(2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** One BiDi session: commands answered by id, events collected. */
class Bidi {
  constructor(socket) {
    this.socket = socket;
    this.next = 1;
    this.pending = new Map();
    this.events = [];
    socket.addEventListener('message', (message) => {
      const data = JSON.parse(message.data);
      if (data.id !== undefined && this.pending.has(data.id)) {
        const { resolve, reject } = this.pending.get(data.id);
        this.pending.delete(data.id);
        if (data.type === 'error') reject(new Error(`${data.error}: ${data.message}`));
        else resolve(data.result);
      } else if (data.type === 'event') {
        this.events.push(data);
      }
    });
  }

  static async connect(port) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/session`);
        await new Promise((resolve, reject) => {
          socket.addEventListener('open', resolve, { once: true });
          socket.addEventListener('error', reject, { once: true });
        });
        return new Bidi(socket);
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`Firefox's BiDi endpoint did not open: ${error.message ?? error}`);
        await sleep(250);
      }
    }
  }

  send(method, params = {}) {
    const id = this.next++;
    this.socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }
}

class Page {
  constructor(bidi, context) {
    this.bidi = bidi;
    this.context = context;
  }

  async goto(url) {
    await this.bidi.send('browsingContext.navigate', { context: this.context, url: BASE_URL + url, wait: 'complete' });
  }

  /** The value of a JavaScript expression in the page (awaited when it is a promise). */
  async eval(expression) {
    const answer = await this.bidi.send('script.evaluate', {
      expression,
      target: { context: this.context },
      awaitPromise: true,
    });
    if (answer.type === 'exception') throw new Error(`in the page: ${answer.exceptionDetails.text}`);
    return answer.result.value;
  }

  /** Waits until `expression` is truthy in the page. */
  async until(expression, what, timeout = 15_000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const value = await this.eval(expression).catch(() => undefined);
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  async element(selector) {
    const answer = await this.bidi.send('browsingContext.locateNodes', {
      context: this.context,
      locator: { type: 'css', value: selector },
    });
    if (!answer.nodes.length) throw new Error(`no element ${selector}`);
    return answer.nodes[0];
  }

  /** Real pointer input: a click in the middle of an element (scrolled into view first). */
  async click(selector) {
    await this.stroke(selector, [[0, 0]]);
  }

  /** Real key presses into a focused field. */
  async type(selector, text) {
    await this.click(selector);
    const keys = [...text].flatMap((value) => [
      { type: 'keyDown', value },
      { type: 'keyUp', value },
    ]);
    await this.bidi.send('input.performActions', {
      context: this.context,
      actions: [{ type: 'key', id: 'keyboard', actions: keys }],
    });
  }

  /**
   * Real pointer input: the mouse pressed at the first of `points` and moved through the rest
   * (offsets from the element's centre, in CSS pixels), the element scrolled into view first.
   */
  async stroke(selector, points) {
    await this.eval(`document.querySelector(${JSON.stringify(selector)}).scrollIntoView({ block: 'center' })`);
    const element = await this.element(selector);
    const move = ([x, y]) => ({ type: 'pointerMove', x, y, duration: 40, origin: { type: 'element', element } });
    await this.bidi.send('input.performActions', {
      context: this.context,
      actions: [
        {
          type: 'pointer',
          id: 'mouse',
          parameters: { pointerType: 'mouse' },
          actions: [move(points[0]), { type: 'pointerDown', button: 0 }, ...points.slice(1).map(move), { type: 'pointerUp', button: 0 }],
        },
      ],
    });
  }

  async screenshot(name) {
    const { data } = await this.bidi.send('browsingContext.captureScreenshot', { context: this.context, origin: 'document' });
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    await writeFile(path.join(SCREENSHOT_DIR, `${name}.png`), Buffer.from(data, 'base64'));
  }
}

const text = (selector) => `document.querySelector(${JSON.stringify(selector)})?.textContent.trim()`;
const visible = (selector) =>
  `(() => { const e = document.querySelector(${JSON.stringify(selector)}); return !!e && e.offsetParent !== null; })()`;

async function main() {
  const port = await freePort();
  const profile = await mkdtemp(path.join(os.tmpdir(), 'predictloop-firefox-'));
  const firefox = spawn(FIREFOX, ['--headless', '--no-remote', '--profile', profile, '--remote-debugging-port', String(port), 'about:blank'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  firefox.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const failures = [];
  try {
    const bidi = await Bidi.connect(port);
    const { capabilities } = await bidi.send('session.new', { capabilities: {} });
    console.log(`Firefox ${capabilities.browserVersion}`);
    await bidi.send('session.subscribe', { events: ['log.entryAdded'] });
    const { contexts } = await bidi.send('browsingContext.getTree', {});
    const page = new Page(bidi, contexts[0].context);
    await bidi.send('browsingContext.setViewport', { context: page.context, viewport: { width: 1280, height: 900 } });

    const step = async (name, body) => {
      const started = Date.now();
      try {
        await body();
        console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      } catch (error) {
        failures.push(`${name}: ${error.message}`);
        console.log(`FAIL ${name}: ${error.message}`);
        await page.screenshot(`firefox-failed-${failures.length}`).catch(() => {});
      }
    };

    await step('a visitor who opens the dashboard is sent back with a sentence', async () => {
      await page.goto('/dashboard');
      await page.until(`location.pathname === '/'`, 'the way back to the Try it page');
      const notice = await page.until(text('#notice'), 'the notice');
      if (!/sign in/i.test(notice)) throw new Error(`the notice says "${notice}"`);
    });

    const username = `firefox_${Date.now().toString(36)}`;
    await step('create an account through the form', async () => {
      await page.goto('/');
      await page.type('#username', username);
      await page.type('#password', 'firefox-password-123');
      await page.click('#register');
      await page.until(`(${text('#who')} || '').includes(${JSON.stringify(username)})`, 'the signed-in header');
    });

    await step('draw a 1 with the mouse and get both answers', async () => {
      await page.until(visible('#pad'), 'the drawing pad');
      await page.stroke('#pad', [
        [4, -100],
        [2, -50],
        [0, 0],
        [-2, 50],
        [-4, 100],
      ]);
      await page.until(`!document.querySelector('#predict').disabled`, 'the Recognise button to be enabled');
      await page.click('#predict');
      for (const version of ['v1', 'v2']) {
        const digit = await page.until(
          `(() => { const d = ${text(`#answer-${version} [data-field="digit"]`)}; return d && d !== '?' ? d : ''; })()`,
          `the ${version} answer`,
        );
        const summary = await page.eval(text(`#answer-${version} [data-field="summary"]`));
        if (!/\d/.test(digit) || !summary) throw new Error(`${version} shows "${digit}" / "${summary}"`);
        console.log(`     ${version} reads ${digit}: ${summary}`);
      }
      await page.screenshot('firefox-try-desktop');
    });

    await step('say it was right: the feedback is stored', async () => {
      await page.click('#right');
      const result = await page.until(text('#feedback-result'), 'the feedback result');
      if (/error|could not|failed/i.test(result)) throw new Error(`the page says "${result}"`);
      console.log(`     ${result}`);
    });

    await step('a user who opens the dashboard is sent back with a sentence', async () => {
      await page.goto('/dashboard');
      await page.until(`location.pathname === '/'`, 'the way back to the Try it page');
      const notice = await page.until(text('#notice'), 'the notice');
      if (!/admin/i.test(notice)) throw new Error(`the notice says "${notice}"`);
    });

    await step('an admin sees that feedback, with its image, on the live dashboard', async () => {
      await page.goto('/');
      await page.click('#sign-out');
      await page.until(visible('#username'), 'the sign-in form');
      await page.type('#username', ADMIN_USERNAME);
      await page.type('#password', ADMIN_PASSWORD);
      await page.click('#sign-in');
      await page.until(`(${text('#who')} || '').includes(${JSON.stringify(ADMIN_USERNAME)})`, 'the signed-in header');
      await page.goto('/dashboard');
      await page.until(`/live/i.test(${text('#live-status')} || '') && !/connecting/i.test(${text('#live-status')})`, 'the live feed');
      const item = await page.until(
        `[...document.querySelectorAll('#feed li')].find((li) => li.textContent.includes(${JSON.stringify(username)}) && li.querySelector('img'))?.textContent.trim()`,
        "the user's feedback with its image in the feed",
      );
      console.log(`     feed: ${item.replace(/\s+/g, ' ')}`);
      await page.until(`document.querySelector('#report-totals')?.textContent.trim()`, 'the report');
      // The charts animate (Firefox is not asked for reduced motion here): let them finish.
      await sleep(1500);
      await page.screenshot('firefox-dashboard-desktop');
    });

    await step('the admin sees the rollout panel', async () => {
      // After the Chromium suite (as `cargo xtask test` runs them) mnist-mlp has a recent
      // rollout, ended by the admin; on a fresh system the panel says there is none.
      const shown = await page.until(
        `(() => {
          const panel = document.querySelector('#rollouts article.rollout');
          if (panel) {
            const stage = panel.querySelector('[data-fact="stage"]')?.textContent.trim();
            const rows = [...panel.querySelectorAll('table.audit tbody tr')].map((r) => r.textContent.trim());
            return stage && rows.length ? 'rollout ' + panel.dataset.model + ': ' + stage + '; audit: ' + rows.join(' | ') : '';
          }
          const empty = document.querySelector('#rollouts .rollouts-empty');
          return empty && empty.offsetParent !== null ? 'none: ' + empty.textContent.trim() : '';
        })()`,
        'the rollout panel',
      );
      if (shown.startsWith('rollout') && !/passed the offline gate/.test(shown)) {
        throw new Error(`the audit table does not start with the gate: ${shown}`);
      }
      if (shown.startsWith('rollout') && /by an admin/.test(shown) && !shown.includes(ADMIN_USERNAME)) {
        throw new Error(`the audit table does not name the admin who ended the rollout: ${shown}`);
      }
      console.log(`     ${shown.slice(0, 200)}`);
    });

    const errors = bidi.events
      .filter((e) => e.method === 'log.entryAdded' && (e.params.type === 'javascript' || e.params.level === 'error'))
      .map((e) => e.params.text);
    if (errors.length) failures.push(`errors in the pages: ${errors.join(' | ')}`);
    await bidi.send('session.end').catch(() => {});
  } catch (error) {
    failures.push(`${error.message}${stderr ? `\nFirefox said: ${stderr.slice(-2000)}` : ''}`);
  } finally {
    firefox.kill('SIGTERM');
    await new Promise((resolve) => firefox.once('exit', resolve));
    await rm(profile, { recursive: true, force: true });
  }
  if (failures.length) {
    console.error(`\n${failures.length} Firefox check(s) failed:\n- ${failures.join('\n- ')}`);
    process.exit(1);
  }
  console.log(`screenshots in ${SCREENSHOT_DIR}`);
}

await main();
