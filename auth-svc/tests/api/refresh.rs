use crate::helpers::{expect_error, jwt_segment, spawn_app};
use serde_json::json;

#[tokio::test]
async fn refresh_gives_a_new_working_pair() {
    let app = spawn_app().await;
    let first = app.signup("ana").await;
    let second = app.refresh_ok(&first.refresh_token).await;
    assert_eq!(second.token_type, "Bearer");
    assert_eq!(second.expires_in, 900);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(
        jwt_segment(&second.access_token, 1)["jti"],
        jwt_segment(&first.access_token, 1)["jti"]
    );
    // The new access token is a valid token for the same user.
    let me = app.me_ok(&second.access_token).await;
    assert_eq!(me["username"], "ana");
    let claims = app
        .verifier()
        .await
        .verify(&second.access_token)
        .await
        .unwrap();
    assert_eq!(
        claims.sub,
        app.verifier()
            .await
            .verify(&first.access_token)
            .await
            .unwrap()
            .sub
    );
    // And the chain goes on.
    let third = app.refresh_ok(&second.refresh_token).await;
    app.me_ok(&third.access_token).await;
}

#[tokio::test]
async fn a_used_refresh_token_is_refused_and_its_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let first = app.signup("ana").await;
    // Another login of the same user: a separate family.
    let other_login = app.login_ok("ana", crate::helpers::PASSWORD).await;

    let second = app.refresh_ok(&first.refresh_token).await;
    // The spent token is refused...
    let resp = app.refresh(&first.refresh_token).await;
    expect_error(resp, 401, "refresh_token_reused").await;
    // ...and because it was replayed, the token issued from it stops working too.
    let resp = app.refresh(&second.refresh_token).await;
    let status = resp.status().as_u16();
    let err: common::error::ErrorBody = resp.json().await.unwrap();
    assert_eq!(status, 401, "{err:?}");
    assert!(
        err.error == "refresh_token_reused" || err.error == "invalid_refresh_token",
        "{err:?}"
    );
    // A second replay of the first one is still refused.
    let resp = app.refresh(&first.refresh_token).await;
    assert_eq!(resp.status().as_u16(), 401);

    // The other login is unaffected.
    let fresh = app.refresh_ok(&other_login.refresh_token).await;
    app.me_ok(&fresh.access_token).await;
}

#[tokio::test]
async fn an_unknown_refresh_token_is_401() {
    let app = spawn_app().await;
    let pair = app.signup("ana").await;
    let mut altered = pair.refresh_token.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    for garbage in [
        "garbage",
        altered.as_str(),
        // An access token is not a refresh token.
        pair.access_token.as_str(),
    ] {
        let resp = app.refresh(garbage).await;
        expect_error(resp, 401, "invalid_refresh_token").await;
    }
    // None of those touched the real one.
    app.refresh_ok(&pair.refresh_token).await;
}

#[tokio::test]
async fn a_missing_refresh_token_is_400() {
    let app = spawn_app().await;
    for body in [
        json!({}),
        json!({"refresh_token": ""}),
        json!({"refresh_token": null}),
    ] {
        let resp = app.post_json("/token/refresh", &body).await;
        expect_error(resp, 400, "missing_field").await;
    }
}
