//! Training the digit models with candle on the CPU, evaluating them, and exporting them to ONNX.
//!
//! Used by the `train` binary (`cargo xtask train`: the initial models) and, later, by the worker's
//! retrain jobs. Deterministic: the same data, hyper-parameters and seed give the same weights.

pub mod cache;
pub mod export;
pub mod import;
pub mod models;
pub mod rng;

use std::time::{Duration, Instant};

use candle_core::{D, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use digits::{Dataset, SIDE};
use serde::{Deserialize, Serialize};

pub use export::{ExportMetadata, export_onnx};
pub use import::{ImportError, import_onnx};
pub use models::{Arch, Layer, Network};

/// Bump whenever a change to the training code changes what it produces (architecture, init,
/// optimiser, schedule, export): it is part of the artifact cache key.
pub const TRAINING_CODE_VERSION: u32 = 1;

/// The default seed of the initial models.
pub const DEFAULT_SEED: u64 = 20_251_128;

/// How a model is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    pub epochs: usize,
    pub batch_size: usize,
    /// AdamW's peak learning rate, decayed along a cosine to `final_learning_rate`.
    pub learning_rate: f64,
    pub final_learning_rate: f64,
    pub weight_decay: f64,
    pub seed: u64,
}

impl Hyperparameters {
    /// The hyper-parameters of the initial models.
    pub fn for_arch(arch: Arch, seed: u64) -> Self {
        match arch {
            Arch::Mlp => Self {
                epochs: 6,
                batch_size: 128,
                learning_rate: 1e-3,
                final_learning_rate: 2e-5,
                weight_decay: 1e-4,
                seed,
            },
            Arch::Cnn => Self {
                epochs: 3,
                batch_size: 64,
                learning_rate: 2e-3,
                final_learning_rate: 2e-5,
                weight_decay: 1e-4,
                seed,
            },
        }
    }

    fn learning_rate_at(&self, step: usize, total_steps: usize) -> f64 {
        let progress = step as f64 / total_steps.max(1) as f64;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.final_learning_rate + (self.learning_rate - self.final_learning_rate) * cosine
    }
}

/// Told about training's progress (a progress bar, a job's progress events).
pub trait TrainObserver {
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    /// Asked before each batch: `Some(reason)` stops training with [`TrainError::Stopped`].
    fn should_stop(&self) -> Option<String> {
        None
    }
    /// After each batch, with the mean loss of the epoch so far.
    fn batch_finished(&mut self, _batch: usize, _running_loss: f32) {}
    /// After each epoch, with the network as it is now (to score it on validation data).
    fn epoch_finished(
        &mut self,
        _epoch: usize,
        _mean_loss: f32,
        _took: Duration,
        _network: &Network,
    ) -> Result<(), TrainError> {
        Ok(())
    }
}

/// Ignores everything.
pub struct Quiet;

impl TrainObserver for Quiet {}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("nothing to train on: the data set is empty")]
    NoData,
    #[error("batch size must be at least 1")]
    BadBatchSize,
    /// The observer stopped training (its reason).
    #[error("{0}")]
    Stopped(String),
}

/// What training produced.
pub struct Trained {
    pub network: Network,
    /// Mean loss over the last epoch.
    pub train_loss: f32,
    pub took: Duration,
}

/// Trains `arch` from scratch on `data`.
pub fn train(
    arch: Arch,
    hyper: &Hyperparameters,
    data: &Dataset,
    observer: &mut dyn TrainObserver,
) -> Result<Trained, TrainError> {
    let network = Network::new(arch, hyper.seed)?;
    train_network(network, hyper, data, observer)
}

/// Trains `network` further on `data`: from fresh weights, or fine-tuning a served version.
pub fn train_network(
    network: Network,
    hyper: &Hyperparameters,
    data: &Dataset,
    observer: &mut dyn TrainObserver,
) -> Result<Trained, TrainError> {
    if data.is_empty() {
        return Err(TrainError::NoData);
    }
    if hyper.batch_size == 0 {
        return Err(TrainError::BadBatchSize);
    }
    let started = Instant::now();
    let images = input_tensor(&data.images)?;
    let labels = Tensor::from_iter(
        data.labels.iter().map(|&label| u32::from(label)),
        &Device::Cpu,
    )?;
    let mut optimiser = AdamW::new(
        network.vars().iter().map(|(_, var)| var.clone()).collect(),
        ParamsAdamW {
            lr: hyper.learning_rate,
            weight_decay: hyper.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut shuffler = rng::Rng::stream(hyper.seed, 2);
    let mut order: Vec<u32> = (0..data.len() as u32).collect();
    let batches = data.len().div_ceil(hyper.batch_size);
    let total_steps = batches * hyper.epochs;
    let mut train_loss = f32::NAN;
    for epoch in 0..hyper.epochs {
        let epoch_started = Instant::now();
        observer.epoch_started(epoch, hyper.epochs, batches);
        shuffler.shuffle(&mut order);
        let (mut loss_sum, mut seen) = (0.0_f64, 0_usize);
        for (batch, indices) in order.chunks(hyper.batch_size).enumerate() {
            if let Some(reason) = observer.should_stop() {
                return Err(TrainError::Stopped(reason));
            }
            optimiser
                .set_learning_rate(hyper.learning_rate_at(epoch * batches + batch, total_steps));
            let indices = Tensor::from_slice(indices, indices.len(), &Device::Cpu)?;
            let x = images.index_select(&indices, 0)?;
            let y = labels.index_select(&indices, 0)?;
            let loss = candle_nn::loss::cross_entropy(&network.forward(&x)?, &y)?;
            optimiser.backward_step(&loss)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * indices.dim(0)? as f64;
            seen += indices.dim(0)?;
            observer.batch_finished(batch, (loss_sum / seen as f64) as f32);
        }
        train_loss = (loss_sum / seen as f64) as f32;
        observer.epoch_finished(epoch, train_loss, epoch_started.elapsed(), &network)?;
    }
    Ok(Trained {
        network,
        train_loss,
        took: started.elapsed(),
    })
}

/// How a network does on a labelled data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Share of digits classified right, in `[0, 1]`.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    pub count: usize,
}

pub fn evaluate(network: &Network, data: &Dataset) -> Result<Evaluation, TrainError> {
    if data.is_empty() {
        return Err(TrainError::NoData);
    }
    const CHUNK: usize = 1000;
    let (mut correct, mut loss_sum) = (0_usize, 0.0_f64);
    for (images, labels) in data.images.chunks(CHUNK).zip(data.labels.chunks(CHUNK)) {
        let logits = network.forward(&input_tensor(images)?)?.detach();
        let targets =
            Tensor::from_iter(labels.iter().map(|&label| u32::from(label)), &Device::Cpu)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?.to_scalar::<f32>()?;
        loss_sum += f64::from(loss) * labels.len() as f64;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        correct += predicted
            .iter()
            .zip(labels)
            .filter(|(predicted, label)| **predicted == u32::from(**label))
            .count();
    }
    Ok(Evaluation {
        accuracy: correct as f64 / data.len() as f64,
        loss: loss_sum / data.len() as f64,
        count: data.len(),
    })
}

/// Digits as the models' input: `[N, 1, 28, 28]`, pixels in `[0, 1]` (see [`digits::to_input`]).
pub fn input_tensor(images: &[digits::Grid]) -> candle_core::Result<Tensor> {
    Tensor::from_vec(
        digits::to_input_batch(images),
        (images.len(), 1, SIDE, SIDE),
        &Device::Cpu,
    )
}
