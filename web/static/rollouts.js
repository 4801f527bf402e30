// The dashboard's rollout panel: per model, its open or recent rollout (a candidate against the
// active version, decided on live labelled feedback): both versions' accuracy with intervals
// over time, the difference Δ against the decision boundary, the stage and share, the audit
// table of transitions, and pause / resume / abort / promote now, each after a confirmation.
//
// Requests are few (admins are rate-limited too): the list route once per model at start and
// when a rollout starts, ends or changes stage; `rollout_progress` events update in place.

import { COLOURS, intervalChart, setIntervals } from './charts.js';

/** A decided rollout stays on the panel this long. */
const RECENT_MS = 7 * 24 * 3600 * 1000;
/** Points kept per chart (progress comes at most once a second). */
const MAX_POINTS = 240;
/** A burst of events reloads a model's rollouts once. */
const RELOAD_DELAY_MS = 400;

const STAGE_NAMES = {
  candidate: 'candidate',
  shadow: 'shadow',
  canary: 'canary',
  active: 'active (promoted)',
  rejected: 'rejected',
  rolled_back: 'rolled back',
};

const REASONS = {
  gate_passed: 'passed the offline gate',
  gate_failed: 'failed the offline gate',
  no_sign_of_harm: 'enough outcomes, no sign of harm',
  non_inferior: 'non-inferior within the margin',
  inferior: 'worse by more than the margin',
  max_outcomes: 'decision sample full, no decision',
  time_limit: 'out of time, no decision',
  superseded: 'a newer candidate began its rollout',
  aborted: 'aborted by an admin',
  promoted_by_admin: 'promoted by an admin',
};

const VERDICTS = { promoted: 'promoted', rolled_back: 'rolled back', inconclusive: 'inconclusive: the active version stays' };

/** What each button does, and what its confirmation says. */
const ACTIONS = {
  pause: {
    button: 'Pause',
    title: 'Pause the rollout?',
    yes: 'Yes, pause',
    text: (r) => `Pause the rollout of ${r.model} v${r.candidate_version}? Labelled outcomes are kept but nothing is decided, and the share of users stays at ${share(r.share)}.`,
    done: (r) => `The rollout of ${r.model} v${r.candidate_version} is paused.`,
  },
  resume: {
    button: 'Resume',
    title: 'Resume the rollout?',
    yes: 'Yes, resume',
    text: (r) => `Resume the rollout of ${r.model} v${r.candidate_version}? What came in while it was paused is counted, and the controller decides again.`,
    done: (r) => `The rollout of ${r.model} v${r.candidate_version} goes on.`,
  },
  abort: {
    button: 'Abort (roll back)',
    title: 'Roll the candidate back?',
    yes: 'Yes, roll back',
    danger: true,
    text: (r) => `Abort the rollout and roll ${r.model} v${r.candidate_version} back? v${r.active_version} serves every user again. The audit table records your name.`,
    done: (r) => `${r.model} v${r.candidate_version} was rolled back; v${r.active_version} serves every user.`,
  },
  promote: {
    button: 'Promote now',
    title: 'Promote the candidate now?',
    yes: 'Yes, promote now',
    text: (r) => `Promote ${r.model} v${r.candidate_version} now, without waiting for the evidence? It replaces v${r.active_version} for every request at once. The audit table records your name.`,
    done: (r) => `${r.model} v${r.candidate_version} is now the active version.`,
  },
};

function share(fraction) {
  return `${Math.round(Number(fraction ?? 0) * 1000) / 10} %`;
}

/** A share (0.981) as "98.1 %", or "–". */
function pct(value) {
  return Number.isFinite(value) ? `${(value * 100).toFixed(1)} %` : '–';
}

/** A difference in shares (−0.012) as "−1.2 points". */
function points(value) {
  if (!Number.isFinite(value)) return '–';
  const p = value * 100;
  const sign = p > 0 ? '+' : p < 0 ? '−' : '';
  return `${sign}${Math.abs(p).toFixed(1)}`;
}

function when(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

function pairsOf(stats) {
  const p = stats?.pairs ?? {};
  return (p.both_right ?? 0) + (p.both_wrong ?? 0) + (p.candidate_only ?? 0) + (p.active_only ?? 0);
}

function isOpen(record) {
  return !record.verdict && ['shadow', 'canary', 'candidate'].includes(record.stage);
}

/** A chart point from statistics at a time; none while the decision sample is empty. */
function pointOf(at, stats, margin) {
  if (!stats || pairsOf(stats) === 0) return null;
  const scaled = (e) => ({ estimate: pctNumber(e?.estimate), lower: pctNumber(e?.lower), upper: pctNumber(e?.upper) });
  const time = new Date(at);
  return {
    time: time.getTime(),
    label: Number.isNaN(time.getTime()) ? String(at) : time.toLocaleTimeString(),
    accuracy: [scaled(stats.active), scaled(stats.candidate)],
    difference: [scaled(stats.difference)],
    boundary: -margin * 100,
  };
}

function pctNumber(value) {
  return Number.isFinite(value) ? Math.round(value * 10_000) / 100 : null;
}

function element(tag, { text, className, attrs } = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs ?? {})) node.setAttribute(key, value);
  return node;
}

