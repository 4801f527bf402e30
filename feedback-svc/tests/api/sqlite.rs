//! The same service and queries on SQLite (the all-in-one mode's backend).

use crate::helpers::{Options, Store, next_event, spawn_app_with};
use common::jwt::Role;
use serde_json::{Value, json};

#[tokio::test]
async fn feedback_report_list_and_outbox_work_on_sqlite() {
    let store = Store::sqlite();
    let mut options = Options::new(store.clone());
    options.relay_enabled = false;
    let app = spawn_app_with(options).await;
    let Store::Sqlite(dir) = &store else {
        unreachable!()
    };
    assert!(dir.0.join("feedback.db").exists());
    let ana = app.user("ana", Role::User);
    let admin = app.user("boss", Role::Admin);

    let pid = app.predict.serve(&ana, "mnist-cnn", 2, 8);
    app.feedback_ok(
        &ana,
        json!({"prediction": 8, "correct": false, "label": 3, "prediction_id": pid}),
    )
    .await;
    app.feedback_ok(&ana, json!({"prediction": 1, "correct": true}))
        .await;
    // Idempotency holds on SQLite too, also for concurrent retries.
    let body = json!({"prediction": 2, "correct": true});
    let retries = (0..4).map(|_| app.post_feedback_with_key(&ana, &body, Some("k")));
    let mut ids = Vec::new();
    for resp in futures_util::future::join_all(retries).await {
        assert_eq!(resp.status().as_u16(), 201);
        ids.push(resp.json::<Value>().await.unwrap()["id"].clone());
    }
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(app.feedback_count().await, 3);

    let r = app.report(&admin).await;
    assert_eq!(r["total_feedback"], 3);
    assert_eq!(r["correct_feedback"], 2);
    assert_eq!(r["incorrect_feedback"], 1);
    assert!((r["accuracy_percentage"].as_f64().unwrap() - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(r["confusion_matrix"][3][8], 1);
    assert_eq!(r["daily"][29]["total_feedback"], 3);
    let cnn = r["by_model_version"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["model"] == "mnist-cnn")
        .unwrap()
        .clone();
    assert_eq!(cnn["model_version"], 2);
    assert_eq!(cnn["accuracy_percentage"], 0.0);

    let list = app
        .get_ok(
            "/admin/feedback?correct=true&per_page=1&page=2",
            Some(&admin.token),
        )
        .await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["prediction"], 1);
    let labelled = app
        .get_ok("/internal/feedback/labelled", Some(&app.service))
        .await;
    assert_eq!(labelled["items"].as_array().unwrap().len(), 1);

    // The outbox's claim runs on SQLite as well.
    let mut events = app.subscribe().await;
    let relay = app.relay(2);
    assert_eq!(relay.process_batch().await.unwrap(), 2);
    assert_eq!(relay.process_batch().await.unwrap(), 1);
    assert_eq!(relay.process_batch().await.unwrap(), 0);
    for _ in 0..3 {
        next_event(&mut events, 5).await.expect("an event");
    }
    assert_eq!(app.history().await.len(), 3);
}
