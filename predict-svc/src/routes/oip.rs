//! The Open Inference Protocol (KServe v2 REST) for the served models.

use crate::engine::{CLASSES, INPUT_NAME, OUTPUT_NAME, PIXELS};
use crate::error::PredictError;
use crate::registry::INITIAL_MODELS;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use common::jwt::Authenticated;
use serde::Deserialize;
use serde_json::{Value, json};

/// Most samples one infer request may carry.
pub const MAX_BATCH: usize = 256;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2/health/live", web::get().to(live))
        .route("/v2/health/ready", web::get().to(ready))
        .service(
            web::scope("/v2/models/{name}")
                // N × 784 numbers as JSON text.
                .app_data(common::http::json_config(16 * 1024 * 1024))
                .route("", web::get().to(metadata))
                .route("/ready", web::get().to(model_ready))
                .route("/infer", web::post().to(infer)),
        );
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"live": true}))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let ready = INITIAL_MODELS.iter().all(|m| state.models.get(m).is_some());
    if ready {
        HttpResponse::Ok().json(json!({"ready": true}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({
            "ready": false, "error": "not_ready", "msg": "The models are not loaded yet."
        }))
    }
}

fn model(
    state: &AppState,
    name: &str,
) -> Result<std::sync::Arc<crate::engine::LoadedModel>, PredictError> {
    state
        .models
        .get(name)
        .ok_or_else(|| PredictError::UnknownModel(name.to_owned()))
}

async fn metadata(
    state: web::Data<AppState>,
    _caller: Authenticated,
    name: web::Path<String>,
) -> Result<HttpResponse, PredictError> {
    let m = model(&state, &name)?;
    Ok(HttpResponse::Ok().json(json!({
        "name": m.name,
        "versions": [m.version.to_string()],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, 1, 28, 28]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, 10]}],
    })))
}

async fn model_ready(
    state: web::Data<AppState>,
    _caller: Authenticated,
    name: web::Path<String>,
) -> Result<HttpResponse, PredictError> {
    model(&state, &name)?;
    Ok(HttpResponse::Ok().json(json!({"name": name.as_str(), "ready": true})))
}

#[derive(Deserialize)]
pub struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<InferInput>,
}

#[derive(Deserialize)]
pub struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
}

/// Flattens (possibly nested, row-major) JSON numbers, refusing anything else.
fn flatten(value: &Value, out: &mut Vec<f32>, limit: usize) -> Result<(), PredictError> {
    match value {
        Value::Array(items) => {
            for item in items {
                flatten(item, out, limit)?;
            }
            Ok(())
        }
        Value::Number(n) => {
            if out.len() >= limit {
                return Err(PredictError::InvalidTensor(
                    "`data` holds more values than `shape` says".into(),
                ));
            }
            let v = n.as_f64().unwrap_or(f64::NAN) as f32;
            if !v.is_finite() {
                return Err(PredictError::InvalidTensor(
                    "`data` holds a value out of FP32 range".into(),
                ));
            }
            out.push(v);
            Ok(())
        }
        _ => Err(PredictError::InvalidTensor(
            "`data` must hold numbers only".into(),
        )),
    }
}

/// Checks an input tensor and returns its batch size and values.
fn read_input(input: &InferInput) -> Result<(usize, Vec<f32>), PredictError> {
    if input.name != INPUT_NAME {
        return Err(PredictError::InvalidTensor(format!(
            "unknown input `{}`; the model's input is `{INPUT_NAME}`",
            input.name
        )));
    }
    if input.datatype != "FP32" {
        return Err(PredictError::InvalidTensor(format!(
            "datatype `{}` is not accepted; use FP32",
            input.datatype
        )));
    }
    let n = match input.shape.as_slice() {
        [n, 1, 28, 28] | [n, 784] => *n,
        other => {
            return Err(PredictError::InvalidTensor(format!(
                "shape {other:?} is not accepted; use [N,1,28,28] or [N,784]"
            )));
        }
    };
    if n < 1 || n as usize > MAX_BATCH {
        return Err(PredictError::InvalidTensor(format!(
            "the batch size must be 1 to {MAX_BATCH}"
        )));
    }
    let n = n as usize;
    let mut values = Vec::with_capacity(n * PIXELS);
    flatten(&input.data, &mut values, n * PIXELS)?;
    if values.len() != n * PIXELS {
        return Err(PredictError::InvalidTensor(format!(
            "`data` holds {} values; shape {:?} needs {}",
            values.len(),
            input.shape,
            n * PIXELS
        )));
    }
    Ok((n, values))
}

async fn infer(
    state: web::Data<AppState>,
    _caller: Authenticated,
    name: web::Path<String>,
    body: web::Json<InferRequest>,
) -> Result<HttpResponse, PredictError> {
    let m = model(&state, &name)?;
    let request = body.into_inner();
    let [input] = request.inputs.as_slice() else {
        return Err(PredictError::InvalidTensor(
            "exactly one input tensor, `input`, is expected".into(),
        ));
    };
    let (n, values) = read_input(input)?;
    let probabilities = m
        .infer(n, values)
        .await
        .map_err(|e| PredictError::Internal(e.to_string()))?;
    let mut answer = json!({
        "model_name": m.name,
        "model_version": m.version.to_string(),
        "outputs": [{
            "name": OUTPUT_NAME,
            "datatype": "FP32",
            "shape": [n, CLASSES],
            "data": probabilities,
        }],
    });
    if let Some(id) = request.id {
        answer["id"] = Value::String(id);
    }
    Ok(HttpResponse::Ok().json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(shape: Vec<i64>, data: Value) -> InferInput {
        InferInput {
            name: "input".into(),
            shape,
            datatype: "FP32".into(),
            data,
        }
    }

    #[test]
    fn accepts_both_shapes_flat_or_nested() {
        let flat = input(vec![2, 784], json!(vec![0.5; 2 * 784]));
        assert_eq!(read_input(&flat).unwrap().0, 2);
        let nested = input(vec![1, 1, 28, 28], json!([[vec![vec![0.0; 28]; 28]]]));
        assert_eq!(read_input(&nested).unwrap().1.len(), 784);
    }

    #[test]
    fn refuses_wrong_tensors() {
        assert!(read_input(&input(vec![1, 783], json!(vec![0.0; 783]))).is_err());
        assert!(read_input(&input(vec![2, 784], json!(vec![0.0; 784]))).is_err());
        assert!(read_input(&input(vec![0, 784], json!([]))).is_err());
        assert!(read_input(&input(vec![1, 784], json!(vec!["x"; 784]))).is_err());
        let mut wrong_type = input(vec![1, 784], json!(vec![0.0; 784]));
        wrong_type.datatype = "INT8".into();
        assert!(read_input(&wrong_type).is_err());
    }
}
