//! `POST /logout`: the login's whole refresh-token family stops working, on PostgreSQL and on
//! SQLite; only the caller's own logins can be ended; bad requests are 4xx JSON.

use crate::helpers::{PASSWORD, Store, TestApp, expect_error, spawn_app, spawn_app_with};
use serde_json::json;

/// The same story on either database.
async fn logout_ends_the_login_and_only_that_login(app: &TestApp) {
    let first = app.signup("ana").await;
    let other_login = app.login_ok("ana", PASSWORD).await;
    // Rotated once: `first` is spent, `second` is the live descendant of the same family.
    let second = app.refresh_ok(&first.refresh_token).await;

    app.logout_ok(&second).await;
    // The logged-out refresh token is refused, as a revoked one (not as a reuse).
    expect_error(
        app.refresh(&second.refresh_token).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    // The spent ancestor is refused too.
    assert_eq!(
        app.refresh(&first.refresh_token).await.status().as_u16(),
        401
    );
    // Logging out again with the same token has nothing left to do: 204 all the same.
    app.logout_ok(&second).await;

    // The user's other login (another family) is untouched.
    let fresh = app.refresh_ok(&other_login.refresh_token).await;
    app.me_ok(&fresh.access_token).await;
}

#[tokio::test]
async fn logout_revokes_the_family_on_postgres() {
    let app = spawn_app().await;
    logout_ends_the_login_and_only_that_login(&app).await;
}

#[tokio::test]
async fn logout_revokes_the_family_on_sqlite() {
    let app = spawn_app_with(Store::sqlite(), None).await;
    logout_ends_the_login_and_only_that_login(&app).await;
}

#[tokio::test]
async fn logging_out_with_a_spent_token_revokes_the_token_rotated_from_it() {
    let app = spawn_app().await;
    let first = app.signup("ana").await;
    let second = app.refresh_ok(&first.refresh_token).await;
    let third = app.refresh_ok(&second.refresh_token).await;
    // A client that kept an old token of the login still ends all of it.
    let resp = app
        .logout(
            Some(&third.access_token),
            &json!({"refresh_token": first.refresh_token}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 204);
    expect_error(
        app.refresh(&third.refresh_token).await,
        401,
        "invalid_refresh_token",
    )
    .await;
}

#[tokio::test]
async fn another_users_refresh_token_is_left_alone() {
    let app = spawn_app().await;
    let ana = app.signup("ana").await;
    let bob = app.signup("bob").await;
    // Bob presents Ana's refresh token with his own access token: the answer is the one an
    // unknown token gets, and nothing of Ana's is revoked.
    let resp = app
        .logout(
            Some(&bob.access_token),
            &json!({"refresh_token": ana.refresh_token}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 204);
    let ana_next = app.refresh_ok(&ana.refresh_token).await;
    app.me_ok(&ana_next.access_token).await;
    // Bob's own login was not touched either.
    app.refresh_ok(&bob.refresh_token).await;
    // An unknown token: 204, nothing to revoke.
    let resp = app
        .logout(
            Some(&bob.access_token),
            &json!({"refresh_token": "not-a-refresh-token"}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 204);
}

#[tokio::test]
async fn logout_needs_a_valid_access_token() {
    let app = spawn_app().await;
    let pair = app.signup("ana").await;
    let body = json!({"refresh_token": pair.refresh_token});
    expect_error(app.logout(None, &body).await, 401, "missing_token").await;
    expect_error(
        app.logout(Some("garbage"), &body).await,
        401,
        "invalid_token",
    )
    .await;
    // The refresh token is not an access token.
    expect_error(
        app.logout(Some(&pair.refresh_token), &body).await,
        401,
        "invalid_token",
    )
    .await;
    // Without a token, a bad body is still a 401: who is asking is checked first.
    expect_error(app.logout(None, &json!({})).await, 401, "missing_token").await;
    // None of those revoked anything.
    app.refresh_ok(&pair.refresh_token).await;
}

#[tokio::test]
async fn a_malformed_logout_body_is_a_4xx_json_error() {
    let app = spawn_app().await;
    let pair = app.signup("ana").await;
    let token = Some(pair.access_token.as_str());
    for body in [
        json!({}),
        json!({"refresh_token": ""}),
        json!({"refresh_token": null}),
        json!({"token": pair.refresh_token}),
    ] {
        expect_error(app.logout(token, &body).await, 400, "missing_field").await;
    }
    expect_error(
        app.logout(token, &json!({"refresh_token": 5})).await,
        422,
        "invalid_field",
    )
    .await;
    let send = |content_type: &'static str, body: &'static str| {
        app.client
            .post(app.url("/logout"))
            .bearer_auth(&pair.access_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    expect_error(
        send("application/json", "{\"refresh_token\":")
            .await
            .unwrap(),
        400,
        "invalid_json",
    )
    .await;
    expect_error(
        send("application/json", "").await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    expect_error(
        send("text/plain", "refresh_token").await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    // The session is still whole.
    app.refresh_ok(&pair.refresh_token).await;
}
