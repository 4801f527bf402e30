#!/usr/bin/env node
// Browser tests of the web pages against a running gateway, in headless Chromium (the system's
// /usr/bin/chromium, driven by playwright-core). Each scenario asserts what a person sees.
//
//   BASE_URL         the gateway, e.g. http://127.0.0.1:8080 (required)
//   ADMIN_USERNAME   an admin's user name (required)
//   ADMIN_PASSWORD   that admin's password (required)
//   SCREENSHOT_DIR   where the PNGs go (default target/web-screenshots)
//   CHROMIUM_PATH    the browser (default /usr/bin/chromium)
//   E2E_ONLY         a comma-separated subset of scenario names to run
//
// Exits non-zero, naming each failed scenario and why, if anything fails.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name];
  return value && value.trim() ? value.trim() : fallback;
};

const BASE_URL = env('BASE_URL', '').replace(/\/+$/, '');
const ADMIN_USERNAME = env('ADMIN_USERNAME', '');
const ADMIN_PASSWORD = env('ADMIN_PASSWORD', '');
const SCREENSHOT_DIR = path.resolve(env('SCREENSHOT_DIR', 'target/web-screenshots'));
const CHROMIUM_PATH = env('CHROMIUM_PATH', '/usr/bin/chromium');
const ONLY = env('E2E_ONLY', '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

// Reduced motion: charts draw at once, so screenshots show them finished.
const DESKTOP = { viewport: { width: 1280, height: 900 }, reducedMotion: 'reduce' };
const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  reducedMotion: 'reduce',
};
const PASSWORD = 'e2e-password-123';

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

/** Waits until `condition()` (something the test recorded) holds, or fails naming `what`. */
async function until(condition, what, timeout = 15_000) {
  const end = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > end) throw new Failure(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function uniqueName(role) {
  return `e2e_${role}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 7)}`;
}

/**
 * A page in a fresh browser context that fails its scenario on any script error or CSP
 * violation. The scenario's runner closes the contexts (after a screenshot when it failed).
 */
async function openPage(browser, options, scenario) {
  const context = await browser.newContext({ ...options, baseURL: BASE_URL });
  scenario.contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (error) => scenario.problems.push(`uncaught error in the page: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    if (message.type() === 'error' && /Content Security Policy|Refused to|Uncaught/i.test(text)) {
      scenario.problems.push(`browser console: ${text}`);
    }
  });
  return { context, page };
}

async function screenshot(page, name) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

async function registerThroughPage(page, username) {
  await page.goto('/');
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByText(`Signed in as ${username}`).waitFor({ timeout: 15_000 });
}

async function signInThroughPage(page, username, password) {
  await page.goto('/');
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const refused = page.locator('#auth-error').filter({ hasText: /\S/ });
  await page.getByText(`Signed in as ${username}`).or(refused).waitFor({ timeout: 15_000 });
  if (await refused.isVisible()) throw new Failure(`signing in as ${username} failed: ${await refused.textContent()}`);
}

/** Stroke points as fractions of the pad: a slanted "1". */
const ONE = [
  [0.52, 0.15],
  [0.51, 0.35],
  [0.5, 0.55],
  [0.49, 0.75],
  [0.48, 0.88],
];

async function drawWithMouse(page, points) {
  const box = await page.locator('#pad').boundingBox();
  const at = ([fx, fy]) => [box.x + fx * box.width, box.y + fy * box.height];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const point of points.slice(1)) await page.mouse.move(...at(point), { steps: 8 });
  await page.mouse.up();
}

/** Touch strokes through the DevTools protocol: real touch events, as a finger makes them. */
async function drawWithTouch(page, points) {
  const box = await page.locator('#pad').boundingBox();
  const at = ([fx, fy]) => ({ x: box.x + fx * box.width, y: box.y + fy * box.height });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [at(points[0])] });
  for (let i = 1; i < points.length; i++) {
    const [from, to] = [points[i - 1], points[i]];
    for (let s = 1; s <= 6; s++) {
      const f = s / 6;
      const point = at([from[0] + (to[0] - from[0]) * f, from[1] + (to[1] - from[1]) * f]);
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [point] });
    }
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await cdp.detach();
}

/** Every form control and button has an accessible name a screen reader can say. */
async function checkLabelled(page) {
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button')]
      .filter((el) => el.type !== 'hidden' && el.getClientRects().length > 0)
      .filter((el) => {
        const named = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el.labels && el.labels.length > 0);
        return !named && !(el.tagName === 'BUTTON' && el.textContent.trim());
      })
      .map((el) => el.outerHTML.slice(0, 80)),
  );
  check(unnamed.length === 0, `controls without a label: ${unnamed.join(' | ')}`);
}

/** Every visible text meets WCAG AA contrast against what is behind it (4.5:1, large text 3:1). */
async function checkContrast(page) {
  const poor = await page.evaluate(() => {
    const rgba = (css) => {
      const m = css.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const luminance = ({ r, g, b }) => {
      const lin = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
      return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    const backgroundOf = (el) => {
      for (let node = el; node; node = node.parentElement) {
        const bg = rgba(getComputedStyle(node).backgroundColor);
        if (bg && bg.a > 0.5) return bg;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const found = [];
    for (const el of document.querySelectorAll('body *')) {
      const ownText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
      if (!ownText || el.getClientRects().length === 0 || el.closest('.visually-hidden, [disabled]')) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || Number(style.opacity) < 0.5) continue;
      const fg = rgba(style.color);
      const [l1, l2] = [luminance(fg), luminance(backgroundOf(el))].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) found.push(`"${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
    }
    return found;
  });
  check(poor.length === 0, `text with too little contrast: ${poor.slice(0, 5).join(', ')}`);
}

