#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Each contract type, serialised, against what the documents promise: the examples of
//! ARCHITECTURE.md and docs/internal-plane.md (copied here), and the schemas of
//! `gateway/openapi.json` for what admins receive.

use contracts::events::{
    Event, FeedbackCreated, LabelsExcluded, ModelPromoted, RetrainFinished, RetrainProgress,
    RolloutDecided, RolloutProgress, RolloutStarted, kinds,
};
use contracts::feedback::{FeedbackRecord, LabelledItem, LabelledPage, LabelledQuery};
use contracts::jobs::{
    ComparedVersion, EpochReport, Evaluation, GateReport, JobProgress, JobState, RetrainJobEntry,
    RetrainMetrics, Scores, Stage, TrainingReport,
};
use contracts::models::{ActiveVersionChanged, ArtifactInfo, ModelVersion, Registration};
use contracts::predictions::ServedPrediction;
use contracts::rollouts::{
    Arm, Policy, Reason, ServedRollout, Stage as RolloutStage, StartRollout, Stats, Verdict,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Serialises `value`, compares it with `expected`, and reads `expected` back into `value`.
fn same<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, expected: Value) {
    assert_eq!(serde_json::to_value(value).unwrap(), expected);
    assert_eq!(&serde_json::from_value::<T>(expected).unwrap(), value);
}

fn feedback() -> FeedbackRecord {
    FeedbackRecord {
        id: 42,
        username: "ana".into(),
        prediction: 7,
        correct: false,
        comment: "es un 1".into(),
        timestamp: "2026-11-29T10:15:30.123456Z".into(),
        prediction_id: Some("0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f".into()),
        label: Some(1),
        model: Some("mnist-cnn".into()),
        model_version: Some(2),
    }
}

fn scores(accuracy: f64, feedback: Option<f64>) -> Scores {
    let eval = |accuracy| Evaluation {
        accuracy,
        loss: 0.25,
        count: 2000,
    };
    Scores {
        mnist: eval(accuracy),
        feedback: feedback.map(eval),
    }
}

fn metrics() -> RetrainMetrics {
    RetrainMetrics {
        test_accuracy: 0.985,
        candidate: scores(0.985, Some(0.75)),
        active: ComparedVersion {
            version: 1,
            scores: scores(0.98, Some(0.5)),
        },
        gate: GateReport {
            tolerance_points: 0.5,
            promote: true,
            reason: None,
        },
        training: TrainingReport {
            from_scratch: false,
            epochs: 2,
            mnist_digits: 60000,
            feedback_digits: 12,
            feedback_weight: 20,
            feedback_holdout_digits: 4,
            feedback_capped: 3,
            examples: 60240,
            train_loss: 0.125,
            seconds: 42.5,
            seed: 1234567890123,
        },
    }
}

fn metrics_json() -> Value {
    let scores = |accuracy: f64, feedback: f64| {
        json!({
            "mnist": {"accuracy": accuracy, "loss": 0.25, "count": 2000},
            "feedback": {"accuracy": feedback, "loss": 0.25, "count": 2000},
        })
    };
    json!({
        "test_accuracy": 0.985,
        "candidate": scores(0.985, 0.75),
        "active": {"version": 1, "scores": scores(0.98, 0.5)},
        "gate": {"tolerance_points": 0.5, "promote": true, "reason": null},
        "training": {
            "from_scratch": false, "epochs": 2, "mnist_digits": 60000, "feedback_digits": 12,
            "feedback_weight": 20, "feedback_holdout_digits": 4, "feedback_capped": 3,
            "examples": 60240,
            "train_loss": 0.125, "seconds": 42.5, "seed": 1234567890123_u64,
        },
    })
}

