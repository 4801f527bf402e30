//! The feedback loop closed: users' labelled feedback on a kind of digit the model gets wrong
//! retrains it, and the promoted version gets that kind right, through the gateway.

use crate::feedback::{joined, next_event};
use crate::helpers::*;
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Digits turned 40° counter-clockwise: MNIST has few digits so slanted.
const ROTATION: f32 = 40.0;
/// Rotated training digits users send feedback on.
const FEEDBACK_DIGITS: usize = 800;
/// Rotated test digits, never trained on in any form, to measure the change.
const PROBE_DIGITS: usize = 400;

fn rotated(data: &digits::Dataset, range: std::ops::Range<usize>) -> Vec<(Vec<u8>, u8)> {
    range
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

#[tokio::test]
async fn feedback_on_rotated_digits_retrains_v1_to_read_them() {
    let system = System::start().await;
    let admin = system.admin().await;
    let user = system.user("slanted-writer").await;
    let train = mnist_train();
    let test = mnist_test();
    let probe = rotated(&test, 0..PROBE_DIGITS);
    let (before, version_before) = v1_accuracy(&system, &user, &probe).await;
    assert_eq!(version_before, 1);

    // Users who write slanted send what they wrote and what it really was: 50 each, the most
    // one user gives a training job (RETRAIN_MAX_LABELS_PER_USER).
    let taught = rotated(&train, 0..FEEDBACK_DIGITS);
    let sent = join_all(taught.chunks(50).enumerate().map(|(i, chunk)| {
        let system = &system;
        async move {
            let user = &system.user(&format!("slanted-writer-{i}")).await;
            for (png, label) in chunk {
                let served: Value = system
                    .upload(user, "v1", "d.png", png.clone())
                    .await
                    .json()
                    .await
                    .unwrap();
                let prediction = served["prediccion"].as_i64().unwrap();
                let r = system
                    .client
                    .post(system.at("/feedback"))
                    .bearer_auth(user)
                    .json(&json!({
                        "prediction": prediction,
                        "correct": prediction == i64::from(*label),
                        "label": label,
                        "prediction_id": served["prediction_id"],
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }
    }))
    .await;
    assert_eq!(sent.len(), FEEDBACK_DIGITS.div_ceil(50));

    // An admin watches the job live while it runs.
    let (mut ws, _) = joined(&system, &admin).await;
    let r = system
        .client
        .post(system.at("/admin/retrain"))
        .bearer_auth(&admin)
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
    let finished = loop {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "no retrain_finished"
        );
        let Some(event) = next_event(&mut ws, Duration::from_secs(30)).await else {
            continue;
        };
        match event["event"].as_str() {
            Some("retrain_progress") if event["data"]["stage"] == "training" => {
                assert_eq!(event["data"]["job_id"], id.as_str());
                epochs_seen.push(event["data"]["epoch"].as_i64().unwrap());
            }
            Some("retrain_finished") => break event["data"].clone(),
            _ => {}
        }
    };
    assert_eq!(epochs_seen, vec![1, 2]);
    assert_eq!(finished["state"], "succeeded", "{finished}");
    assert_eq!(finished["promoted"], true);

    let job: Value = system
        .client
        .get(system.at(&format!("/admin/retrain/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "succeeded");
    let metrics = &job["metrics"];
    // Every label trains (no user is over the cap); no admin confirmed any, so MNIST alone
    // judges.
    let training = &metrics["training"];
    assert_eq!(
        training["feedback_digits"], FEEDBACK_DIGITS as i64,
        "{training}"
    );
    assert_eq!(training["feedback_holdout_digits"], 0);
    assert_eq!(training["feedback_capped"], 0);
    // MNIST stays within the tolerance.
    let candidate_mnist = metrics["candidate"]["mnist"]["accuracy"].as_f64().unwrap();
    let active_mnist = metrics["active"]["scores"]["mnist"]["accuracy"]
        .as_f64()
        .unwrap();
    let tolerance = metrics["gate"]["tolerance_points"].as_f64().unwrap() / 100.0;
    assert!(
        candidate_mnist >= active_mnist - tolerance,
        "{candidate_mnist} vs {active_mnist}"
    );

    // Every client is now served the new version, and it reads rotated digits it never saw.
    let (after, version_after) = v1_accuracy(&system, &user, &probe).await;
    assert_eq!(version_after, job["model_version"].as_i64().unwrap());
    println!(
        "rotated {ROTATION}°: v1 accuracy {:.1} % → {:.1} % on {PROBE_DIGITS} unseen digits; MNIST holdout {:.2} % → {:.2} %",
        before * 100.0,
        after * 100.0,
        active_mnist * 100.0,
        candidate_mnist * 100.0
    );
    assert!(
        after >= before + 0.20,
        "accuracy on rotated digits went from {before} to {after}"
    );
    // Plain digits are still read as well as before through the gateway.
    let plain: Vec<(Vec<u8>, u8)> = (1000..1300)
        .map(|i| {
            (
                digits::grid_to_png(&test.images[i]).unwrap(),
                test.labels[i],
            )
        })
        .collect();
    let (plain_after, _) = v1_accuracy(&system, &user, &plain).await;
    assert!(plain_after > 0.95, "{plain_after}");
}
