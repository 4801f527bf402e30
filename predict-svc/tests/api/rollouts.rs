//! Rollouts on the real PostgreSQL, Redis and ONNX Runtime: a retrain's candidate goes
//! shadow → canary → active on labelled outcomes, or is rolled back; admins read the audit table
//! and steer; every step is served by the running service.
//!
//! The test holds its own controller on the service's database and bus (as a second replica
//! would) and steps labelled outcomes through it (`outcomes::take`, `Controller::observe`); the
//! service follows each change through the bus, as every replica does.

use crate::helpers::*;
use crate::registry::{models, register};
use common::bus::Envelope;
use common::config::Mode;
use common::infra::Infra;
use common::jwt::{Role, SigningKeyPair};
use common::testing::{claims, redis_url};
use contracts::events::{Event, FeedbackCreated};
use contracts::feedback::FeedbackRecord;
use contracts::rollouts::{Arm, Policy, ServedRollout, Stage};
use predict_svc::controller::{Controller, Labelled};
use predict_svc::registry::ModelSet;
use predict_svc::store::PredictionStore;
use rollout::{Outcome, Recorded};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A policy that decides within tens of outcomes: a wide margin, short stages, one canary step.
fn quick_policy() -> Policy {
    Policy {
        margin: 0.2,
        confidence: 0.95,
        max_outcomes: 400,
        user_cap: 1.0,
        canary_steps: vec![0.5],
        min_outcomes_per_stage: 10,
    }
}

struct Rig {
    app: TestApp,
    controller: Controller,
    store: PredictionStore,
    key: SigningKeyPair,
    _backing: Backing,
}

/// The service (every answer asks for a label, every request runs in shadow) and a second
/// controller on its database and bus.
async fn rig() -> Rig {
    let backing = Backing::new();
    let mut config = config(&backing, BATCHING);
    config.rollout = quick_policy();
    config.feedback_share = 1.0;
    let app = spawn_with(&backing, config.clone()).await;
    let db = predict_svc::db::SCHEMA
        .open(&config.backends.database, Mode::Development)
        .await
        .unwrap();
    let infra = Infra::connect(&redis_url(), &backing.prefix).unwrap();
    let env = predict_svc::engine::environment(&ort_dylib()).unwrap();
    let models = Arc::new(ModelSet::new(env, BATCHING, db.clone()));
    let bus = infra.bus(100);
    let controller = Controller::new(db, bus, models, quick_policy(), Duration::from_secs(3600));
    let store = PredictionStore::new(infra.kv(), Duration::from_secs(3600));
    Rig {
        app,
        controller,
        store,
        key: backing.key.clone(),
        _backing: backing,
    }
}

/// Waits (bounded) until `check` holds: for what the service does after a bus event or after
/// answering (its shadow run), which the test cannot step.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

struct User {
    sub: String,
    token: String,
}

fn user(key: &SigningKeyPair, name: &str) -> User {
    let claims = claims(name, Role::User);
    User {
        sub: claims.sub.clone(),
        token: key.sign(&claims).unwrap(),
    }
}