/// One of each event, and its `type` and `data` as on the bus.
fn events() -> Vec<(Event, Value)> {
    vec![
        (
            Event::FeedbackCreated(FeedbackCreated {
                feedback: feedback(),
                input: Some("AAAA".into()),
            }),
            json!({"type": "feedback.created", "data": {
                "id": 42, "username": "ana", "prediction": 7, "correct": false,
                "comment": "es un 1", "timestamp": "2026-11-29T10:15:30.123456Z",
                "prediction_id": "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f", "label": 1,
                "model": "mnist-cnn", "model_version": 2, "input": "AAAA",
            }}),
        ),
        (
            Event::RetrainProgress(RetrainProgress {
                job_id: "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f".into(),
                model: "mnist-cnn".into(),
                progress: JobProgress {
                    epoch: Some(EpochReport {
                        epoch: 1,
                        epochs: 2,
                        loss: 0.5,
                        val_accuracy: 0.97,
                        eta_seconds: 12.5,
                    }),
                    ..JobProgress::at(Stage::Training)
                },
            }),
            json!({"type": "retrain.progress", "data": {
                "job_id": "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f", "model": "mnist-cnn",
                "stage": "training", "epoch": 1, "epochs": 2, "loss": 0.5,
                "val_accuracy": 0.97, "eta_seconds": 12.5,
            }}),
        ),
        (
            Event::RetrainProgress(RetrainProgress {
                job_id: "j".into(),
                model: "mnist-mlp".into(),
                progress: JobProgress {
                    attempt: Some(2),
                    ..JobProgress::at(Stage::Starting)
                },
            }),
            json!({"type": "retrain.progress", "data": {
                "job_id": "j", "model": "mnist-mlp", "stage": "starting", "attempt": 2,
            }}),
        ),
        (
            Event::RetrainFinished(RetrainFinished {
                job_id: "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f".into(),
                model: "mnist-cnn".into(),
                state: JobState::Succeeded,
                model_version: Some(3),
                promoted: false,
                rollout_id: Some("0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e90".into()),
                reason: None,
                metrics: Some(metrics()),
            }),
            json!({"type": "retrain.finished", "data": {
                "job_id": "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f", "model": "mnist-cnn",
                "state": "succeeded", "model_version": 3, "promoted": false,
                "rollout_id": "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e90", "reason": null,
                "metrics": metrics_json(),
            }}),
        ),
        (
            Event::RetrainFinished(RetrainFinished {
                job_id: "j".into(),
                model: "mnist-mlp".into(),
                state: JobState::Failed,
                model_version: None,
                promoted: false,
                rollout_id: None,
                reason: Some("predict-svc is unreachable".into()),
                metrics: None,
            }),
            json!({"type": "retrain.finished", "data": {
                "job_id": "j", "model": "mnist-mlp", "state": "failed", "model_version": null,
                "promoted": false, "rollout_id": null, "reason": "predict-svc is unreachable",
                "metrics": null,
            }}),
        ),
        (
            Event::ModelPromoted(ModelPromoted {
                model: "mnist-cnn".into(),
                version: 3,
                sha256: "ab".repeat(32),
            }),
            json!({"type": "model.promoted", "data": {
                "model": "mnist-cnn", "version": 3, "sha256": "ab".repeat(32),
            }}),
        ),
        (
            Event::RolloutStarted(RolloutStarted {
                rollout_id: "r-1".into(),
                model: "mnist-mlp".into(),
                candidate_version: 3,
                active_version: 2,
                stage: RolloutStage::Shadow,
                share: 0.0,
                policy: Policy::default(),
                job_id: Some("job-1".into()),
            }),
            json!({"type": "model.rollout.started", "data": {
                "rollout_id": "r-1", "model": "mnist-mlp", "candidate_version": 3,
                "active_version": 2, "stage": "shadow", "share": 0.0, "job_id": "job-1",
                "policy": {"margin": 0.01, "confidence": 0.95, "max_outcomes": 2000,
                    "user_cap": 0.1, "canary_steps": [0.05, 0.25, 0.5],
                    "min_outcomes_per_stage": 100},
            }}),
        ),
        (
            Event::RolloutProgress(RolloutProgress {
                rollout_id: "r-1".into(),
                model: "mnist-mlp".into(),
                candidate_version: 3,
                active_version: 2,
                stage: RolloutStage::Canary,
                share: 0.05,
                paused: false,
                margin: 0.01,
                stats: Stats::default(),
            }),
            json!({"type": "model.rollout.progress", "data": {
                "rollout_id": "r-1", "model": "mnist-mlp", "candidate_version": 3,
                "active_version": 2, "stage": "canary", "share": 0.05, "paused": false,
                "margin": 0.01, "stats": stats_json(),
            }}),
        ),
        (
            Event::RolloutDecided(RolloutDecided {
                rollout_id: "r-1".into(),
                model: "mnist-mlp".into(),
                candidate_version: 3,
                active_version: 2,
                verdict: Verdict::RolledBack,
                stage: RolloutStage::RolledBack,
                reason: Reason::Aborted,
                actor: Some("boss".into()),
                stats: Stats::default(),
            }),
            json!({"type": "model.rollout.decided", "data": {
                "rollout_id": "r-1", "model": "mnist-mlp", "candidate_version": 3,
                "active_version": 2, "verdict": "rolled_back", "stage": "rolled_back",
                "reason": "aborted", "actor": "boss", "stats": stats_json(),
            }}),
        ),
        (
            Event::LabelsExcluded(LabelsExcluded {
                user_id: "u-1".into(),
                excluded_by: "boss".into(),
                labels: 12,
            }),
            json!({"type": "labels.excluded", "data": {
                "user_id": "u-1", "excluded_by": "boss", "labels": 12,
            }}),
        ),
    ]
}

