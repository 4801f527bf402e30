//! What one retrain job computes, apart from queues and services: the training data (MNIST plus
//! labelled feedback), training (from scratch or fine-tuning the active version), both models
//! scored on the same holdout, and the gate that decides promotion.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use contracts::jobs::{ComparedVersion, GateReport, RetrainMetrics, TrainingReport};
use digits::Dataset;

use crate::clients::LabelledExample;
use crate::train::rng::Rng;
use crate::train::{
    self, Arch, Evaluation, Hyperparameters, Network, TrainError, TrainObserver, export_onnx,
    import_onnx,
};

/// Epochs of a fine-tuning job when the request names none.
pub const DEFAULT_FINE_TUNE_EPOCHS: usize = 2;
/// The most epochs a job may ask for.
pub const MAX_EPOCHS: usize = 30;
/// MNIST holdout digits scored after each epoch for the progress report (the full holdout is
/// scored once at the end).
const VALIDATION_DIGITS: usize = 1_000;

/// What a job asked for, with the worker's configuration applied.
#[derive(Debug, Clone)]
pub struct Plan {
    pub arch: Arch,
    pub epochs: usize,
    pub from_scratch: bool,
    pub mnist_sample: usize,
    pub feedback_weight: usize,
    /// The most labelled examples one user contributes to the job's training data.
    pub max_labels_per_user: usize,
    pub eval_sample: usize,
    pub tolerance_points: f64,
    /// Derived from the job id: running a job again trains the same model.
    pub seed: u64,
}

impl Plan {
    pub fn default_epochs(arch: Arch, from_scratch: bool) -> usize {
        if from_scratch {
            Hyperparameters::for_arch(arch, 0).epochs
        } else {
            DEFAULT_FINE_TUNE_EPOCHS
        }
    }

    /// Training from scratch uses the initial models' schedule; fine-tuning starts from a quarter
    /// of its learning rate, so what the active version knows is kept.
    pub fn hyperparameters(&self) -> Hyperparameters {
        let mut hyper = Hyperparameters::for_arch(self.arch, self.seed);
        hyper.epochs = self.epochs;
        if !self.from_scratch {
            hyper.learning_rate /= 4.0;
            hyper.final_learning_rate = hyper.final_learning_rate.min(hyper.learning_rate / 20.0);
        }
        hyper
    }
}

/// A seed from a job id: stable across attempts of one job, different between jobs.
pub fn seed_for(job_id: &str) -> u64 {
    let digest = common::digest::sha256_hex(job_id.as_bytes());
    u64::from_str_radix(&digest[..16], 16).unwrap_or(train::DEFAULT_SEED)
}

/// How a job's labelled feedback is used. Labels an admin sent (`trusted`) are confirmed: they
/// all judge the candidate and none trains it, so the holdout is never drawn from the pool the
/// candidate learnt from. Every other label trains, at most `cap` per user: a user over the cap
/// contributes their most recent ones (the highest ids), so that one job reads the same set on
/// every attempt, the newest labels (about the answers the model gives now) count, and sending
/// more only pushes the sender's own older labels out.
pub struct FeedbackSplit<'a> {
    /// In id order.
    pub train: Vec<&'a LabelledExample>,
    /// In id order.
    pub holdout: Vec<&'a LabelledExample>,
    /// Untrusted labels left out by the cap.
    pub capped: usize,
}

impl<'a> FeedbackSplit<'a> {
    pub fn of(feedback: &'a [LabelledExample], cap: usize) -> Self {
        let (mut holdout, untrusted): (Vec<_>, Vec<_>) = feedback.iter().partition(|e| e.trusted);
        let mut by_user: HashMap<&str, Vec<&LabelledExample>> = HashMap::new();
        for example in &untrusted {
            by_user.entry(&example.user_id).or_default().push(example);
        }
        let mut train = Vec::with_capacity(untrusted.len());
        for mut examples in by_user.into_values() {
            examples.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
            examples.truncate(cap);
            train.extend(examples);
        }
        train.sort_unstable_by_key(|e| e.id);
        holdout.sort_unstable_by_key(|e| e.id);
        FeedbackSplit {
            capped: untrusted.len() - train.len(),
            train,
            holdout,
        }
    }
}

/// The data of one job.
pub struct JobData {
    pub train: Dataset,
    pub mnist_holdout: Dataset,
    /// The confirmed (trusted) labels.
    pub feedback_holdout: Dataset,
    pub mnist_digits: usize,
    pub feedback_train: usize,
    /// Labels the per-user cap left out.
    pub feedback_capped: usize,
}

