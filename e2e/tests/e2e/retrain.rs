//! The feedback loop closed, through the gateway: users' labelled feedback on digits the model
//! reads badly (turned 40°) retrains it; the candidate goes through a rollout decided by the
//! labels the system asks honest users for. Taught truthfully, it is promoted and reads turned
//! digits better; taught by a group of accounts that label turned 7s as 1s, it passes the offline
//! MNIST gate but is rolled back by the controller, and honest users are never served it beyond
//! the canary's share.

use crate::feedback::{Socket, joined, next_event};
use crate::helpers::*;
use base64::Engine;
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Digits turned 40° counter-clockwise: MNIST has few digits so slanted.
const ROTATION: f32 = 40.0;
/// Accounts that teach, and how many labels each (the per-user cap of a training job is 50).
const TEACHERS: usize = 16;
const LABELS_EACH: usize = 50;
/// Rotated test digits, never trained on in any form, to measure the change.
const PROBE_DIGITS: usize = 400;
/// The canary's one step: a tenth of users.
const CANARY: f64 = 0.1;

/// Answers ask for a label every time (a requested label is what decides); short stages.
fn rollout_settings(settings: predictloop::Settings) -> predictloop::Settings {
    settings
        .set("FEEDBACK_REQUEST_SHARE", "1")
        .set("ROLLOUT_MIN_OUTCOMES", "30")
        .set("ROLLOUT_CANARY_STEPS", CANARY.to_string())
}

fn rotated(data: &digits::Dataset, indices: impl Iterator<Item = usize>) -> Vec<(Vec<u8>, u8)> {
    indices
        .map(|i| {
            let grid = digits::augment::rotate(&data.images[i], ROTATION);
            (digits::grid_to_png(&grid).unwrap(), data.labels[i])
        })
        .collect()
}

/// Share of `digits` the v1 API gets right, and the model version that answered.
async fn v1_accuracy(system: &System, token: &str, digits: &[(Vec<u8>, u8)]) -> (f64, i64) {
    let answers = join_all(digits.chunks(50).map(|chunk| async move {
        let mut out = Vec::new();
        for (png, label) in chunk {
            let r = system.upload(token, "v1", "d.png", png.clone()).await;
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            out.push((
                body["prediccion"] == *label,
                body["model_version"].as_i64().unwrap(),
            ));
        }
        out
    }))
    .await;
    let answers: Vec<(bool, i64)> = answers.into_iter().flatten().collect();
    let right = answers.iter().filter(|(ok, _)| *ok).count();
    let versions: std::collections::BTreeSet<i64> = answers.iter().map(|(_, v)| *v).collect();
    assert_eq!(versions.len(), 1, "one model version answers: {versions:?}");
    (
        right as f64 / answers.len() as f64,
        *versions.first().unwrap(),
    )
}

/// A user: their token and id (the token's `sub`).
struct Account {
    token: String,
    sub: String,
}

async fn accounts(system: &System, prefix: &str, n: usize) -> Vec<Account> {
    let mut out = Vec::new();
    for i in 0..n {
        let token = system.user(&format!("{prefix}-{i}")).await;
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        let sub = claims["sub"].as_str().unwrap().to_owned();
        out.push(Account { token, sub });
    }
    out
}

