//! The two digit models as a plain sequence of layers: candle runs it for training and evaluation,
//! and the ONNX exporter walks the very same sequence, so the two cannot drift apart.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::rng::Rng;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Arch {
    /// 784 → 256 → 128 → 10, served by `/api/v1/predict`.
    #[serde(rename = "mnist-mlp")]
    Mlp,
    /// A small LeNet-like convolutional network, served by `/api/v2/predict`.
    #[serde(rename = "mnist-cnn")]
    Cnn,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Mlp, Arch::Cnn];

    /// The model's name in the registry and the artifact's file stem.
    pub fn model_name(self) -> &'static str {
        match self {
            Arch::Mlp => "mnist-mlp",
            Arch::Cnn => "mnist-cnn",
        }
    }

    /// The test accuracy the full training must reach (issue 3's bar).
    pub fn minimum_accuracy(self) -> f64 {
        match self {
            Arch::Mlp => 0.970,
            Arch::Cnn => 0.985,
        }
    }

    pub fn from_model_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|arch| arch.model_name() == name)
    }

    /// The layers, from the `[N, 1, 28, 28]` input in `[0, 1]` to the logits `[N, 10]`.
    fn plan(self) -> Vec<Spec> {
        match self {
            Arch::Mlp => vec![
                Spec::Normalise,
                Spec::Flatten,
                Spec::Dense {
                    inputs: 784,
                    outputs: 256,
                },
                Spec::Relu,
                Spec::Dense {
                    inputs: 256,
                    outputs: 128,
                },
                Spec::Relu,
                Spec::Dense {
                    inputs: 128,
                    outputs: 10,
                },
            ],
            // LeNet-like, sized for training on two CPU cores in a couple of minutes:
            // 28×28 → conv 5×5 → 24×24×8 → pool → 12×12×8 → conv 5×5 → 8×8×16 → pool → 4×4×16.
            // Pooling before the ReLU gives the same result on a quarter of the values.
            Arch::Cnn => vec![
                Spec::Normalise,
                Spec::Conv {
                    inputs: 1,
                    outputs: 8,
                    kernel: 5,
                },
                Spec::MaxPool2,
                Spec::Relu,
                Spec::Conv {
                    inputs: 8,
                    outputs: 16,
                    kernel: 5,
                },
                Spec::MaxPool2,
                Spec::Relu,
                Spec::Flatten,
                Spec::Dense {
                    inputs: 256,
                    outputs: 128,
                },
                Spec::Relu,
                Spec::Dense {
                    inputs: 128,
                    outputs: 10,
                },
            ],
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.model_name())
    }
}

#[derive(Debug, Clone, Copy)]
enum Spec {
    Normalise,
    Conv {
        inputs: usize,
        outputs: usize,
        kernel: usize,
    },
    Relu,
    MaxPool2,
    Flatten,
    Dense {
        inputs: usize,
        outputs: usize,
    },
}

/// One step of a network. Weights are candle tensors sharing storage with the trained [`Var`]s.
#[derive(Debug, Clone)]
pub enum Layer {
    /// `(x − MEAN) / STD`, MNIST's normalisation, inside the model.
    Normalise,
    /// 2-D convolution, stride 1, no padding; weight `[out, in, k, k]`, bias `[out]`.
    Conv {
        weight: Tensor,
        bias: Tensor,
    },
    Relu,
    /// 2×2 max pooling, stride 2.
    MaxPool2,
    /// `[N, …]` → `[N, rest]`, row-major like ONNX's `Flatten`.
    Flatten,
    /// `x · weightᵀ + bias`; weight `[out, in]`, bias `[out]`.
    Dense {
        weight: Tensor,
        bias: Tensor,
    },
}

/// A network: its layers and its trainable variables.
pub struct Network {
    pub arch: Arch,
    pub layers: Vec<Layer>,
    vars: Vec<(String, Var)>,
}