/// `rollout::Stats::default()` as JSON: every count 0, every estimate and bound 0.
fn stats_json() -> Value {
    let estimate = json!({"estimate": 0.0, "lower": 0.0, "upper": 0.0});
    let tally = json!({"correct": 0, "total": 0});
    json!({
        "pairs": {"both_right": 0, "both_wrong": 0, "candidate_only": 0, "active_only": 0},
        "difference": estimate, "active": estimate, "candidate": estimate, "over_cap": 0,
        "active_unpaired": tally, "candidate_unpaired": tally,
        "active_unsolicited": tally, "candidate_unsolicited": tally,
    })
}

#[test]
fn events_are_their_type_and_data() {
    for (event, expected) in events() {
        same(&event, expected.clone());
        assert_eq!(event.kind(), expected["type"]);
        assert_eq!(event.data(), expected["data"]);
        assert_eq!(
            Event::from_parts(event.kind(), &event.data()).unwrap(),
            event
        );
    }
    let kinds_seen: std::collections::BTreeSet<_> =
        events().iter().map(|(e, _)| e.kind()).collect();
    assert_eq!(kinds_seen, kinds::ALL.into_iter().collect());
    assert!(Event::from_parts("user.created", &json!({})).is_err());
    assert!(Event::from_parts(kinds::MODEL_PROMOTED, &json!({"model": "m"})).is_err());
}

/// ARCHITECTURE.md, "Bus, queue and events": `{"id": UUIDv7, "type": "feedback.created",
/// "occurred_at": RFC 3339, "traceparent": W3C, "data": {…}}`. The event is its `type` and
/// `data` (the envelope is `common::bus::Envelope`, tested there).
#[test]
fn the_architecture_envelope_holds_an_event() {
    let example = json!({
        "id": "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f",
        "type": "feedback.created",
        "occurred_at": "2026-11-29T10:15:30.123456Z",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "data": events()[0].1["data"].clone(),
    });
    let event = Event::from_parts(example["type"].as_str().unwrap(), &example["data"]).unwrap();
    assert_eq!(event, events()[0].0);
}

/// Checks `value` against an OpenAPI 3.1 schema: `$ref`, `allOf`, `anyOf`, `type`, `enum`,
/// `required` and, for objects with `properties`, no member it does not name.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    check(doc, schema, value, at, true)
}