/** A picture of a "1" as a phone photo would have it: dark ink on light paper, as a PNG. */
async function paperPicture(page) {
  const dataUrl = await page.evaluate(() => {
    const canvas = document.createElement('canvas');
    canvas.width = 240;
    canvas.height = 320;
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#f4f1e8';
    ctx.fillRect(0, 0, 240, 320);
    ctx.strokeStyle = '#202020';
    ctx.lineWidth = 22;
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(128, 50);
    ctx.lineTo(112, 270);
    ctx.stroke();
    return canvas.toDataURL('image/png');
  });
  return Buffer.from(dataUrl.split(',')[1], 'base64');
}

/** Recognises what is on the pad and checks both answers as a person sees them. */
async function recogniseAndCheck(page, expected) {
  await page.getByRole('button', { name: 'Recognise' }).click();
  return checkAnswers(page, expected);
}

/** Both answers as a person sees them, once the page has finished showing them. */
async function checkAnswers(page, expected) {
  const answers = page.locator('#answers');
  await answers.waitFor({ state: 'visible', timeout: 20_000 });
  await page.locator('#answers-card[aria-busy="false"]').waitFor({ timeout: 20_000 });
  const error = (await page.locator('#predict-error').textContent()).trim();
  check(!error, `recognising showed an error: ${error}`);
  const result = {};
  for (const version of ['v1', 'v2']) {
    const panel = page.locator(`#answer-${version}`);
    const digit = (await panel.locator('[data-field="digit"]').textContent()).trim();
    check(/^\d$/.test(digit), `${version} shows "${digit}" instead of a digit`);
    const sure = (await panel.locator('[data-field="probability"]').textContent()).trim();
    check(/^\d+(\.\d)? % sure$/.test(sure), `${version} shows "${sure}" as its probability`);
    const summary = (await panel.locator('[data-field="summary"]').textContent()).trim();
    check(summary.startsWith("Every digit's probability"), `${version}'s bar chart is missing: ${summary}`);
    const bars = await panel.locator('[data-field="chart"]').evaluate((canvas) => window.Chart.getChart(canvas)?.data.datasets[0].data ?? []);
    check(bars.length === 10, `${version}'s chart has ${bars.length} bars, not one per digit`);
    const total = bars.reduce((a, b) => a + b, 0);
    check(Math.abs(total - 100) < 1.5, `${version}'s bars add up to ${total} %, not 100 %`);
    const best = bars.indexOf(Math.max(...bars));
    check(String(best) === digit, `${version} answers ${digit} but its tallest bar is ${best}`);
    result[version] = Number(digit);
  }
  if (expected !== undefined) {
    check(result.v2 === expected, `v2 read the drawn ${expected} as ${result.v2}`);
  }
  return result;
}

// ---- scenarios --------------------------------------------------------------------------------

async function drawAndGetAnAnswer(browser, scenario) {
  for (const [name, options, draw] of [
    ['desktop', DESKTOP, drawWithMouse],
    ['phone', PHONE, drawWithTouch],
  ]) {
    const { context, page } = await openPage(browser, options, scenario);
    await registerThroughPage(page, uniqueName('drawer'));
    await draw(page, ONE);
    check(await page.getByRole('button', { name: 'Recognise' }).isEnabled(), `drawing (${name}) did not enable "Recognise"`);
    await recogniseAndCheck(page, 1);
    await checkLabelled(page);
    await checkContrast(page);
    await screenshot(page, `try-${name}`);
    if (name === 'desktop') {
      // The keyboard draws too: a "1" with the arrow keys, recognised as one.
      await page.getByRole('button', { name: 'Clear' }).click();
      await page.locator('#pad').focus();
      for (let i = 0; i < 6; i++) await page.keyboard.press('ArrowUp');
      await page.keyboard.press('Space');
      check((await page.locator('#pen-status').textContent()).startsWith('Pen down'), 'Space did not put the pen down');
      for (let i = 0; i < 12; i++) await page.keyboard.press('ArrowDown');
      await page.keyboard.press('Space');
      await recogniseAndCheck(page, 1);
      // "Yes, that is right" posts feedback for the v2 answer (judged by default).
      await page.getByRole('button', { name: 'Yes, that is right' }).click();
      const thanks = page.locator('#feedback-result').filter({ hasText: 'Thank you' });
      await thanks.waitFor({ timeout: 10_000 });
      check((await thanks.textContent()).includes('v2 was right'), `the confirmation says: ${await thanks.textContent()}`);
      check(await page.getByRole('button', { name: 'Yes, that is right' }).isDisabled(), 'the same answer can be judged twice');
      // A chosen picture is shown on the pad and recognised at once, as the page says, without
      // pressing "Recognise".
      check(
        (await page.locator('#drop').textContent()).includes('recognised as soon as it is chosen'),
        'the page does not say that a chosen picture is recognised at once',
      );
      await page.getByRole('button', { name: 'Clear' }).click();
      const recognised = page.waitForResponse((r) => r.url().endsWith('/api/v2/predict') && r.request().method() === 'POST', { timeout: 20_000 });
      await page.getByLabel('Or choose a picture of a digit').setInputFiles({
        name: 'one.png',
        mimeType: 'image/png',
        buffer: await paperPicture(page),
      });
      await recognised;
      const answers = await checkAnswers(page, 1);
      check(answers.v2 === 1, `the chosen picture of a 1 was read as ${answers.v2}`);
    }
    // A cleared pad has nothing to recognise.
    await page.getByRole('button', { name: 'Clear' }).click();
    check(await page.getByRole('button', { name: 'Recognise' }).isDisabled(), 'a cleared pad still offers "Recognise"');
    await context.close();
  }
}

