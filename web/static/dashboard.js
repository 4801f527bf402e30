// The admin dashboard: the live feedback feed, the report as charts, retraining with live
// progress, the rollout panel (rollouts.js), and the model versions with promotion and
// roll-back.

import { call, currentUser, logOut, say, sentenceOf } from './api.js';
import {
  COLOURS,
  addEpoch,
  barChart,
  renderHeatMap,
  resetTraining,
  setBars,
  trainingChart,
} from './charts.js';
import { storedInputUrl } from './digit.js';
import { LiveFeed } from './live.js';
import { RolloutPanel } from './rollouts.js';

const $ = (id) => document.getElementById(id);
const FEED_LIMIT = 50;

/** While the live feed is down, a followed job's record is read this often. */
const JOB_POLL_MS = 30_000;
/** After a 429 without `Retry-After`, the job is not asked about for this long. */
const RATE_LIMITED_WAIT_MS = 60_000;

const state = {
  charts: {},
  job: null,
  jobDone: false,
  jobPoll: null,
  jobPollPausedUntil: 0,
  live: null,
  feedLive: false,
  feedWasLive: false,
  report: null,
  rollouts: null,
  tally: null,
};

/** Back to the "Try it" page, which says why (a fixed sentence chosen by code). */
function sendBack(code) {
  location.replace(`/?notice=${code}`);
}

function shownPercent(points) {
  if (points === null || points === undefined || points === '' || !Number.isFinite(Number(points))) return '–';
  return `${Number(points).toFixed(1)} %`;
}

/** A fraction from 0 to 1 (the models' and jobs' `accuracy`, `val_accuracy`) as "98.1 %". */
function fractionPercent(fraction) {
  if (fraction === null || fraction === undefined || fraction === '' || !Number.isFinite(Number(fraction))) return '–';
  return shownPercent(Number(fraction) * 100);
}

/** A value already in percent (the report's `accuracy_percentage`) as "98.1 %". */
const percentage = shownPercent;

