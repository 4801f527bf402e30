//! The served models: the active version of each model, loaded once and swapped atomically
//! when another version is promoted (by this replica, or by any other through the bus).

use crate::db::versions::{self, NewVersion, VersionInfo};
use crate::engine::{BatchConfig, EngineError, LoadedModel};
use common::bus::{Envelope, EventBus, events};
use common::db::{Db, DbError};
use contracts::events::{Event, ModelPromoted};
use contracts::rollouts::Stage;
use futures_util::StreamExt;
use ort::environment::Environment;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Models served by the v1 and v2 APIs.
pub const MLP: &str = "mnist-mlp";
pub const CNN: &str = "mnist-cnn";
pub const INITIAL_MODELS: [&str; 2] = [MLP, CNN];

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Import(String),
}

pub use common::digest::sha256_hex;

/// A model's open rollout as this replica serves it.
#[derive(Debug)]
pub struct Serving {
    pub rollout_id: String,
    pub stage: Stage,
    /// The share of users served the candidate (0 in shadow).
    pub share: f64,
    pub candidate: Arc<LoadedModel>,
}

impl Serving {
    /// Whether this user is served the candidate: sticky, by a hash of user and rollout.
    pub fn serves_candidate(&self, user_id: &str) -> bool {
        self.stage == Stage::Canary
            && rollout::assign::in_canary(
                rollout::assign::canary_point(&self.rollout_id, user_id),
                self.share,
            )
    }
}

/// The loaded active versions, by model name, and the candidates of open rollouts.
pub struct ModelSet {
    env: &'static Environment,
    batch: BatchConfig,
    db: Db,
    models: RwLock<HashMap<String, Arc<LoadedModel>>>,
    rollouts: RwLock<HashMap<String, Arc<Serving>>>,
    /// Serialises loads so that two swaps of one model never race.
    loading: tokio::sync::Mutex<()>,
}

