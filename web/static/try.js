// The "Try it" page: sign in, draw or drop a digit, see both models' answers with every class's
// probability, and say whether they were right.

import { call, currentUser, logOut, register, say, sentenceOf, signIn } from './api.js';
import { probabilityChart, showProbabilities } from './charts.js';
import { DrawingPad, decodeImage, gridFromPixels, gridInput, gridPng, pixelsOfGrid } from './digit.js';

const $ = (id) => document.getElementById(id);

/** Sentences the dashboard may send people back with (`?notice=`): fixed, never from the URL. */
const NOTICES = {
  admin_only: (user) =>
    `The admin dashboard is for administrators only. You are signed in as ${user?.name ?? 'a user'}, who is not an administrator.`,
  sign_in_admin: () => 'Sign in as an administrator to open the admin dashboard.',
  signed_out: () => 'Your session has ended. Please sign in again.',
};

const VERSIONS = {
  v1: { route: '/api/v1/predict', panel: 'answer-v1' },
  v2: { route: '/api/v2/predict', panel: 'answer-v2' },
};

const state = {
  pad: null,
  charts: {},
  answers: {},
  sent: {},
};

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Shows a failure's sentence; a session that has ended brings the sign-in form back. */
function fail(element, error) {
  if (error?.code === 'signed_out') {
    showSignedIn();
    say($('auth-error'), sentenceOf(error));
    return;
  }
  say(element, sentenceOf(error));
}

function showSignedIn() {
  const user = currentUser();
  $('auth').classList.toggle('hidden', !!user);
  $('app').classList.toggle('hidden', !user);
  $('sign-out').classList.toggle('hidden', !user);
  $('dashboard-link').classList.toggle('hidden', user?.role !== 'admin');
  $('who').textContent = user ? `Signed in as ${user.name}${user.role === 'admin' ? ' (admin)' : ''}` : '';
  if (user && !state.pad) setUpDrawing();
}

async function onAuth(event) {
  event.preventDefault();
  const mode = event.submitter?.value ?? 'login';
  passwordPurpose(mode);
  const username = $('username').value.trim();
  const password = $('password').value;
  const error = $('auth-error');
  if (!username || !password) {
    say(error, 'Enter a user name and a password.');
    (username ? $('password') : $('username')).focus();
    return;
  }
  say(error, '');
  try {
    const user = mode === 'register' ? await register(username, password) : await signIn(username, password);
    $('password').value = '';
    const params = new URLSearchParams(location.search);
    if (params.get('notice') === 'sign_in_admin' && user.role === 'admin') {
      location.assign('/dashboard');
      return;
    }
    history.replaceState(null, '', '/');
    say($('notice'), mode === 'register' ? `Welcome, ${user.name}: your account is ready.` : '', 'ok');
    showSignedIn();
    $('draw-title').focus();
  } catch (e) {
    say(error, sentenceOf(e));
  }
}

/**
 * One form signs in and creates accounts: the password field says which it is for, so that
 * password managers offer a new password for an account being created and save it as such.
 */
function passwordPurpose(mode) {
  $('password').autocomplete = mode === 'register' ? 'new-password' : 'current-password';
}

function setUpDrawing() {
  state.pad = new DrawingPad($('pad'), {
    onChange: (drawn) => {
      $('predict').disabled = !drawn;
    },
    marker: $('pen-marker'),
    onPen: (down) => {
      $('pen-status').textContent = down ? 'Pen down: the arrow keys draw.' : 'Pen up: the arrow keys move without drawing.';
    },
  });
  $('clear').addEventListener('click', () => {
    state.pad.clear();
    $('file').value = '';
    say($('predict-error'), '');
  });
  $('predict').addEventListener('click', predict);
  $('file').addEventListener('change', () => {
    const [file] = $('file').files;
    if (file) loadFile(file);
  });
  const drop = $('drop');
  for (const target of [drop, $('pad')]) {
    target.addEventListener('dragover', (e) => {
      e.preventDefault();
      drop.classList.add('over');
    });
    target.addEventListener('dragleave', () => drop.classList.remove('over'));
    target.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const [file] = e.dataTransfer?.files ?? [];
      if (file) loadFile(file);
    });
  }
  for (const [version, { panel }] of Object.entries(VERSIONS)) {
    state.charts[version] = probabilityChart($(panel).querySelector('[data-field="chart"]'));
  }
  const choice = $('digit-choice');
  for (let d = 0; d < 10; d++) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'secondary';
    button.textContent = String(d);
    button.setAttribute('aria-label', `It is a ${d}`);
    button.addEventListener('click', () => sendFeedback(d));
    choice.append(button);
  }
  $('right').addEventListener('click', () => sendFeedback(null));
  for (const radio of document.querySelectorAll('input[name="judged"]')) {
    radio.addEventListener('change', updateFeedbackButtons);
  }
}

async function loadFile(file) {
  say($('predict-error'), '');
  try {
    state.pad.show(await decodeImage(file));
    await predict();
  } catch (e) {
    say($('predict-error'), e instanceof Error && !('status' in e) ? e.message : sentenceOf(e));
  }
}

async function predictWith(version, png) {
  const form = new FormData();
  form.append('file', png, 'digit.png');
  return call(VERSIONS[version].route, { method: 'POST', form });
}