async function adminDashboard(browser, options, scenario, prepare = async () => {}) {
  const admin = await openPage(browser, options, scenario);
  await prepare(admin);
  await signInThroughPage(admin.page, ADMIN_USERNAME, ADMIN_PASSWORD);
  await admin.page.getByRole('link', { name: 'Admin dashboard' }).click();
  await admin.page.waitForURL('**/dashboard');
  await admin.page.locator('#live-status.online').waitFor({ timeout: 15_000 });
  await admin.page.locator('#main[aria-busy="false"]').waitFor({ timeout: 15_000 });
  return admin;
}

/**
 * Draws a "1" and picks its true digit. Always the truth: a test run against a system whose
 * feedback later trains its models must not teach them wrong digits.
 */
async function sendFeedback(page, trueDigit) {
  await drawWithMouse(page, ONE);
  const answers = await recogniseAndCheck(page);
  await page.getByRole('button', { name: `It is a ${trueDigit}` }).click();
  const result = page.locator('#feedback-result');
  await result.filter({ hasText: 'Thank you' }).waitFor({ timeout: 10_000 });
  const text = await result.textContent();
  const id = /feedback (\d+)/.exec(text)?.[1];
  check(id, `the feedback answer names no id: ${text}`);
  return { id, answers };
}

/**
 * In the page, before its scripts: `window.__e2eBlockSockets = true` makes every new WebSocket
 * ask with a token the server refuses, so it closes before `open` as when the network is down
 * (Playwright's offline mode may leave WebSockets alone). The page's own code does the rest.
 */
function blockableSockets() {
  const Real = window.WebSocket;
  window.__e2eBlockSockets = false;
  window.WebSocket = class extends Real {
    constructor(url, protocols) {
      let target = url;
      if (window.__e2eBlockSockets) {
        const u = new URL(url, location.href);
        u.searchParams.set('access_token', 'blocked-by-the-test');
        target = u.toString();
      }
      super(target, protocols);
    }
  };
}

/** What the server's own report says now, asked with the page's session. */
async function serverReportTotal(page) {
  return page.evaluate(async () => {
    const { access_token: token } = JSON.parse(localStorage.getItem('predictloop.session'));
    const answer = await fetch('/admin/report', { headers: { Authorization: `Bearer ${token}` } });
    if (!answer.ok) throw new Error(`GET /admin/report answered ${answer.status}`);
    return (await answer.json()).total_feedback;
  });
}

/** Waits until an image has loaded and shows the 28×28 input. */
async function waitForInputImage(page, image, what) {
  const handle = await image.elementHandle({ timeout: 10_000 }).catch(() => null);
  check(handle, `${what} has no input image`);
  const loaded = await page
    .waitForFunction((img) => img.complete && img.naturalWidth === 28, handle, { timeout: 10_000 })
    .then(() => true, () => false);
  check(loaded, `${what}'s input image is not shown`);
}

