//! Liveness, readiness and the JSON 404.

use crate::helpers::{expect_error, spawn_app};

#[tokio::test]
async fn health_answers_the_seed_body() {
    let app = spawn_app().await;
    // Port 0 was configured: a real port was picked.
    assert_ne!(app.port, 0);
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn ready_reports_the_database_and_turns_503_when_it_goes_away() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");

    // Drop the service's database under it.
    let url = app.store.url();
    let (base, name) = url.rsplit_once('/').unwrap();
    let admin_url = format!("{base}/postgres");
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || common::testing::drop_database(&admin_url, &name))
        .await
        .unwrap()
        .unwrap();

    let resp = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_ready");
    let database = body["checks"]["database"].as_str().unwrap();
    assert!(database.starts_with("unavailable"), "{database}");
    // Liveness does not depend on the database.
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    expect_error(resp, 404, "not_found").await;
    let resp = app.post_json("/admin/users", &serde_json::json!({})).await;
    expect_error(resp, 404, "not_found").await;
}