async fn predict(app: &TestApp, user: &User, digit: usize) -> Value {
    let png = digits::grid_to_png(&mnist_test().images[digit]).unwrap();
    let part = reqwest::multipart::Part::bytes(png).file_name("d.png");
    let r = app
        .client
        .post(app.at("/api/v1/predict"))
        .bearer_auth(&user.token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn start(app: &TestApp, candidate: i32, active: i32, job: &str) -> reqwest::Response {
    app.client
        .post(app.internal("/internal/models/mnist-mlp/rollouts"))
        .bearer_auth(&app.service)
        .json(&json!({"candidate_version": candidate, "active_version": active, "job_id": job}))
        .send()
        .await
        .unwrap()
}

async fn rollouts(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.at("/admin/models/mnist-mlp/rollouts"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The stored prediction once its shadow run has added the other version's digit.
async fn with_both_outputs(rig: &Rig, id: &str) -> ServedRollout {
    for _ in 0..200 {
        let stored = rig.store.get(id).await.unwrap().unwrap();
        let rollout = stored.rollout.unwrap();
        if rollout.active_prediction.is_some() && rollout.candidate_prediction.is_some() {
            return rollout;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the shadow run of {id} stored no digit");
}

/// A requested, truthful label on a served prediction, stepped through the controller.
async fn label(rig: &Rig, answer: &Value, digit: usize, feedback_id: i64) -> Option<Recorded> {
    let id = answer["prediction_id"].as_str().unwrap();
    with_both_outputs(rig, id).await;
    let truth = i32::from(mnist_test().labels[digit]);
    let created = FeedbackCreated {
        feedback: FeedbackRecord {
            id: feedback_id,
            username: "ana".into(),
            prediction: answer["prediccion"].as_i64().unwrap() as i32,
            correct: answer["prediccion"] == truth,
            comment: String::new(),
            timestamp: "2026-12-03T10:00:00.000000Z".into(),
            prediction_id: Some(id.to_owned()),
            label: Some(truth),
            model: Some("mnist-mlp".into()),
            model_version: answer["model_version"].as_i64().map(|v| v as i32),
        },
        input: None,
    };
    let envelope = Envelope::of(&Event::FeedbackCreated(created));
    predict_svc::outcomes::take(&rig.controller, &rig.store, &envelope)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_candidate_goes_through_shadow_and_canary_to_active_on_requested_labels() {
    let rig = rig().await;
    let app = &rig.app;
    // The candidate is the same network: it answers as the active version does.
    assert_eq!(register(app, "mnist-mlp", "job-r1").await.status(), 201);
    let r = start(app, 2, 1, "job-r1").await;
    assert_eq!(r.status(), 201);
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["stage"], "shadow");
    assert_eq!(started["share"], 0.0);
    let rollout_id = started["id"].as_str().unwrap().to_owned();
    // The job runs again: the same rollout.
    let again: Value = start(app, 2, 1, "job-r1").await.json().await.unwrap();
    assert_eq!(again["id"], rollout_id.as_str());
    let listed = models(app).await;
    let mlp = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "mnist-mlp")
        .unwrap();
    let v2 = mlp["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == 2)
        .unwrap();
    assert_eq!(
        (v2["status"].as_str(), v2["traffic_share"].as_f64()),
        (Some("shadow"), Some(0.0))
    );

    let users: Vec<User> = (0..16).map(|i| user(&rig.key, &format!("u{i}"))).collect();
    // Shadow: every user is served the active version; both outputs are kept.
    let mut feedback_id = 0;
    let mut stage = Stage::Shadow;
    for (i, digit) in (0..40).enumerate() {
        let who = &users[i % users.len()];
        let answer = predict(app, who, digit).await;
        assert_eq!(answer["feedback_requested"], true);
        let in_canary =
            rollout::assign::in_canary(rollout::assign::canary_point(&rollout_id, &who.sub), 0.5);
        let expected = if stage == Stage::Canary && in_canary {
            2
        } else {
            1
        };
        assert_eq!(answer["model_version"], expected, "answer {i} in {stage:?}");
        feedback_id += 1;
        assert_eq!(
            label(&rig, &answer, digit, feedback_id).await,
            Some(Recorded::Counted)
        );
        let now: Value = rollouts(app).await;
        let current = now["rollouts"][0]["stage"].as_str().unwrap().to_owned();
        if current == "canary" && stage == Stage::Shadow {
            stage = Stage::Canary;
            // The service serves the canary once it has followed the change.
            let first_in = rollout::assign::in_canary(
                rollout::assign::canary_point(&rollout_id, &users[0].sub),
                0.5,
            );
            until("the service serves the canary", || async {
                let served = predict(app, &users[0], 0).await["model_version"].clone();
                served == if first_in { 2 } else { 1 }
            })
            .await;
        }
        if current == "active" {
            stage = Stage::Active;
            break;
        }
    }
    assert_eq!(stage, Stage::Active, "{:#}", rollouts(app).await);
    let audit = rollouts(app).await;
    let decided = &audit["rollouts"][0];
    assert_eq!(decided["verdict"], "promoted");
    let steps: Vec<(String, String, String)> = decided["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().to_owned(),
                t["to"].as_str().unwrap().to_owned(),
                t["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("candidate", "shadow", "gate_passed"),
        ("shadow", "canary", "no_sign_of_harm"),
        ("canary", "active", "non_inferior"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(steps, expected);
    let pairs = &decided["stats"]["pairs"];
    assert!(pairs["both_right"].as_u64().unwrap() + pairs["both_wrong"].as_u64().unwrap() >= 20);
    // Every user is served the promoted version.
    until("the service serves v2 to everyone", || async {
        predict(app, &users[1], 1).await["model_version"] == 2
            && predict(app, &users[2], 1).await["model_version"] == 2
    })
    .await;
}

/// Outcomes where only the active version is right, stepped straight into the controller.
fn worse(user: usize) -> Outcome {
    Outcome {
        user: format!("user-{user}"),
        requested: true,
        active_correct: Some(true),
        candidate_correct: Some(false),
    }
}

#[tokio::test]
async fn a_worse_candidate_is_rolled_back_and_admins_steer_and_read_the_audit() {
    let rig = rig().await;
    let app = &rig.app;
    assert_eq!(register(app, "mnist-mlp", "job-a").await.status(), 201);
    assert_eq!(register(app, "mnist-mlp", "job-b").await.status(), 201);
    assert_eq!(register(app, "mnist-mlp", "job-c").await.status(), 201);
    // The active version cannot be its own candidate.
    assert_error(start(app, 1, 1, "job-z").await, 422, "validation_failed").await;
    // The gate compared with a version that is not active: 409.
    let stale = start(app, 2, 7, "job-a").await;
    assert_error(stale, 409, "active_version_changed").await;
    let first: Value = start(app, 2, 1, "job-a").await.json().await.unwrap();
    let first_id = first["id"].as_str().unwrap().to_owned();

    // A pause keeps outcomes but decides nothing; a resume takes them in order.
    let act = |id: &str, action: &str| {
        app.client
            .post(app.at(&format!("/admin/models/mnist-mlp/rollouts/{id}/{action}")))
            .bearer_auth(&app.admin)
            .send()
    };
    let paused: Value = act(&first_id, "pause").await.unwrap().json().await.unwrap();
    assert_eq!(paused["paused"], true);
    let labelled = |n: i64, outcome: Outcome| Labelled {
        rollout_id: first_id.clone(),
        feedback_id: n,
        outcome,
    };
    for n in 0..30 {
        let taken = rig
            .controller
            .observe("mnist-mlp", labelled(n, worse(n as usize)))
            .await
            .unwrap();
        assert_eq!(taken, None, "paused: kept, not decided on");
    }
    let resumed: Value = act(&first_id, "resume")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["verdict"], "rolled_back", "{resumed:#}");
    assert_eq!(resumed["stage"], "rolled_back");
    let last = resumed["transitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "inferior");
    assert_eq!(last["actor"], Value::Null);
    assert!(last["stats"]["difference"]["upper"].as_f64().unwrap() < -0.2);
    // A rollout that ended takes no more outcomes and no more actions.
    let late = rig
        .controller
        .observe("mnist-mlp", labelled(99, worse(99)))
        .await
        .unwrap();
    assert_eq!(late, None);
    assert_error(
        act(&first_id, "promote").await.unwrap(),
        409,
        "rollout_closed",
    )
    .await;
    assert_error(act("nope", "abort").await.unwrap(), 404, "not_found").await;
    assert_error(act(&first_id, "dance").await.unwrap(), 404, "not_found").await;
    // A user's token does not steer rollouts.
    let r = app
        .client
        .post(app.at(&format!(
            "/admin/models/mnist-mlp/rollouts/{first_id}/abort"
        )))
        .bearer_auth(&app.user)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;

    // A newer candidate supersedes an open rollout; an admin aborts the newest.
    let second: Value = start(app, 3, 1, "job-b").await.json().await.unwrap();
    let third: Value = start(app, 4, 1, "job-c").await.json().await.unwrap();
    let listed = rollouts(app).await;
    let by_id = |id: &Value| {
        listed["rollouts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == *id)
            .unwrap()
            .clone()
    };
    let superseded = by_id(&second["id"]);
    assert_eq!(superseded["verdict"], "inconclusive");
    let reason = &superseded["transitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["reason"];
    assert_eq!(reason, "superseded");
    let third_id = third["id"].as_str().unwrap().to_owned();
    let aborted: Value = act(&third_id, "abort").await.unwrap().json().await.unwrap();
    assert_eq!(aborted["verdict"], "rolled_back");
    let abort_row = aborted["transitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (abort_row["reason"].as_str(), abort_row["actor"].as_str()),
        (Some("aborted"), Some("boss"))
    );
    // Nothing was promoted: version 1 serves everyone, the candidates are rolled back.
    let list = models(app).await;
    let mlp = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "mnist-mlp")
        .unwrap()
        .clone();
    assert_eq!(mlp["active_version"], 1);
    for v in mlp["versions"].as_array().unwrap() {
        let status = v["status"].as_str().unwrap();
        match v["version"].as_i64().unwrap() {
            1 => assert_eq!((status, v["traffic_share"].as_f64()), ("active", Some(1.0))),
            _ => assert_eq!(
                (status, v["traffic_share"].as_f64()),
                ("rolled_back", Some(0.0))
            ),
        }
    }
}

#[tokio::test]
async fn excluded_labels_leave_an_open_rollout() {
    let rig = rig().await;
    let app = &rig.app;
    assert_eq!(register(app, "mnist-mlp", "job-x").await.status(), 201);
    let started: Value = start(app, 2, 1, "job-x").await.json().await.unwrap();
    let id = started["id"].as_str().unwrap().to_owned();
    let take = |n: i64, user: &str| Labelled {
        rollout_id: id.clone(),
        feedback_id: n,
        outcome: Outcome {
            user: user.to_owned(),
            requested: true,
            active_correct: Some(true),
            candidate_correct: Some(true),
        },
    };
    for n in 0..5 {
        let user = if n < 3 { "mallory" } else { "honest" };
        rig.controller
            .observe("mnist-mlp", take(n, user))
            .await
            .unwrap();
    }
    // The same feedback twice counts once.
    assert_eq!(
        rig.controller
            .observe("mnist-mlp", take(4, "honest"))
            .await
            .unwrap(),
        None
    );
    let pairs = |v: &Value| {
        v["rollouts"][0]["stats"]["pairs"]["both_right"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(pairs(&rollouts(app).await), 5);
    let excluded = Envelope::of(&Event::LabelsExcluded(contracts::events::LabelsExcluded {
        user_id: "mallory".into(),
        excluded_by: "boss".into(),
        labels: 3,
    }));
    predict_svc::outcomes::take(&rig.controller, &rig.store, &excluded)
        .await
        .unwrap();
    assert_eq!(pairs(&rollouts(app).await), 2);
    // Mallory's later labels are not taken.
    assert_eq!(
        rig.controller
            .observe("mnist-mlp", take(9, "mallory"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(pairs(&rollouts(app).await), 2);
    // The served prediction of a rollout says which version answered.
    let answer = predict(app, &user(&rig.key, "z"), 3).await;
    let stored = rig
        .store
        .get(answer["prediction_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let rollout = stored.rollout.unwrap();
    assert_eq!(
        (rollout.rollout_id.as_str(), rollout.served),
        (id.as_str(), Arm::Active)
    );
}
