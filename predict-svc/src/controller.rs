//! The rollout controller: starts a candidate's rollout, takes each labelled outcome in, and
//! moves the rollout by the `rollout` crate's rules, one change at a time under the model's
//! rollout lock (`db::rollouts::lock`), whichever replica takes it. Each change is one
//! transaction: the outcome, the rollout's state, the versions' stages and shares, the audit row.
//! What follows a commit (loading the new serving state, telling the other replicas and the
//! admins) comes after it.

use crate::db::rollouts::{self as store, NewOutcome, NewTransition, RolloutRow};
use crate::db::versions;
use crate::registry::ModelSet;
use common::bus::{Envelope, EventBus};
use common::db::{Db, DbConnection, DbError};
use contracts::events::{Event, ModelPromoted, RolloutDecided, RolloutProgress, RolloutStarted};
use contracts::rollouts::{
    Policy, Reason, RolloutAction, RolloutList, RolloutRecord, Stage, StartRollout,
    TransitionRecord,
};
use diesel::Connection;
use rollout::{Outcome, Recorded, Rollout, Transition};
use std::sync::Arc;
use std::time::Duration;

/// How often at most a rollout's statistics are published without a stage change.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0} v{1} is not in the registry")]
    UnknownVersion(String, i32),
    #[error("no rollout {1} of {0}")]
    UnknownRollout(String, String),
    #[error("{model} v{expected} is no longer the active version (now {active:?})")]
    ActiveChanged {
        model: String,
        expected: i32,
        active: Option<i32>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("the rollout is over ({0})")]
    Closed(String),
    #[error("the rollout's stored state is unreadable: {0}")]
    State(String),
}

impl From<diesel::result::Error> for ControllerError {
    fn from(e: diesel::result::Error) -> Self {
        ControllerError::Db(e.into())
    }
}

/// What a committed change asks for afterwards.
#[derive(Default)]
struct Effects {
    events: Vec<Event>,
    promoted: Option<ModelPromoted>,
    serving_changed: bool,
    /// A rollout whose new statistics were held back by the once-a-second limit: published
    /// when the second is over.
    held_back: Option<String>,
}

pub struct Controller {
    db: Db,
    bus: Arc<dyn EventBus>,
    models: Arc<ModelSet>,
    policy: Policy,
    max_age: Duration,
    /// One change at a time on this replica (the database lock orders the replicas).
    local: tokio::sync::Mutex<()>,
    /// Rollouts with a held-back progress publication scheduled.
    scheduled: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// A labelled outcome on a served prediction of a rollout.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub rollout_id: String,
    pub feedback_id: i64,
    pub outcome: Outcome,
}

fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn parse_of<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

fn rfc3339(t: chrono::NaiveDateTime) -> String {
    t.and_utc().to_rfc3339()
}

