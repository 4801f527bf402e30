use crate::helpers::*;
use common::jwt::{Role, SigningKeyPair};
use notify_svc::WsSettings;
use serde_json::{Value, json};
use std::time::Duration;

/// A WebSocket upgrade request made by hand, to see the HTTP answer.
fn upgrade(client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    client
        .get(url)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

async fn json_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    body
}

#[tokio::test]
async fn a_missing_or_invalid_token_is_refused_with_401_json_before_the_upgrade() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/ws", notify.url);

    let r = upgrade(&client, &url).send().await.unwrap();
    json_error(r, 401, "missing_token").await;
    let r = upgrade(&client, &url)
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    json_error(r, 401, "invalid_token").await;
    let stranger = SigningKeyPair::generate().unwrap();
    let forged = stranger
        .sign(&common::testing::claims("root-admin", Role::Admin))
        .unwrap();
    let r = upgrade(&client, &format!("{url}?access_token={forged}"))
        .send()
        .await
        .unwrap();
    json_error(r, 401, "invalid_token").await;

    // A WebSocket client sees the same refusal.
    let (status, body) = refused(&notify.ws_url, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token"))
    );
    let (status, _) = refused(&notify.ws_url, Some("garbage")).await;
    assert_eq!(status, 401);
    assert_eq!(notify.stats().open_sockets, 0);
}

#[tokio::test]
async fn a_user_is_refused_with_403_json_before_the_upgrade() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let client = reqwest::Client::new();
    let user = world.auth.user();
    let r = upgrade(&client, &format!("{}/ws", notify.url))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    let body = json_error(r, 403, "forbidden").await;
    assert!(body["msg"].as_str().is_some_and(|m| m.contains("admins")));
    // The same in the query, and whatever else the request asks (the role is checked first).
    let (status, body) = refused(
        &format!(
            "{}?access_token={user}&last_event_id={}",
            notify.ws_url,
            uuid::Uuid::now_v7()
        ),
        None,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    let (status, _) = refused(
        &format!("{}?last_event_id=nope", notify.ws_url),
        Some(&user),
    )
    .await;
    assert_eq!(status, 403);
    // No socket was held for the user, and an admin still gets in.
    assert_eq!(notify.stats().open_sockets, 0);
    let mut ws = notify.connect(&world.auth.admin()).await;
    send_json(&mut ws, json!({"event": "join_admin"})).await;
    assert_eq!(next_event(&mut ws).await["event"], "message");
    assert_eq!(notify.stats().open_sockets, 1);
}

#[tokio::test]
async fn the_token_may_come_in_the_query_for_browsers() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let url = format!("{}?access_token={}", notify.ws_url, world.auth.admin());
    let mut ws = connect(&url, None).await.unwrap();
    send_json(&mut ws, json!({"event": "join_admin"})).await;
    assert_eq!(next_event(&mut ws).await["event"], "message");
}

#[tokio::test]
async fn bad_requests_are_400_json() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let client = reqwest::Client::new();
    let admin = world.auth.admin();
    // A plain GET with a valid token is not a WebSocket.
    let r = client
        .get(format!("{}/ws", notify.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    json_error(r, 400, "websocket_required").await;
    let r = upgrade(
        &client,
        &format!("{}/ws?last_event_id=yesterday", notify.url),
    )
    .bearer_auth(&admin)
    .send()
    .await
    .unwrap();
    json_error(r, 400, "invalid_last_event_id").await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_503() {
    let world = World::new();
    let notify = world
        .spawn(WsSettings {
            max_connections: 1,
            ..test_settings()
        })
        .await;
    // Two admins: the process's cap, not the per-user one.
    let _first = notify.connect(&world.auth.admin()).await;
    let (status, body) = refused(&notify.ws_url, Some(&world.auth.admin())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("too_many_connections"))
    );
    assert_eq!(notify.stats().connections_refused, 1);
}

#[tokio::test]
async fn a_socket_is_closed_when_its_token_expires() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let mut claims = common::testing::claims("root-admin", Role::Admin);
    claims.exp = chrono::Utc::now().timestamp() + 1;
    let token = world.auth.key.sign(&claims).unwrap();
    let mut ws = notify.connect(&token).await;
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(1008)
    );
}