export class RolloutPanel {
  /**
   * @param root      the element the panels go in
   * @param call      the API call (`api.js`'s `call`)
   * @param confirm   `({title, text, yes}) => Promise<boolean>`: the confirmation dialog
   * @param notify    `(sentence, kind)`: the page's notice
   * @param onError   an API error
   * @param onChanged the registry changed (a promotion or roll-back): reload the versions
   */
  constructor({ root, call, confirm, notify, onError, onChanged }) {
    Object.assign(this, { root, call, confirm, notify, onError, onChanged });
    /** model → { record, history: [points], view } */
    this.shown = new Map();
    this.models = [];
    this.timers = new Map();
    this.busy = false;
  }

  /** Reads the rollouts of every model named. */
  async load(models) {
    this.models = [...models];
    await Promise.all(this.models.map((model) => this.loadModel(model)));
    this.renderEmpty();
  }

  async loadModel(model) {
    const list = await this.call(`/admin/models/${encodeURIComponent(model)}/rollouts`);
    const [newest] = list.rollouts ?? [];
    const recent = newest && (isOpen(newest) || Date.now() - new Date(newest.decided_at ?? newest.started_at).getTime() < RECENT_MS);
    if (!recent) {
      this.drop(model);
      return;
    }
    this.accept(newest, { fromList: true });
  }

  /** Reloads one model's rollouts once for a burst of events. */
  scheduleReload(model) {
    clearTimeout(this.timers.get(model));
    this.timers.set(
      model,
      setTimeout(() => {
        this.timers.delete(model);
        this.loadModel(model)
          .then(() => this.renderEmpty())
          .catch(this.onError);
      }, RELOAD_DELAY_MS),
    );
  }

  /** A live event of the admins' feed. */
  onEvent(name, data) {
    if (!data?.model || !data?.rollout_id) return;
    const current = this.shown.get(data.model);
    const same = current?.record.id === data.rollout_id;
    switch (name) {
      case 'rollout_started':
        this.scheduleReload(data.model);
        break;
      case 'rollout_progress': {
        if (!same) {
          this.scheduleReload(data.model);
          break;
        }
        const record = current.record;
        const moved = record.stage !== data.stage || record.share !== data.share;
        Object.assign(record, { stage: data.stage, share: data.share, paused: data.paused, stats: data.stats });
        record.policy = { ...record.policy, margin: data.margin };
        this.addPoint(current, pointOf(new Date().toISOString(), data.stats, data.margin));
        this.update(data.model);
        // A stage change adds a row to the audit table.
        if (moved) this.scheduleReload(data.model);
        break;
      }
      case 'rollout_decided':
        if (same) {
          Object.assign(current.record, { verdict: data.verdict, stage: data.stage, stats: data.stats, paused: false });
          this.update(data.model);
        }
        this.scheduleReload(data.model);
        break;
      default:
        break;
    }
  }

  /** `labels_excluded`: every open rollout is counted again without them. */
  onLabelsExcluded() {
    for (const [model, { record }] of this.shown) if (isOpen(record)) this.scheduleReload(model);
  }

  drop(model) {
    const current = this.shown.get(model);
    if (!current) return;
    current.view?.charts.forEach((chart) => chart.destroy());
    current.view?.article.remove();
    this.shown.delete(model);
  }

  /** Shows `record` (a new rollout replaces the model's previous one). */
  accept(record, { fromList = false } = {}) {
    let current = this.shown.get(record.model);
    if (current && current.record.id !== record.id) {
      this.drop(record.model);
      current = null;
    }
    if (!current) {
      current = { record, history: [], view: null };
      this.shown.set(record.model, current);
    }
    current.record = record;
    if (fromList) {
      // The audit rows' statistics, then the live ones kept since, then now.
      const margin = record.policy?.margin ?? 0.01;
      const fromAudit = (record.transitions ?? []).map((t) => pointOf(t.at, t.stats, margin));
      const live = current.history.filter((p) => p.time > Math.max(0, ...fromAudit.filter(Boolean).map((p) => p.time)));
      current.history = [];
      for (const p of [...fromAudit, ...live]) this.addPoint(current, p);
      if (isOpen(record)) this.addPoint(current, pointOf(new Date().toISOString(), record.stats, margin));
    }
    this.render(record.model);
  }

