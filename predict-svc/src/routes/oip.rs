//! The Open Inference Protocol (KServe v2 REST) for the served models.

use crate::engine::{CLASSES, INPUT_NAME, OUTPUT_NAME, PIXELS};
use crate::error::PredictError;
use crate::registry::INITIAL_MODELS;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::Context;
use common::ErrorCode;
use common::jwt::Authenticated;
use futures_util::StreamExt;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};
use std::fmt;

/// The longest JSON text of one FP32 value with its separator that a client plausibly sends:
/// Python's `json` writes a float32 widened to float64 with up to 17 significant digits
/// (`0.30000001192092896, ` is 21 bytes; with a sign and an exponent, 24).
pub const BYTES_PER_VALUE: usize = 24;
/// Room for everything in the body but the numbers (`id`, names, shape, brackets).
pub const BODY_OVERHEAD: usize = 64 * 1024;

/// The largest infer body accepted: `max_batch` images of 784 values at [`BYTES_PER_VALUE`],
/// plus [`BODY_OVERHEAD`]; 4,882,432 bytes (4.66 MiB) for the default batch of 256.
pub fn body_limit(max_batch: usize) -> usize {
    max_batch * PIXELS * BYTES_PER_VALUE + BODY_OVERHEAD
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2/health/live", web::get().to(live))
        .route("/v2/health/ready", web::get().to(ready))
        .service(
            web::scope("/v2/models/{name}")
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
        let code = ErrorCode::NotReady;
        HttpResponse::build(code.status()).json(json!({
            "ready": false, "error": code, "msg": "The models are not loaded yet."
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

/// An infer request, read by [`parse_request`]: the tensor's values go straight into a
/// `Vec<f32>` that never holds more than the shape (or, before the shape is read, the largest
/// batch) allows.
#[derive(Debug)]
pub struct InferRequest {
    id: Option<String>,
    input: InferInput,
}

#[derive(Debug)]
pub struct InferInput {
    /// The batch size, from the shape.
    n: usize,
    values: Vec<f32>,
}

/// Reads an infer body; a wrong tensor is refused as soon as it shows: a shape over the largest
/// batch before any value is read, data longer than the shape at its first value too many.
pub fn parse_request(body: &[u8], max_batch: usize) -> Result<InferRequest, PredictError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request = RequestSeed { max_batch }
        .deserialize(&mut deserializer)
        .and_then(|request| deserializer.end().map(|()| request))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                PredictError::InvalidTensor(sentence(&e.to_string()))
            }
            _ => PredictError::InvalidJson(sentence(&e.to_string())),
        })?;
    Ok(request)
}

/// serde_json's message (`… at line 1 column 9`) as a sentence.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => "The body is not a valid infer request.".into(),
    }
}

struct RequestSeed {
    max_batch: usize,
}