impl Network {
    /// Fresh weights drawn from `seed`: Kaiming-uniform weights (He et al.), zero biases.
    pub fn new(arch: Arch, seed: u64) -> candle_core::Result<Network> {
        let mut rng = Rng::stream(seed, 1);
        let device = Device::Cpu;
        let mut vars = Vec::new();
        let mut layers = Vec::new();
        let mut counts = (0, 0);
        let plan = arch.plan();
        let last_dense = plan
            .iter()
            .rposition(|spec| matches!(spec, Spec::Dense { .. }));
        for (index, spec) in plan.into_iter().enumerate() {
            let layer = match spec {
                Spec::Normalise => Layer::Normalise,
                Spec::Relu => Layer::Relu,
                Spec::MaxPool2 => Layer::MaxPool2,
                Spec::Flatten => Layer::Flatten,
                Spec::Conv {
                    inputs,
                    outputs,
                    kernel,
                } => {
                    counts.0 += 1;
                    let name = format!("conv{}", counts.0);
                    let fan_in = inputs * kernel * kernel;
                    let weight = kaiming(&mut rng, fan_in, 2.0, outputs * fan_in);
                    let weight = Var::from_vec(weight, (outputs, inputs, kernel, kernel), &device)?;
                    let bias = Var::zeros(outputs, DType::F32, &device)?;
                    let layer = Layer::Conv {
                        weight: weight.as_tensor().clone(),
                        bias: bias.as_tensor().clone(),
                    };
                    vars.push((format!("{name}.weight"), weight));
                    vars.push((format!("{name}.bias"), bias));
                    layer
                }
                Spec::Dense { inputs, outputs } => {
                    counts.1 += 1;
                    let name = format!("dense{}", counts.1);
                    // The output layer feeds a softmax, not a ReLU: no gain for the ReLU's half.
                    let gain = if Some(index) == last_dense { 1.0 } else { 2.0 };
                    let weight = kaiming(&mut rng, inputs, gain, outputs * inputs);
                    let weight = Var::from_vec(weight, (outputs, inputs), &device)?;
                    let bias = Var::zeros(outputs, DType::F32, &device)?;
                    let layer = Layer::Dense {
                        weight: weight.as_tensor().clone(),
                        bias: bias.as_tensor().clone(),
                    };
                    vars.push((format!("{name}.weight"), weight));
                    vars.push((format!("{name}.bias"), bias));
                    layer
                }
            };
            layers.push(layer);
        }
        Ok(Network { arch, layers, vars })
    }

    /// The trainable variables, named (`conv1.weight`, `dense2.bias`, …) in layer order.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    pub fn parameter_count(&self) -> usize {
        self.vars.iter().map(|(_, var)| var.elem_count()).sum()
    }

    /// Logits `[N, 10]` for inputs `[N, 1, 28, 28]` with pixels in `[0, 1]`.
    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = input.clone();
        // Nothing before the first weights needs a gradient: the input is data.
        let mut below_weights = false;
        for layer in &self.layers {
            x = match layer {
                Layer::Normalise => ((x - f64::from(digits::MEAN))? / f64::from(digits::STD))?,
                Layer::Conv { weight, bias } => {
                    let channels = bias.dim(0)?;
                    let op = ValidConv2d {
                        input_grad: below_weights,
                    };
                    x.contiguous()?
                        .apply_op2(&weight.contiguous()?, op)?
                        .broadcast_add(&bias.reshape((1, channels, 1, 1))?)?
                }
                Layer::Relu => x.relu()?,
                Layer::MaxPool2 => x.max_pool2d(2)?,
                Layer::Flatten => x.flatten_from(1)?,
                Layer::Dense { weight, bias } => x.matmul(&weight.t()?)?.broadcast_add(bias)?,
            };
            below_weights |= matches!(layer, Layer::Conv { .. } | Layer::Dense { .. });
        }
        Ok(x)
    }

    /// Class probabilities `[N, 10]`: what the exported model answers.
    pub fn probabilities(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::softmax(&self.forward(input)?.detach(), 1)
    }
}

/// candle's 2-D convolution (stride 1, no padding) with a faster backward pass on the CPU:
/// candle computes the input's gradient with a direct transposed convolution, which made it
/// most of a training step. Here that gradient is a "full" convolution of the padded output
/// gradient with the flipped kernel, on candle's fast im2col path, and it is skipped entirely for
/// the first layer, whose input is data.
struct ValidConv2d {
    input_grad: bool,
}

impl ValidConv2d {
    fn tensor(storage: &CpuStorage, layout: &Layout) -> candle_core::Result<Tensor> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("convolution of a strided tensor".into()))?;
        Tensor::from_slice(
            &storage.as_slice::<f32>()?[start..end],
            layout.shape(),
            &Device::Cpu,
        )
    }
}