  addPoint(current, point) {
    if (!point) return;
    const last = current.history.at(-1);
    if (last && last.time === point.time) current.history.pop();
    current.history.push(point);
    if (current.history.length > MAX_POINTS) current.history.splice(0, current.history.length - MAX_POINTS);
  }

  renderEmpty() {
    let empty = this.root.querySelector('.rollouts-empty');
    if (!empty) {
      empty = element('p', { className: 'muted rollouts-empty', text: 'No rollout is open or recent. A retrain whose candidate passes the offline gate starts one.' });
      this.root.append(empty);
    }
    empty.classList.toggle('hidden', this.shown.size > 0);
  }

  /** Builds a model's panel (its charts and audit table) from scratch. */
  render(model) {
    const current = this.shown.get(model);
    const { record } = current;
    current.view?.charts.forEach((chart) => chart.destroy());
    const article = element('article', { className: 'rollout', attrs: { 'data-model': model, 'data-rollout': record.id } });
    const headingId = `rollout-${model}`;
    const heading = element('h3', { text: `${model}: v${record.candidate_version} (candidate) against v${record.active_version} (active)`, attrs: { id: headingId } });
    article.setAttribute('aria-labelledby', headingId);
    const facts = element('dl', { className: 'facts' });
    const actions = element('div', { className: 'row rollout-actions' });
    const charts = element('div', { className: 'grid-2' });
    const accuracyBox = element('div', { className: 'chart-box tall' });
    const accuracyCanvas = element('canvas', { attrs: { role: 'img', 'aria-label': `Accuracy of v${record.active_version} and v${record.candidate_version} on the paired requested labels, with their intervals, over time` } });
    accuracyBox.append(accuracyCanvas);
    const differenceBox = element('div', { className: 'chart-box tall' });
    const differenceCanvas = element('canvas', { attrs: { role: 'img', 'aria-label': 'The difference Δ (candidate − active) with its bounds, and the decision boundary, over time' } });
    differenceBox.append(differenceCanvas);
    const accuracyCol = element('div');
    accuracyCol.append(element('h4', { text: 'Accuracy on paired requested labels' }), accuracyBox);
    const differenceCol = element('div');
    differenceCol.append(element('h4', { text: 'Difference Δ and the decision boundary' }), differenceBox);
    charts.append(accuracyCol, differenceCol);
    const summary = element('p', { className: 'muted rollout-summary' });
    const audit = this.auditTable(record);
    article.append(heading, facts, actions, charts, summary, element('h4', { text: 'Audit table' }), audit);
    const before = current.view?.article;
    if (before) before.replaceWith(article);
    else this.root.prepend(article);
    const accuracyChart = intervalChart(accuracyCanvas, {
      series: [
        { label: `v${record.active_version} (active)`, colour: COLOURS.ACCENT },
        { label: `v${record.candidate_version} (candidate)`, colour: COLOURS.ORANGE },
      ],
      yTitle: 'accuracy (%)',
    });
    const differenceChart = intervalChart(differenceCanvas, {
      series: [{ label: 'Δ (points)', colour: COLOURS.GOOD }],
      yTitle: 'points',
      boundary: { label: '−margin' },
    });
    current.view = { article, facts, actions, summary, charts: [accuracyChart, differenceChart] };
    this.update(model);
    this.renderEmpty();
  }

  /** Refreshes a panel's facts, buttons and charts in place. */
  update(model) {
    const current = this.shown.get(model);
    if (!current?.view) return;
    const { record, history, view } = current;
    this.showFacts(view.facts, record);
    this.showActions(view.actions, record);
    const [accuracyChart, differenceChart] = view.charts;
    setIntervals(accuracyChart, history.map((p) => ({ label: p.label, values: p.accuracy })));
    setIntervals(differenceChart, history.map((p) => ({ label: p.label, values: p.difference, boundary: p.boundary })));
    view.summary.textContent = this.summaryOf(record);
    view.article.dataset.stage = record.stage;
    view.article.dataset.open = String(isOpen(record));
  }