function when(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

// ---- live feed ---------------------------------------------------------------------------

function feedItem(feedback) {
  const li = document.createElement('li');
  li.dataset.feedbackId = String(feedback.id);
  const imageUrl = typeof feedback.input === 'string' && feedback.input ? storedInputUrl(feedback.input) : null;
  if (imageUrl) {
    const img = document.createElement('img');
    img.src = imageUrl;
    img.alt = `The digit that was sent, predicted as ${feedback.prediction}`;
    li.append(img);
  }
  const text = document.createElement('div');
  const verdict = document.createElement('span');
  verdict.className = `badge ${feedback.correct ? 'good' : 'bad'}`;
  verdict.textContent = feedback.correct ? 'right' : 'wrong';
  const line = document.createElement('p');
  const truth = !feedback.correct && feedback.label !== null && feedback.label !== undefined ? `, really a ${feedback.label}` : '';
  line.append(verdict, ` predicted ${feedback.prediction}${truth}`);
  const meta = document.createElement('p');
  meta.className = 'muted';
  const model = feedback.model ? ` · ${feedback.model} v${feedback.model_version}` : '';
  meta.textContent = `${feedback.username} · ${when(feedback.timestamp)}${model}`;
  text.append(line, meta);
  li.append(text);
  return li;
}

function addToFeed(feedback, { newest = true } = {}) {
  const feed = $('feed');
  if (feed.querySelector(`[data-feedback-id="${CSS.escape(String(feedback.id))}"]`)) return false;
  const item = feedItem(feedback);
  if (newest) feed.prepend(item);
  else feed.append(item);
  while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
  $('feed-empty').classList.add('hidden');
  return true;
}

const RECENT_PER_PAGE = 10;

/** The newest feedback, each with its input image, listed oldest last. */
async function loadRecentFeedback() {
  const page = await call(`/admin/feedback?per_page=${RECENT_PER_PAGE}&include=input`);
  const items = page.items ?? [];
  for (const item of items) addToFeed(item, { newest: false });
  return { items, total: page.total };
}

function onLiveEvent(name, data) {
  switch (name) {
    case 'new_feedback':
      addToFeed(data);
      countLive(data);
      break;
    case 'retrain_progress':
    case 'retrain_finished':
      onJobEvent(name, data);
      if (name === 'retrain_finished') scheduleModels();
      break;
    case 'model_promoted':
      scheduleModels();
      break;
    case 'rollout_started':
    case 'rollout_decided':
      state.rollouts?.onEvent(name, data);
      // The versions' stages and shares changed.
      scheduleModels();
      break;
    case 'rollout_progress':
      state.rollouts?.onEvent(name, data);
      break;
    case 'labels_excluded':
      state.rollouts?.onLabelsExcluded(data);
      break;
    default:
      break;
  }
}

function onLiveStatus(online, sentence, kind = online ? 'live' : 'offline') {
  const status = $('live-status');
  status.className = `status-dot ${kind === 'live' ? 'online' : kind}`;
  status.textContent = sentence;
  const wasLive = state.feedLive;
  state.feedLive = online;
  if (online && !wasLive) {
    // Back after a disconnection: one look at a followed job catches a missed ending; the
    // events do the rest while the feed stays up.
    stopJobPolling();
    if (state.feedWasLive) pollJob();
    state.feedWasLive = true;
  } else if (!online) {
    scheduleJobPoll();
  }
}

/** The server could not replay what the feed missed: the report and the list are reloaded. */
function onFeedGap() {
  syncReport()
    .then(() => onLiveStatus(true, 'Live: the report and recent feedback were reloaded after a gap the server could not replay.', 'live'))
    .catch(showError);
  pollJob();
}

// ---- report ------------------------------------------------------------------------------

/**
 * Which feedback the report shown already counts, so that each live one is counted in once:
 * the report is loaded, then the newest feedback. The list's total less the report's says how
 * many of the newest came after the report (they are counted in from the list); every other
 * feedback up to the newest the report holds is in it already. Live events are matched by
 * feedback id, whether they arrive before or after, and once each however often the socket
 * delivers them. (Ids are taken to grow in the order feedback is stored.)
 */
function makeTally(report, recent) {
  const items = [...recent.items].sort((a, b) => Number(b.id) - Number(a.id));
  const newer = Math.max(0, Math.min(items.length, Number(recent.total ?? 0) - report.total_feedback));
  const counted = new Set();
  for (const item of items.slice(0, newer)) {
    counted.add(Number(item.id));
    countIntoReport(item, { render: false });
  }
  const holds = items[newer] ? Number(items[newer].id) : newer === items.length && items.length ? Math.min(...items.map((i) => Number(i.id))) - 1 : 0;
  return { counted, holds };
}

/** Counts a live feedback into the report unless the report has it already. */
function countLive(feedback) {
  const tally = state.tally;
  if (!tally) {
    // The report is (re)loading: these are settled once it and the list are in.
    (state.pendingLive ??= []).push(feedback);
    return;
  }
  const id = Number(feedback.id);
  if (!Number.isFinite(id) || tally.counted.has(id) || id <= tally.holds) return;
  tally.counted.add(id);
  countIntoReport(feedback);
}

let syncing = null;

/**
 * "Refresh" (and a gap in the feed): the report again, then the newest feedback (with images),
 * which settles which live events the new report already counts.
 */
function syncReport() {
  syncing ??= (async () => {
    const card = $('report-card');
    card.setAttribute('aria-busy', 'true');
    try {
      const report = await fetchReport();
      // From here until the list is in, live feedback waits to be settled against this report.
      state.tally = null;
      state.pendingLive = [];
      acceptReport(report);
      let recent = null;
      try {
        recent = await loadRecentFeedback();
      } catch (e) {
        showError(e);
      }
      settleTally(report, recent);
    } finally {
      card.setAttribute('aria-busy', 'false');
    }
  })().finally(() => {
    syncing = null;
  });
  return syncing;
}

/** The tally for `report` from the newest feedback (none: every live one counts), then what waited. */
function settleTally(report, recent) {
  state.tally = recent ? makeTally(report, recent) : { counted: new Set(), holds: 0 };
  const pending = state.pendingLive ?? [];
  state.pendingLive = [];
  for (const feedback of pending) countLive(feedback);
  showReport(report);
}

/**
 * Counts a feedback into the report shown, as the server would (no request per feedback: the
 * API's rate limits apply to admins too). "Refresh" asks the server again.
 */
function countIntoReport(feedback, { render = true } = {}) {
  const report = state.report;
  if (!report) return;
  report.total_feedback += 1;
  if (feedback.correct) report.correct_feedback += 1;
  else report.incorrect_feedback += 1;
  report.accuracy_percentage = (report.correct_feedback / report.total_feedback) * 100;
  const versions = (report.by_model_version ??= []);
  const model = feedback.model ?? null;
  const version = feedback.model_version ?? null;
  let row = versions.find((v) => v.model === model && v.model_version === version);
  if (!row) {
    row = { model, model_version: version, total_feedback: 0, correct_feedback: 0, incorrect_feedback: 0, accuracy_percentage: 0 };
    versions.push(row);
    // The server's order: linked versions by model and version, then the unlinked ones.
    versions.sort((a, b) =>
      (a.model === null) - (b.model === null) ||
      String(a.model ?? '').localeCompare(String(b.model ?? '')) ||
      (a.model_version ?? 0) - (b.model_version ?? 0));
  }
  row.total_feedback += 1;
  if (feedback.correct) row.correct_feedback += 1;
  else row.incorrect_feedback += 1;
  row.accuracy_percentage = (row.correct_feedback / row.total_feedback) * 100;
  const label = feedback.label;
  if (Number.isInteger(label) && label >= 0 && label < 10 && feedback.prediction >= 0 && feedback.prediction < 10) {
    report.confusion_matrix[label][feedback.prediction] += 1;
  }
  const day = (report.daily ?? []).find((d) => d.date === String(feedback.timestamp ?? '').slice(0, 10));
  if (day) {
    day.total_feedback += 1;
    if (feedback.correct) day.correct_feedback += 1;
  }
  if (render) showReport(report);
}

let modelsTimer = null;

/** Reloads the model versions once for a burst of events (a promotion sends several). */
function scheduleModels() {
  clearTimeout(modelsTimer);
  modelsTimer = setTimeout(() => loadModels().catch(showError), 500);
}

function fact(list, term, value) {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  dd.textContent = value;
  list.append(dt, dd);
}

async function fetchReport() {
  const report = await call('/admin/report');
  report.confusion_matrix ??= Array.from({ length: 10 }, () => new Array(10).fill(0));
  return report;
}

function acceptReport(report) {
  state.report = report;
  showReport(report);
}

function showReport(report) {
  const totals = $('report-totals');
  totals.replaceChildren();
  fact(totals, 'Feedback', String(report.total_feedback));
  fact(totals, 'Right', String(report.correct_feedback));
  fact(totals, 'Wrong', String(report.incorrect_feedback));
  fact(totals, 'Accuracy', report.total_feedback ? percentage(report.accuracy_percentage) : 'no feedback yet');

  const versions = report.by_model_version ?? [];
  const names = versions.map((v) => (v.model ? `${v.model} v${v.model_version}` : 'not linked'));
  setBars(state.charts.accuracy, names, [
    { label: 'accuracy (%)', data: versions.map((v) => Math.round(v.accuracy_percentage * 10) / 10), backgroundColor: COLOURS.ACCENT },
  ]);
  $('accuracy-summary').textContent = versions.length
    ? versions.map((v, i) => `${names[i]}: ${v.accuracy_percentage.toFixed(1)} % of ${v.total_feedback}`).join('; ')
    : 'No feedback yet.';

  const days = report.daily ?? [];
  setBars(
    state.charts.daily,
    days.map((d) => d.date.slice(5)),
    [
      { label: 'right', data: days.map((d) => d.correct_feedback), backgroundColor: COLOURS.GOOD },
      { label: 'wrong', data: days.map((d) => d.total_feedback - d.correct_feedback), backgroundColor: COLOURS.BAD },
    ],
  );
  const busy = days.filter((d) => d.total_feedback > 0);
  $('daily-summary').textContent = busy.length
    ? `Days with feedback: ${busy.map((d) => `${d.date}: ${d.total_feedback}`).join(', ')}.`
    : 'No feedback in the last 30 days.';

  renderHeatMap($('confusion'), report.confusion_matrix);
}

// ---- retraining ----------------------------------------------------------------------------

/** Jobs whose events may come before the answer that names them: a short job can start,
 * train and finish while `POST /admin/retrain` is still on its way back. */
const earlyJobEvents = new Map();
const EARLY_JOBS_KEPT = 20;

function onJobEvent(name, data) {
  if (state.job && data.job_id === state.job) {
    applyJobEvent(name, data);
    return;
  }
  if (!data?.job_id) return;
  if (!earlyJobEvents.has(data.job_id)) {
    earlyJobEvents.set(data.job_id, []);
    if (earlyJobEvents.size > EARLY_JOBS_KEPT) earlyJobEvents.delete(earlyJobEvents.keys().next().value);
  }
  earlyJobEvents.get(data.job_id).push([name, data]);
}

function applyJobEvent(name, data) {
  if (name === 'retrain_progress') showProgress(data);
  else showFinished(data);
}

function showProgress(progress) {
  $('job-state').textContent = progress.stage ? `running (${progress.stage})` : 'running';
  if (progress.epoch && progress.epochs) {
    $('job-epoch').textContent = `${progress.epoch} of ${progress.epochs}`;
    const bar = $('job-progress');
    bar.max = progress.epochs;
    bar.value = progress.epoch;
  }
  if (typeof progress.eta_seconds === 'number') $('job-eta').textContent = `about ${Math.round(progress.eta_seconds)} s`;
  if (progress.epoch && typeof progress.loss === 'number') {
    // `val_accuracy` is a fraction from 0 to 1; the chart's axis is in percent.
    const accuracy = typeof progress.val_accuracy === 'number' ? Math.round(progress.val_accuracy * 10_000) / 100 : null;
    addEpoch(state.charts.training, progress.epoch, progress.loss, accuracy);
    $('training-summary').textContent = `Epoch ${progress.epoch}: loss ${progress.loss.toFixed(4)}, validation accuracy ${fractionPercent(progress.val_accuracy)}.`;
  }
}

function showFinished(job) {
  state.jobDone = true;
  stopJobPolling();
  $('retrain-start').disabled = false;
  $('job-state').textContent = job.state;
  $('job-version').textContent = job.model_version ? `${job.model} v${job.model_version}` : 'none';
  const outcome = $('job-outcome');
  const version = job.model_version ? ` v${job.model_version}` : '';
  if (job.state === 'succeeded') {
    // A job never promotes: a candidate that passes the offline gate starts a rollout, which
    // decides on live labelled feedback (the rollout panel follows it).
    say(outcome, `Finished: ${job.model}${version} passed the evaluation and started a rollout (in shadow); the rollout panel below follows it.`, 'ok');
    const bar = $('job-progress');
    bar.value = bar.max;
  } else if (job.state === 'rejected') {
    say(outcome, `Finished without a rollout: ${job.reason ?? 'the candidate did not pass the evaluation.'}`, 'info');
  } else {
    say(outcome, `The job failed: ${job.reason ?? 'no reason was given.'}`, 'error');
  }
}

function stopJobPolling() {
  clearTimeout(state.jobPoll);
  state.jobPoll = null;
}

/**
 * While the live feed is down, reads the followed job's record every 30 s (the feed's events
 * are the only source while it is up: `/admin/retrain` shares the admin's rate limit with
 * "Start retraining"). After a 429, nothing is asked before its `Retry-After`.
 */
function scheduleJobPoll() {
  if (!state.job || state.jobDone || state.feedLive || state.jobPoll) return;
  const wait = Math.max(JOB_POLL_MS, state.jobPollPausedUntil - Date.now());
  state.jobPoll = setTimeout(() => {
    state.jobPoll = null;
    if (!state.feedLive) pollJob();
  }, wait);
}

/** The job's stored state: a fallback for events missed while the WebSocket was down. */
async function pollJob() {
  const id = state.job;
  if (!id || state.jobDone || Date.now() < state.jobPollPausedUntil) {
    scheduleJobPoll();
    return;
  }
  try {
    const job = await call(`/admin/retrain/${encodeURIComponent(id)}`);
    if (state.job !== id) return;
    if (['succeeded', 'rejected', 'failed'].includes(job.state)) {
      if (job.progress) showProgress(job.progress);
      showFinished(job);
    } else if (job.state === 'running' && job.progress) {
      showProgress(job.progress);
    }
  } catch (e) {
    if (e?.status === 429) {
      state.jobPollPausedUntil = Date.now() + (e.retryAfter ? e.retryAfter * 1000 : RATE_LIMITED_WAIT_MS);
    }
    // Otherwise the next poll (feed down) or the feed's events (feed up) report.
  }
  scheduleJobPoll();
}

/** Shows and follows one job: its events as they come, and its record while the feed is down. */
function trackJob({ job_id: id, state: jobState, model, epochs }) {
  state.job = id;
  state.jobDone = false;
  $('retrain-start').disabled = true;
  $('job').classList.remove('hidden');
  $('job-id').textContent = id;
  $('job-state').textContent = jobState ?? 'queued';
  $('job-epoch').textContent = epochs ? `0 of ${epochs}` : '–';
  $('job-eta').textContent = '–';
  $('job-version').textContent = '–';
  const bar = $('job-progress');
  bar.max = epochs || 1;
  bar.value = 0;
  say($('job-outcome'), '');
  resetTraining(state.charts.training);
  $('training-summary').textContent = `Training ${model}; each epoch's loss and accuracy appear here.`;
  stopJobPolling();
  for (const [name, data] of earlyJobEvents.get(id) ?? []) applyJobEvent(name, data);
  earlyJobEvents.delete(id);
  scheduleJobPoll();
}

async function startRetrain(event) {
  event.preventDefault();
  const form = event.target;
  if (!form.reportValidity()) return;
  const body = {
    model: $('retrain-model').value,
    epochs: Number($('retrain-epochs').value),
    mnist_sample: Number($('retrain-sample').value),
    from_scratch: $('retrain-scratch').checked,
  };
  const button = $('retrain-start');
  button.disabled = true;
  try {
    const answer = await call('/admin/retrain', { method: 'POST', json: body });
    if ($('notice').textContent.startsWith('Retraining was not started')) say($('notice'), '');
    trackJob({ ...answer, model: body.model, epochs: body.epochs });
  } catch (e) {
    button.disabled = false;
    // The API's own sentence (the rate limit reached says when to try again, …).
    if (e?.status === 403 || e?.code === 'signed_out') showError(e);
    else say($('notice'), `Retraining was not started: ${sentenceOf(e)}`);
  }
}

/** A job still queued or running when the page opens is followed from where it is. */
async function resumeLatestJob() {
  const { jobs = [] } = await call('/admin/retrain?limit=1');
  const [job] = jobs;
  if (!job || !['queued', 'running'].includes(job.state) || state.job) return;
  trackJob(job);
  if (job.progress) showProgress(job.progress);
}

// ---- model versions ------------------------------------------------------------------------

/** "98.0 % of 10000" for a `{accuracy, count}` score. */
function scoreText(score) {
  if (typeof score?.accuracy !== 'number') return null;
  return `${fractionPercent(score.accuracy)}${typeof score.count === 'number' ? ` of ${score.count}` : ''}`;
}

/** A version's metrics as a sentence: the gate's scores for retrained ones, else the figures. */
function metricsText(metrics) {
  if (!metrics || typeof metrics !== 'object') return '–';
  const parts = [];
  const candidate = metrics.candidate;
  if (candidate) {
    const mnist = scoreText(candidate.mnist);
    const feedback = scoreText(candidate.feedback);
    if (mnist) parts.push(`MNIST holdout ${mnist}`);
    if (feedback) parts.push(`feedback holdout ${feedback}`);
    const active = metrics.active?.scores;
    if (active) {
      const then = [scoreText(active.mnist), scoreText(active.feedback)].filter(Boolean).join(' and ');
      if (then) parts.push(`against v${metrics.active.version}: ${then}`);
    }
  }
  const training = metrics.training;
  if (training) {
    if (training.epochs) parts.push(`${training.epochs} epochs on ${training.examples ?? '?'} examples`);
    if (typeof training.train_loss === 'number') parts.push(`train loss ${training.train_loss.toFixed(4)}`);
  }
  for (const [key, value] of Object.entries(metrics)) {
    if (typeof value !== 'number' || key === 'seed' || (candidate && key === 'test_accuracy')) continue;
    // Accuracies in metrics are fractions from 0 to 1; a `…percent…` key is in percent already.
    const shown = /percent/.test(key) ? percentage(value) : /accuracy/.test(key) ? fractionPercent(value) : Number.isInteger(value) ? String(value) : value.toFixed(4);
    parts.push(`${key.replace(/_/g, ' ')}: ${shown}`);
  }
  return parts.length ? parts.join(', ') : '–';
}

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text;
  return td;
}