impl CustomOp2 for ValidConv2d {
    fn name(&self) -> &'static str {
        "valid-conv2d"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        kernel: &CpuStorage,
        kernel_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let output = Self::tensor(input, input_layout)?.conv2d(
            &Self::tensor(kernel, kernel_layout)?,
            0,
            1,
            1,
            1,
        )?;
        let shape = output.shape().clone();
        Ok((CpuStorage::F32(output.flatten_all()?.to_vec1()?), shape))
    }

    fn bwd(
        &self,
        input: &Tensor,
        kernel: &Tensor,
        _output: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (input, kernel) = (input.detach(), kernel.detach());
        // dL/dK[o, c] = input[·, c] ⋆ grad[·, o], batch as the channel dimension.
        let kernel_grad = input
            .transpose(0, 1)?
            .conv2d(&grad.transpose(0, 1)?, 0, 1, 1, 1)?
            .transpose(0, 1)?;
        let input_grad = if self.input_grad {
            let size = kernel.dim(2)?;
            let padded = grad.pad_with_zeros(2, size - 1, size - 1)?.pad_with_zeros(
                3,
                size - 1,
                size - 1,
            )?;
            let flipped = kernel
                .transpose(0, 1)?
                .contiguous()?
                .flip(&[2, 3])?
                .contiguous()?;
            Some(padded.conv2d(&flipped, 0, 1, 1, 1)?)
        } else {
            None
        };
        Ok((input_grad, Some(kernel_grad)))
    }
}

/// Kaiming-uniform: `U(−b, b)` with `b = √(3·gain / fan_in)`.
fn kaiming(rng: &mut Rng, fan_in: usize, gain: f32, count: usize) -> Vec<f32> {
    let bound = (3.0 * gain / fan_in as f32).sqrt();
    (0..count).map(|_| rng.uniform(-bound, bound)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn the_fast_convolution_matches_candles_forward_and_gradients() {
        let device = Device::Cpu;
        let mut rng = Rng::new(3);
        let mut random = |count: usize| {
            (0..count)
                .map(|_| rng.uniform(-1.0, 1.0))
                .collect::<Vec<f32>>()
        };
        let input = Var::from_vec(random(3 * 4 * 12 * 12), (3, 4, 12, 12), &device).unwrap();
        let kernel = Var::from_vec(random(6 * 4 * 5 * 5), (6, 4, 5, 5), &device).unwrap();

        let ours = input
            .as_tensor()
            .apply_op2(kernel.as_tensor(), ValidConv2d { input_grad: true })
            .unwrap();
        let theirs = input
            .as_tensor()
            .conv2d(kernel.as_tensor(), 0, 1, 1, 1)
            .unwrap();
        assert_eq!(ours.dims(), &[3, 6, 8, 8]);
        assert!(max_difference(&ours, &theirs) < 1e-5);

        // A loss that weighs every output differently, so every gradient entry is exercised.
        let weights = Tensor::from_vec(random(3 * 6 * 8 * 8), (3, 6, 8, 8), &device).unwrap();
        let ours = ours
            .mul(&weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let theirs = theirs
            .mul(&weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for var in [&input, &kernel] {
            let (a, b) = (
                ours.get(var.as_tensor()).unwrap(),
                theirs.get(var.as_tensor()).unwrap(),
            );
            assert_eq!(a.dims(), b.dims());
            assert!(max_difference(a, b) < 1e-4, "{}", max_difference(a, b));
        }

        // The first layer's input is data: no gradient computed for it.
        let first = input
            .as_tensor()
            .apply_op2(kernel.as_tensor(), ValidConv2d { input_grad: false })
            .unwrap();
        let grads = first.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(input.as_tensor()).is_none());
        assert!(grads.get(kernel.as_tensor()).is_some());
    }

    #[test]
    fn both_networks_map_digits_to_ten_logits() {
        for arch in Arch::ALL {
            let network = Network::new(arch, 1).unwrap();
            let input = Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
            assert_eq!(network.forward(&input).unwrap().dims(), &[2, 10]);
            assert_eq!(Arch::from_model_name(arch.model_name()), Some(arch));
        }
        assert_eq!(
            Network::new(Arch::Mlp, 1).unwrap().parameter_count(),
            784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
        );
    }
}