  showFacts(list, record) {
    list.replaceChildren();
    const fact = (key, term, value) => {
      list.append(element('dt', { text: term }), element('dd', { text: value, attrs: { 'data-fact': key } }));
    };
    const stats = record.stats ?? {};
    const margin = record.policy?.margin ?? 0.01;
    fact('stage', 'Stage', `${STAGE_NAMES[record.stage] ?? record.stage}${record.paused && isOpen(record) ? ' (paused)' : ''}`);
    fact('share', 'Share of users on the candidate', share(record.share));
    if (record.verdict) fact('verdict', 'Outcome', `${VERDICTS[record.verdict] ?? record.verdict}${record.decided_at ? `, ${when(record.decided_at)}` : ''}`);
    const n = pairsOf(stats);
    fact('sample', 'Decision sample', `${n} paired requested label${n === 1 ? '' : 's'}${stats.over_cap ? ` (${stats.over_cap} more over the per-user cap)` : ''}; ends inconclusive at ${record.policy?.max_outcomes ?? '?'}`);
    const interval = (e) => (n ? `${pct(e?.estimate)} (${pct(e?.lower)} to ${pct(e?.upper)})` : 'no paired label yet');
    fact('active', `Accuracy of v${record.active_version} (active)`, interval(stats.active));
    fact('candidate', `Accuracy of v${record.candidate_version} (candidate)`, interval(stats.candidate));
    const d = stats.difference;
    fact('difference', 'Difference Δ (candidate − active)', n ? `${points(d?.estimate)} points (bounds ${points(d?.lower)} to ${points(d?.upper)})` : 'no paired label yet');
    fact('boundary', 'Decision boundary', `Δ = ${points(-margin)} points: promoted when Δ's lower bound is above it (from the canary), rolled back when its upper bound is below it, at ${Math.round((record.policy?.confidence ?? 0.95) * 100)} % confidence`);
    const tally = (t) => (t?.total ? `${t.correct} of ${t.total} right` : 'none');
    fact('unsolicited', 'Unsolicited labels (shown, never decided on)', `v${record.active_version}: ${tally(stats.active_unsolicited)}; v${record.candidate_version}: ${tally(stats.candidate_unsolicited)}`);
    fact('started', 'Started', `${when(record.started_at)}${record.job_id ? ` by retrain job ${record.job_id}` : ''}`);
  }

  showActions(row, record) {
    row.replaceChildren();
    if (!isOpen(record)) return;
    const names = [record.paused ? 'resume' : 'pause', 'abort', 'promote'];
    for (const action of names) {
      const spec = ACTIONS[action];
      const button = element('button', { text: spec.button, className: spec.danger ? 'danger' : action === 'promote' ? '' : 'secondary', attrs: { type: 'button', 'data-action': action } });
      button.disabled = this.busy;
      button.addEventListener('click', () => this.act(record.model, action));
      row.append(button);
    }
  }

  summaryOf(record) {
    const n = pairsOf(record.stats);
    if (!n) return 'The charts fill in as requested labels come back on predictions both versions answered.';
    const d = record.stats.difference;
    return `After ${n} paired label${n === 1 ? '' : 's'}, Δ is ${points(d?.estimate)} points, between ${points(d?.lower)} and ${points(d?.upper)}; the boundary is ${points(-(record.policy?.margin ?? 0.01))}.`;
  }

  auditTable(record) {
    const scroll = element('div', { className: 'table-scroll' });
    const table = element('table', { className: 'models audit' });
    table.append(element('caption', { className: 'muted', text: 'Every stage change, oldest first: who did it (or the controller), why, and Δ at that moment.' }));
    const head = table.createTHead().insertRow();
    for (const title of ['When', 'From', 'To', 'Share', 'Reason', 'By', 'Δ then']) head.append(element('th', { text: title, attrs: { scope: 'col' } }));
    const body = table.createTBody();
    for (const t of record.transitions ?? []) {
      const row = body.insertRow();
      const n = pairsOf(t.stats);
      for (const text of [
        when(t.at),
        STAGE_NAMES[t.from] ?? t.from,
        STAGE_NAMES[t.to] ?? t.to,
        share(t.share),
        REASONS[t.reason] ?? t.reason,
        t.actor ?? 'controller',
        n ? `${points(t.stats.difference?.estimate)} points of ${n}` : '–',
      ]) {
        row.insertCell().textContent = text;
      }
    }
    scroll.append(table);
    return scroll;
  }

  /** A button's action, after its confirmation. */
  async act(model, action) {
    const record = this.shown.get(model)?.record;
    if (!record || this.busy) return;
    const spec = ACTIONS[action];
    const ok = await this.confirm({ title: spec.title, text: spec.text(record), yes: spec.yes });
    if (!ok) return;
    this.setBusy(true);
    try {
      const path = `/admin/models/${encodeURIComponent(model)}/rollouts/${encodeURIComponent(record.id)}/${action}`;
      const answer = await this.call(path, { method: 'POST' });
      this.accept(answer, { fromList: true });
      this.notify(spec.done(answer), 'ok');
      if (action === 'promote' || action === 'abort') this.onChanged();
    } catch (e) {
      this.onError(e);
      // Ended meanwhile (409 `rollout_closed`) or gone: show what it is now.
      if (e?.status === 409 || e?.status === 404) this.scheduleReload(model);
    } finally {
      this.setBusy(false);
    }
  }

  setBusy(busy) {
    this.busy = busy;
    for (const button of this.root.querySelectorAll('.rollout-actions button')) button.disabled = busy;
  }
}