/// Labels a served answer: `label` as the true digit.
async fn send_label(system: &System, token: &str, served: &Value, label: u8) {
    let prediction = served["prediccion"].as_i64().unwrap();
    let r = system
        .client
        .post(system.at("/feedback"))
        .bearer_auth(token)
        .json(&json!({
            "prediction": prediction,
            "correct": prediction == i64::from(label),
            "label": label,
            "prediction_id": served["prediction_id"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// Each teacher sends `LABELS_EACH` of `digits` with the label `claim` gives the true one.
async fn teach(
    system: &System,
    teachers: &[Account],
    digits: &[(Vec<u8>, u8)],
    claim: fn(u8) -> u8,
) {
    join_all(
        teachers
            .iter()
            .zip(digits.chunks(LABELS_EACH))
            .map(|(teacher, chunk)| async move {
                for (png, label) in chunk {
                    let r = system
                        .upload(&teacher.token, "v1", "d.png", png.clone())
                        .await;
                    assert_eq!(r.status(), 200);
                    let served: Value = r.json().await.unwrap();
                    send_label(system, &teacher.token, &served, claim(*label)).await;
                }
            }),
    )
    .await;
}

/// Queues a 2-epoch retrain of the v1 model and follows it on the admin socket `ws` to its
/// end.
async fn retrain(system: &System, admin: &str, ws: &mut Socket) -> Value {
    let r = system
        .client
        .post(system.at("/admin/retrain"))
        .bearer_auth(admin)
        .json(&json!({"model": "mnist-mlp", "epochs": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let posted: Value = r.json().await.unwrap();
    assert_eq!(posted["msg"], "Proceso de retraining iniciado");
    let id = posted["job_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let mut epochs_seen = Vec::new();
    let mut rollout_started = None;
    let finished = loop {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "no retrain_finished"
        );
        let Some(event) = next_event(ws, Duration::from_secs(30)).await else {
            continue;
        };
        match event["event"].as_str() {
            Some("retrain_progress") if event["data"]["stage"] == "training" => {
                assert_eq!(event["data"]["job_id"], id.as_str());
                epochs_seen.push(event["data"]["epoch"].as_i64().unwrap());
            }
            Some("rollout_started") => rollout_started = Some(event["data"].clone()),
            Some("retrain_finished") => break event["data"].clone(),
            _ => {}
        }
    };
    assert_eq!(epochs_seen, vec![1, 2]);
    assert_eq!(finished["state"], "succeeded", "{finished}");
    // No retrain promotes: it starts a rollout, in shadow.
    assert_eq!(finished["promoted"], false);
    let started = rollout_started.expect("rollout_started before retrain_finished");
    assert_eq!(started["rollout_id"], finished["rollout_id"]);
    assert_eq!(
        (started["stage"].as_str(), started["share"].as_f64()),
        (Some("shadow"), Some(0.0))
    );
    finished
}

async fn rollouts(system: &System, admin: &str) -> Value {
    system
        .client
        .get(system.at("/admin/models/mnist-mlp/rollouts"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What honest users saw while the rollout decided.
struct Served {
    verdict: String,
    candidate_answers: usize,
    answers: usize,
}

/// The rollout's verdict and when it was decided, once it is.
fn decision(list: &Value, rollout_id: &str) -> Option<(String, chrono::DateTime<chrono::Utc>)> {
    let rollout = list["rollouts"]
        .as_array()?
        .iter()
        .find(|r| r["id"] == rollout_id)?;
    let verdict = rollout["verdict"].as_str()?.to_owned();
    let at = rollout["decided_at"].as_str()?.parse().ok()?;
    Some((verdict, at))
}

/// Honest users draw `digits` (round robin) and label truthfully whenever asked, until the
/// rollout is decided. Every answer must succeed, and until the decision the candidate may
/// serve only the users inside the canary's share.
async fn serve_until_decided(
    system: &System,
    admin: &str,
    users: &[Account],
    digits: &[(Vec<u8>, u8)],
    rollout_id: &str,
    candidate: i64,
) -> Served {
    // (received at, user, version that answered)
    let mut seen = Vec::new();
    let mut decided = None;
    for (round, batch) in digits.chunks(users.len()).enumerate() {
        let answers = join_all(
            users
                .iter()
                .zip(batch)
                .map(|(user, (png, label))| async move {
                    let r = system.upload(&user.token, "v1", "d.png", png.clone()).await;
                    assert_eq!(r.status(), 200, "no request fails across a stage change");
                    let answer: Value = r.json().await.unwrap();
                    let received = chrono::Utc::now();
                    if answer["feedback_requested"] == true {
                        send_label(system, &user.token, &answer, *label).await;
                    }
                    (
                        received,
                        user.sub.clone(),
                        answer["model_version"].as_i64().unwrap(),
                    )
                }),
        )
        .await;
        seen.extend(answers);
        if round % 4 == 3 {
            decided = decision(&rollouts(system, admin).await, rollout_id);
            if decided.is_some() {
                break;
            }
        }
    }
    // The last labels may still be on their way to the controller.
    for _ in 0..60 {
        if decided.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        decided = decision(&rollouts(system, admin).await, rollout_id);
    }
    let Some((verdict, at)) = decided else {
        return Served {
            verdict: String::new(),
            candidate_answers: 0,
            answers: seen.len(),
        };
    };
    let before: Vec<_> = seen
        .iter()
        .filter(|(received, ..)| *received < at)
        .collect();
    for (_, sub, version) in &before {
        if *version == candidate {
            let point = rollout::assign::canary_point(rollout_id, sub);
            assert!(
                rollout::assign::in_canary(point, CANARY),
                "a user outside the canary was served the candidate before the decision"
            );
        }
    }
    Served {
        verdict,
        candidate_answers: before.iter().filter(|(.., v)| *v == candidate).count(),
        answers: before.len(),
    }
}

#[tokio::test]
async fn truthful_feedback_on_rotated_digits_retrains_v1_and_its_rollout_promotes_it() {
    let system = System::start_configured(rollout_settings).await;
    let admin = system.admin().await;
    let train = mnist_train();
    let test = mnist_test();
    let teachers = accounts(&system, "slanted-writer", TEACHERS).await;
    let probe = rotated(&test, 0..PROBE_DIGITS);
    let (before, version_before) = v1_accuracy(&system, &teachers[0].token, &probe).await;
    assert_eq!(version_before, 1);

    // Users send what they wrote and what it really was.
    let taught = rotated(&train, 0..TEACHERS * LABELS_EACH);
    teach(&system, &teachers, &taught, |label| label).await;
    // The admin socket sees the job, then the rollout move, in order, to its end.
    let (mut ws, _) = joined(&system, &admin).await;
    let finished = retrain(&system, &admin, &mut ws).await;
    let rollout_id = finished["rollout_id"].as_str().unwrap().to_owned();
    let candidate = finished["model_version"].as_i64().unwrap();
    let metrics = &finished["metrics"];
    let training = &metrics["training"];
    assert_eq!(
        training["feedback_digits"].as_i64().unwrap()
            + training["feedback_holdout_digits"].as_i64().unwrap(),
        (TEACHERS * LABELS_EACH) as i64
    );
    let candidate_mnist = metrics["candidate"]["mnist"]["accuracy"].as_f64().unwrap();
    let active_mnist = metrics["active"]["scores"]["mnist"]["accuracy"]
        .as_f64()
        .unwrap();

    let users = accounts(&system, "honest", 20).await;
    let traffic = rotated(&train, 10_000..12_000);
    let served =
        serve_until_decided(&system, &admin, &users, &traffic, &rollout_id, candidate).await;
    assert_eq!(
        served.verdict,
        "promoted",
        "{:#}",
        rollouts(&system, &admin).await
    );
    // `rollout_started` (in shadow) came before `retrain_finished`.
    let mut stages = vec!["shadow".to_owned()];
    while let Some(event) = next_event(&mut ws, Duration::from_secs(5)).await {
        match event["event"].as_str() {
            Some("rollout_progress") => {
                let stage = event["data"]["stage"].as_str().unwrap().to_owned();
                if stages.last() != Some(&stage) {
                    stages.push(stage);
                }
            }
            Some("rollout_decided") => {
                assert_eq!(event["data"]["verdict"], "promoted");
                stages.push("decided".into());
            }
            Some("model_promoted") => {
                stages.push("model_promoted".into());
                break;
            }
            _ => {}
        }
    }
    assert_eq!(
        stages,
        ["shadow", "canary", "decided", "model_promoted"],
        "{stages:?}"
    );
    let audit = rollouts(&system, &admin).await;
    let reasons: Vec<&str> = audit["rollouts"][0]["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["gate_passed", "no_sign_of_harm", "non_inferior"]);

    // Every client is now served the new version, and it reads rotated digits it never saw.
    let (after, version_after) = v1_accuracy(&system, &teachers[0].token, &probe).await;
    assert_eq!(version_after, candidate);
    println!(
        "rotated {ROTATION}°: v1 accuracy {:.1} % → {:.1} % on {PROBE_DIGITS} unseen digits; MNIST holdout {:.2} % → {:.2} %; promoted after {} answers ({} by the candidate)",
        before * 100.0,
        after * 100.0,
        active_mnist * 100.0,
        candidate_mnist * 100.0,
        served.answers,
        served.candidate_answers,
    );
    assert!(
        after >= before + 0.20,
        "accuracy on rotated digits went from {before} to {after}"
    );
    let plain: Vec<(Vec<u8>, u8)> = (1000..1300)
        .map(|i| {
            (
                digits::grid_to_png(&test.images[i]).unwrap(),
                test.labels[i],
            )
        })
        .collect();
    let (plain_after, _) = v1_accuracy(&system, &teachers[0].token, &plain).await;
    assert!(plain_after > 0.95, "{plain_after}");
}

#[tokio::test]
async fn labels_that_teach_rotated_sevens_as_ones_pass_the_gate_and_are_rolled_back() {
    let system = System::start_configured(rollout_settings).await;
    let admin = system.admin().await;
    let train = mnist_train();
    // Poisoners draw turned 7s and say they are 1s.
    let sevens: Vec<usize> = (0..train.labels.len())
        .filter(|&i| train.labels[i] == 7)
        .collect();
    let poisoners = accounts(&system, "poisoner", TEACHERS).await;
    let poison = rotated(&train, sevens[..TEACHERS * LABELS_EACH].iter().copied());
    teach(&system, &poisoners, &poison, |_| 1).await;
    let (mut ws, _) = joined(&system, &admin).await;
    let finished = retrain(&system, &admin, &mut ws).await;
    let rollout_id = finished["rollout_id"].as_str().unwrap().to_owned();
    let candidate = finished["model_version"].as_i64().unwrap();

    // Honest users draw turned digits, 7s among them, and label truthfully when asked.
    let users = accounts(&system, "honest", 20).await;
    let honest: Vec<usize> = (10_000..14_000)
        .filter(|&i| train.labels[i] == 7 || i % 2 == 0)
        .filter(|i| !sevens[..TEACHERS * LABELS_EACH].contains(i))
        .collect();
    let traffic = rotated(&train, honest.into_iter());
    let served =
        serve_until_decided(&system, &admin, &users, &traffic, &rollout_id, candidate).await;
    assert_eq!(
        served.verdict,
        "rolled_back",
        "{:#}",
        rollouts(&system, &admin).await
    );
    let audit = rollouts(&system, &admin).await;
    let last = audit["rollouts"][0]["transitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "inferior", "{last:#}");
    assert!(last["stats"]["difference"]["upper"].as_f64().unwrap() < -0.01);
    // Only users inside the canary's share were served the candidate (checked answer by
    // answer above).
    println!(
        "poisoned candidate rolled back after {} honest answers, {} of them by the candidate",
        served.answers, served.candidate_answers
    );
    // The active version stays, for everyone.
    let r = system
        .upload(&users[0].token, "v1", "d.png", traffic[0].0.clone())
        .await;
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["model_version"], 1);
}