impl ModelSet {
    pub fn new(env: &'static Environment, batch: BatchConfig, db: Db) -> Self {
        ModelSet {
            env,
            batch,
            db,
            models: RwLock::new(HashMap::new()),
            rollouts: RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    pub fn environment(&self) -> &'static Environment {
        self.env
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedModel>> {
        self.models.read().ok()?.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.models
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The open rollout of `name`, as served here.
    pub fn rollout_of(&self, name: &str) -> Option<Arc<Serving>> {
        self.rollouts.read().ok()?.get(name).cloned()
    }

    /// Serves what the registry says of each open rollout: its stage and share, with its
    /// candidate loaded (once; a stage change swaps only the small serving record). A rollout
    /// that ended stops being served here.
    pub async fn sync_rollouts(&self) -> Result<(), RegistryError> {
        let open = self.db.run(crate::db::rollouts::open).await?;
        let mut next = HashMap::new();
        for row in open {
            let stage = serde_json::from_value(serde_json::Value::String(row.stage.clone()))
                .unwrap_or(Stage::Candidate);
            let loaded = self
                .rollout_of(&row.model)
                .filter(|s| s.candidate.version == row.candidate_version)
                .map(|s| s.candidate.clone());
            let candidate = match loaded {
                Some(candidate) => candidate,
                None => self.load(&row.model, row.candidate_version).await?,
            };
            let serving = Serving {
                rollout_id: row.id,
                stage,
                share: row.share,
                candidate,
            };
            next.insert(row.model, Arc::new(serving));
        }
        if let Ok(mut rollouts) = self.rollouts.write() {
            *rollouts = next;
        }
        Ok(())
    }

    /// Loads `name` v`version` from the registry, not serving it yet.
    async fn load(&self, name: &str, version: i32) -> Result<Arc<LoadedModel>, RegistryError> {
        let (n, v) = (name.to_owned(), version);
        let loaded = self
            .db
            .run(move |c| {
                let info = versions::find(c, &n, v)?;
                let bytes = versions::artifact(c, &n, v)?;
                Ok::<_, DbError>(info.zip(bytes))
            })
            .await?;
        let Some((info, bytes)) = loaded else {
            return Err(RegistryError::Import(format!(
                "{name} v{version} is not in the registry"
            )));
        };
        Ok(LoadedModel::load(self.env, name, version, &info.sha256, bytes, self.batch).await?)
    }

    /// Loads `name` v`version` from the registry and makes it the one served, unless it is
    /// already. Requests holding the previous version finish on it.
    pub async fn ensure_loaded(&self, name: &str, version: i32) -> Result<(), RegistryError> {
        let _guard = self.loading.lock().await;
        if self.get(name).is_some_and(|m| m.version == version) {
            return Ok(());
        }
        // The candidate being promoted is loaded already: the swap costs no load.
        let candidate = self
            .rollout_of(name)
            .filter(|s| s.candidate.version == version)
            .map(|s| s.candidate.clone());
        let model = match candidate {
            Some(model) => model,
            None => self.load(name, version).await?,
        };
        self.swap_in(name, model);
        Ok(())
    }

    fn swap_in(&self, name: &str, model: Arc<LoadedModel>) {
        let version = model.version;
        let previous = self
            .models
            .write()
            .map(|mut m| m.insert(name.to_owned(), model))
            .ok()
            .flatten();
        if let Some(previous) = previous {
            tracing::info!(
                model = name,
                from = previous.version,
                to = version,
                "model swapped"
            );
        }
    }

    /// Loads whatever the registry says is active now (start-up, and the periodic check that
    /// covers a missed bus message).
    pub async fn sync_with_registry(&self) -> Result<(), RegistryError> {
        let active = self.db.run(versions::active).await?;
        for info in active {
            self.ensure_loaded(&info.name, info.version).await?;
        }
        self.sync_rollouts().await
    }

    /// Promotes in the database, swaps here at once, and tells every other replica.
    pub async fn promote(
        &self,
        bus: &dyn EventBus,
        name: &str,
        version: i32,
    ) -> Result<Option<VersionInfo>, RegistryError> {
        let (n, v) = (name.to_owned(), version);
        let promoted = self
            .db
            .run(move |c| {
                if !versions::promote(c, &n, v)? {
                    return Ok::<_, DbError>(None);
                }
                versions::find(c, &n, v)
            })
            .await?;
        let Some(info) = promoted else {
            return Ok(None);
        };
        self.ensure_loaded(name, version).await?;
        let event = Envelope::of(&Event::ModelPromoted(ModelPromoted {
            model: name.to_owned(),
            version,
            sha256: info.sha256.clone(),
        }));
        if let Err(e) = bus.publish_recorded(&event).await {
            // The other replicas still pick it up on their periodic registry check.
            tracing::warn!(error = %e, "cannot publish model.promoted");
        }
        Ok(Some(info))
    }
}

/// On first start with an empty registry, imports the initial models trained by
/// `cargo xtask train` as version 1, active.
pub async fn import_initial(db: &Db, dir: &Path) -> Result<usize, RegistryError> {
    if db.run(versions::count).await? > 0 {
        return Ok(0);
    }
    let mut imported = 0;
    for name in INITIAL_MODELS {
        let path = dir.join(format!("{name}.onnx"));
        let artifact = std::fs::read(&path).map_err(|e| {
            RegistryError::Import(format!(
                "cannot read {} ({e}); train the initial models with `cargo xtask train`",
                path.display()
            ))
        })?;
        // `metrics.json`, written by the trainer: {"models": {"<name>": {...}}}.
        let metrics = std::fs::read_to_string(dir.join("metrics.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v.get("models")?.get(name).cloned())
            .unwrap_or_else(|| serde_json::json!({}));
        let now = crate::db::now();
        let row = NewVersion {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            version: 1,
            sha256: sha256_hex(&artifact),
            artifact,
            metrics: metrics.to_string(),
            status: versions::ACTIVE.to_owned(),
            source: "initial".to_owned(),
            source_job_id: None,
            created_at: now,
            promoted_at: Some(now),
            traffic_share: 1.0,
        };
        match db.run(move |c| versions::insert(c, &row)).await {
            Ok(()) => imported += 1,
            // Another replica imported it at the same moment.
            Err(e) if e.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(imported, dir = %dir.display(), "initial models imported");
    Ok(imported)
}

/// Swaps to the version a `model.promoted` event names; follows a rollout's stage on a
/// rollout event.
async fn swap_to(models: &ModelSet, envelope: &Envelope) {
    let promoted = match envelope.event() {
        Ok(Event::ModelPromoted(promoted)) => promoted,
        Ok(Event::RolloutStarted(_) | Event::RolloutProgress(_) | Event::RolloutDecided(_)) => {
            // The active versions first: a promoted candidate must serve before its rollout
            // stops being served.
            if let Err(e) = models.sync_with_registry().await {
                tracing::warn!(error = %e, "cannot follow a rollout");
            }
            return;
        }
        Ok(other) => {
            tracing::warn!(kind = other.kind(), "not a model.promoted event");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "dropping an unreadable model.promoted event");
            return;
        }
    };
    let span = common::continued_span!("model.swap", envelope.traceparent.as_deref());
    let ModelPromoted { model, version, .. } = promoted;
    if let Err(e) =
        tracing::Instrument::instrument(models.ensure_loaded(&model, version), span).await
    {
        tracing::warn!(error = %e, model = %model, version, "cannot swap to the promoted version");
    }
}

/// Follows promotions made anywhere: the bus for speed, a periodic registry check for the
/// messages pub/sub may lose. Stopping the returned tasks aborts both.
pub fn spawn_swapper(
    models: Arc<ModelSet>,
    bus: Arc<dyn EventBus>,
    every: Duration,
) -> common::service::AbortOnStop {
    let from_bus = models.clone();
    let follow = tokio::spawn(async move {
        loop {
            let kinds = [
                events::MODEL_PROMOTED,
                events::ROLLOUT_STARTED,
                events::ROLLOUT_PROGRESS,
                events::ROLLOUT_DECIDED,
            ];
            match bus.subscribe(&kinds).await {
                Ok(mut stream) => {
                    while let Some(envelope) = stream.next().await {
                        swap_to(&from_bus, &envelope).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to model events"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let check = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = models.sync_with_registry().await {
                tracing::warn!(error = %e, "periodic registry check failed");
            }
        }
    });
    common::service::AbortOnStop(vec![follow, check])
}
