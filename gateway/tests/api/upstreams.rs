use crate::helpers::*;
use serde_json::Value;

#[tokio::test]
async fn a_down_upstream_is_502_and_a_slow_one_504() {
    let gw = spawn_gateway().await;
    let admin = gw.admin_token().await;
    // notify-svc is a closed port in this setup; /ws is not routed yet, so reach it through
    // readiness, and a routed service that is down through the retrain route below.
    let r = gw.get_with("/admin/retrain", &admin).await;
    let body = assert_error(r, 504, "upstream_timeout").await;
    assert!(body["msg"].as_str().unwrap().contains("retrain-worker"));

    let ready = gw.client.get(gw.at("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["auth-svc"], "ok");
    assert_eq!(ready["checks"]["predict-svc"], "ok");
    assert!(
        ready["checks"]["notify-svc"]
            .as_str()
            .unwrap()
            .starts_with("unavailable"),
        "{ready}"
    );
}

#[tokio::test]
async fn a_routed_service_that_is_down_is_502() {
    // A gateway whose auth upstream is a closed port: public auth routes answer 502.
    let mut config = gateway::Config::from_env(common::config::Env::from_map(
        [
            ("BIND_ADDR", "127.0.0.1:0"),
            ("AUTH_URL", closed_port_url().as_str()),
            ("RATE_LIMIT_ENABLED", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    ))
    .unwrap();
    config.common.workers = 1;
    let gw = gateway::build(config).await.unwrap();
    let url = format!("http://127.0.0.1:{}", gw.port);
    gw.spawn();
    let r = reqwest::Client::new()
        .post(format!("{url}/login"))
        .json(&serde_json::json!({"username": "a", "password": "b"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(r, 502, "upstream_unavailable").await;
    assert!(body["msg"].as_str().unwrap().contains("auth-svc"));
    // With no reachable JWKS, a protected route cannot verify anything: 503, not 500.
    let r = reqwest::Client::new()
        .get(format!("{url}/me"))
        .bearer_auth(forged_token_with_kid("some-kid"))
        .send()
        .await
        .unwrap();
    assert_error(r, 503, "auth_unavailable").await;
}

fn forged_token_with_kid(kid: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#)),
        b64.encode(r#"{"sub":"x"}"#),
        b64.encode([0u8; 64])
    )
}
