//! The weights of an exported model read back into a [`Network`], so a retrain job can fine-tune
//! the version predict-svc serves and score it with the same code as its candidate.
//!
//! Only models of our own exporter are accepted: the architecture comes from the graph's name and
//! every initializer the plan expects (`conv1.weight`, `dense2.bias`, …) must be there with the
//! planned shape.

use std::collections::HashMap;

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{Message, ModelProto, TensorProto};

use super::models::{Arch, Network};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not an ONNX model: {0}")]
    Protobuf(#[from] protobuf::Error),
    #[error("the model's graph is named {0:?}, not one of ours (mnist-mlp, mnist-cnn)")]
    UnknownArch(String),
    #[error("the model is {found}, the job is for {expected}")]
    WrongArch { expected: Arch, found: Arch },
    #[error("initializer {0} is missing")]
    Missing(String),
    #[error("initializer {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<i64>,
    },
    #[error("initializer {0} is not float32 data")]
    NotFloat(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Reads an ONNX model of `expected` written by [`super::export_onnx`].
pub fn import_onnx(bytes: &[u8], expected: Arch) -> Result<Network, ImportError> {
    let model = ModelProto::parse_from_bytes(bytes)?;
    let graph = model.graph.as_ref().cloned().unwrap_or_default();
    let found =
        Arch::from_model_name(&graph.name).ok_or_else(|| ImportError::UnknownArch(graph.name))?;
    if found != expected {
        return Err(ImportError::WrongArch { expected, found });
    }
    let by_name: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|tensor| (tensor.name.as_str(), tensor))
        .collect();
    let network = Network::new(expected, 0)?;
    for (name, var) in network.vars() {
        let tensor = by_name
            .get(name.as_str())
            .ok_or_else(|| ImportError::Missing(name.clone()))?;
        let expected_dims = var.dims().to_vec();
        if tensor.dims.len() != expected_dims.len()
            || tensor
                .dims
                .iter()
                .zip(&expected_dims)
                .any(|(&found, &want)| found != want as i64)
        {
            return Err(ImportError::Shape {
                name: name.clone(),
                expected: expected_dims,
                found: tensor.dims.clone(),
            });
        }
        let values = floats(tensor).ok_or_else(|| ImportError::NotFloat(name.clone()))?;
        if values.len() != var.elem_count() {
            return Err(ImportError::NotFloat(name.clone()));
        }
        var.set(&candle_core::Tensor::from_vec(
            values,
            expected_dims,
            &candle_core::Device::Cpu,
        )?)?;
    }
    Ok(network)
}

fn floats(tensor: &TensorProto) -> Option<Vec<f32>> {
    if tensor.data_type != DataType::FLOAT as i32 {
        return None;
    }
    if !tensor.raw_data.is_empty() {
        if !tensor.raw_data.len().is_multiple_of(4) {
            return None;
        }
        return Some(
            tensor
                .raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    Some(tensor.float_data.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use candle_core::{DType, Device, Tensor};

    #[test]
    fn an_exported_network_comes_back_with_the_same_answers() {
        for arch in Arch::ALL {
            let network = Network::new(arch, 7).unwrap();
            let bytes = crate::train::export_onnx(&network, &vec![]).unwrap();
            let back = import_onnx(&bytes, arch).unwrap();
            let input = Tensor::rand(0f32, 1f32, (3, 1, 28, 28), &Device::Cpu).unwrap();
            let (a, b) = (
                network.forward(&input).unwrap(),
                back.forward(&input).unwrap(),
            );
            let diff = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(diff, 0.0, "{arch}");
            assert_eq!(back.vars().len(), network.vars().len());
            let _ = DType::F32;
        }
    }

    #[test]
    fn another_architecture_or_garbage_is_refused() {
        let bytes =
            crate::train::export_onnx(&Network::new(Arch::Mlp, 1).unwrap(), &vec![]).unwrap();
        assert!(matches!(
            import_onnx(&bytes, Arch::Cnn),
            Err(ImportError::WrongArch { .. })
        ));
        assert!(import_onnx(b"not a model", Arch::Mlp).is_err());
    }
}