async function feedbackReachesTheDashboard(browser, scenario) {
  const sockets = [];
  let refreshes = 0;
  const admin = await adminDashboard(browser, DESKTOP, scenario, async ({ context, page }) => {
    await context.addInitScript(blockableSockets);
    page.on('websocket', (socket) => {
      const entry = { url: socket.url(), closed: false };
      sockets.push(entry);
      socket.on('close', () => {
        entry.closed = true;
      });
    });
    page.on('request', (request) => {
      if (request.url().endsWith('/token/refresh')) refreshes += 1;
    });
  });
  const user = await openPage(browser, DESKTOP, scenario);
  const username = uniqueName('giver');
  await registerThroughPage(user.page, username);
  const shownTotal = async () => Number(await admin.page.locator('#report-totals dd').first().textContent());
  const totalBefore = await shownTotal();
  const first = await sendFeedback(user.page, 1);
  const item = admin.page.locator(`#feed li[data-feedback-id="${first.id}"]`);
  await item.waitFor({ timeout: 10_000 });
  const text = await item.textContent();
  check(text.includes(username), `the feed item does not name ${username}: ${text}`);
  check(text.includes(`predicted ${first.answers.v2}`), `the feed item does not show the prediction: ${text}`);
  await waitForInputImage(admin.page, item.locator('img'), 'the live feed item');
  check((await shownTotal()) === totalBefore + 1, 'the report did not count the live feedback');

  // Disconnected for a while: the page's "Reconnect now" closes its socket for real, and every
  // new one is refused until the test lets them through. A feedback sent meanwhile can only
  // arrive by the replay the reconnect asks for.
  await admin.page.evaluate(() => {
    window.__e2eBlockSockets = true;
  });
  const before = sockets.length;
  const reconnectNow = admin.page.getByRole('button', { name: 'Reconnect now' });
  await reconnectNow.click();
  await admin.page.locator('#live-status.offline').waitFor({ timeout: 10_000 });
  // Refused upgrades (the page sees only a close before `open`): after two, the page renews its
  // session before trying again. "Reconnect now" hurries each attempt.
  const refused = () => sockets.slice(before).filter((s) => s.url.includes('blocked-by-the-test') && s.closed).length;
  const refreshesBefore = refreshes;
  for (let n = 1; n <= 2; n++) {
    await until(() => refused() >= n, `refused connection ${n}`);
    await reconnectNow.click();
  }
  await until(() => refreshes > refreshesBefore && refused() >= 3, 'a session refresh after two refused connections');
  const missed = await sendFeedback(user.page, 1);
  const missedItem = admin.page.locator(`#feed li[data-feedback-id="${missed.id}"]`);
  check((await missedItem.count()) === 0, `feedback ${missed.id} reached the dashboard while its feed was disconnected`);
  await admin.page.evaluate(() => {
    window.__e2eBlockSockets = false;
  });
  await admin.page.getByRole('button', { name: 'Reconnect now' }).click();
  await admin.page.locator('#live-status.online').filter({ hasText: 'missed events replayed' }).waitFor({ timeout: 30_000 });
  await missedItem.waitFor({ timeout: 10_000 });
  const resumed = sockets.slice(before).map((s) => s.url).filter((url) => !url.includes('blocked-by-the-test'));
  check(resumed.length >= 1, 'the page never reconnected');
  check(resumed.every((url) => /[?&]last_event_id=[^&]+/.test(url)), `the reconnect did not ask for what it missed: ${resumed.join(' ')}`);
  await waitForInputImage(admin.page, missedItem.locator('img'), 'the replayed feed item');
  const alert = (await admin.page.locator('#notice').textContent()).trim();
  check(!alert, `the dashboard still shows an alert once live again: ${alert}`);
  // Counted once each, whatever the socket delivered: the total shown is the server's.
  const shown = await shownTotal();
  check(shown === totalBefore + 2, `the report shows ${shown} feedback, not ${totalBefore + 2}, after the replay`);
  const server = await serverReportTotal(admin.page);
  check(shown === server, `the report shows ${shown} feedback but the server counts ${server}`);
  // The server's report agrees with what the page counted live, in every figure shown.
  const shownReport = () => admin.page.locator('#report-totals, #confusion, #accuracy-summary').allTextContents();
  const counted = await shownReport();
  const refreshed = admin.page.waitForResponse((r) => r.url().endsWith('/admin/report') && r.ok());
  await admin.page.getByRole('button', { name: 'Refresh' }).first().click();
  await refreshed;
  await admin.page.locator('#report-card[aria-busy="false"]').waitFor({ timeout: 10_000 });
  const fromServer = await shownReport();
  check(JSON.stringify(counted) === JSON.stringify(fromServer), `the live report differs from the server's: ${counted} vs ${fromServer}`);
  const cells = await admin.page.locator('#confusion tbody td').count();
  check(cells === 100, `the confusion matrix has ${cells} cells, not 10 × 10`);
  await checkLabelled(admin.page);
  await checkContrast(admin.page);
  await screenshot(admin.page, 'dashboard-desktop');
  // Opened again, the dashboard lists the earlier feedback with its images too.
  await admin.page.reload();
  await admin.page.locator('#main[aria-busy="false"]').waitFor({ timeout: 15_000 });
  for (const { id } of [first, missed]) {
    await waitForInputImage(admin.page, admin.page.locator(`#feed li[data-feedback-id="${id}"] img`), `earlier feedback ${id}`);
  }
  check((await shownTotal()) === (await serverReportTotal(admin.page)), 'the report shown on opening differs from the server\'s');
}

