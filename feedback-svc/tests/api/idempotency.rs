use crate::helpers::{expect_error, spawn_app};
use common::jwt::Role;
use serde_json::{Value, json};

#[tokio::test]
async fn a_retried_post_gets_the_first_answer_and_stores_one_row() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let body = json!({"prediction": 8, "correct": false, "label": 3, "comment": "era un 3"});
    let mut answers = Vec::new();
    for attempt in 0..3 {
        let resp = app
            .post_feedback_with_key(&ana, &body, Some("retry-1"))
            .await;
        assert_eq!(resp.status().as_u16(), 201);
        let replayed = resp.headers().get("idempotent-replayed").is_some();
        assert_eq!(replayed, attempt > 0, "attempt {attempt}");
        answers.push(resp.json::<Value>().await.unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0]["msg"], "Feedback submitted successfully");
    assert_eq!(app.feedback_count().await, 1);
    assert_eq!(app.outbox().await.len(), 1, "one event too");

    // The same key for another request is refused, and stores nothing.
    expect_error(
        app.post_feedback_with_key(
            &ana,
            &json!({"prediction": 8, "correct": true}),
            Some("retry-1"),
        )
        .await,
        422,
        "idempotency_key_reused",
    )
    .await;
    // Keys are per user; another key is another feedback.
    let bob = app.user("bob", Role::User);
    let resp = app
        .post_feedback_with_key(&bob, &body, Some("retry-1"))
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let bobs: Value = resp.json().await.unwrap();
    assert_ne!(bobs["id"], answers[0]["id"]);
    let resp = app
        .post_feedback_with_key(&ana, &body, Some("retry-2"))
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    // Without a key every post is new.
    app.feedback_ok(&ana, body.clone()).await;
    app.feedback_ok(&ana, body).await;
    assert_eq!(app.feedback_count().await, 5);
}

#[tokio::test]
async fn concurrent_retries_store_one_row() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let body = json!({"prediction": 1, "correct": true});
    let attempts = (0..8).map(|_| app.post_feedback_with_key(&ana, &body, Some("same-click")));
    let responses = futures_util::future::join_all(attempts).await;
    let mut ids = Vec::new();
    for resp in responses {
        assert_eq!(resp.status().as_u16(), 201);
        let answer: Value = resp.json().await.unwrap();
        ids.push(answer["id"].clone());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(app.feedback_count().await, 1);
    assert_eq!(app.outbox().await.len(), 1);
}
