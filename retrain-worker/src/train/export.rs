//! A [`Network`] as an ONNX model (IR 8, opset 17) for ONNX Runtime in predict-svc.
//!
//! Contract: input `input` float32 `[N, 1, 28, 28]`, pixels in `[0, 1]`, `N` dynamic; output
//! `probabilities` float32 `[N, 10]`. Normalisation and softmax are inside the graph.

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{self, Value};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    attribute_proto::AttributeType,
};

use super::models::{Layer, Network};

pub const INPUT: &str = "input";
pub const OUTPUT: &str = "probabilities";
/// Name of the dynamic batch dimension.
pub const BATCH_DIM: &str = "N";
const IR_VERSION: i64 = 8;
const OPSET: i64 = 17;

/// Key–value pairs stored in the model's `metadata_props` (name, seed, accuracy, …).
pub type ExportMetadata = Vec<(String, String)>;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the weights: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("serialising the ONNX model: {0}")]
    Protobuf(#[from] protobuf::Error),
}

/// The serialised ONNX model of `network`.
pub fn export_onnx(network: &Network, metadata: &ExportMetadata) -> Result<Vec<u8>, ExportError> {
    let name = network.arch.model_name();
    let graph = graph_proto(name, layers_graph(network)?);
    Ok(model_proto(name, graph, metadata).write_to_bytes()?)
}

/// The network's layers as nodes and initializers, then the softmax.
fn layers_graph(network: &Network) -> Result<GraphBuilder, ExportError> {
    let mut graph = GraphBuilder::default();
    let mut x = INPUT.to_string();
    let (mut convs, mut denses) = (0, 0);
    for (index, layer) in network.layers.iter().enumerate() {
        let out = format!("{}_{index}", layer_kind(layer));
        match layer {
            Layer::Normalise => {
                let mean = graph.initializer("mean", &[1], vec![digits::MEAN]);
                let std = graph.initializer("std", &[1], vec![digits::STD]);
                let centred = format!("centred_{index}");
                graph.node("Sub", &[&x, &mean], &centred, vec![]);
                graph.node("Div", &[&centred, &std], &out, vec![]);
            }
            Layer::Conv { weight, bias } => {
                convs += 1;
                let dims = weight.dims().to_vec();
                let w = graph.tensor(&format!("conv{convs}.weight"), weight)?;
                let b = graph.tensor(&format!("conv{convs}.bias"), bias)?;
                let kernel = [dims[2] as i64, dims[3] as i64];
                graph.node(
                    "Conv",
                    &[&x, &w, &b],
                    &out,
                    vec![
                        ints("kernel_shape", &kernel),
                        ints("strides", &[1, 1]),
                        ints("pads", &[0, 0, 0, 0]),
                        ints("dilations", &[1, 1]),
                    ],
                );
            }
            Layer::Relu => graph.node("Relu", &[&x], &out, vec![]),
            Layer::MaxPool2 => graph.node(
                "MaxPool",
                &[&x],
                &out,
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ),
            Layer::Flatten => graph.node("Flatten", &[&x], &out, vec![int("axis", 1)]),
            Layer::Dense { weight, bias } => {
                denses += 1;
                let w = graph.tensor(&format!("dense{denses}.weight"), weight)?;
                let b = graph.tensor(&format!("dense{denses}.bias"), bias)?;
                graph.node(
                    "Gemm",
                    &[&x, &w, &b],
                    &out,
                    vec![
                        float("alpha", 1.0),
                        float("beta", 1.0),
                        int("transA", 0),
                        int("transB", 1),
                    ],
                );
            }
        }
        x = out;
    }
    graph.node("Softmax", &[&x], OUTPUT, vec![int("axis", 1)]);
    Ok(graph)
}