impl JobData {
    pub fn assemble(
        plan: &Plan,
        mnist_train: &Dataset,
        mnist_test: &Dataset,
        feedback: &[LabelledExample],
    ) -> JobData {
        let mut train = sample(mnist_train, plan.mnist_sample, plan.seed);
        let mnist_digits = train.len();
        let split = FeedbackSplit::of(feedback, plan.max_labels_per_user);
        for example in &split.train {
            for _ in 0..plan.feedback_weight {
                train.images.push(example.input);
                train.labels.push(example.label);
            }
        }
        JobData {
            train,
            mnist_holdout: mnist_test.take(plan.eval_sample),
            feedback_holdout: Dataset {
                images: split.holdout.iter().map(|e| e.input).collect(),
                labels: split.holdout.iter().map(|e| e.label).collect(),
            },
            mnist_digits,
            feedback_train: split.train.len(),
            feedback_capped: split.capped,
        }
    }
}

/// `n` digits drawn without replacement (all of them, in file order, when `n` covers the set).
fn sample(data: &Dataset, n: usize, seed: u64) -> Dataset {
    if n >= data.len() {
        return data.clone();
    }
    let mut order: Vec<usize> = (0..data.len()).collect();
    Rng::stream(seed, 7).shuffle(&mut order);
    order.truncate(n);
    Dataset {
        images: order.iter().map(|&i| data.images[i]).collect(),
        labels: order.iter().map(|&i| data.labels[i]).collect(),
    }
}

/// A model's scores on the holdout.
#[derive(Debug, Clone, Copy)]
pub struct Scores {
    pub mnist: Evaluation,
    /// `None` when no feedback is held out.
    pub feedback: Option<Evaluation>,
}

impl Scores {
    /// As a job's metrics report them.
    pub fn report(&self) -> contracts::jobs::Scores {
        let report = |e: &Evaluation| contracts::jobs::Evaluation {
            accuracy: e.accuracy,
            loss: e.loss,
            count: e.count,
        };
        contracts::jobs::Scores {
            mnist: report(&self.mnist),
            feedback: self.feedback.as_ref().map(report),
        }
    }
}

pub fn score(network: &Network, data: &JobData) -> Result<Scores, TrainError> {
    Ok(Scores {
        mnist: train::evaluate(network, &data.mnist_holdout)?,
        feedback: if data.feedback_holdout.is_empty() {
            None
        } else {
            Some(train::evaluate(network, &data.feedback_holdout)?)
        },
    })
}

/// The gate's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub promote: bool,
    /// Why not, in a sentence with both scores.
    pub reason: Option<String>,
}

/// Promote only if the candidate is not worse on MNIST beyond the tolerance, and not worse on
/// the feedback holdout at all.
pub fn gate(candidate: &Scores, active: &Scores, tolerance_points: f64) -> Verdict {
    let points = |e: &Evaluation| e.accuracy * 100.0;
    let mut reasons = Vec::new();
    // A hair of slack for floating-point noise in the comparison, far below one digit.
    let epsilon = 1e-9;
    if points(&candidate.mnist) + tolerance_points + epsilon < points(&active.mnist) {
        reasons.push(format!(
            "MNIST holdout accuracy {:.2} % is more than {tolerance_points} points below the active version's {:.2} %",
            points(&candidate.mnist),
            points(&active.mnist)
        ));
    }
    if let (Some(c), Some(a)) = (&candidate.feedback, &active.feedback)
        && points(c) + epsilon < points(a)
    {
        reasons.push(format!(
            "feedback holdout accuracy {:.2} % is below the active version's {:.2} %",
            points(c),
            points(a)
        ));
    }
    Verdict {
        promote: reasons.is_empty(),
        reason: (!reasons.is_empty())
            .then(|| format!("Candidate rejected: {}.", reasons.join("; "))),
    }
}

/// Told about each epoch (the worker turns it into `retrain.progress`) and asked whether to stop.
pub trait Progress: Send {
    fn epoch(&mut self, report: EpochReport);
    fn should_stop(&self) -> Option<String>;
}

pub use contracts::jobs::EpochReport;

/// What a job produced, before registration.
pub struct Produced {
    pub artifact: Vec<u8>,
    pub candidate: Scores,
    pub active: Scores,
    pub verdict: Verdict,
    pub train_loss: f32,
    pub took: Duration,
}