impl<'de> DeserializeSeed<'de> for RequestSeed {
    type Value = InferRequest;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<InferRequest, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed {
    type Value = InferRequest;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an infer request object with `inputs`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InferRequest, A::Error> {
        let (mut id, mut input) = (None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "id" => id = map.next_value::<Option<String>>()?,
                "inputs" => {
                    input = Some(map.next_value_seed(InputsSeed {
                        max_batch: self.max_batch,
                    })?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let input = input.ok_or_else(|| de::Error::missing_field("inputs"))?;
        Ok(InferRequest { id, input })
    }
}

/// `inputs`: exactly one tensor.
struct InputsSeed {
    max_batch: usize,
}

impl<'de> DeserializeSeed<'de> for InputsSeed {
    type Value = InferInput;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<InferInput, D::Error> {
        d.deserialize_seq(self)
    }
}

const ONE_INPUT: &str = "exactly one input tensor, `input`, is expected";

impl<'de> Visitor<'de> for InputsSeed {
    type Value = InferInput;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of one input tensor")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InferInput, A::Error> {
        let input = seq
            .next_element_seed(InputSeed {
                max_batch: self.max_batch,
            })?
            .ok_or_else(|| de::Error::custom(ONE_INPUT))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(ONE_INPUT));
        }
        Ok(input)
    }
}

struct InputSeed {
    max_batch: usize,
}

impl<'de> DeserializeSeed<'de> for InputSeed {
    type Value = InferInput;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<InferInput, D::Error> {
        d.deserialize_map(self)
    }
}

/// The batch size a shape describes, or why it is refused.
fn batch_of(shape: &[i64], max_batch: usize) -> Result<usize, String> {
    let n = match shape {
        [n, 1, 28, 28] | [n, 784] => *n,
        other => {
            return Err(format!(
                "shape {other:?} is not accepted; use [N,1,28,28] or [N,784]"
            ));
        }
    };
    match usize::try_from(n) {
        Ok(n) if (1..=max_batch).contains(&n) => Ok(n),
        _ => Err(format!(
            "the batch size must be 1 to {max_batch}; shape {shape:?} has {n}"
        )),
    }
}

impl<'de> Visitor<'de> for InputSeed {
    type Value = InferInput;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an input tensor object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InferInput, A::Error> {
        let (mut name, mut datatype, mut shape, mut n) = (None, None, None, None);
        let mut values: Option<Vec<f32>> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "name" => {
                    let value: String = map.next_value()?;
                    if value != INPUT_NAME {
                        return Err(de::Error::custom(format!(
                            "unknown input `{value}`; the model's input is `{INPUT_NAME}`"
                        )));
                    }
                    name = Some(value);
                }
                "datatype" => {
                    let value: String = map.next_value()?;
                    if value != "FP32" {
                        return Err(de::Error::custom(format!(
                            "datatype `{value}` is not accepted; use FP32"
                        )));
                    }
                    datatype = Some(value);
                }
                "shape" => {
                    let value: Vec<i64> = map.next_value_seed(ShapeSeed)?;
                    let batch = batch_of(&value, self.max_batch).map_err(de::Error::custom)?;
                    if let Some(values) = &values
                        && values.len() > batch * PIXELS
                    {
                        return Err(de::Error::custom(format!(
                            "`data` holds more values than shape {value:?} says"
                        )));
                    }
                    n = Some(batch);
                    shape = Some(value);
                }
                "data" => {
                    // Stops at the shape's size, or the largest batch's when the shape comes after.
                    let limit = n.unwrap_or(self.max_batch) * PIXELS;
                    let mut out = Vec::new();
                    map.next_value_seed(Flatten {
                        out: &mut out,
                        limit,
                        depth: 0,
                        shape: shape.as_deref(),
                    })?;
                    values = Some(out);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        name.ok_or_else(|| de::Error::missing_field("name"))?;
        datatype.ok_or_else(|| de::Error::missing_field("datatype"))?;
        let shape = shape.ok_or_else(|| de::Error::missing_field("shape"))?;
        let values = values.ok_or_else(|| de::Error::missing_field("data"))?;
        let n = n.unwrap_or_default();
        if values.len() != n * PIXELS {
            return Err(de::Error::custom(format!(
                "`data` holds {} values; shape {shape:?} needs {}",
                values.len(),
                n * PIXELS
            )));
        }
        Ok(InferInput { n, values })
    }
}

/// A shape: at most 8 dimensions.
struct ShapeSeed;

impl<'de> DeserializeSeed<'de> for ShapeSeed {
    type Value = Vec<i64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<i64>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ShapeSeed {
    type Value = Vec<i64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a shape: a list of at most 8 integers")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<i64>, A::Error> {
        let mut shape = Vec::new();
        while let Some(dim) = seq.next_element::<i64>()? {
            if shape.len() == 8 {
                return Err(de::Error::custom("a shape has at most 8 dimensions"));
            }
            shape.push(dim);
        }
        Ok(shape)
    }
}

/// Row-major values, flat or nested (at most 4 levels, as `[N,1,28,28]`), pushed into `out`
/// until `limit`; anything but a finite FP32 number is refused.
struct Flatten<'a> {
    out: &'a mut Vec<f32>,
    limit: usize,
    depth: u8,
    shape: Option<&'a [i64]>,
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Flatten<'_> {
    fn push<E: de::Error>(self, value: f64) -> Result<(), E> {
        if self.out.len() >= self.limit {
            return Err(E::custom(match self.shape {
                Some(shape) => format!("`data` holds more values than shape {shape:?} says"),
                None => format!(
                    "`data` holds more than {} values, the most a batch may have",
                    self.limit
                ),
            }));
        }
        let value = value as f32;
        if !value.is_finite() {
            return Err(E::custom("`data` holds a value out of FP32 range"));
        }
        if self.out.capacity() == 0 {
            // One image's worth at first: a body that lies about its shape costs no more.
            self.out.reserve(PIXELS.min(self.limit));
        }
        self.out.push(value);
        Ok(())
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`data`: numbers, in a list or nested lists")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.push(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.push(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.push(v as f64)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= 4 {
            return Err(de::Error::custom(
                "`data` is nested deeper than the shape's 4 dimensions",
            ));
        }
        while seq
            .next_element_seed(Flatten {
                out: &mut *self.out,
                limit: self.limit,
                depth: self.depth + 1,
                shape: self.shape,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// The body, refused past `limit` bytes (declared or sent).
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, PredictError> {
    let too_large = || {
        PredictError::BodyTooLarge(format!(
            "The body is larger than the {limit} bytes this route accepts \
             (its largest batch at {BYTES_PER_VALUE} bytes a value)."
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| PredictError::Multipart(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn is_json(req: &HttpRequest) -> bool {
    use actix_web::HttpMessage;
    req.mime_type().ok().flatten().is_some_and(|m| {
        m.type_() == "application"
            && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
    })
}

async fn infer(
    state: web::Data<AppState>,
    _caller: Authenticated,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, PredictError> {
    let m = model(&state, &name)?;
    if !is_json(&req) {
        return Err(PredictError::NotJson);
    }
    let max_batch = state.oip_max_batch;
    let body = read_body(&req, payload, body_limit(max_batch)).await?;
    let request = state
        .preprocessing
        .run(move || parse_request(&body, max_batch))
        .await??;
    let InferInput { n, values, .. } = request.input;
    let probabilities = m.infer(n, values).await.context("inference failed")?;
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
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn body(shape: Value, data: Value) -> Vec<u8> {
        json!({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": data}]})
            .to_string()
            .into_bytes()
    }

    fn refusal(body: &[u8]) -> String {
        parse_request(body, 256).unwrap_err().to_string()
    }

    #[test]
    fn accepts_both_shapes_flat_or_nested_in_any_field_order() {
        let flat = parse_request(&body(json!([2, 784]), json!(vec![0.5; 2 * 784])), 256).unwrap();
        assert_eq!((flat.input.n, flat.input.values.len()), (2, 1568));
        let nested = body(json!([1, 1, 28, 28]), json!([[vec![vec![0.0; 28]; 28]]]));
        assert_eq!(parse_request(&nested, 256).unwrap().input.values.len(), 784);
        let data_first = format!(
            r#"{{"id":"a","inputs":[{{"data":{},"datatype":"FP32","shape":[1,784],"name":"input"}}]}}"#,
            json!(vec![1; 784])
        );
        let request = parse_request(data_first.as_bytes(), 256).unwrap();
        assert_eq!(request.id.as_deref(), Some("a"));
        assert_eq!(request.input.n, 1);
        assert!(request.input.values.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn data_longer_than_the_shape_stops_at_the_first_value_too_many() {
        let err = refusal(&body(json!([1, 784]), json!(vec![0.0; 785])));
        assert!(
            err.contains("more values than shape [1, 784] says"),
            "{err}"
        );
        // Data before its shape stops at the largest batch, then at the shape.
        let data_first = |values: usize, batch: usize| {
            format!(
                r#"{{"inputs":[{{"name":"input","datatype":"FP32","data":{},"shape":[1,784]}}]}}"#,
                json!(vec![0; values])
            )
            .replace("[1,784]", &format!("[{batch},784]"))
        };
        let err = parse_request(data_first(2 * 784 + 1, 1).as_bytes(), 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 1568 values"), "{err}");
        let err = parse_request(data_first(2 * 784, 1).as_bytes(), 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more values than shape [1, 784]"), "{err}");
    }

    #[test]
    fn refuses_wrong_tensors_with_a_sentence() {
        let cases = [
            (
                body(json!([1, 783]), json!(vec![0.0; 783])),
                "is not accepted",
            ),
            (body(json!([2, 784]), json!(vec![0.0; 784])), "needs 1568"),
            (
                body(json!([0, 784]), json!([])),
                "batch size must be 1 to 256",
            ),
            (
                body(json!([257, 784]), json!([])),
                "batch size must be 1 to 256",
            ),
            (body(json!([-1, 784]), json!([])), "batch size"),
            (body(json!([1, 784]), json!(vec!["x"; 784])), "numbers"),
            (body(json!([1, 784]), json!(vec![1e39; 784])), "FP32 range"),
            (body(json!([1, 784]), json!([[[[[0.0]]]]])), "nested deeper"),
            (body(json!(vec![1; 9]), json!([])), "at most 8"),
        ];
        for (bytes, expected) in cases {
            let err = parse_request(&bytes, 256).unwrap_err();
            assert!(matches!(err, PredictError::InvalidTensor(_)), "{err:?}");
            assert!(err.to_string().contains(expected), "{err} ≠ {expected}");
        }
        let wrong_type = String::from_utf8(body(json!([1, 784]), json!(vec![0.0; 784])))
            .unwrap()
            .replace("FP32", "INT8");
        assert!(refusal(wrong_type.as_bytes()).contains("use FP32"));
        let one =
            json!({"name": "input", "shape": [1, 784], "datatype": "FP32", "data": vec![0; 784]});
        let two = json!({"inputs": [one, one]}).to_string();
        let err = refusal(two.as_bytes());
        assert!(err.contains("xactly one input"), "{err}");
        assert!(refusal(br#"{"inputs":[]}"#).contains("xactly one input"));
        assert!(matches!(
            parse_request(b"{\"inputs\": [", 256),
            Err(PredictError::InvalidJson(_))
        ));
    }

    #[test]
    fn the_body_limit_fits_the_largest_batch_written_as_python_does() {
        let python_float = "0.30000001192092896, ";
        assert!(python_float.len() <= BYTES_PER_VALUE);
        assert_eq!(body_limit(256), 4_882_432);
    }
}