async function loadModels() {
  const { models = [] } = await call('/admin/models');
  const root = $('models');
  root.replaceChildren();
  for (const model of models) {
    const group = document.createElement('div');
    group.dataset.model = model.name;
    const heading = document.createElement('h3');
    heading.textContent = `${model.name} (active: v${model.active_version ?? '–'})`;
    const scroll = document.createElement('div');
    scroll.className = 'table-scroll';
    const table = document.createElement('table');
    table.className = 'models';
    const head = table.createTHead().insertRow();
    for (const title of ['Version', 'Status', 'Share of users', 'Source', 'Created', 'Metrics', 'Action']) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = title;
      head.append(th);
    }
    const body = table.createTBody();
    for (const version of model.versions ?? []) {
      const row = body.insertRow();
      cell(row, `v${version.version}`);
      cell(row, (version.status ?? '').replace('_', ' '));
      cell(row, typeof version.traffic_share === 'number' ? `${Math.round(version.traffic_share * 1000) / 10} %` : '–');
      cell(row, version.source ?? '');
      cell(row, when(version.created_at));
      cell(row, metricsText(version.metrics)).className = 'metrics';
      const action = row.insertCell();
      if (version.version !== model.active_version) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'secondary';
        const rollBack = model.active_version && version.version < model.active_version;
        button.textContent = rollBack ? `Roll back to v${version.version}` : `Promote v${version.version}`;
        button.addEventListener('click', () => promote(model, version.version, rollBack));
        action.append(button);
      } else {
        action.textContent = 'serving';
      }
    }
    scroll.append(table);
    group.append(heading, scroll);
    root.append(group);
  }
  return models.map((m) => m.name);
}

