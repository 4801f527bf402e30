//! Logout through the gateway: `POST /logout` ends a login (its refresh token and every token
//! rotated from or into it are refused), needs the caller's access token, refuses a bad body,
//! and cannot end another user's login.

use crate::helpers::System;
use serde_json::{Value, json};

/// A token pair: (access token, refresh token).
type Pair = (String, String);

fn pair_of(body: &Value) -> Pair {
    (
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned(),
        body["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_owned(),
    )
}

async fn post(system: &System, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = system.client.post(system.at(path)).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn log_in(system: &System, name: &str) -> Pair {
    let (status, body) = post(
        system,
        "/login",
        None,
        &json!({"username": name, "password": "password-123"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    pair_of(&body)
}

async fn refresh(system: &System, refresh_token: &str) -> (u16, Value) {
    post(
        system,
        "/token/refresh",
        None,
        &json!({"refresh_token": refresh_token}),
    )
    .await
}

async fn refreshed(system: &System, refresh_token: &str) -> Pair {
    let (status, body) = refresh(system, refresh_token).await;
    assert_eq!(status, 200, "{body}");
    pair_of(&body)
}

async fn logout(system: &System, access: Option<&str>, refresh_token: &str) -> (u16, Value) {
    post(
        system,
        "/logout",
        access,
        &json!({"refresh_token": refresh_token}),
    )
    .await
}

#[tokio::test]
async fn logout_ends_the_whole_login_and_nothing_else() {
    let system = System::start().await;
    system.user("leaver").await;
    let first = log_in(&system, "leaver").await;
    let elsewhere = log_in(&system, "leaver").await;
    let second = refreshed(&system, &first.1).await;

    let (status, body) = logout(&system, Some(&second.0), &second.1).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null, "a 204 has no body");
    let (status, body) = refresh(&system, &second.1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_refresh_token")),
        "{body}"
    );
    assert_eq!(refresh(&system, &first.1).await.0, 401);
    // A second logout with the same token: nothing left to revoke, 204 all the same.
    assert_eq!(logout(&system, Some(&second.0), &second.1).await.0, 204);

    // The same user's other login goes on.
    let next = refreshed(&system, &elsewhere.1).await;
    let me = system
        .client
        .get(system.at("/me"))
        .bearer_auth(&next.0)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // Logging out with an earlier (spent) token of a login ends the token rotated from it.
    let third = log_in(&system, "leaver").await;
    let fourth = refreshed(&system, &third.1).await;
    assert_eq!(logout(&system, Some(&fourth.0), &third.1).await.0, 204);
    assert_eq!(refresh(&system, &fourth.1).await.0, 401);
}

#[tokio::test]
async fn logout_needs_the_callers_token_a_refresh_token_and_ends_only_their_own_login() {
    let system = System::start().await;
    system.user("ana").await;
    system.user("bob").await;
    let ana = log_in(&system, "ana").await;
    let bob = log_in(&system, "bob").await;

    let (status, body) = logout(&system, None, &ana.1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token")),
        "{body}"
    );
    let (status, body) = logout(&system, Some("garbage"), &ana.1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    for bad in [
        json!({}),
        json!({"refresh_token": ""}),
        json!({"refresh": ana.1}),
    ] {
        let (status, body) = post(&system, "/logout", Some(&ana.0), &bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("missing_field")),
            "{bad}: {body}"
        );
    }
    let broken = system
        .client
        .post(system.at("/logout"))
        .bearer_auth(&ana.0)
        .header("content-type", "application/json")
        .body("{\"refresh_token\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let body: Value = broken.json().await.unwrap();
    assert_eq!(body["error"], "invalid_json", "{body}");

    // Bob cannot end Ana's login with her refresh token: answered as an unknown token would
    // be, and her session goes on.
    assert_eq!(logout(&system, Some(&bob.0), &ana.1).await.0, 204);
    let ana_next = refreshed(&system, &ana.1).await;
    // None of the refused requests above ended anything either; her own logout does.
    assert_eq!(logout(&system, Some(&ana_next.0), &ana_next.1).await.0, 204);
    assert_eq!(refresh(&system, &ana_next.1).await.0, 401);
    refreshed(&system, &bob.1).await;
}
