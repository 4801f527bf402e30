//! `POST /token`: service tokens by the client-credentials grant.

use crate::helpers::*;
use common::jwt::{JwkSet, JwtVerifier};
use common::service_auth::{INTERNAL_AUDIENCE, ServiceClaims};
use reqwest::Response;
use serde_json::Value;

const FORM: &str = "application/x-www-form-urlencoded";

async fn oauth_error(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["msg"], body["error_description"]);
    body
}

async fn token_with_basic(app: &TestApp, id: &str, secret: &str, form: &str) -> Response {
    app.client
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", FORM)
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

fn verifier(app: &TestApp, jwks: &JwkSet) -> JwtVerifier {
    JwtVerifier::local(jwks, &app.config.issuer, &app.config.audience)
}

#[tokio::test]
async fn a_service_gets_a_token_with_its_scopes_for_the_internal_audience() {
    let app = spawn_app().await;
    let resp = token_with_basic(
        &app,
        "retrain-worker",
        RETRAIN_SECRET,
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(
        body["scope"],
        "models:read models:register models:promote feedback:read"
    );
    let token = body["access_token"].as_str().unwrap();
    let jwks = app.jwks().await;
    let v = verifier(&app, &jwks);
    let claims: ServiceClaims = v.verify_for(token, INTERNAL_AUDIENCE).await.unwrap();
    assert_eq!(claims.sub, "retrain-worker");
    assert_eq!(claims.aud, INTERNAL_AUDIENCE);
    assert!(claims.exp - claims.iat == 300);
    // Not a user token: the user audience refuses it, so no user route takes it.
    assert!(v.verify(token).await.is_err());
    let me = app.me(Some(token)).await;
    assert_eq!(me.status(), 401);

    // Credentials in the body, a narrower scope; a client configured by its secret's digest.
    let resp = app
        .post_raw(
            "/token",
            FORM,
            &format!(
                "grant_type=client_credentials&client_id=feedback-svc&client_secret={FEEDBACK_SECRET}&scope=predictions%3Aread"
            ),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "predictions:read");
    let resp = token_with_basic(
        &app,
        "retrain-worker",
        RETRAIN_SECRET,
        "grant_type=client_credentials&scope=models%3Apromote",
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "models:promote");
}

#[tokio::test]
async fn bad_token_requests_get_their_rfc_6749_errors() {
    let app = spawn_app().await;
    let grant = "grant_type=client_credentials";
    // Wrong secret, unknown client, a secret of another client, no credentials at all.
    let wrong = token_with_basic(&app, "retrain-worker", "not-the-secret", grant).await;
    assert!(wrong.headers().contains_key("www-authenticate"));
    oauth_error(wrong, 401, "invalid_client").await;
    oauth_error(
        token_with_basic(&app, "nobody", RETRAIN_SECRET, grant).await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        token_with_basic(&app, "feedback-svc", RETRAIN_SECRET, grant).await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        app.post_raw("/token", FORM, grant).await,
        401,
        "invalid_client",
    )
    .await;
    // The digest itself is not the secret.
    let digest = common::digest::sha256_hex(FEEDBACK_SECRET.as_bytes());
    oauth_error(
        token_with_basic(&app, "feedback-svc", &format!("sha256:{digest}"), grant).await,
        401,
        "invalid_client",
    )
    .await;
    // Grant types other than client credentials, or none.
    for form in [
        "grant_type=password&username=a&password=b",
        "grant_type=refresh_token",
    ] {
        oauth_error(
            token_with_basic(&app, "retrain-worker", RETRAIN_SECRET, form).await,
            400,
            "unsupported_grant_type",
        )
        .await;
    }
    oauth_error(
        token_with_basic(
            &app,
            "retrain-worker",
            RETRAIN_SECRET,
            "scope=models%3Aread",
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    // Scopes the client is not allowed, or that do not exist.
    for scope in ["predictions%3Aread", "models%3Aread+admin", "everything"] {
        oauth_error(
            token_with_basic(
                &app,
                "retrain-worker",
                RETRAIN_SECRET,
                &format!("{grant}&scope={scope}"),
            )
            .await,
            400,
            "invalid_scope",
        )
        .await;
    }
    // Malformed bodies: JSON instead of a form, an oversized form, both ways of authenticating.
    let json = app
        .client
        .post(app.url("/token"))
        .basic_auth("retrain-worker", Some(RETRAIN_SECRET))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    oauth_error(json, 400, "invalid_request").await;
    let huge = format!("{grant}&pad={}", "x".repeat(10_000));
    oauth_error(
        token_with_basic(&app, "retrain-worker", RETRAIN_SECRET, &huge).await,
        400,
        "invalid_request",
    )
    .await;
    oauth_error(
        token_with_basic(
            &app,
            "retrain-worker",
            RETRAIN_SECRET,
            &format!("{grant}&client_id=retrain-worker&client_secret={RETRAIN_SECRET}"),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    let garbage = app
        .client
        .post(app.url("/token"))
        .header("authorization", "Basic %%%not-base64")
        .header("content-type", FORM)
        .body(grant)
        .send()
        .await
        .unwrap();
    oauth_error(garbage, 401, "invalid_client").await;
    // Only POST.
    let get = app.client.get(app.url("/token")).send().await.unwrap();
    assert_eq!(get.status(), 405);
}
