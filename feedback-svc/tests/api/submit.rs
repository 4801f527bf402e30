use crate::helpers::{Options, Store, expect_error, input_of, spawn_app, spawn_app_with};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::jwt::Role;
use serde_json::{Value, json};

#[tokio::test]
async fn the_seed_body_is_stored_and_answered_201_with_an_id() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let admin = app.user("boss", Role::Admin);
    let resp = app
        .post_feedback(
            &ana,
            &json!({"prediction": 7, "correct": true, "comment": "bien"}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["msg"], "Feedback submitted successfully");
    let id = body["id"].as_i64().unwrap();
    // Comment may be left out or null.
    let second = app
        .feedback_ok(
            &ana,
            json!({"prediction": 2, "correct": false, "comment": null}),
        )
        .await;
    assert!(second > id);

    let list = app.get_ok("/admin/feedback", Some(&admin.token)).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let first = items.iter().find(|i| i["id"] == id).unwrap();
    assert_eq!(first["username"], "ana");
    assert_eq!(first["user_id"], ana.sub.as_str());
    assert_eq!(first["prediction"], 7);
    assert_eq!(first["correct"], true);
    assert_eq!(
        first["label"], 7,
        "correct means the label is the prediction"
    );
    assert_eq!(first["comment"], "bien");
    assert!(first["prediction_id"].is_null());
    let ts = first["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    let other = items.iter().find(|i| i["id"] == second).unwrap();
    assert_eq!(other["comment"], "");
    assert!(other["label"].is_null());
}

#[tokio::test]
async fn linked_feedback_keeps_the_predictions_input_model_and_version() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let pid = app.predict.serve(&ana, "mnist-cnn", 3, 5);
    let id = app
        .feedback_ok(
            &ana,
            json!({"prediction": 5, "correct": false, "label": 6, "prediction_id": pid}),
        )
        .await;
    let labelled = app
        .get_ok("/internal/feedback/labelled", Some(&app.service))
        .await;
    let items = labelled["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id);
    assert_eq!(items[0]["label"], 6);
    assert_eq!(items[0]["model"], "mnist-cnn");
    assert_eq!(items[0]["model_version"], 3);
    let input = STANDARD
        .decode(items[0]["input"].as_str().unwrap())
        .unwrap();
    assert_eq!(input, input_of(&pid));

    let admin = app.user("boss", Role::Admin);
    let shown = app
        .get_ok(&format!("/admin/feedback/{id}"), Some(&admin.token))
        .await;
    assert_eq!(shown["prediction_id"], pid.as_str());
    assert!(
        shown.get("input").is_none(),
        "no input bytes in lists: {shown}"
    );
}

#[tokio::test]
async fn every_malformed_body_has_its_status() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    // The seed's 400 for a missing `prediction` or `correct`.
    for body in [
        json!({"correct": true}),
        json!({"prediction": 3}),
        json!({"prediction": null, "correct": false}),
        json!({"comment": "nada"}),
    ] {
        let err = expect_error(app.post_feedback(&ana, &body).await, 400, "missing_field").await;
        assert_eq!(err.msg, "Prediction and correct flag required");
    }
    for body in [
        json!({"prediction": "3", "correct": true}),
        json!({"prediction": 3.5, "correct": true}),
        json!({"prediction": 3, "correct": "true"}),
        json!({"prediction": 3, "correct": 1}),
        json!({"prediction": 3, "correct": true, "comment": ["x"]}),
        json!({"prediction": 3, "correct": false, "label": "4"}),
        json!({"prediction": 3, "correct": true, "prediction_id": 12}),
        json!({"prediction": 3, "correct": true, "prediction_id": "../../admin"}),
    ] {
        expect_error(app.post_feedback(&ana, &body).await, 422, "invalid_field").await;
    }
    // Digits out of range.
    for body in [
        json!({"prediction": 10, "correct": true}),
        json!({"prediction": -1, "correct": true}),
        json!({"prediction": 3, "correct": false, "label": 10}),
        json!({"prediction": 3, "correct": false, "label": -2}),
    ] {
        expect_error(app.post_feedback(&ana, &body).await, 422, "invalid_field").await;
    }
    // A label that contradicts `correct`.
    for body in [
        json!({"prediction": 3, "correct": false, "label": 3}),
        json!({"prediction": 3, "correct": true, "label": 4}),
    ] {
        expect_error(app.post_feedback(&ana, &body).await, 422, "invalid_field").await;
    }
    // A comment of 2,000 characters is fine, one more is not (characters, not bytes).
    let longest = "ñ".repeat(2_000);
    app.feedback_ok(
        &ana,
        json!({"prediction": 3, "correct": true, "comment": longest}),
    )
    .await;
    let too_long = "ñ".repeat(2_001);
    expect_error(
        app.post_feedback(
            &ana,
            &json!({"prediction": 3, "correct": true, "comment": too_long}),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    // Not JSON, not an object, not sent as JSON.
    let raw = |content_type: &'static str, body: &'static str| {
        app.client
            .post(app.url("/feedback"))
            .bearer_auth(&ana.token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    expect_error(
        raw("application/json", "{nope").await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    expect_error(
        raw("application/json", "[1, true]").await.unwrap(),
        400,
        "invalid_body",
    )
    .await;
    expect_error(
        raw("application/json", "7").await.unwrap(),
        400,
        "invalid_body",
    )
    .await;
    expect_error(
        raw("text/plain", r#"{"prediction": 1, "correct": true}"#)
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    // A malformed idempotency key.
    expect_error(
        app.post_feedback_with_key(
            &ana,
            &json!({"prediction": 1, "correct": true}),
            Some("with space"),
        )
        .await,
        400,
        "invalid_idempotency_key",
    )
    .await;
    // Only the one valid feedback was stored.
    assert_eq!(app.feedback_count().await, 1);
    assert_eq!(app.outbox().await.len(), 1);
}

#[tokio::test]
async fn a_prediction_id_must_exist_belong_to_the_caller_and_match() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let bob = app.user("bob", Role::User);
    let anas = app.predict.serve(&ana, "mnist-mlp", 1, 4);
    let unknown = uuid::Uuid::now_v7().to_string();
    expect_error(
        app.post_feedback(
            &ana,
            &json!({"prediction": 4, "correct": true, "prediction_id": unknown}),
        )
        .await,
        422,
        "unknown_prediction",
    )
    .await;
    // Someone else's prediction looks exactly like an unknown one.
    expect_error(
        app.post_feedback(
            &bob,
            &json!({"prediction": 4, "correct": true, "prediction_id": anas}),
        )
        .await,
        422,
        "unknown_prediction",
    )
    .await;
    let err = expect_error(
        app.post_feedback(
            &ana,
            &json!({"prediction": 9, "correct": false, "label": 4, "prediction_id": anas}),
        )
        .await,
        422,
        "prediction_mismatch",
    )
    .await;
    assert!(
        err.msg.contains('4') && err.msg.contains('9'),
        "{}",
        err.msg
    );
    assert_eq!(app.feedback_count().await, 0);
    app.feedback_ok(
        &ana,
        json!({"prediction": 4, "correct": true, "prediction_id": anas}),
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_predict_service_is_503_not_500() {
    let mut options = Options::new(Store::postgres());
    options.predict_url = Some("http://127.0.0.1:1".into());
    let app = spawn_app_with(options).await;
    let ana = app.user("ana", Role::User);
    expect_error(
        app.post_feedback(
            &ana,
            &json!({"prediction": 4, "correct": true, "prediction_id": "0192-abc"}),
        )
        .await,
        503,
        "prediction_service_unavailable",
    )
    .await;
    // Feedback that names no prediction does not need it.
    app.feedback_ok(&ana, json!({"prediction": 4, "correct": true}))
        .await;
}

#[tokio::test]
async fn tokens_and_roles_are_enforced() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let body = json!({"prediction": 1, "correct": true});
    let resp = app
        .client
        .post(app.url("/feedback"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "missing_token").await;
    let resp = app
        .client
        .post(app.url("/feedback"))
        .bearer_auth("not.a.token")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "invalid_token").await;
    for path in ["/admin/report", "/admin/feedback", "/admin/feedback/1"] {
        expect_error(app.get(path, None).await, 401, "missing_token").await;
        expect_error(app.get(path, Some(&ana.token)).await, 403, "forbidden").await;
    }
    assert_eq!(app.feedback_count().await, 0);
}
