//! predict-svc's model registry for retrain-worker (management port, service token):
//!
//! | route | scope | request | answer |
//! |---|---|---|---|
//! | `GET /internal/models/{name}/active` | `models:read` | — | the ONNX file (`application/octet-stream`), [`ArtifactInfo`] in headers |
//! | `POST /internal/models/{name}/versions` | `models:register` | the ONNX file (`application/octet-stream`), [`Registration`] in the query | [`ModelVersion`]: 201 registered, 200 when the job had registered it already |
//! | `POST /internal/models/{name}/rollouts` | `models:promote` | `rollouts::StartRollout` | `rollouts::RolloutRecord`, or 409 [`ActiveVersionChanged`] |
//!
//! Artifacts travel as raw bytes: no base64, no JSON around a file of megabytes.

use serde::{Deserialize, Serialize};

/// The media type of an ONNX artifact on the internal routes.
pub const ARTIFACT_CONTENT_TYPE: &str = "application/octet-stream";
/// The largest artifact predict-svc accepts.
pub const MAX_ARTIFACT_BYTES: usize = 64 * 1024 * 1024;
/// The largest `metrics` (JSON text) a registration may carry.
pub const MAX_METRICS_BYTES: usize = 16 * 1024;
/// Headers of `GET /internal/models/{name}/active`: see [`ArtifactInfo`].
pub const VERSION_HEADER: &str = "model-version";
pub const SHA256_HEADER: &str = "model-sha256";

/// What the headers of `GET /internal/models/{name}/active` say about the file in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// `Model-Version`.
    pub version: i32,
    /// `Model-Sha256`: of the body, lowercase hex.
    pub sha256: String,
}

impl ArtifactInfo {
    pub fn headers(&self) -> [(&'static str, String); 2] {
        [
            (VERSION_HEADER, self.version.to_string()),
            (SHA256_HEADER, self.sha256.clone()),
        ]
    }

    /// Read back with `header(name)` giving a header's value; `None` when one is missing or
    /// not what it should be.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<ArtifactInfo> {
        let version = header(VERSION_HEADER)?.trim().parse().ok()?;
        let sha256 = header(SHA256_HEADER)?.trim();
        let is_hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        is_hex.then(|| ArtifactInfo {
            version,
            sha256: sha256.to_ascii_lowercase(),
        })
    }
}

/// The query of `POST /internal/models/{name}/versions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The retrain job it comes from: registering twice for one job gives the same version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_job_id: Option<String>,
    /// A JSON object (text) stored with the version: a job's `RetrainMetrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
}

impl Registration {
    pub fn of_job(job_id: &str, metrics: &impl Serialize) -> Result<Self, serde_json::Error> {
        Ok(Registration {
            source_job_id: Some(job_id.to_owned()),
            metrics: Some(serde_json::to_string(metrics)?),
        })
    }
}

/// A registry entry (without its artifact), as the registry answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: i32,
    /// Of the ONNX artifact.
    pub sha256: String,
    /// Free-form: the trainer's for the initial versions, a retrain job's `RetrainMetrics` for
    /// its candidates.
    pub metrics: serde_json::Value,
    /// `active`, `candidate` or `retired`.
    pub status: String,
    /// `initial` or `retrain`.
    pub source: String,
    pub source_job_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub promoted_at: Option<String>,
}

/// The 409 of a rollout start whose compared active version is no longer the active one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveVersionChanged {
    /// `active_version_changed` (`common::ErrorCode::ActiveVersionChanged`).
    pub error: String,
    pub msg: String,
    /// The version active now.
    pub active_version: Option<i32>,
}
