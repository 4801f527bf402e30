//! The body of `POST /feedback`, read from any JSON so that every malformed field gets its own
//! 4xx answer (the seed's 400 for a missing `prediction` or `correct`).

use crate::error::FeedbackError;
use serde_json::{Map, Value};

pub const MAX_COMMENT_CHARS: usize = 2_000;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
const MAX_PREDICTION_ID_LEN: usize = 128;

/// A valid feedback submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub prediction: i32,
    pub correct: bool,
    /// The true digit as the user gave it.
    pub label: Option<i32>,
    pub comment: String,
    pub prediction_id: Option<String>,
}

impl Submission {
    pub fn parse(body: &Value) -> Result<Self, FeedbackError> {
        let Value::Object(fields) = body else {
            return Err(FeedbackError::InvalidBody(
                "The body must be a JSON object.".into(),
            ));
        };
        let present = |name| fields.get(name).is_some_and(|v| !v.is_null());
        if !present("prediction") || !present("correct") {
            return Err(FeedbackError::MissingFields);
        }
        let prediction = digit(fields, "prediction")?.unwrap_or_default();
        let correct = match fields.get("correct") {
            Some(Value::Bool(b)) => *b,
            _ => return Err(invalid("`correct` must be true or false.")),
        };
        let label = digit(fields, "label")?;
        let comment = match fields.get("comment") {
            None | Some(Value::Null) => String::new(),
            // Refused here rather than by the database: PostgreSQL cannot store a NUL and
            // SQLite (the all-in-one mode) can, and both must answer alike.
            Some(Value::String(s)) if s.contains('\0') => {
                return Err(invalid("`comment` may not contain NUL characters."));
            }
            Some(Value::String(s)) if s.chars().count() <= MAX_COMMENT_CHARS => s.clone(),
            Some(Value::String(_)) => {
                return Err(invalid(format!(
                    "`comment` must be at most {MAX_COMMENT_CHARS} characters."
                )));
            }
            Some(_) => return Err(invalid("`comment` must be a string.")),
        };
        let prediction_id = match fields.get("prediction_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if is_prediction_id(s) => Some(s.clone()),
            Some(_) => {
                return Err(invalid(
                    "`prediction_id` must be the id a prediction answer gave.",
                ));
            }
        };
        match (correct, label) {
            (true, Some(l)) if l != prediction => Err(invalid(
                "`correct` is true, so `label` must equal `prediction` (or be left out).",
            )),
            (false, Some(l)) if l == prediction => Err(invalid(
                "`correct` is false, so `label` (the true digit) cannot equal `prediction`.",
            )),
            _ => Ok(Submission {
                prediction,
                correct,
                label,
                comment,
                prediction_id,
            }),
        }
    }

    /// The true digit to store: the prediction itself when it was correct.
    pub fn true_label(&self) -> Option<i32> {
        if self.correct {
            Some(self.prediction)
        } else {
            self.label
        }
    }

    /// Identifies the request's meaning, to tell a retry from a reuse of its key.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([
            self.prediction,
            self.correct,
            self.true_label(),
            self.comment,
            self.prediction_id,
        ]);
        common::digest::sha256_hex(canonical.to_string().as_bytes())
    }
}

fn invalid(msg: impl Into<String>) -> FeedbackError {
    FeedbackError::InvalidField(msg.into())
}

/// An optional integer 0–9 (`3.0` is refused: a digit is written as an integer).
fn digit(fields: &Map<String, Value>, name: &str) -> Result<Option<i32>, FeedbackError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(d @ 0..=9) => Ok(Some(d as i32)),
            _ => Err(invalid(format!("`{name}` must be an integer from 0 to 9."))),
        },
        Some(_) => Err(invalid(format!("`{name}` must be an integer from 0 to 9."))),
    }
}

fn is_prediction_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_PREDICTION_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An `Idempotency-Key` header value: 1–255 visible ASCII characters.
pub fn idempotency_key(raw: &[u8]) -> Result<String, FeedbackError> {
    let valid = !raw.is_empty()
        && raw.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && raw.iter().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(FeedbackError::InvalidIdempotencyKey(format!(
            "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters."
        )));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(body: Value) -> u16 {
        match Submission::parse(&body) {
            Ok(_) => 201,
            Err(e) => common::ApiError::from(&e).status().as_u16(),
        }
    }

    #[test]
    fn the_seed_body_is_accepted_and_correct_means_label_is_prediction() {
        let s =
            Submission::parse(&json!({"prediction": 7, "correct": true, "comment": "ok"})).unwrap();
        assert_eq!(s.true_label(), Some(7));
        assert_eq!(s.comment, "ok");
        let s = Submission::parse(&json!({"prediction": 7, "correct": false})).unwrap();
        assert_eq!(s.true_label(), None);
        assert_eq!(s.comment, "");
        let s = Submission::parse(
            &json!({"prediction": 7, "correct": false, "label": 1, "comment": null}),
        )
        .unwrap();
        assert_eq!(s.true_label(), Some(1));
    }

    #[test]
    fn every_malformed_body_has_its_status() {
        assert_eq!(status(json!({"correct": true})), 400);
        assert_eq!(status(json!({"prediction": 1})), 400);
        assert_eq!(status(json!({"prediction": null, "correct": true})), 400);
        assert_eq!(status(json!([1, 2])), 400);
        assert_eq!(status(json!({"prediction": "1", "correct": true})), 422);
        assert_eq!(status(json!({"prediction": 10, "correct": true})), 422);
        assert_eq!(status(json!({"prediction": -1, "correct": true})), 422);
        assert_eq!(status(json!({"prediction": 1.5, "correct": true})), 422);
        assert_eq!(status(json!({"prediction": 1, "correct": "yes"})), 422);
        assert_eq!(
            status(json!({"prediction": 1, "correct": false, "label": 12})),
            422
        );
        assert_eq!(
            status(json!({"prediction": 1, "correct": false, "label": 1})),
            422
        );
        assert_eq!(
            status(json!({"prediction": 1, "correct": true, "label": 2})),
            422
        );
        assert_eq!(
            status(json!({"prediction": 1, "correct": true, "comment": 5})),
            422
        );
        assert_eq!(
            status(json!({"prediction": 1, "correct": true, "comment": "a\u{0}b"})),
            422
        );
        let long = "é".repeat(MAX_COMMENT_CHARS + 1);
        assert_eq!(
            status(json!({"prediction": 1, "correct": true, "comment": long})),
            422
        );
        let longest = "é".repeat(MAX_COMMENT_CHARS);
        assert_eq!(
            status(json!({"prediction": 1, "correct": true, "comment": longest})),
            201
        );
        assert_eq!(
            status(json!({"prediction": 1, "correct": true, "prediction_id": "../x"})),
            422
        );
        assert_eq!(
            status(json!({"prediction": 1, "correct": true, "prediction_id": 7})),
            422
        );
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = Submission::parse(&json!({"prediction": 1, "correct": true})).unwrap();
        let b =
            Submission::parse(&json!({"prediction": 1, "correct": true, "label": 1, "extra": 0}))
                .unwrap();
        let c = Submission::parse(&json!({"prediction": 1, "correct": false})).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(idempotency_key(b"abc-123").is_ok());
        assert!(idempotency_key(b"").is_err());
        assert!(idempotency_key(b"has space").is_err());
        assert!(idempotency_key(&[b'a'; 256]).is_err());
    }
}