impl Produced {
    /// The metrics stored with the job and the registered version.
    pub fn metrics(&self, plan: &Plan, data: &JobData, active_version: i32) -> RetrainMetrics {
        RetrainMetrics {
            test_accuracy: self.candidate.mnist.accuracy,
            candidate: self.candidate.report(),
            active: ComparedVersion {
                version: active_version,
                scores: self.active.report(),
            },
            gate: GateReport {
                tolerance_points: plan.tolerance_points,
                promote: self.verdict.promote,
                reason: self.verdict.reason.clone(),
            },
            training: TrainingReport {
                from_scratch: plan.from_scratch,
                epochs: plan.epochs,
                mnist_digits: data.mnist_digits,
                feedback_digits: data.feedback_train,
                feedback_weight: plan.feedback_weight,
                feedback_holdout_digits: data.feedback_holdout.len(),
                feedback_capped: data.feedback_capped,
                examples: data.train.len(),
                train_loss: self.train_loss,
                seconds: self.took.as_secs_f64(),
                seed: plan.seed,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("the active version's model cannot be read: {0}")]
    Import(#[from] train::ImportError),
    #[error("exporting the candidate: {0}")]
    Export(#[from] train::export::ExportError),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Trains the candidate and scores it and the active version. CPU-bound: call it on a blocking
/// thread.
pub fn run(
    plan: &Plan,
    data: &JobData,
    active_artifact: &[u8],
    progress: &mut dyn Progress,
) -> Result<Produced, RunError> {
    let started = Instant::now();
    let active = import_onnx(active_artifact, plan.arch)?;
    let start = if plan.from_scratch {
        Network::new(plan.arch, plan.seed)?
    } else {
        import_onnx(active_artifact, plan.arch)?
    };
    let validation = validation_set(data);
    let mut observer = EpochObserver {
        progress,
        validation: &validation,
        started: Instant::now(),
        epochs: plan.epochs,
    };
    let trained = train::train_network(start, &plan.hyperparameters(), &data.train, &mut observer)?;
    let candidate = score(&trained.network, data)?;
    let active_scores = score(&active, data)?;
    let verdict = gate(&candidate, &active_scores, plan.tolerance_points);
    let artifact = export_onnx(
        &trained.network,
        &vec![
            ("model".into(), plan.arch.model_name().into()),
            ("seed".into(), plan.seed.to_string()),
            (
                "test_accuracy".into(),
                format!("{:.4}", candidate.mnist.accuracy),
            ),
        ],
    )?;
    Ok(Produced {
        artifact,
        candidate,
        active: active_scores,
        verdict,
        train_loss: trained.train_loss,
        took: started.elapsed(),
    })
}

fn validation_set(data: &JobData) -> Dataset {
    let mut validation = data.mnist_holdout.take(VALIDATION_DIGITS);
    validation
        .images
        .extend_from_slice(&data.feedback_holdout.images);
    validation
        .labels
        .extend_from_slice(&data.feedback_holdout.labels);
    validation
}

struct EpochObserver<'a> {
    progress: &'a mut dyn Progress,
    validation: &'a Dataset,
    started: Instant,
    epochs: usize,
}

impl TrainObserver for EpochObserver<'_> {
    fn should_stop(&self) -> Option<String> {
        self.progress.should_stop()
    }

    fn epoch_started(&mut self, epoch: usize, epochs: usize, _batches: usize) {
        self.epochs = epochs;
        if epoch == 0 {
            self.started = Instant::now();
        }
    }

    fn epoch_finished(
        &mut self,
        epoch: usize,
        mean_loss: f32,
        _took: Duration,
        network: &Network,
    ) -> Result<(), TrainError> {
        let epochs = self.epochs;
        let val = train::evaluate(network, self.validation)?;
        let done = epoch + 1;
        let per_epoch = self.started.elapsed().as_secs_f64() / done as f64;
        self.progress.epoch(EpochReport {
            epoch: done,
            epochs,
            loss: mean_loss,
            val_accuracy: val.accuracy,
            eta_seconds: per_epoch * epochs.saturating_sub(done) as f64,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(mnist: f64, feedback: Option<f64>) -> Scores {
        let eval = |accuracy| Evaluation {
            accuracy,
            loss: 0.1,
            count: 100,
        };
        Scores {
            mnist: eval(mnist),
            feedback: feedback.map(eval),
        }
    }

    #[test]
    fn the_gate_allows_the_tolerance_on_mnist_and_nothing_on_feedback() {
        let active = scores(0.98, Some(0.50));
        // Within half a point on MNIST, better on feedback: promoted.
        assert!(gate(&scores(0.976, Some(0.80)), &active, 0.5).promote);
        // Exactly at the tolerance: promoted.
        assert!(gate(&scores(0.975, Some(0.50)), &active, 0.5).promote);
        // More than the tolerance below on MNIST: rejected, with both scores in the reason.
        let verdict = gate(&scores(0.97, Some(0.90)), &active, 0.5);
        assert!(!verdict.promote);
        let reason = verdict.reason.unwrap();
        assert!(
            reason.contains("97.00 %") && reason.contains("98.00 %"),
            "{reason}"
        );
        // Worse on the feedback holdout at all: rejected.
        let verdict = gate(&scores(0.99, Some(0.49)), &active, 0.5);
        assert!(!verdict.promote);
        assert!(verdict.reason.unwrap().contains("feedback holdout"));
        // Without held-out feedback only MNIST counts.
        assert!(gate(&scores(0.979, None), &scores(0.98, None), 0.5).promote);
        assert!(!gate(&scores(0.979, None), &scores(0.98, None), 0.0).promote);
    }

    fn example(id: i64, user: &str, trusted: bool) -> LabelledExample {
        LabelledExample {
            id,
            user_id: user.into(),
            trusted,
            label: (id % 10) as u8,
            input: [id as u8; digits::PIXELS],
        }
    }

    fn ids(examples: &[&LabelledExample]) -> Vec<i64> {
        examples.iter().map(|e| e.id).collect()
    }

    #[test]
    fn a_user_over_the_cap_trains_with_their_most_recent_labels() {
        // ana sends 1..=8 interleaved with bo's 20..=22, and one of ana's arrives late.
        let mut feedback: Vec<LabelledExample> =
            (1..=8).map(|id| example(id, "ana", false)).collect();
        feedback.extend((20..=22).map(|id| example(id, "bo", false)));
        feedback.push(example(30, "ana", false));
        let split = FeedbackSplit::of(&feedback, 3);
        assert_eq!(ids(&split.train), vec![7, 8, 20, 21, 22, 30]);
        assert_eq!(split.capped, 6);
        assert!(split.holdout.is_empty());
        // The order feedback arrives in changes nothing.
        let mut reversed = feedback.clone();
        reversed.reverse();
        let again = FeedbackSplit::of(&reversed, 3);
        assert_eq!(ids(&again.train), ids(&split.train));
        // At or under the cap nothing is left out.
        let all = FeedbackSplit::of(&feedback, 9);
        assert_eq!(all.train.len(), 12);
        assert_eq!(all.capped, 0);
    }

    #[test]
    fn confirmed_labels_only_judge_and_are_not_capped() {
        let mut feedback: Vec<LabelledExample> =
            (1..=5).map(|id| example(id, "boss", true)).collect();
        feedback.extend((6..=9).map(|id| example(id, "ana", false)));
        let split = FeedbackSplit::of(&feedback, 2);
        assert_eq!(ids(&split.holdout), vec![1, 2, 3, 4, 5]);
        assert_eq!(ids(&split.train), vec![8, 9]);
        assert_eq!(split.capped, 2);
        assert!(split.train.iter().all(|e| !e.trusted));
    }

    #[test]
    fn feedback_is_weighted_up_capped_and_only_confirmed_labels_are_held_out() {
        let grid = |v: u8| [v; digits::PIXELS];
        let mnist = Dataset {
            images: (0..50).map(|i| grid(i as u8)).collect(),
            labels: (0..50).map(|i| (i % 10) as u8).collect(),
        };
        // 30 labels of ana, 6 of bo, 4 confirmed by an admin.
        let mut feedback: Vec<LabelledExample> =
            (1..=30).map(|id| example(id, "ana", false)).collect();
        feedback.extend((31..=36).map(|id| example(id, "bo", false)));
        feedback.extend((37..=40).map(|id| example(id, "boss", true)));
        let plan = Plan {
            arch: Arch::Mlp,
            epochs: 1,
            from_scratch: false,
            mnist_sample: 20,
            feedback_weight: 3,
            max_labels_per_user: 10,
            eval_sample: 30,
            tolerance_points: 0.5,
            seed: seed_for("job-a"),
        };
        let data = JobData::assemble(&plan, &mnist, &mnist, &feedback);
        assert_eq!(data.feedback_holdout.len(), 4);
        assert_eq!(
            data.feedback_holdout.images,
            (37..=40).map(|id| grid(id as u8)).collect::<Vec<_>>()
        );
        assert_eq!(data.feedback_train, 10 + 6);
        assert_eq!(data.feedback_capped, 20);
        assert_eq!(data.mnist_digits, 20);
        assert_eq!(data.train.len(), 20 + 3 * 16);
        assert_eq!(data.mnist_holdout.len(), 30);
        // No confirmed label is trained on; ana's oldest 20 are not either.
        let trained = &data.train.images[20..];
        assert!((37..=40).all(|id| !trained.contains(&grid(id as u8))));
        assert!((1..=20).all(|id| !trained.contains(&grid(id as u8))));
        assert!((21..=36).all(|id| trained.contains(&grid(id as u8))));
        // The same job draws the same sample; another job another one.
        let again = JobData::assemble(&plan, &mnist, &mnist, &feedback);
        assert_eq!(again.train, data.train);
        let other = Plan {
            seed: seed_for("job-b"),
            ..plan
        };
        assert_ne!(
            JobData::assemble(&other, &mnist, &mnist, &feedback).train,
            data.train
        );
    }
}
