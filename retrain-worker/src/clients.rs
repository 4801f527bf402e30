//! The internal APIs a job uses: predict-svc's registry and feedback-svc's labelled feedback.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::service_auth::{ServiceCallError, ServiceTokens};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{service} is unreachable: {source}")]
    Unreachable {
        service: &'static str,
        source: reqwest::Error,
    },
    #[error("no service token for {service}: {source}")]
    Token {
        service: &'static str,
        source: common::service_auth::ServiceTokenError,
    },
    #[error("{service} answered {status}: {body}")]
    Status {
        service: &'static str,
        status: u16,
        body: String,
    },
    #[error("{service} answered something unexpected: {detail}")]
    Invalid {
        service: &'static str,
        detail: String,
    },
}

/// The version a model serves now, with its ONNX file.
#[derive(Debug, Clone)]
pub struct ActiveModel {
    pub version: i32,
    pub sha256: String,
    pub artifact: Vec<u8>,
}

/// A registered candidate.
#[derive(Debug, Clone)]
pub struct Registered {
    pub version: i32,
    /// When an earlier run of the same job had registered it: the metrics stored then, which
    /// describe that artifact (not this run's).
    pub earlier: Option<Value>,
}

/// A labelled feedback example: the input the model saw and the true digit.
#[derive(Debug, Clone)]
pub struct LabelledExample {
    pub id: i64,
    pub label: u8,
    pub input: digits::Grid,
}

#[derive(Clone)]
pub struct Clients {
    predict_url: String,
    feedback_url: String,
    http: reqwest::Client,
    /// This worker's service tokens for the `/internal/` routes.
    tokens: Arc<ServiceTokens>,
}

const PREDICT: &str = "predict-svc";
const FEEDBACK: &str = "feedback-svc";

impl Clients {
    pub fn new(
        predict_url: &str,
        feedback_url: &str,
        tokens: Arc<ServiceTokens>,
    ) -> reqwest::Result<Self> {
        Ok(Clients {
            predict_url: predict_url.trim_end_matches('/').to_owned(),
            feedback_url: feedback_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(60))
                .build()?,
            tokens,
        })
    }

    async fn json(
        &self,
        service: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ClientError> {
        self.answer(service, request).await.map(|(_, body)| body)
    }

    /// The status and JSON body of a successful answer.
    async fn answer(
        &self,
        service: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Value), ClientError> {
        let response = self.tokens.send(request).await.map_err(|e| match e {
            ServiceCallError::Http(source) => ClientError::Unreachable { service, source },
            ServiceCallError::Token(source) => ClientError::Token { service, source },
        })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(ClientError::Status {
                service,
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        let body = response.json().await.map_err(|e| ClientError::Invalid {
            service,
            detail: e.to_string(),
        })?;
        Ok((status.as_u16(), body))
    }

    pub async fn active_model(&self, model: &str) -> Result<ActiveModel, ClientError> {
        let body = self
            .json(
                PREDICT,
                self.http.get(format!(
                    "{}/internal/models/{model}/active",
                    self.predict_url
                )),
            )
            .await?;
        let invalid = |detail: &str| ClientError::Invalid {
            service: PREDICT,
            detail: detail.to_owned(),
        };
        let version = body["version"]
            .as_i64()
            .ok_or_else(|| invalid("no version"))? as i32;
        let artifact = body["artifact"]
            .as_str()
            .and_then(|b| STANDARD.decode(b).ok())
            .ok_or_else(|| invalid("no base64 artifact"))?;
        Ok(ActiveModel {
            version,
            sha256: body["sha256"].as_str().unwrap_or_default().to_owned(),
            artifact,
        })
    }

    /// Registers a candidate for `job_id`; the same job again gets the same version back.
    pub async fn register(
        &self,
        model: &str,
        artifact: &[u8],
        metrics: &Value,
        job_id: &str,
    ) -> Result<Registered, ClientError> {
        let (status, body) = self
            .answer(
                PREDICT,
                self.http
                    .post(format!(
                        "{}/internal/models/{model}/versions",
                        self.predict_url
                    ))
                    .json(&json!({
                        "artifact": STANDARD.encode(artifact),
                        "metrics": metrics,
                        "source_job_id": job_id,
                    })),
            )
            .await?;
        let version =
            body["version"]
                .as_i64()
                .map(|v| v as i32)
                .ok_or_else(|| ClientError::Invalid {
                    service: PREDICT,
                    detail: "no version in the registration".into(),
                })?;
        Ok(Registered {
            version,
            // 200: an earlier run of the job registered it; 201: registered now.
            earlier: (status != 201).then(|| body["metrics"].clone()),
        })
    }

    /// Promotes `version` if `if_active` is still the active version (or `version` already
    /// is); `Ok(Err(active))` when another version became active meanwhile.
    pub async fn promote(
        &self,
        model: &str,
        version: i32,
        if_active: i32,
    ) -> Result<Result<(), Option<i32>>, ClientError> {
        let result = self
            .answer(
                PREDICT,
                self.http
                    .post(format!(
                        "{}/internal/models/{model}/versions/{version}/promote",
                        self.predict_url
                    ))
                    .json(&json!({"if_active": if_active})),
            )
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(ClientError::Status {
                status: 409, body, ..
            }) => {
                let active = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|b| b["active_version"].as_i64())
                    .map(|v| v as i32);
                Ok(Err(active))
            }
            Err(e) => Err(e),
        }
    }

    /// Every labelled feedback example with its input, page by page.
    pub async fn labelled_feedback(&self) -> Result<Vec<LabelledExample>, ClientError> {
        #[derive(Deserialize)]
        struct Page {
            items: Vec<Item>,
            next_cursor: i64,
            has_more: bool,
        }
        #[derive(Deserialize)]
        struct Item {
            id: i64,
            label: Option<i64>,
            input: Option<String>,
        }
        let mut examples = Vec::new();
        let mut after = 0_i64;
        loop {
            let page = self
                .json(
                    FEEDBACK,
                    self.http.get(format!(
                        "{}/internal/feedback/labelled?after={after}&limit=1000",
                        self.feedback_url
                    )),
                )
                .await?;
            let page: Page = serde_json::from_value(page).map_err(|e| ClientError::Invalid {
                service: FEEDBACK,
                detail: e.to_string(),
            })?;
            for item in page.items {
                let label = item
                    .label
                    .and_then(|l| u8::try_from(l).ok())
                    .filter(|l| *l < 10);
                let input = item
                    .input
                    .and_then(|b| STANDARD.decode(b).ok())
                    .and_then(|bytes| digits::Grid::try_from(bytes.as_slice()).ok());
                match (label, input) {
                    (Some(label), Some(input)) => examples.push(LabelledExample {
                        id: item.id,
                        label,
                        input,
                    }),
                    _ => tracing::warn!(
                        id = item.id,
                        "skipping a labelled feedback without a usable input"
                    ),
                }
            }
            if !page.has_more || page.next_cursor <= after {
                break;
            }
            after = page.next_cursor;
        }
        Ok(examples)
    }
}