const CONFIRM_TITLE = 'Change the active version?';
const CONFIRM_YES = 'Yes, make it active';

/** The confirmation dialog: the version buttons' words unless others are given. */
function confirmChange(text, { title = CONFIRM_TITLE, yes = CONFIRM_YES } = {}) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-yes').textContent = yes;
  $('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

async function promote(model, version, rollBack) {
  const verb = rollBack ? 'Roll back' : 'Promote';
  const ok = await confirmChange(
    `${verb} ${model.name} to v${version}? It replaces v${model.active_version ?? '–'} for every request at once.`,
  );
  if (!ok) return;
  try {
    const answer = await call(`/admin/models/${encodeURIComponent(model.name)}/versions/${version}/promote`, { method: 'POST' });
    say($('notice'), answer.msg ?? `${model.name} v${version} is now active.`, 'ok');
    await loadModels();
  } catch (e) {
    showError(e);
  }
}

// ---- start ---------------------------------------------------------------------------------

function showError(e) {
  if (e?.status === 403) {
    sendBack('admin_only');
    return;
  }
  if (e?.code === 'signed_out') {
    sendBack('signed_out');
    return;
  }
  say($('notice'), sentenceOf(e));
}

async function start() {
  const user = currentUser();
  if (!user) return sendBack('sign_in_admin');
  // The token's role only decides what to show; the server refuses non-admins in any case.
  if (user.role !== 'admin') return sendBack('admin_only');
  $('who').textContent = `Signed in as ${user.name} (admin)`;
  $('sign-out').addEventListener('click', async () => {
    $('sign-out').disabled = true;
    await logOut();
    location.assign('/');
  });
  state.charts.accuracy = barChart($('accuracy-chart'), { label: 'accuracy (%)', max: 100 });
  state.charts.daily = barChart($('daily-chart'), { label: 'feedback', stacked: true });
  state.charts.training = trainingChart($('training-chart'));
  $('report-refresh').addEventListener('click', () => syncReport().catch(showError));
  $('models-refresh').addEventListener('click', () => loadModels().catch(showError));
  state.rollouts = new RolloutPanel({
    root: $('rollouts'),
    call,
    confirm: ({ title, text, yes }) => confirmChange(text, { title, yes }),
    notify: (sentence, kind) => say($('notice'), sentence, kind),
    onError: showError,
    onChanged: scheduleModels,
  });
  $('rollouts-refresh').addEventListener('click', () => loadRollouts().catch(showError));
  $('retrain-form').addEventListener('submit', startRetrain);
  try {
    $('report-card').setAttribute('aria-busy', 'true');
    try {
      acceptReport(await fetchReport());
    } catch (e) {
      showError(e);
      return;
    } finally {
      $('report-card').setAttribute('aria-busy', 'false');
    }
    state.live = new LiveFeed({
      onEvent: onLiveEvent,
      onStatus: onLiveStatus,
      onRefused: (code) => sendBack(code === 'signed_out' ? 'signed_out' : 'admin_only'),
      onGap: onFeedGap,
    });
    // Live events from now on are held until the report and the list say which it counts.
    state.pendingLive = [];
    state.tally = null;
    state.live.start();
    $('reconnect').addEventListener('click', () => state.live.reconnectNow());
    await Promise.all([
      syncReportAfterFirst().catch(showError),
      loadModels()
        .then((names) => state.rollouts.load(names))
        .catch(showError),
      resumeLatestJob().catch(showError),
    ]);
  } finally {
    $('main').setAttribute('aria-busy', 'false');
  }
}

/** Every model's open or recent rollout, again ("Refresh"). */
async function loadRollouts() {
  const names = state.rollouts.models.length ? state.rollouts.models : await loadModels();
  await state.rollouts.load(names);
}

/** The first report is in already: the newest feedback settles which live events it counts. */
async function syncReportAfterFirst() {
  const report = state.report;
  let recent = null;
  try {
    recent = await loadRecentFeedback();
  } finally {
    if (state.report === report && !state.tally) settleTally(report, recent);
  }
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
