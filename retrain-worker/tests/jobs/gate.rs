use crate::helpers::*;
use contracts::jobs::JobState;
use retrain_worker::worker::Processed;
use serde_json::json;
use std::time::Duration;

fn finished(job_id: &str, state: JobState) -> Processed {
    Processed::Finished {
        job_id: job_id.to_owned(),
        state,
    }
}

#[tokio::test]
async fn a_worse_candidate_is_registered_but_rejected_and_clients_keep_the_active_version() {
    let cluster = Cluster::start().await;
    let mut events = cluster.events().await;
    let worker = cluster.stepper("gate", &[]).await;
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();
    assert_eq!(cluster.predict_v1(png.clone()).await["model_version"], 1);

    // One epoch from scratch on 300 digits cannot match a model trained on 60,000.
    let posted = cluster
        .post_job(
            &worker.url,
            json!({"model": "mnist-mlp", "from_scratch": true, "epochs": 1, "mnist_sample": 300}),
        )
        .await;
    let id = posted["job_id"].as_str().unwrap();
    let step = worker.worker.process_next().await.unwrap();
    assert_eq!(step, finished(id, JobState::Rejected));
    let job = cluster.job(&worker.url, id).await;
    assert_eq!(job["state"], "rejected", "{job}");
    assert_eq!(job["attempts"], 1);
    let reason = job["reason"].as_str().unwrap();
    let candidate = job["metrics"]["candidate"]["mnist"]["accuracy"]
        .as_f64()
        .unwrap();
    let active = job["metrics"]["active"]["scores"]["mnist"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(candidate + 0.005 < active, "{candidate} vs {active}");
    assert!(active > 0.95, "{active}");
    // Both scores are in the reason, as percentages.
    assert!(
        reason.contains(&format!("{:.2} %", candidate * 100.0))
            && reason.contains(&format!("{:.2} %", active * 100.0)),
        "{reason}"
    );
    assert_eq!(job["metrics"]["active"]["version"], 1);
    assert_eq!(job["metrics"]["training"]["mnist_digits"], 300);
    assert_eq!(job["promoted"], false);

    // Registered for the record, not promoted: clients are still served version 1.
    let registry = cluster.registry("mnist-mlp").await;
    assert_eq!(registry["active_version"], 1, "{registry}");
    assert_eq!(registry["served_version"], 1);
    let v2 = &registry["versions"][0];
    assert_eq!(v2["version"], job["model_version"]);
    assert_eq!(v2["status"], "rejected");
    assert_eq!(v2["traffic_share"], 0.0);
    assert_eq!(v2["source_job_id"], id);
    assert_eq!(cluster.predict_v1(png).await["model_version"], 1);

    // Admins were told: progress per epoch, then the end with the reason.
    let seen = collect_events(&mut events, Duration::from_secs(5), |e| {
        e.kind == "retrain.finished"
    })
    .await;
    let epochs: Vec<_> = seen
        .iter()
        .filter(|e| e.kind == "retrain.progress" && e.data["stage"] == "training")
        .collect();
    assert_eq!(epochs.len(), 1, "{seen:?}");
    assert_eq!(epochs[0].data["epoch"], 1);
    assert_eq!(epochs[0].data["epochs"], 1);
    assert_eq!(epochs[0].data["job_id"], id);
    assert!(epochs[0].data["loss"].as_f64().unwrap() > 0.0);
    assert!(epochs[0].data["val_accuracy"].as_f64().unwrap() > 0.1);
    assert!(epochs[0].data["eta_seconds"].as_f64().is_some());
    let last = seen.last().unwrap();
    assert_eq!(last.kind, "retrain.finished");
    assert_eq!(last.data["state"], "rejected");
    assert_eq!(last.data["reason"], reason);
    assert_eq!(worker.worker.process_next().await.unwrap(), Processed::Idle);
    worker.api.stop().await;
}

#[tokio::test]
async fn concurrent_jobs_queue_and_run_one_after_another_in_order() {
    let cluster = Cluster::start().await;
    let worker = cluster.stepper("order", &[]).await;
    let body = json!({"model": "mnist-mlp", "epochs": 1, "mnist_sample": 1000});
    // A first request fetches the signing keys, so the three below are not held up unevenly.
    let warm = cluster
        .client
        .get(format!("{}/admin/retrain", worker.url))
        .bearer_auth(&cluster.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    let (a, b, c) = tokio::join!(
        cluster.post_job(&worker.url, body.clone()),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cluster.post_job(&worker.url, body.clone()).await
        },
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            cluster.post_job(&worker.url, body.clone()).await
        },
    );
    let mut finished = Vec::new();
    // The worker takes them in the order they were queued.
    for posted in [&a, &b, &c] {
        let id = posted["job_id"].as_str().unwrap();
        match worker.worker.process_next().await.unwrap() {
            Processed::Finished { job_id, state } => {
                assert_eq!(job_id, id);
                assert_ne!(state, JobState::Failed);
            }
            other => panic!("{other:?}"),
        }
        finished.push(cluster.job(&worker.url, id).await);
    }
    // One at a time, in the order they were queued: each started after the previous ended.
    for pair in finished.windows(2) {
        let (previous, next) = (&pair[0], &pair[1]);
        assert!(
            previous["finished_at"].as_str().unwrap() <= next["started_at"].as_str().unwrap(),
            "{previous}\n{next}"
        );
    }
    // One version each, numbered in job order.
    let versions: Vec<i64> = finished
        .iter()
        .map(|j| j["model_version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 3, 4]);
    worker.api.stop().await;
}

#[tokio::test]
async fn a_candidate_is_not_promoted_over_a_version_promoted_while_it_trained() {
    let cluster = Cluster::start().await;
    // Any candidate passes this gate: what stops it here is the change of active version.
    let mut events = cluster.events().await;
    let worker = cluster
        .stepper("late", &[("RETRAIN_TOLERANCE_POINTS", "100")])
        .await;
    let posted = cluster
        .post_job(
            &worker.url,
            json!({"model": "mnist-mlp", "epochs": 4, "mnist_sample": 6000}),
        )
        .await;
    let id = posted["job_id"].as_str().unwrap();
    let stepping = worker.worker.clone();
    let step = tokio::spawn(async move { stepping.process_next().await.unwrap() });
    let seen = collect_events(&mut events, Duration::from_secs(120), |e| {
        e.kind == "retrain.progress" && e.data["stage"] == "training"
    })
    .await;
    assert!(
        seen.last().is_some_and(|e| e.data["stage"] == "training"),
        "{seen:?}"
    );
    // Meanwhile another version becomes active (an admin, or another worker's job).
    let manual = cluster.register_copy("mnist-mlp", "manual").await;
    cluster.promote("mnist-mlp", manual).await;
    assert_eq!(step.await.unwrap(), finished(id, JobState::Rejected));
    let job = cluster.job(&worker.url, id).await;
    assert_eq!(job["state"], "rejected", "{job}");
    let reason = job["reason"].as_str().unwrap();
    assert!(reason.contains("active version changed"), "{reason}");
    let registry = cluster.registry("mnist-mlp").await;
    assert_eq!(registry["active_version"], manual, "{registry}");
    worker.api.stop().await;
}

#[tokio::test]
async fn a_job_whose_predict_svc_cannot_be_reached_fails_with_the_reason() {
    let cluster = Cluster::start().await;
    let worker = cluster
        .stepper(
            "nowhere",
            &[("PREDICT_INTERNAL_URL", "http://127.0.0.1:9/nowhere")],
        )
        .await;
    assert_eq!(worker.worker.process_next().await.unwrap(), Processed::Idle);
    let posted = cluster
        .post_job(&worker.url, json!({"model": "mnist-mlp", "epochs": 1}))
        .await;
    let id = posted["job_id"].as_str().unwrap();
    let step = worker.worker.process_next().await.unwrap();
    assert_eq!(step, finished(id, JobState::Failed));
    let job = cluster.job(&worker.url, id).await;
    assert_eq!(job["state"], "failed");
    assert!(
        job["reason"].as_str().unwrap().contains("predict-svc"),
        "{job}"
    );
    worker.api.stop().await;
}