async function aUserCannotOpenTheDashboard(browser, scenario) {
  const { page } = await openPage(browser, DESKTOP, scenario);
  // A notice code that is no sentence of the page's (not even an inherited property) is ignored.
  await page.goto('/?notice=__proto__');
  await page.getByLabel('User name').waitFor();
  check(!(await page.locator('#notice').textContent()).trim(), 'an unknown notice code showed a notice');
  await page.goto('/dashboard');
  await page.waitForURL(/\/\?notice=sign_in_admin$/);
  await page.getByText('Sign in as an administrator').waitFor();

  const username = uniqueName('plain');
  // The API's refusal is shown as its sentence, never as JSON.
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password', { exact: true }).fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const refusal = page.locator('#auth-error').filter({ hasText: /\S/ });
  await refusal.waitFor({ timeout: 10_000 });
  const sentence = (await refusal.textContent()).trim();
  check(/^[A-Z].*\.$/.test(sentence) && !sentence.includes('{'), `a wrong password shows "${sentence}"`);
  await registerThroughPage(page, username);
  check(!(await page.getByRole('link', { name: 'Admin dashboard' }).isVisible()), 'a user is offered the dashboard link');
  await page.goto('/dashboard');
  await page.waitForURL(/\/\?notice=admin_only$/);
  const notice = (await page.locator('#notice').textContent()).trim();
  check(notice.includes('for administrators only') && notice.includes(username), `the refusal is not clear: "${notice}"`);
  check(!notice.includes('{'), `the refusal shows raw JSON: ${notice}`);
}

async function signOutEndsTheLoginOnTheServer(browser, scenario) {
  const { page } = await openPage(browser, DESKTOP, scenario);
  await registerThroughPage(page, uniqueName('leaver'));
  const stored = () => page.evaluate(() => JSON.parse(localStorage.getItem('predictloop.session') ?? 'null'));
  const refreshToken = (await stored())?.refresh_token;
  check(refreshToken, 'no refresh token is stored after signing in');
  const logouts = [];
  page.on('response', (r) => {
    if (new URL(r.url()).pathname === '/logout') logouts.push(`${r.request().method()} ${r.status()}`);
  });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: 15_000 });
  check(JSON.stringify(logouts) === '["POST 204"]', `Sign out asked the server: ${JSON.stringify(logouts)}`);
  check((await stored()) === null, 'the tokens are still stored after signing out');
  // A copy of the refresh token taken before signing out is of no use any more.
  const answer = await page.request.post('/token/refresh', { data: { refresh_token: refreshToken } });
  check(answer.status() === 401, `the signed-out refresh token is answered ${answer.status()}, not 401`);
}

async function startARetrainAndSeeProgress(browser, scenario) {
  // While the live feed is up, the job is followed by its events alone: reading its record
  // would spend the admin's rate limit on /admin/retrain, which "Start retraining" needs.
  const jobReads = [];
  const admin = await adminDashboard(browser, DESKTOP, scenario, async ({ page }) => {
    page.on('request', (request) => {
      if (/\/admin\/retrain\/[^/?]+$/.test(new URL(request.url()).pathname)) jobReads.push(request.url());
    });
  });
  const phone = await adminDashboard(browser, PHONE, scenario);
  await checkLabelled(phone.page);
  await checkContrast(phone.page);
  await screenshot(phone.page, 'dashboard-phone');
  const page = admin.page;
  const mlp = page.locator('#models [data-model="mnist-mlp"]');
  const activeBefore = /active: v(\d+)/.exec(await mlp.locator('h3').textContent())?.[1];
  check(activeBefore, 'the model versions do not say which mnist-mlp version is active');
  await page.getByLabel('Model', { exact: true }).selectOption('mnist-mlp');
  await page.getByLabel('Epochs (1 to 30)').fill('2');
  await page.getByLabel(/MNIST training digits/).fill('2000');
  await page.getByRole('button', { name: 'Start retraining' }).click();
  await page.locator('#job-id').filter({ hasText: /\S/ }).waitFor({ timeout: 10_000 });
  // Live progress: an epoch's loss and accuracy on the chart (a short job may be past the first).
  await page.locator('#training-summary').filter({ hasText: /Epoch [12]: loss \d/ }).waitFor({ timeout: 180_000 });
  const points = await page.locator('#training-chart').evaluate((canvas) => window.Chart.getChart(canvas).data.datasets.map((d) => d.data.length));
  check(points.every((n) => n >= 1), `the training chart has no points: ${points}`);
  const epoch = (await page.locator('#job-epoch').textContent()).trim();
  check(/^[12] of 2$/.test(epoch), `the epoch shown is "${epoch}"`);
  const outcome = page.locator('#job-outcome');
  await outcome.filter({ hasText: /Finished|failed/ }).waitFor({ timeout: 300_000 });
  const sentence = (await outcome.textContent()).trim();
  check(sentence.startsWith('Finished'), `the retrain did not finish: ${sentence}`);
  check(jobReads.length === 0, `the page read the job's record while its live feed was up: ${jobReads.join(' ')}`);
  const created = /^mnist-mlp v(\d+)$/.exec((await page.locator('#job-version').textContent()).trim())?.[1];
  check(created, `the job names no new version: ${await page.locator('#job-version').textContent()}`);
  // The new version is listed with the scores its evaluation gave it.
  const row = mlp.locator('tr').filter({ has: page.getByRole('cell', { name: `v${created}`, exact: true }) });
  await row.locator('td.metrics').filter({ hasText: /MNIST holdout \d+\.\d % of \d+/ }).waitFor({ timeout: 10_000 });
  await screenshot(page, 'dashboard-retrain-desktop');
  // A job never promotes: a candidate that passes the offline gate starts a rollout in shadow.
  check(
    sentence.includes('started a rollout'),
    `the retrain did not start a rollout: "${sentence}" (the rollout panel needs a candidate that passes the offline gate: run the system with RETRAIN_TOLERANCE_POINTS=100, as \`cargo xtask test\` does)`,
  );
  check((await activeNow(mlp)) === activeBefore, `the retrain changed the active version to v${await activeNow(mlp)}`);
  await row.locator('td').nth(1).filter({ hasText: /^shadow$/ }).waitFor({ timeout: 10_000 });
  await rolloutPanel(page, admin, phone, mlp, created, activeBefore);
  // Back to the version the scenario started on (a roll-back after a confirmation).
  await makeActive(page, mlp, mlp.getByRole('button', { name: `Roll back to v${activeBefore}`, exact: true }));
  check((await activeNow(mlp)) === activeBefore, `mnist-mlp is not back at v${activeBefore}`);
  await abortARollout(page, mlp, activeBefore);
}

