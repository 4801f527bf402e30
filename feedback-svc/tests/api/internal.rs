use crate::helpers::{expect_error, input_of, spawn_app};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::jwt::Role;
use serde_json::json;

#[tokio::test]
async fn labelled_feedback_with_inputs_pages_by_cursor() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let mut expected = Vec::new();
    for digit in 0..5u8 {
        let pid = app.predict.serve(&ana, "mnist-mlp", 1, digit);
        let body = if digit % 2 == 0 {
            json!({"prediction": digit, "correct": true, "prediction_id": pid})
        } else {
            json!({"prediction": digit, "correct": false, "label": (digit + 1) % 10, "prediction_id": pid})
        };
        let id = app.feedback_ok(&ana, body).await;
        expected.push((id, pid));
        // Not trainable: no input, or no label.
        app.feedback_ok(&ana, json!({"prediction": digit, "correct": true}))
            .await;
        let pid = app.predict.serve(&ana, "mnist-mlp", 1, digit);
        app.feedback_ok(
            &ana,
            json!({"prediction": digit, "correct": false, "prediction_id": pid}),
        )
        .await;
    }

    let mut cursor = 0;
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let page = app
            .get_ok(
                &format!("/internal/feedback/labelled?after={cursor}&limit=2"),
                Some(&app.service),
            )
            .await;
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            assert_eq!(page["has_more"], false);
            assert_eq!(page["next_cursor"], cursor);
            break;
        }
        pages += 1;
        for item in &items {
            let input = STANDARD.decode(item["input"].as_str().unwrap()).unwrap();
            assert_eq!(input.len(), 784);
            assert_eq!(item["model"], "mnist-mlp");
            assert_eq!(item["model_version"], 1);
            assert!(item["label"].is_i64());
            assert!(item["created_at"].is_string());
            got.push((item["id"].as_i64().unwrap(), input));
        }
        cursor = page["next_cursor"].as_i64().unwrap();
    }
    assert_eq!(pages, 3);
    assert_eq!(got.len(), 5);
    for ((id, input), (expected_id, pid)) in got.iter().zip(&expected) {
        assert_eq!(id, expected_id);
        assert_eq!(*input, input_of(pid));
    }
    for bad in ["?limit=0", "?limit=1001", "?after=-1", "?after=x"] {
        expect_error(
            app.get(
                &format!("/internal/feedback/labelled{bad}"),
                Some(&app.service),
            )
            .await,
            400,
            "invalid_query",
        )
        .await;
    }
}

#[tokio::test]
async fn labelled_feedback_needs_a_service_token_with_its_scope_on_the_management_port() {
    let app = spawn_app().await;
    let path = "/internal/feedback/labelled";
    let ana = app.user("ana", Role::User);
    let boss = app.user("boss", Role::Admin);
    expect_error(app.get(path, None).await, 401, "missing_token").await;
    expect_error(app.get(path, Some("not-a-jwt")).await, 401, "invalid_token").await;
    for token in [&ana.token, &boss.token] {
        expect_error(app.get(path, Some(token)).await, 403, "forbidden").await;
    }
    let wrong_scope = app.service_token(&[common::service_auth::scopes::PREDICTIONS_READ]);
    expect_error(app.get(path, Some(&wrong_scope)).await, 403, "forbidden").await;
    app.get_ok(path, Some(&app.service)).await;
    // The public port has neither /internal/ nor /metrics; the management port has no public
    // route.
    let public = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(&app.service)
        .send()
        .await
        .unwrap();
    expect_error(public, 404, "not_found").await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    expect_error(metrics, 404, "not_found").await;
    let encoded = app
        .client
        .get(format!("{}/%69nternal/feedback/labelled", app.address))
        .bearer_auth(&app.service)
        .send()
        .await
        .unwrap();
    assert_eq!(encoded.status(), 404);
    assert_eq!(app.get("/metrics", None).await.status(), 200);
    let report = app
        .client
        .get(format!("{}/admin/report", app.management))
        .bearer_auth(&boss.token)
        .send()
        .await
        .unwrap();
    expect_error(report, 404, "not_found").await;
}
