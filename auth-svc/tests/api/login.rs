use crate::helpers::{PASSWORD, Store, expect_error, jwt_segment, spawn_app, spawn_app_with};
use common::jwt::Role;
use serde_json::json;

#[tokio::test]
async fn login_answers_a_bearer_token_pair() {
    let app = spawn_app().await;
    app.register_ok("ana", PASSWORD).await;
    let resp = app.login("ana", PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let access = body["access_token"].as_str().expect("access_token");
    let refresh = body["refresh_token"].as_str().expect("refresh_token");
    assert_eq!(access.split('.').count(), 3, "a JWT: {access}");
    assert!(refresh.len() >= 32, "refresh token too short: {refresh}");
    assert_ne!(access, refresh);

    // The name is matched case-insensitively, like registration.
    let pair = app.login_ok("ANA", PASSWORD).await;
    // Every login gets its own tokens.
    assert_ne!(pair.refresh_token, refresh);
    assert_ne!(
        jwt_segment(&pair.access_token, 1)["jti"],
        jwt_segment(access, 1)["jti"]
    );
}

#[tokio::test]
async fn a_wrong_password_is_401_never_200() {
    let app = spawn_app().await;
    app.register_ok("ana", PASSWORD).await;
    for wrong in [
        "wrong password",
        "correct horse battery stapl",
        "Correct horse battery staple",
        "correct horse battery staple ",
        "x",
    ] {
        let resp = app.login("ana", wrong).await;
        let err = expect_error(resp, 401, "invalid_credentials").await;
        assert!(
            !err.msg.contains(wrong),
            "the password is echoed: {}",
            err.msg
        );
    }
    app.login_ok("ana", PASSWORD).await;
}

#[tokio::test]
async fn an_unknown_user_is_401_like_a_wrong_password() {
    let app = spawn_app().await;
    app.register_ok("ana", PASSWORD).await;
    let unknown = expect_error(
        app.login("nobody", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let wrong = expect_error(
        app.login("ana", "wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;
    // Indistinguishable, so the answer does not tell which names exist.
    assert_eq!(unknown, wrong);
}

#[tokio::test]
async fn a_name_no_one_can_register_is_401_like_an_unknown_user_on_both_databases() {
    for store in [Store::postgres(), Store::sqlite()] {
        let app = spawn_app_with(store, None).await;
        app.register_ok("ana", PASSWORD).await;
        let unknown = expect_error(
            app.login("nobody", PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await;
        // PostgreSQL refuses a NUL in a query, SQLite does not: neither is asked.
        for name in ["an\u{0}a", "ana\u{0}", "an a", &"a".repeat(5000)] {
            let refused =
                expect_error(app.login(name, PASSWORD).await, 401, "invalid_credentials").await;
            assert_eq!(refused, unknown, "{name:?}");
        }
    }
}

#[tokio::test]
async fn a_missing_field_is_400() {
    let app = spawn_app().await;
    app.register_ok("ana", PASSWORD).await;
    for body in [
        json!({}),
        json!({"username": "ana"}),
        json!({"password": PASSWORD}),
        json!({"username": "ana", "password": ""}),
    ] {
        let resp = app.post_json("/login", &body).await;
        let err = expect_error(resp, 400, "missing_field").await;
        assert_eq!(err.msg, "Username and password required");
    }
}

#[tokio::test]
async fn the_access_token_verifies_with_the_published_keys_and_carries_the_claims() {
    let app = spawn_app().await;
    let user = app.register_ok("ana", PASSWORD).await;
    let before = chrono::Utc::now().timestamp();
    let pair = app.login_ok("ana", PASSWORD).await;
    let after = chrono::Utc::now().timestamp();

    let jwks = app.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    let jwk = &jwks.keys[0];
    assert_eq!(jwk.kty, "OKP");
    assert_eq!(jwk.crv, "Ed25519");
    assert_eq!(jwk.kid.as_deref(), Some(app.signing_key.kid()));
    let served = serde_json::to_string(&jwks).unwrap();
    assert!(
        !served.contains("\"d\""),
        "the JWKS exposes a private key: {served}"
    );

    let header = jwt_segment(&pair.access_token, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"].as_str(), jwk.kid.as_deref());

    let claims = app
        .verifier()
        .await
        .verify(&pair.access_token)
        .await
        .unwrap();
    assert_eq!(claims.iss, "predictloop");
    assert_eq!(claims.aud, "predictloop-api");
    assert_eq!(claims.sub, user["id"].as_str().unwrap());
    assert_eq!(claims.name, "ana");
    assert_eq!(claims.role, Role::User);
    assert!(
        (before..=after).contains(&claims.iat),
        "iat {} not in {before}..={after}",
        claims.iat
    );
    assert_eq!(claims.nbf, claims.iat);
    assert_eq!(claims.exp - claims.iat, 900);
    assert!(
        uuid::Uuid::parse_str(&claims.jti).is_ok(),
        "jti {}",
        claims.jti
    );

    // The raw payload has exactly the documented claims, with the role as a string.
    let payload = jwt_segment(&pair.access_token, 1);
    assert_eq!(payload["role"], "user");
    let mut names: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "aud", "exp", "iat", "iss", "jti", "name", "nbf", "role", "sub"
        ]
    );

    // A verifier that expects another audience refuses it.
    let other = common::jwt::JwtVerifier::local(&jwks, "predictloop", "someone-else");
    assert!(other.verify(&pair.access_token).await.is_err());
}