/// `closed`: members the schema does not name are refused (false for one part of an `allOf`,
/// whose union is checked instead).
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, closed: bool) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return check(doc, &doc["components"]["schemas"][name], value, at, closed);
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            check(doc, part, value, at, false)?;
        }
        let named: Vec<&String> = all.iter().flat_map(|part| properties(doc, part)).collect();
        if let Some(obj) = value.as_object()
            && let Some(extra) = obj.keys().find(|k| !named.contains(k))
        {
            return Err(format!("{at}: `{extra}` is in no part of the allOf"));
        }
        return Ok(());
    }
    if let Some(any) = schema["anyOf"].as_array() {
        return any
            .iter()
            .any(|s| check(doc, s, value, at, closed).is_ok())
            .then_some(())
            .ok_or_else(|| format!("{at}: {value} matches no anyOf branch"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_of = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let type_ok = types.is_empty()
        || types.contains(&type_of)
        || (type_of == "integer" && types.contains(&"number"));
    if !type_ok {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(choices) = schema["enum"].as_array()
        && !choices.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {choices:?}"));
    }
    let Some(obj) = value.as_object() else {
        return Ok(());
    };
    for required in schema["required"].as_array().into_iter().flatten() {
        let key = required.as_str().unwrap_or_default();
        if !obj.contains_key(key) {
            return Err(format!("{at}: `{key}` is missing"));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (key, member) in obj {
            match props.get(key) {
                Some(sub) => check(doc, sub, member, &format!("{at}.{key}"), true)?,
                None if closed && schema.get("additionalProperties").is_none() => {
                    return Err(format!("{at}: `{key}` is not in the schema"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// The member names a schema (or the parts of its `allOf`) declares.
fn properties<'a>(doc: &'a Value, schema: &'a Value) -> Vec<&'a String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return properties(doc, &doc["components"]["schemas"][name]);
    }
    let mut names: Vec<&String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        names.extend(properties(doc, part));
    }
    names
}

fn openapi() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What admins receive on `/ws` is the event's `data`, described in openapi.json.
#[test]
fn event_data_and_job_shapes_match_the_openapi_schemas() {
    let doc = openapi();
    let schema = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    for (event, _) in events() {
        let name = match event.kind() {
            kinds::FEEDBACK_CREATED => "WsNewFeedbackData",
            kinds::RETRAIN_PROGRESS => "WsRetrainProgressData",
            kinds::RETRAIN_FINISHED => "WsRetrainFinishedData",
            kinds::MODEL_PROMOTED => "WsModelPromotedData",
            kinds::ROLLOUT_STARTED => "WsRolloutStartedData",
            kinds::ROLLOUT_PROGRESS => "WsRolloutProgressData",
            kinds::ROLLOUT_DECIDED => "WsRolloutDecidedData",
            _ => "WsLabelsExcludedData",
        };
        conforms(&doc, &schema(name), &event.data(), name).unwrap();
    }
    let checks: Vec<(&str, Value)> = vec![
        ("RetrainMetrics", serde_json::to_value(metrics()).unwrap()),
        ("Feedback", serde_json::to_value(feedback()).unwrap()),
        (
            "RetrainProgress",
            serde_json::to_value(JobProgress {
                note: Some("its worker stopped".into()),
                ..JobProgress::at(Stage::Queued)
            })
            .unwrap(),
        ),
        (
            "ModelVersion",
            serde_json::to_value(model_version()).unwrap(),
        ),
    ];
    for (name, value) in checks {
        conforms(&doc, &schema(name), &value, name).unwrap();
    }
    for state in JobState::ALL {
        let value = serde_json::to_value(state).unwrap();
        conforms(&doc, &schema("RetrainState"), &value, "RetrainState").unwrap();
        assert_eq!(value, state.as_str());
        assert_eq!(JobState::parse(state.as_str()), Some(state));
    }
    for stage in [
        Stage::Queued,
        Stage::Starting,
        Stage::LoadingData,
        Stage::Training,
        Stage::Registering,
        Stage::Finished,
    ] {
        let value = serde_json::to_value(JobProgress::at(stage)).unwrap();
        conforms(&doc, &schema("RetrainProgress"), &value, "RetrainProgress").unwrap();
    }
}

fn model_version() -> ModelVersion {
    ModelVersion {
        name: "mnist-cnn".into(),
        version: 3,
        sha256: "ab".repeat(32),
        metrics: metrics_json(),
        status: "candidate".into(),
        source: "retrain".into(),
        source_job_id: Some("0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f".into()),
        created_at: "2026-12-01T10:15:30.123456+00:00".into(),
        promoted_at: None,
    }
}

/// docs/internal-plane.md, "Requests and answers".
#[test]
fn internal_requests_and_answers_match_the_documented_examples() {
    same(
        &model_version(),
        json!({
            "name": "mnist-cnn", "version": 3, "sha256": "ab".repeat(32),
            "metrics": metrics_json(), "status": "candidate", "source": "retrain",
            "source_job_id": "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f",
            "created_at": "2026-12-01T10:15:30.123456+00:00", "promoted_at": null,
        }),
    );
    same(
        &StartRollout {
            candidate_version: 3,
            gate_passed: true,
            active_version: 2,
            job_id: Some("job-1".into()),
        },
        json!({"candidate_version": 3, "gate_passed": true, "active_version": 2, "job_id": "job-1"}),
    );
    assert!(
        serde_json::from_value::<StartRollout>(
            json!({"candidate_version": 3, "active_version": 2})
        )
        .unwrap()
        .gate_passed
    );
    same(
        &ActiveVersionChanged {
            error: "active_version_changed".into(),
            msg: "mnist-cnn v1 is no longer the active version (now v4); not promoted.".into(),
            active_version: Some(4),
        },
        json!({
            "error": "active_version_changed",
            "msg": "mnist-cnn v1 is no longer the active version (now v4); not promoted.",
            "active_version": 4,
        }),
    );
    let registration = Registration::of_job("job-1", &metrics()).unwrap();
    let metrics_text = registration.metrics.clone().unwrap();
    same(
        &registration,
        json!({"source_job_id": "job-1", "metrics": metrics_text}),
    );
    assert_eq!(
        serde_json::from_str::<Value>(&metrics_text).unwrap(),
        metrics_json()
    );
    same(
        &ServedPrediction {
            id: "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f".into(),
            user_id: "u-1".into(),
            username: "ana".into(),
            model: "mnist-mlp".into(),
            model_version: 1,
            input: "AAAA".into(),
            probabilities: vec![0.5, 0.25, 0.25],
            prediction: 0,
            probability: 0.5,
            created_at: "2026-11-29T10:15:30.123456Z".parse().unwrap(),
            feedback_requested: true,
            rollout: Some(ServedRollout {
                rollout_id: "r-1".into(),
                served: Arm::Candidate,
                active_version: 1,
                candidate_version: 2,
                active_prediction: None,
                candidate_prediction: Some(0),
            }),
        },
        json!({
            "id": "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f", "user_id": "u-1", "username": "ana",
            "model": "mnist-mlp", "model_version": 1, "input": "AAAA",
            "probabilities": [0.5, 0.25, 0.25], "prediction": 0, "probability": 0.5,
            "created_at": "2026-11-29T10:15:30.123456Z", "feedback_requested": true,
            "rollout": {"rollout_id": "r-1", "served": "candidate", "active_version": 1,
                "candidate_version": 2, "active_prediction": null, "candidate_prediction": 0},
        }),
    );
    same(
        &LabelledQuery {
            after: Some(41),
            limit: Some(1000),
            as_of: Some("100:104:101".into()),
        },
        json!({"after": 41, "limit": 1000, "as_of": "100:104:101"}),
    );
    same(
        &LabelledPage {
            items: vec![LabelledItem {
                id: 42,
                user_id: "u-7".into(),
                trusted: true,
                label: Some(1),
                model: Some("mnist-cnn".into()),
                model_version: Some(2),
                input: Some("AAAA".into()),
                created_at: "2026-11-29T10:15:30.123456Z".into(),
            }],
            next_cursor: 42,
            has_more: false,
            as_of: "100:104:101".into(),
        },
        json!({
            "items": [{"id": 42, "user_id": "u-7", "trusted": true, "label": 1,
                       "model": "mnist-cnn", "model_version": 2,
                       "input": "AAAA", "created_at": "2026-11-29T10:15:30.123456Z"}],
            "next_cursor": 42, "has_more": false, "as_of": "100:104:101",
        }),
    );
    same(
        &RetrainJobEntry {
            job_id: "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f".into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        },
        json!({
            "job_id": "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        }),
    );
    // An entry queued again at start names only the job.
    assert_eq!(
        serde_json::from_value::<RetrainJobEntry>(json!({"job_id": "j"})).unwrap(),
        RetrainJobEntry {
            job_id: "j".into(),
            traceparent: None
        }
    );
    let info = ArtifactInfo {
        version: 3,
        sha256: "AB".repeat(32).to_ascii_lowercase(),
    };
    let headers = info.headers();
    assert_eq!(headers[0], ("model-version", "3".to_owned()));
    let read = ArtifactInfo::from_headers(|name| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    });
    assert_eq!(read, Some(info));
    assert_eq!(ArtifactInfo::from_headers(|_| Some("x")), None);
}