/// The graph with its dynamic-batch input and output.
fn graph_proto(name: &str, graph: GraphBuilder) -> GraphProto {
    let mut graph_proto = GraphProto::new();
    graph_proto.name = name.to_string();
    graph_proto.node = graph.nodes;
    graph_proto.initializer = graph.initializers;
    graph_proto.input = vec![value_info(
        INPUT,
        &[
            dimension::Value::DimParam(BATCH_DIM.into()),
            dimension::Value::DimValue(1),
            dimension::Value::DimValue(digits::SIDE as i64),
            dimension::Value::DimValue(digits::SIDE as i64),
        ],
    )];
    graph_proto.output = vec![value_info(
        OUTPUT,
        &[
            dimension::Value::DimParam(BATCH_DIM.into()),
            dimension::Value::DimValue(digits::CLASSES as i64),
        ],
    )];
    graph_proto
}

/// The model around the graph: IR and opset versions, producer, metadata.
fn model_proto(name: &str, graph: GraphProto, metadata: &ExportMetadata) -> ModelProto {
    let mut model = ModelProto::new();
    model.ir_version = IR_VERSION;
    let mut opset = OperatorSetIdProto::new();
    opset.domain = String::new();
    opset.version = OPSET;
    model.opset_import = vec![opset];
    model.producer_name = "predictloop retrain-worker".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.domain = "predictloop".into();
    model.doc_string = format!(
        "{name}: MNIST digit classifier. Input `{INPUT}` float32 [N,1,28,28], pixels in [0,1] \
         (normalised inside the model); output `{OUTPUT}` float32 [N,10]."
    );
    model.graph = Some(graph).into();
    model.metadata_props = metadata
        .iter()
        .map(|(key, value)| {
            let mut entry = StringStringEntryProto::new();
            entry.key = key.clone();
            entry.value = value.clone();
            entry
        })
        .collect();
    model
}

fn layer_kind(layer: &Layer) -> &'static str {
    match layer {
        Layer::Normalise => "normalised",
        Layer::Conv { .. } => "conv",
        Layer::Relu => "relu",
        Layer::MaxPool2 => "pool",
        Layer::Flatten => "flat",
        Layer::Dense { .. } => "dense",
    }
}

#[derive(Default)]
struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl GraphBuilder {
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) {
        let mut node = NodeProto::new();
        node.op_type = op.into();
        node.name = format!("{op}_{}", self.nodes.len());
        node.input = inputs.iter().map(|input| input.to_string()).collect();
        node.output = vec![output.into()];
        node.attribute = attributes;
        self.nodes.push(node);
    }

    /// Adds a float32 initializer; returns its name.
    fn initializer(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> String {
        let mut tensor = TensorProto::new();
        tensor.name = name.into();
        tensor.data_type = DataType::FLOAT as i32;
        tensor.dims = dims.iter().map(|&dim| dim as i64).collect();
        tensor.raw_data = values
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect();
        self.initializers.push(tensor);
        name.into()
    }

    fn tensor(&mut self, name: &str, tensor: &candle_core::Tensor) -> candle_core::Result<String> {
        let values = tensor.flatten_all()?.to_vec1::<f32>()?;
        Ok(self.initializer(name, tensor.dims(), values))
    }
}

fn value_info(name: &str, dims: &[dimension::Value]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    shape.dim = dims
        .iter()
        .map(|value| {
            let mut dim = Dimension::new();
            dim.value = Some(value.clone());
            dim
        })
        .collect();
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = DataType::FLOAT as i32;
    tensor.shape = Some(shape).into();
    let mut type_ = TypeProto::new();
    type_.value = Some(Value::TensorType(tensor));
    let mut info = ValueInfoProto::new();
    info.name = name.into();
    info.type_ = Some(type_).into();
    info
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    let mut attribute = AttributeProto::new();
    attribute.name = name.into();
    attribute.type_ = kind.into();
    attribute
}

fn int(name: &str, value: i64) -> AttributeProto {
    let mut attribute = attribute(name, AttributeType::INT);
    attribute.i = value;
    attribute
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    let mut attribute = attribute(name, AttributeType::INTS);
    attribute.ints = values.to_vec();
    attribute
}

fn float(name: &str, value: f32) -> AttributeProto {
    let mut attribute = attribute(name, AttributeType::FLOAT);
    attribute.f = value;
    attribute
}