impl Controller {
    pub fn new(
        db: Db,
        bus: Arc<dyn EventBus>,
        models: Arc<ModelSet>,
        policy: Policy,
        max_age: Duration,
    ) -> Self {
        Controller {
            db,
            bus,
            models,
            policy,
            max_age,
            local: tokio::sync::Mutex::new(()),
            scheduled: Arc::default(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs `change` in one transaction under the model's rollout lock, then what it asks for.
    async fn change<T, F>(&self, model: &str, change: F) -> Result<T, ControllerError>
    where
        F: FnOnce(&mut DbConnection, &mut Effects) -> Result<T, ControllerError> + Send + 'static,
        T: Send + 'static,
    {
        let _one = self.local.lock().await;
        let model = model.to_owned();
        let (value, effects) = self
            .db
            .run(move |c| {
                c.transaction::<_, ControllerError, _>(|c| {
                    store::lock(c, &model)?;
                    let mut effects = Effects::default();
                    let value = change(c, &mut effects)?;
                    Ok((value, effects))
                })
            })
            .await?;
        self.follow(effects).await;
        Ok(value)
    }

    async fn follow(&self, effects: Effects) {
        // What the registry says now: a promoted candidate becomes the active version (it is
        // loaded already), and an ended rollout stops being served, in that order.
        if (effects.serving_changed || effects.promoted.is_some())
            && let Err(e) = self.models.sync_with_registry().await
        {
            tracing::warn!(error = %e, "cannot follow the registry after a rollout change");
        }
        if let Some(id) = effects.held_back {
            self.publish_later(id);
        }
        // The rollout's own events first, then the promotion they led to.
        let promoted = effects.promoted.map(Event::ModelPromoted);
        for event in effects.events.into_iter().chain(promoted) {
            if let Err(e) = self.bus.publish_recorded(&Envelope::of(&event)).await {
                // Other replicas also follow the registry on their periodic check.
                tracing::warn!(error = %e, kind = event.kind(), "cannot publish a rollout event");
            }
        }
    }

    /// Publishes the rollout's statistics once the second is over, so the last outcomes of a
    /// burst are not left unpublished (at most one scheduled per rollout).
    fn publish_later(&self, rollout_id: String) {
        let fresh = self
            .scheduled
            .lock()
            .map(|mut s| s.insert(rollout_id.clone()))
            .unwrap_or(false);
        if !fresh {
            return;
        }
        let (db, bus, scheduled) = (self.db.clone(), self.bus.clone(), self.scheduled.clone());
        tokio::spawn(async move {
            tokio::time::sleep(PROGRESS_EVERY).await;
            if let Ok(mut s) = scheduled.lock() {
                s.remove(&rollout_id);
            }
            let found = db.run(move |c| store::find(c, &rollout_id)).await;
            let event = match found {
                Ok(Some(row)) if row.verdict.is_none() => match machine_of(&row) {
                    Ok(machine) => progress(&row, &machine),
                    Err(_) => return,
                },
                _ => return,
            };
            if let Err(e) = bus.publish_recorded(&Envelope::of(&event)).await {
                tracing::warn!(error = %e, "cannot publish a rollout's progress");
            }
        });
    }

    /// Begins the rollout of a candidate that passed the offline gate, in shadow; an open
    /// rollout of the same model is superseded first.
    pub async fn start(
        &self,
        model: &str,
        request: StartRollout,
    ) -> Result<RolloutRecord, ControllerError> {
        let policy = self.policy.clone();
        let name = model.to_owned();
        let id = self
            .change(model, move |c, fx| start_in(c, fx, &name, &request, policy))
            .await?;
        self.record_of(model, &id).await
    }

    /// Takes a labelled outcome in: how it was counted (`None` when its rollout is over, the
    /// feedback was taken already, or its user's labels are excluded).
    pub async fn observe(
        &self,
        model: &str,
        labelled: Labelled,
    ) -> Result<Option<Recorded>, ControllerError> {
        self.change(model, move |c, fx| observe_in(c, fx, &labelled))
            .await
    }

    /// An admin's pause, resume, abort or promotion.
    pub async fn act(
        &self,
        model: &str,
        id: &str,
        action: RolloutAction,
        admin: &str,
    ) -> Result<RolloutRecord, ControllerError> {
        let (m, rid, who) = (model.to_owned(), id.to_owned(), admin.to_owned());
        self.change(model, move |c, fx| act_in(c, fx, &m, &rid, action, &who))
            .await?;
        self.record_of(model, id).await
    }

    /// An admin excluded a user's labels: their outcomes leave every open rollout's evidence
    /// (counted again without them) and none of theirs is taken from now on.
    pub async fn exclude_user(&self, user_id: &str) -> Result<(), ControllerError> {
        let open = self.db.run(store::open).await?;
        let user = user_id.to_owned();
        self.db
            .run(move |c| store::exclude_labeller(c, &user))
            .await?;
        for row in open {
            let (rid, user) = (row.id.clone(), user_id.to_owned());
            self.change(&row.model, move |c, fx| recount_in(c, fx, &rid, &user))
                .await?;
        }
        Ok(())
    }

    /// Ends the open rollouts older than the maximum age: inconclusive, the active version
    /// stays. How many ended.
    pub async fn expire_overdue(&self) -> Result<usize, ControllerError> {
        let open = self.db.run(store::open).await?;
        let max_age = chrono::Duration::from_std(self.max_age).unwrap_or(chrono::Duration::MAX);
        let mut ended = 0;
        for row in open {
            if common::db::now() - row.started_at < max_age {
                continue;
            }
            let rid = row.id.clone();
            let done = self
                .change(&row.model, move |c, fx| expire_in(c, fx, &rid))
                .await?;
            ended += usize::from(done);
        }
        Ok(ended)
    }

    /// The rollouts of a model with their transitions, newest first.
    pub async fn list(&self, model: &str, limit: i64) -> Result<RolloutList, ControllerError> {
        let m = model.to_owned();
        let rollouts = self
            .db
            .run(move |c| {
                let rows = store::of_model(c, &m, limit)?;
                with_transitions(c, rows)
            })
            .await?;
        Ok(RolloutList {
            model: model.to_owned(),
            rollouts,
        })
    }

    async fn record_of(&self, model: &str, id: &str) -> Result<RolloutRecord, ControllerError> {
        let rid = id.to_owned();
        let found = self
            .db
            .run(move |c| {
                let rows = store::find(c, &rid)?.into_iter().collect();
                with_transitions(c, rows)
            })
            .await?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| ControllerError::UnknownRollout(model.to_owned(), id.to_owned()))
    }
}

fn machine_of(row: &RolloutRow) -> Result<Rollout, ControllerError> {
    serde_json::from_str(&row.state).map_err(|e| ControllerError::State(e.to_string()))
}

fn keep(row: &mut RolloutRow, machine: &Rollout) -> Result<(), ControllerError> {
    row.state =
        serde_json::to_string(machine).map_err(|e| ControllerError::State(e.to_string()))?;
    Ok(())
}

fn start_in(
    c: &mut DbConnection,
    fx: &mut Effects,
    model: &str,
    request: &StartRollout,
    policy: Policy,
) -> Result<String, ControllerError> {
    let candidate = request.candidate_version;
    if versions::find(c, model, candidate)?.is_none() {
        return Err(ControllerError::UnknownVersion(model.to_owned(), candidate));
    }
    // A rerun of the job that started this rollout gets the same rollout.
    if let Some(job) = &request.job_id
        && let Some(same) = store::of_job(c, job)?
        && same.candidate_version == candidate
    {
        return Ok(same.id);
    }
    if !request.gate_passed {
        return record_rejected(c, fx, model, request, policy);
    }
    let active = versions::active(c)?
        .into_iter()
        .find(|v| v.name == model)
        .map(|v| v.version);
    if active == Some(candidate) {
        return Err(ControllerError::Invalid(format!(
            "{model} v{candidate} is the active version already; a rollout needs another one"
        )));
    }
    if active != Some(request.active_version) {
        return Err(ControllerError::ActiveChanged {
            model: model.to_owned(),
            expected: request.active_version,
            active,
        });
    }
    if let Some(mut open) = store::open_of(c, model)? {
        let mut machine = machine_of(&open)?;
        if let Ok(t) = machine.end(Reason::Superseded) {
            apply(c, fx, &mut open, &machine, &t, None)?;
            keep(&mut open, &machine)?;
            store::save(c, &open)?;
        }
    }
    let (mut row, machine, passed) = begin(c, model, request, policy.clone(), true)?;
    fx.events.push(Event::RolloutStarted(RolloutStarted {
        rollout_id: row.id.clone(),
        model: model.to_owned(),
        candidate_version: candidate,
        active_version: request.active_version,
        stage: passed.to,
        share: passed.share,
        policy,
        job_id: request.job_id.clone(),
    }));
    apply(c, fx, &mut row, &machine, &passed, None)?;
    store::save(c, &row)?;
    Ok(row.id)
}

/// A candidate that failed the offline gate: its rollout is recorded `rejected` at once.
fn record_rejected(
    c: &mut DbConnection,
    fx: &mut Effects,
    model: &str,
    request: &StartRollout,
    policy: Policy,
) -> Result<String, ControllerError> {
    let (mut row, machine, failed) = begin(c, model, request, policy, false)?;
    apply(c, fx, &mut row, &machine, &failed, None)?;
    store::save(c, &row)?;
    Ok(row.id)
}

/// A new rollout's row after the offline gate's verdict, and that first transition.
fn begin(
    c: &mut DbConnection,
    model: &str,
    request: &StartRollout,
    policy: Policy,
    gate_passed: bool,
) -> Result<(RolloutRow, Rollout, Transition), ControllerError> {
    let id = uuid::Uuid::now_v7().to_string();
    let mut machine =
        Rollout::new(id.clone(), policy).map_err(|e| ControllerError::State(e.to_string()))?;
    let gate = machine
        .gate(gate_passed)
        .map_err(|e| ControllerError::State(e.to_string()))?;
    let now = common::db::now();
    let mut row = RolloutRow {
        id: id.clone(),
        model: model.to_owned(),
        candidate_version: request.candidate_version,
        active_version: request.active_version,
        stage: name_of(&Stage::Candidate),
        share: 0.0,
        paused: false,
        verdict: None,
        state: String::new(),
        job_id: request.job_id.clone(),
        started_at: now,
        decided_at: None,
        progress_at: None,
    };
    if !gate_passed {
        // Never open: it must not count as the model's open rollout, even for a moment.
        row.verdict = gate.reason.verdict().map(|v| name_of(&v));
    }
    keep(&mut row, &machine)?;
    store::insert(c, &row)?;
    Ok((row, machine, gate))
}

/// Records a transition: the audit row, the versions' stages, the rollout's row, the events.
fn apply(
    c: &mut DbConnection,
    fx: &mut Effects,
    row: &mut RolloutRow,
    machine: &Rollout,
    t: &Transition,
    actor: Option<&str>,
) -> Result<(), ControllerError> {
    let now = common::db::now();
    store::add_transition(
        c,
        &NewTransition {
            rollout_id: row.id.clone(),
            from_stage: name_of(&t.from),
            to_stage: name_of(&t.to),
            share: t.share,
            reason: name_of(&t.reason),
            actor: actor.map(str::to_owned),
            stats: serde_json::to_string(&t.stats).unwrap_or_default(),
            at: now,
        },
    )?;
    let (model, candidate) = (row.model.clone(), row.candidate_version);
    match t.to {
        Stage::Active => {
            versions::promote(c, &model, candidate)?;
            let sha256 = versions::find(c, &model, candidate)?
                .map(|v| v.sha256)
                .unwrap_or_default();
            fx.promoted = Some(ModelPromoted {
                model: model.clone(),
                version: candidate,
                sha256,
            });
        }
        stage => versions::set_stage(c, &model, candidate, &name_of(&stage), t.share)?,
    }
    row.stage = name_of(&t.to);
    row.share = t.share;
    row.progress_at = Some(now);
    fx.serving_changed = true;
    match t.reason.verdict() {
        Some(verdict) => {
            row.verdict = Some(name_of(&verdict));
            row.decided_at = Some(now);
            fx.events.push(Event::RolloutDecided(RolloutDecided {
                rollout_id: row.id.clone(),
                model,
                candidate_version: candidate,
                active_version: row.active_version,
                verdict,
                stage: t.to,
                reason: t.reason,
                actor: actor.map(str::to_owned),
                stats: t.stats.clone(),
            }));
        }
        None => fx.events.push(progress(row, machine)),
    }
    Ok(())
}

fn progress(row: &RolloutRow, machine: &Rollout) -> Event {
    Event::RolloutProgress(RolloutProgress {
        rollout_id: row.id.clone(),
        model: row.model.clone(),
        candidate_version: row.candidate_version,
        active_version: row.active_version,
        stage: machine.stage(),
        share: machine.share(),
        paused: row.paused,
        margin: machine.policy().margin,
        stats: machine.stats(),
    })
}

/// Publishes the statistics when the last publication is older than [`PROGRESS_EVERY`].
fn maybe_progress(fx: &mut Effects, row: &mut RolloutRow, machine: &Rollout) {
    let now = common::db::now();
    let every = chrono::Duration::from_std(PROGRESS_EVERY).unwrap_or_default();
    if row.progress_at.is_none_or(|at| now - at >= every) {
        row.progress_at = Some(now);
        fx.events.push(progress(row, machine));
    } else {
        fx.held_back = Some(row.id.clone());
    }
}

fn observe_in(
    c: &mut DbConnection,
    fx: &mut Effects,
    labelled: &Labelled,
) -> Result<Option<Recorded>, ControllerError> {
    let Some(mut row) = store::find(c, &labelled.rollout_id)? else {
        return Ok(None);
    };
    if row.verdict.is_some() || store::is_excluded(c, &labelled.outcome.user)? {
        return Ok(None);
    }
    let outcome = &labelled.outcome;
    let taken = store::add_outcome(
        c,
        &NewOutcome {
            rollout_id: row.id.clone(),
            feedback_id: labelled.feedback_id,
            user_id: outcome.user.clone(),
            requested: outcome.requested,
            active_correct: outcome.active_correct,
            candidate_correct: outcome.candidate_correct,
            applied: !row.paused,
            at: common::db::now(),
        },
    )?;
    if !taken || row.paused {
        return Ok(None);
    }
    let mut machine = machine_of(&row)?;
    let (recorded, transition) = machine.observe(outcome);
    match transition {
        Some(t) => apply(c, fx, &mut row, &machine, &t, None)?,
        None => maybe_progress(fx, &mut row, &machine),
    }
    keep(&mut row, &machine)?;
    store::save(c, &row)?;
    Ok(Some(recorded))
}

fn open_row(c: &mut DbConnection, model: &str, id: &str) -> Result<RolloutRow, ControllerError> {
    let row = store::find(c, id)?
        .filter(|r| r.model == model)
        .ok_or_else(|| ControllerError::UnknownRollout(model.to_owned(), id.to_owned()))?;
    match &row.verdict {
        Some(verdict) => Err(ControllerError::Closed(verdict.clone())),
        None => Ok(row),
    }
}

fn act_in(
    c: &mut DbConnection,
    fx: &mut Effects,
    model: &str,
    id: &str,
    action: RolloutAction,
    admin: &str,
) -> Result<(), ControllerError> {
    let mut row = open_row(c, model, id)?;
    let mut machine = machine_of(&row)?;
    let ending = match action {
        RolloutAction::Pause | RolloutAction::Resume => None,
        RolloutAction::Abort => Some(Reason::Aborted),
        RolloutAction::Promote => Some(Reason::PromotedByAdmin),
    };
    if let Some(reason) = ending {
        let t = machine
            .end(reason)
            .map_err(|e| ControllerError::Closed(e.to_string()))?;
        apply(c, fx, &mut row, &machine, &t, Some(admin))?;
    } else {
        row.paused = action == RolloutAction::Pause;
        if !row.paused {
            // What came in while paused is taken now, in its order.
            for pending in store::outcomes(c, id, true)? {
                let (_, t) = machine.observe(&pending.outcome());
                if let Some(t) = t {
                    apply(c, fx, &mut row, &machine, &t, None)?;
                }
            }
            store::mark_applied(c, id)?;
        }
        row.progress_at = Some(common::db::now());
        fx.events.push(progress(&row, &machine));
    }
    keep(&mut row, &machine)?;
    store::save(c, &row)?;
    Ok(())
}

fn recount_in(
    c: &mut DbConnection,
    fx: &mut Effects,
    id: &str,
    user: &str,
) -> Result<(), ControllerError> {
    let Some(mut row) = store::find(c, id)? else {
        return Ok(());
    };
    if row.verdict.is_some() || store::exclude_user(c, id, user)? == 0 {
        return Ok(());
    }
    let mut machine = machine_of(&row)?;
    let kept: Vec<Outcome> = store::outcomes(c, id, false)?
        .iter()
        .filter(|o| o.applied)
        .map(|o| o.outcome())
        .collect();
    machine.recount(&kept);
    row.progress_at = Some(common::db::now());
    fx.events.push(progress(&row, &machine));
    keep(&mut row, &machine)?;
    store::save(c, &row)?;
    Ok(())
}

fn expire_in(c: &mut DbConnection, fx: &mut Effects, id: &str) -> Result<bool, ControllerError> {
    let Some(mut row) = store::find(c, id)? else {
        return Ok(false);
    };
    if row.verdict.is_some() {
        return Ok(false);
    }
    let mut machine = machine_of(&row)?;
    let Some(t) = machine.expire() else {
        return Ok(false);
    };
    apply(c, fx, &mut row, &machine, &t, None)?;
    keep(&mut row, &machine)?;
    store::save(c, &row)?;
    Ok(true)
}

fn with_transitions(
    c: &mut DbConnection,
    rows: Vec<RolloutRow>,
) -> Result<Vec<RolloutRecord>, DbError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let transitions = store::transitions_of(c, &ids)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let machine = machine_of(&row).ok();
            let of_row = transitions
                .iter()
                .filter(|t| t.rollout_id == row.id)
                .filter_map(|t| {
                    Some(TransitionRecord {
                        at: rfc3339(t.at),
                        from: parse_of(&t.from_stage)?,
                        to: parse_of(&t.to_stage)?,
                        share: t.share,
                        reason: parse_of(&t.reason)?,
                        actor: t.actor.clone(),
                        stats: serde_json::from_str(&t.stats).ok()?,
                    })
                })
                .collect();
            RolloutRecord {
                stage: parse_of(&row.stage).unwrap_or(Stage::Candidate),
                verdict: row.verdict.as_deref().and_then(parse_of),
                policy: machine
                    .as_ref()
                    .map(|m| m.policy().clone())
                    .unwrap_or_default(),
                stats: machine.as_ref().map(Rollout::stats).unwrap_or_default(),
                id: row.id,
                model: row.model,
                candidate_version: row.candidate_version,
                active_version: row.active_version,
                share: row.share,
                paused: row.paused,
                started_at: rfc3339(row.started_at),
                decided_at: row.decided_at.map(rfc3339),
                job_id: row.job_id,
                transitions: of_row,
            }
        })
        .collect())
}
