//! Shadow runs: while a rollout is open, the version that did not answer a request runs on its
//! input after the answer is sent, and its digit is kept with the served prediction, so that a
//! label on that prediction scores both versions on the same input. The queue is bounded: when
//! it is full the run is dropped and counted (`predict_shadow_runs_total{outcome="dropped"}`),
//! and the prediction keeps one version's output (shown, never decided on).

use crate::engine::LoadedModel;
use crate::store::{PredictionStore, StoredPrediction};
use contracts::rollouts::Arm;
use std::sync::Arc;
use tokio::sync::mpsc;

/// One shadow run: the other version on the stored prediction's input.
pub struct ShadowRun {
    pub prediction: StoredPrediction,
    pub model: Arc<LoadedModel>,
    pub input: Vec<f32>,
}

fn runs() -> &'static common::metrics::Counter {
    static RUNS: std::sync::OnceLock<common::metrics::Counter> = std::sync::OnceLock::new();
    RUNS.get_or_init(|| {
        common::metrics::global().counter(
            "predict_shadow_runs",
            "Shadow runs of a rollout's other version, by outcome (done, dropped, failed).",
            &["outcome"],
        )
    })
}

/// The sending side of the queue.
#[derive(Clone)]
pub struct Shadow {
    queue: mpsc::Sender<ShadowRun>,
    /// Share of a rollout's requests run in shadow.
    sample: f64,
}

impl Shadow {
    /// A queue of `capacity` runs and the worker that empties it.
    pub fn start(store: PredictionStore, capacity: usize, sample: f64) -> (Shadow, ShadowWorker) {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        (Shadow { queue, sample }, ShadowWorker { rx, store })
    }

    /// Whether a prediction is run in shadow: by a hash of its id, so a replay decides alike.
    pub fn sampled(&self, prediction_id: &str) -> bool {
        self.sample >= 1.0
            || rollout::assign::feedback_requested(&format!("shadow:{prediction_id}"), self.sample)
    }

    /// Queues a run, or drops and counts it when the queue is full.
    pub fn submit(&self, run: ShadowRun) {
        if self.queue.try_send(run).is_err() {
            runs().inc(&["dropped"]);
        }
    }
}

/// Runs the queued shadow runs, one at a time.
pub struct ShadowWorker {
    rx: mpsc::Receiver<ShadowRun>,
    store: PredictionStore,
}

impl ShadowWorker {
    /// Runs the next queued run; false once every sender is gone.
    pub async fn process_next(&mut self) -> bool {
        let Some(run) = self.rx.recv().await else {
            return false;
        };
        let outcome = match self.run(run).await {
            Ok(()) => "done",
            Err(e) => {
                tracing::warn!(error = %e, "shadow run failed");
                "failed"
            }
        };
        runs().inc(&[outcome]);
        true
    }

    async fn run(&self, run: ShadowRun) -> anyhow::Result<()> {
        let ShadowRun {
            mut prediction,
            model,
            input,
        } = run;
        let probabilities = model.infer(1, input).await?;
        let digit = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(d, _)| d as u8);
        let Some(rollout) = prediction.rollout.as_mut() else {
            return Ok(());
        };
        match rollout.served {
            Arm::Active => rollout.candidate_prediction = digit,
            Arm::Candidate => rollout.active_prediction = digit,
        }
        self.store.put(&prediction).await?;
        Ok(())
    }

    /// Runs until the queue closes.
    pub async fn run_forever(mut self) {
        while self.process_next().await {}
    }
}
