use crate::helpers::{DEAD_REDIS, Options, Store, spawn_app, spawn_app_with};
use serde_json::Value;

#[tokio::test]
async fn health_and_ready_answer() {
    let app = spawn_app().await;
    let health = app.get_ok("/health", None).await;
    assert_eq!(health["status"], "ok");
    let ready = app.get_ok("/ready", None).await;
    assert_eq!(ready["checks"]["database"], "ok");
    let resp = app.get("/nope", None).await;
    assert_eq!(resp.status().as_u16(), 404);
}

#[tokio::test]
async fn ready_does_not_depend_on_redis_which_the_outbox_covers_for() {
    let mut options = Options::new(Store::postgres());
    options.redis_url = DEAD_REDIS.into();
    let app = spawn_app_with(options).await;
    let resp = app.get("/ready", None).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
}
