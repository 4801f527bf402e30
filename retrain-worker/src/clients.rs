//! The internal APIs a job uses: predict-svc's registry and feedback-svc's labelled feedback.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::service_auth::{ServiceCallError, ServiceTokens};
use contracts::feedback::{LabelledItem, LabelledPage, LabelledQuery};
use contracts::jobs::RetrainMetrics;
use contracts::models::{
    ARTIFACT_CONTENT_TYPE, ActiveVersionChanged, ArtifactInfo, ModelVersion, Registration,
};
use contracts::rollouts::{RolloutRecord, StartRollout};
use serde::de::DeserializeOwned;
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
    pub earlier: Option<serde_json::Value>,
}

/// A labelled feedback example: the input the model saw and the true digit.
#[derive(Debug, Clone)]
pub struct LabelledExample {
    pub id: i64,
    /// Who labelled it (the token's `sub`).
    pub user_id: String,
    /// Labelled by an admin: judges candidates, never trained on.
    pub trusted: bool,
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

    /// The answer, when successful.
    async fn send(
        &self,
        service: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
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
        Ok(response)
    }

    /// The status and typed JSON body of a successful answer.
    async fn json<T: DeserializeOwned>(
        &self,
        service: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, T), ClientError> {
        let response = self.send(service, request).await?;
        let status = response.status().as_u16();
        let body = response.json().await.map_err(|e| ClientError::Invalid {
            service,
            detail: e.to_string(),
        })?;
        Ok((status, body))
    }

    /// The active version's ONNX file, checked against the digest its headers give.
    pub async fn active_model(&self, model: &str) -> Result<ActiveModel, ClientError> {
        let url = format!("{}/internal/models/{model}/active", self.predict_url);
        let response = self.send(PREDICT, self.http.get(url)).await?;
        let invalid = |detail: String| ClientError::Invalid {
            service: PREDICT,
            detail,
        };
        let headers = response.headers();
        let info = ArtifactInfo::from_headers(|name| headers.get(name)?.to_str().ok())
            .ok_or_else(|| invalid("no model version and digest in the headers".into()))?;
        let artifact = response
            .bytes()
            .await
            .map_err(|e| invalid(format!("the artifact could not be read: {e}")))?;
        if common::digest::sha256_hex(&artifact) != info.sha256 {
            return Err(invalid("the artifact does not match its digest".into()));
        }
        Ok(ActiveModel {
            version: info.version,
            sha256: info.sha256,
            artifact: artifact.to_vec(),
        })
    }

    /// Registers a candidate for `job_id`; the same job again gets the same version back.
    pub async fn register(
        &self,
        model: &str,
        artifact: &[u8],
        metrics: &RetrainMetrics,
        job_id: &str,
    ) -> Result<Registered, ClientError> {
        let query = Registration::of_job(job_id, metrics).map_err(|e| ClientError::Invalid {
            service: PREDICT,
            detail: format!("the metrics cannot be written: {e}"),
        })?;
        let request = self
            .http
            .post(format!(
                "{}/internal/models/{model}/versions",
                self.predict_url
            ))
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, ARTIFACT_CONTENT_TYPE)
            .body(artifact.to_vec());
        let (status, version): (u16, ModelVersion) = self.json(PREDICT, request).await?;
        Ok(Registered {
            version: version.version,
            // 200: an earlier run of the job registered it; 201: registered now.
            earlier: (status != 201).then_some(version.metrics),
        })
    }

    /// Starts the rollout of `version`, compared with `if_active` by the gate (or records it
    /// `rejected` when the gate failed); the rollout's id, or `Ok(Err(active))` when another
    /// version became active meanwhile.
    pub async fn start_rollout(
        &self,
        model: &str,
        version: i32,
        if_active: i32,
        job_id: &str,
        gate_passed: bool,
    ) -> Result<Result<String, Option<i32>>, ClientError> {
        let request = self
            .http
            .post(format!(
                "{}/internal/models/{model}/rollouts",
                self.predict_url
            ))
            .json(&StartRollout {
                candidate_version: version,
                gate_passed,
                active_version: if_active,
                job_id: Some(job_id.to_owned()),
            });
        match self.json::<RolloutRecord>(PREDICT, request).await {
            Ok((_, record)) => Ok(Ok(record.id)),
            Err(ClientError::Status {
                status: 409, body, ..
            }) => Ok(Err(serde_json::from_str::<ActiveVersionChanged>(&body)
                .ok()
                .and_then(|changed| changed.active_version))),
            Err(e) => Err(e),
        }
    }

    /// Every labelled feedback example with its input committed before the first page was
    /// read (feedback-svc's snapshot, passed back on every page), each once, page by page.
    pub async fn labelled_feedback(&self) -> Result<Vec<LabelledExample>, ClientError> {
        let mut examples = Vec::new();
        let mut after = 0_i64;
        let mut as_of = None;
        loop {
            let query = LabelledQuery {
                after: Some(after),
                limit: Some(1000),
                as_of: as_of.clone(),
            };
            let request = self
                .http
                .get(format!("{}/internal/feedback/labelled", self.feedback_url))
                .query(&query);
            let (_, page): (u16, LabelledPage) = self.json(FEEDBACK, request).await?;
            examples.extend(page.items.iter().filter_map(LabelledExample::of));
            if !page.has_more || page.next_cursor <= after {
                break;
            }
            if page.as_of.is_empty() {
                return Err(ClientError::Invalid {
                    service: FEEDBACK,
                    detail: "a page of labelled feedback names no snapshot".into(),
                });
            }
            after = page.next_cursor;
            as_of = Some(page.as_of);
        }
        Ok(examples)
    }
}

impl LabelledExample {
    /// The example of a labelled feedback; `None` (logged) without a usable label and input.
    fn of(item: &LabelledItem) -> Option<LabelledExample> {
        let label = item
            .label
            .and_then(|l| u8::try_from(l).ok())
            .filter(|l| *l < 10);
        let input = item
            .input
            .as_ref()
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|bytes| digits::Grid::try_from(bytes.as_slice()).ok());
        match (label, input) {
            (Some(label), Some(input)) => Some(LabelledExample {
                id: item.id,
                user_id: item.user_id.clone(),
                trusted: item.trusted,
                label,
                input,
            }),
            _ => {
                tracing::warn!(
                    id = item.id,
                    "skipping a labelled feedback without a usable input"
                );
                None
            }
        }
    }
}