/** Every class's probability from the Open Inference Protocol, on the same 28×28 input. */
async function allProbabilities(model, grid) {
  const answer = await call(`/v2/models/${encodeURIComponent(model)}/infer`, {
    method: 'POST',
    json: { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 784], data: gridInput(grid) }] },
  });
  return answer.outputs?.[0]?.data ?? null;
}

async function predict() {
  const error = $('predict-error');
  say(error, '');
  const grid = gridFromPixels(state.pad.pixels());
  if (!grid) {
    say(error, 'No digit found: draw a digit (or choose a picture of one) first.');
    return;
  }
  // predict-svc prepares the uploaded grid once more; the probabilities are asked for on that.
  const served = gridFromPixels(pixelsOfGrid(grid)) ?? grid;
  const button = $('predict');
  button.disabled = true;
  $('answers-card').setAttribute('aria-busy', 'true');
  try {
    const png = await gridPng(grid);
    const versions = Object.keys(VERSIONS);
    const results = await Promise.allSettled(versions.map((v) => predictWith(v, png)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed && results.every((r) => r.status === 'rejected')) throw failed.reason;
    state.answers = {};
    state.sent = {};
    await Promise.all(
      versions.map(async (version, i) => {
        const result = results[i];
        if (result.status === 'fulfilled') {
          state.answers[version] = result.value;
          await showAnswer(version, result.value, served);
        } else {
          showFailure(version, result.reason);
        }
      }),
    );
    $('answers-status').textContent = versions
      .map((v) => (state.answers[v] ? `${v} reads ${state.answers[v].prediccion}` : `${v} did not answer`))
      .join(', ') + '.';
    $('answers-empty').classList.add('hidden');
    $('answers').classList.remove('hidden');
    $('feedback').classList.remove('hidden');
    say($('feedback-result'), '');
    updateFeedbackButtons();
  } catch (e) {
    fail(error, e);
  } finally {
    button.disabled = false;
    $('answers-card').setAttribute('aria-busy', 'false');
  }
}

function field(version, name) {
  return $(VERSIONS[version].panel).querySelector(`[data-field="${name}"]`);
}

async function showAnswer(version, answer, grid) {
  field(version, 'digit').textContent = String(answer.prediccion);
  field(version, 'probability').textContent = `${(answer.probabilidad * 100).toFixed(1)} % sure`;
  field(version, 'model').textContent = `${answer.model} version ${answer.model_version}`;
  const summary = field(version, 'summary');
  const box = field(version, 'chart').parentElement;
  try {
    const probabilities = await allProbabilities(answer.model, grid);
    if (!probabilities || probabilities.length !== 10) throw new Error('no distribution');
    box.classList.remove('hidden');
    showProbabilities(state.charts[version], probabilities);
    const ranked = probabilities.map((p, d) => [d, p]).sort((a, b) => b[1] - a[1]);
    summary.textContent = `Every digit's probability: ${ranked
      .slice(0, 3)
      .map(([d, p]) => `${d}: ${(p * 100).toFixed(1)} %`)
      .join(', ')}; the others less.`;
  } catch (e) {
    box.classList.add('hidden');
    summary.textContent = `The probabilities of the other digits are not available: ${sentenceOf(e)}`;
  }
}

function showFailure(version, error) {
  field(version, 'digit').textContent = '–';
  field(version, 'probability').textContent = '';
  field(version, 'model').textContent = '';
  field(version, 'chart').parentElement.classList.add('hidden');
  field(version, 'summary').textContent = `${version} did not answer: ${sentenceOf(error)}`;
}

function judged() {
  return document.querySelector('input[name="judged"]:checked')?.value ?? 'v2';
}

function updateFeedbackButtons() {
  const version = judged();
  const usable = !!state.answers[version] && !state.sent[version];
  for (const button of document.querySelectorAll('#right, #digit-choice button')) button.disabled = !usable;
}

async function sendFeedback(trueDigit) {
  const version = judged();
  const answer = state.answers[version];
  const result = $('feedback-result');
  if (!answer) {
    say(result, `There is no ${version} answer to judge.`);
    return;
  }
  const label = trueDigit ?? answer.prediccion;
  const correct = label === answer.prediccion;
  state.sent[version] = true;
  updateFeedbackButtons();
  try {
    const stored = await call('/feedback', {
      method: 'POST',
      headers: { 'Idempotency-Key': randomKey() },
      json: { prediction: answer.prediccion, correct, label, prediction_id: answer.prediction_id },
    });
    say(
      result,
      correct
        ? `Thank you: your confirmation that ${version} was right is recorded (feedback ${stored.id}).`
        : `Thank you: recorded that it was a ${label}, not a ${answer.prediccion} (feedback ${stored.id}).`,
      'ok',
    );
  } catch (e) {
    state.sent[version] = false;
    updateFeedbackButtons();
    fail(result, e);
  }
}

function start() {
  $('auth-form').addEventListener('submit', onAuth);
  for (const [id, mode] of [['register', 'register'], ['sign-in', 'login']]) {
    for (const type of ['pointerdown', 'focus']) $(id).addEventListener(type, () => passwordPurpose(mode));
  }
  $('sign-out').addEventListener('click', async () => {
    $('sign-out').disabled = true;
    await logOut();
    location.assign('/');
  });
  const code = new URLSearchParams(location.search).get('notice');
  if (code && Object.hasOwn(NOTICES, code)) say($('notice'), NOTICES[code](currentUser()), code === 'admin_only' ? 'error' : 'info');
  showSignedIn();
}

// The chart library is a deferred classic script: wait for it before drawing charts.
if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