/** A second retrain's rollout, aborted after a confirmation: its candidate is rolled back. */
async function abortARollout(page, mlp, activeBefore) {
  const firstJob = (await page.locator('#job-id').textContent()).trim();
  await page.getByRole('button', { name: 'Start retraining' }).click();
  await page.locator('#job-id').filter({ hasNotText: firstJob }).waitFor({ timeout: 10_000 });
  const outcome = page.locator('#job-outcome');
  await outcome.filter({ hasText: /Finished|failed/ }).waitFor({ timeout: 300_000 });
  const sentence = (await outcome.textContent()).trim();
  check(sentence.includes('started a rollout'), `the second retrain did not start a rollout: "${sentence}"`);
  const created = /^mnist-mlp v(\d+)$/.exec((await page.locator('#job-version').textContent()).trim())?.[1];
  const panel = page.locator('#rollouts article.rollout[data-model="mnist-mlp"]');
  await panel.locator('h3').filter({ hasText: `v${created} (candidate) against v${activeBefore} (active)` }).waitFor({ timeout: 15_000 });
  await steer(page, panel, 'Abort (roll back)', 'Yes, roll back');
  await page.locator('#notice').filter({ hasText: `v${created} was rolled back` }).waitFor({ timeout: 15_000 });
  await fact(panel, 'verdict').filter({ hasText: /^rolled back/ }).waitFor({ timeout: 10_000 });
  const aborted = panel.locator('table.audit tbody tr').filter({ hasText: 'aborted by an admin' });
  await aborted.waitFor({ timeout: 10_000 });
  const cells = (await aborted.locator('td').allTextContents()).map((t) => t.trim());
  check(cells[5] === ADMIN_USERNAME && cells[2] === 'rolled back', `the abort's audit row reads ${cells.join(' | ')}`);
  const row = mlp.locator('tr').filter({ has: page.getByRole('cell', { name: `v${created}`, exact: true }) });
  await row.locator('td').nth(1).filter({ hasText: /^rolled back$/ }).waitFor({ timeout: 10_000 });
  check((await activeNow(mlp)) === activeBefore, `aborting the rollout changed the active version to v${await activeNow(mlp)}`);
}

const activeNow = async (model) => /active: v(\d+)/.exec(await model.locator('h3').textContent())?.[1];

/** A rollout panel's fact (`data-fact`), e.g. its stage. */
const fact = (panel, key) => panel.locator(`[data-fact="${key}"]`);

/**
 * A new user's requested label on mnist-mlp during the rollout (shadow: the active version
 * answers, the candidate runs beside it): "1"s are recognised until an answer carries
 * `feedback_requested: true` (a random 20 % by default), then its true digit is sent. How many
 * predictions it took.
 */
async function sendARequestedLabel(page) {
  const username = uniqueName('labeller');
  const api = page.request;
  const registered = await api.post('/register', { data: { username, password: PASSWORD } });
  check(registered.status() === 201, `registering the labeller: ${registered.status()}`);
  const login = await api.post('/login', { data: { username, password: PASSWORD } });
  check(login.ok(), `the labeller's login: ${login.status()}`);
  const headers = { Authorization: `Bearer ${(await login.json()).access_token}` };
  const picture = await paperPicture(page);
  for (let tries = 1; tries <= 60; tries++) {
    const answer = await api.post('/api/v1/predict', { headers, multipart: { file: { name: 'one.png', mimeType: 'image/png', buffer: picture } } });
    check(answer.ok(), `a prediction during the rollout failed: ${answer.status()} ${await answer.text()}`);
    const served = await answer.json();
    check(typeof served.feedback_requested === 'boolean', `the answer has no feedback_requested: ${JSON.stringify(served)}`);
    if (!served.feedback_requested) continue;
    const digit = served.prediccion;
    const feedback = await api.post('/feedback', {
      headers,
      data: { prediction: digit, correct: digit === 1, label: 1, prediction_id: served.prediction_id },
    });
    check(feedback.status() === 201, `the requested label was refused: ${feedback.status()} ${await feedback.text()}`);
    return tries;
  }
  throw new Failure('no answer in 60 asked for a label (FEEDBACK_REQUEST_SHARE is 0.2 by default)');
}

/** Reads the rollout (as the admin) until a label is counted in it; how many pairs it has. */
async function untilCounted(page, candidate) {
  const end = Date.now() + 20_000;
  for (;;) {
    const stats = await page.evaluate(async (version) => {
      const { access_token: token } = JSON.parse(localStorage.getItem('predictloop.session'));
      const answer = await fetch('/admin/models/mnist-mlp/rollouts', { headers: { Authorization: `Bearer ${token}` } });
      const { rollouts = [] } = await answer.json();
      return rollouts.find((r) => r.candidate_version === Number(version))?.stats ?? null;
    }, candidate);
    const pairs = stats ? Object.values(stats.pairs).reduce((a, b) => a + b, 0) : 0;
    const unpaired = stats ? stats.active_unpaired.total + stats.candidate_unpaired.total : 0;
    if (pairs + unpaired > 0) return pairs;
    if (Date.now() > end) throw new Failure("the requested label never reached the rollout's statistics");
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Clicks a rollout button, cancels its confirmation once, then confirms with `yes`. */
async function steer(page, panel, buttonName, yes) {
  const dialog = page.getByRole('dialog');
  const button = panel.getByRole('button', { name: buttonName, exact: true });
  await button.click();
  check((await dialog.getByRole('button', { name: yes }).count()) === 1, `the confirmation of "${buttonName}" does not offer "${yes}"`);
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  check(!(await dialog.isVisible()), `cancelling "${buttonName}" left the confirmation open`);
  await button.click();
  await dialog.getByRole('button', { name: yes }).click();
}

/**
 * The rollout the retrain started: shown in shadow with a share of 0 on both dashboards; paused
 * after a confirmation (the other dashboard learns it from `rollout_progress`); promoted now after
 * a confirmation: the candidate becomes active, the audit table names the admin, and the other
 * dashboard learns it from `rollout_decided`.
 */
async function rolloutPanel(page, admin, phone, mlp, created, activeBefore) {
  const panelOf = (p) => p.locator(`#rollouts article.rollout[data-model="mnist-mlp"]`);
  const panel = panelOf(page);
  const other = panelOf(phone.page);
  for (const p of [panel, other]) {
    await p.locator('h3').filter({ hasText: `v${created} (candidate) against v${activeBefore} (active)` }).waitFor({ timeout: 15_000 });
    await fact(p, 'stage').filter({ hasText: /^shadow$/ }).waitFor({ timeout: 10_000 });
    check((await fact(p, 'share').textContent()).trim() === '0 %', `the share in shadow reads "${await fact(p, 'share').textContent()}"`);
  }
  check(/−1\.0 points/.test(await fact(panel, 'boundary').textContent()), `the decision boundary reads "${await fact(panel, 'boundary').textContent()}"`);
  const firstRow = panel.locator('table.audit tbody tr').first();
  check(/passed the offline gate/.test(await firstRow.textContent()), `the audit table starts with "${await firstRow.textContent()}"`);
  check((await panel.locator('canvas').count()) === 2, 'the rollout panel has no accuracy and Δ charts');
  await checkLabelled(page);
  await checkContrast(page);

  // A requested label on a prediction both versions answered: the decision's first pair, drawn.
  const tries = await sendARequestedLabel(page);
  const pairs = await untilCounted(page, created);
  check(pairs === 1, `the requested label (after ${tries} predictions) did not make a pair: ${pairs} pairs`);
  await page.locator('#rollouts-refresh').click();
  await fact(panel, 'sample').filter({ hasText: /^1 paired requested label;/ }).waitFor({ timeout: 10_000 });
  for (const key of ['active', 'candidate']) {
    const text = await fact(panel, key).textContent();
    check(/^\d+\.\d % \(\d+\.\d % to \d+\.\d %\)$/.test(text.trim()), `the ${key} accuracy reads "${text}"`);
  }
  const drawn = async (p) =>
    p.locator('canvas').first().evaluate((canvas) => window.Chart.getChart(canvas).data.datasets[2].data.filter((v) => v !== null).length);
  check((await drawn(panel)) >= 1, 'the accuracy chart has no point for the labelled pair');

  await steer(page, panel, 'Pause', 'Yes, pause');
  await fact(panel, 'stage').filter({ hasText: 'shadow (paused)' }).waitFor({ timeout: 10_000 });
  await panel.getByRole('button', { name: 'Resume', exact: true }).waitFor();
  await page.locator('#notice').filter({ hasText: 'is paused' }).waitFor();
  // The other dashboard, from the `rollout_progress` event alone.
  await fact(other, 'stage').filter({ hasText: 'shadow (paused)' }).waitFor({ timeout: 15_000 });
  await fact(other, 'sample').filter({ hasText: /^1 paired requested label;/ }).waitFor({ timeout: 15_000 });
  check((await drawn(other)) >= 1, "the other dashboard's accuracy chart has no point after the event");
  await screenshot(page, 'dashboard-rollout-desktop');

  await steer(page, panel, 'Promote now', 'Yes, promote now');
  await page.locator('#notice').filter({ hasText: `v${created} is now the active version` }).waitFor({ timeout: 15_000 });
  await fact(panel, 'verdict').filter({ hasText: /^promoted/ }).waitFor({ timeout: 10_000 });
  check((await panel.getByRole('button').count()) === 0, 'a decided rollout still offers buttons');
  const byAdmin = panel.locator('table.audit tbody tr').filter({ hasText: 'promoted by an admin' });
  await byAdmin.waitFor({ timeout: 10_000 });
  const cells = (await byAdmin.locator('td').allTextContents()).map((t) => t.trim());
  check(cells[5] === ADMIN_USERNAME, `the audit table says the promotion was by "${cells[5]}", not ${ADMIN_USERNAME}`);
  check(cells[2] === 'active (promoted)', `the promotion's row goes to "${cells[2]}"`);
  await mlp.locator('h3').filter({ hasText: `active: v${created})` }).waitFor({ timeout: 10_000 });
  // The other dashboard, from `rollout_decided`.
  await fact(other, 'verdict').filter({ hasText: /^promoted/ }).waitFor({ timeout: 15_000 });
  await other.locator('table.audit tbody tr').filter({ hasText: ADMIN_USERNAME }).waitFor({ timeout: 15_000 });
}

/** Clicks a promote / roll-back button, cancels the confirmation once, then confirms. */
async function makeActive(page, model, button) {
  const label = (await button.textContent()).trim();
  const version = /v(\d+)$/.exec(label)?.[1];
  const dialog = page.getByRole('dialog');
  await button.click();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  check(!(await dialog.isVisible()), `cancelling "${label}" left the confirmation open`);
  check(await button.isVisible(), `cancelling "${label}" still changed the active version`);
  await button.click();
  await dialog.getByRole('button', { name: 'Yes, make it active' }).click();
  await page.locator('#notice').filter({ hasText: `v${version} is now the active version` }).waitFor({ timeout: 10_000 });
  await model.locator('h3').filter({ hasText: `active: v${version})` }).waitFor({ timeout: 10_000 });
}

/** What every page of a failed scenario showed, as `failed-<scenario>-<n>.png`. */
async function screenshotFailure(name, contexts) {
  const slug = name.replace(/[^a-z0-9]+/gi, '-');
  let n = 0;
  for (const context of contexts) {
    for (const page of context.pages()) {
      n += 1;
      await screenshot(page, `failed-${slug}-${n}`).catch(() => {});
    }
  }
}

const SCENARIOS = [
  ['draw a digit and get an answer', drawAndGetAnAnswer],
  ['feedback arrives on an admin dashboard', feedbackReachesTheDashboard],
  ['a user cannot open the dashboard', aUserCannotOpenTheDashboard],
  ['sign out ends the login on the server', signOutEndsTheLoginOnTheServer],
  ['start a retrain and see progress', startARetrainAndSeeProgress],
];

async function main() {
  const missing = ['BASE_URL', 'ADMIN_USERNAME', 'ADMIN_PASSWORD'].filter((n) => !env(n, ''));
  if (missing.length) {
    console.error(`e2e: set ${missing.join(', ')} (the gateway's URL and an admin's credentials)`);
    return 2;
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true });
  const failures = [];
  try {
    for (const [name, run] of SCENARIOS) {
      if (ONLY.length && !ONLY.some((o) => name.includes(o))) continue;
      const scenario = { problems: [], contexts: [] };
      const { problems } = scenario;
      const started = Date.now();
      try {
        await run(browser, scenario);
        if (problems.length) throw new Failure(problems.join('; '));
        console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      } catch (error) {
        const why = error instanceof Failure ? error.message : `${error.name}: ${error.message}`;
        failures.push(`${name}: ${why}${problems.length && !(error instanceof Failure) ? ` (also: ${problems.join('; ')})` : ''}`);
        console.log(`FAIL ${name}: ${why}`);
        await screenshotFailure(name, scenario.contexts);
      } finally {
        for (const context of scenario.contexts) await context.close().catch(() => {});
      }
    }
  } finally {
    await browser.close();
  }
  console.log(`screenshots in ${SCREENSHOT_DIR}`);
  if (failures.length) {
    console.error(`\n${failures.length} scenario(s) failed:\n  ${failures.join('\n  ')}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`e2e: ${error.stack ?? error}`);
    process.exit(1);
  },
);
