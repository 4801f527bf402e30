//! `GET /me` and which bearer tokens the service accepts.

use crate::helpers::{TestApp, b64, expect_error, jwt_segment, spawn_app};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::jwt::{Claims, Role, SigningKeyPair};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

#[tokio::test]
async fn me_with_a_token_answers_the_user() {
    let app = spawn_app().await;
    let registered = app.register_ok("ana", crate::helpers::PASSWORD).await;
    let pair = app.login_ok("ana", crate::helpers::PASSWORD).await;
    let me = app.me_ok(&pair.access_token).await;
    assert_eq!(me["id"], registered["id"]);
    assert_eq!(me["username"], "ana");
    assert_eq!(me["role"], "user");
    assert!(me.get("password_hash").is_none());
    // The scheme name is case-insensitive.
    let resp = app
        .client
        .get(app.url("/me"))
        .header("authorization", format!("bearer {}", pair.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn me_without_a_token_is_401() {
    let app = spawn_app().await;
    expect_error(app.me(None).await, 401, "missing_token").await;
    // Another scheme, or a bearer without a token, is no token either.
    for value in ["Basic YW5hOnB3", "Bearer", "Bearer ", "Token abc"] {
        let resp = app
            .client
            .get(app.url("/me"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        expect_error(resp, 401, "missing_token").await;
    }
    // The query parameter is only for WebSockets, not here.
    let pair = app.signup("ana").await;
    let resp = app
        .client
        .get(app.url(&format!("/me?access_token={}", pair.access_token)))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "missing_token").await;
}

#[tokio::test]
async fn forged_identity_headers_are_not_trusted() {
    let app = spawn_app().await;
    let admin = app.register_ok("root", crate::helpers::PASSWORD).await;
    let id = admin["id"].as_str().unwrap();
    let forged = [
        ("X-User-Id", id),
        ("X-User-Name", "root"),
        ("X-User-Role", "admin"),
        ("X-Forwarded-User", "root"),
        ("X-Auth-Request-User", id),
    ];
    let mut req = app.client.get(app.url("/me"));
    for (name, value) in forged {
        req = req.header(name, value);
    }
    expect_error(req.send().await.unwrap(), 401, "missing_token").await;

    // With a user's own valid token, the headers do not change who the caller is.
    let pair = app.signup("ana").await;
    let mut req = app
        .client
        .get(app.url("/me"))
        .bearer_auth(&pair.access_token);
    for (name, value) in forged {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let me: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(me["username"], "ana");
    assert_eq!(me["role"], "user");
}

/// A JWT put together by hand: header and payload as given, signature as given.
fn raw_jwt(header: &serde_json::Value, payload: &serde_json::Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string()),
        b64(payload.to_string())
    )
}

fn hs256(kid: &str, claims: &Claims, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

/// A valid token of `ana` signed by the service's key, plus her user id.
async fn ana(app: &TestApp) -> (String, Claims) {
    let pair = app.signup("ana").await;
    let claims = app
        .verifier()
        .await
        .verify(&pair.access_token)
        .await
        .unwrap();
    (pair.access_token, claims)
}

#[tokio::test]
async fn a_token_made_by_hand_with_the_service_key_and_right_claims_is_accepted() {
    // The control for the refusals below: same construction, nothing wrong with it.
    let app = spawn_app().await;
    let (_, real) = ana(&app).await;
    let claims = app.claims(&real.sub, "ana", Role::User);
    let token = app.signing_key.sign(&claims).unwrap();
    let me = app.me_ok(&token).await;
    assert_eq!(me["username"], "ana");
}

#[tokio::test]
async fn forged_and_invalid_tokens_are_refused_with_401_json() {
    let app = spawn_app().await;
    let (good, real) = ana(&app).await;
    let kid = app.signing_key.kid().to_owned();
    let key = &app.signing_key;
    let now = chrono::Utc::now().timestamp();
    let valid = app.claims(&real.sub, "ana", Role::User);
    let valid_json = serde_json::to_value(&valid).unwrap();
    let parts: Vec<&str> = good.split('.').collect();

    let mut cases: Vec<(&str, String, &str)> = Vec::new();

    // alg: none, with no signature and with the real one kept.
    for alg in ["none", "None", "NONE"] {
        let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid});
        cases.push((
            "alg none",
            raw_jwt(&header, &valid_json, ""),
            "invalid_token",
        ));
        cases.push((
            "alg none, signature kept",
            raw_jwt(&header, &valid_json, parts[2]),
            "invalid_token",
        ));
    }

    // HS256 with the public key as the HMAC secret, in every form it is published in.
    let jwks = app.jwks().await;
    let x = jwks.keys[0].x.clone();
    let public_raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let jwks_text = serde_json::to_string(&jwks).unwrap();
    let jwk_text = serde_json::to_string(&jwks.keys[0]).unwrap();
    for secret in [
        public_raw.as_slice(),
        x.as_bytes(),
        jwks_text.as_bytes(),
        jwk_text.as_bytes(),
    ] {
        cases.push((
            "HS256 keyed with the public key",
            hs256(&kid, &valid, secret),
            "invalid_token",
        ));
    }

    // Validly signed, but the claims are wrong.
    let mut expired = valid.clone();
    expired.iat = now - 7200;
    expired.nbf = now - 7200;
    expired.exp = now - 3600;
    cases.push(("expired", key.sign(&expired).unwrap(), "token_expired"));
    let mut expired_past_leeway = valid.clone();
    expired_past_leeway.exp = now - 120;
    cases.push((
        "expired 2 minutes ago",
        key.sign(&expired_past_leeway).unwrap(),
        "token_expired",
    ));
    let mut early = valid.clone();
    early.nbf = now + 3600;
    cases.push((
        "not valid for an hour",
        key.sign(&early).unwrap(),
        "invalid_token",
    ));
    let mut early_past_leeway = valid.clone();
    early_past_leeway.nbf = now + 120;
    cases.push((
        "not valid for 2 minutes",
        key.sign(&early_past_leeway).unwrap(),
        "invalid_token",
    ));
    let mut iss = valid.clone();
    iss.iss = "someone-else".into();
    cases.push(("wrong iss", key.sign(&iss).unwrap(), "invalid_token"));
    let mut aud = valid.clone();
    aud.aud = "another-api".into();
    cases.push(("wrong aud", key.sign(&aud).unwrap(), "invalid_token"));
    // Claims the service requires, missing.
    for missing in ["exp", "nbf", "iss", "aud", "sub"] {
        let mut payload = valid_json.clone();
        payload.as_object_mut().unwrap().remove(missing);
        cases.push((
            "a required claim missing",
            key.sign(&payload).unwrap(),
            "invalid_token",
        ));
    }

    // The real token with its payload changed and the signature kept.
    let mut payload = jwt_segment(&good, 1);
    payload["role"] = "admin".into();
    cases.push((
        "tampered role",
        format!("{}.{}.{}", parts[0], b64(payload.to_string()), parts[2]),
        "invalid_token",
    ));
    let mut payload = jwt_segment(&good, 1);
    payload["exp"] = (now + 365 * 24 * 3600).into();
    cases.push((
        "tampered exp",
        format!("{}.{}.{}", parts[0], b64(payload.to_string()), parts[2]),
        "invalid_token",
    ));
    // A truncated or missing signature.
    cases.push((
        "no signature",
        format!("{}.{}.", parts[0], parts[1]),
        "invalid_token",
    ));
    cases.push((
        "truncated signature",
        format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]),
        "invalid_token",
    ));

    // Signed by another key: its own kid is unknown; the service's kid does not make it valid.
    let other = SigningKeyPair::generate().unwrap();
    let mut admin = valid.clone();
    admin.role = Role::Admin;
    let foreign = other.sign(&admin).unwrap();
    cases.push(("unknown kid", foreign.clone(), "invalid_token"));
    let foreign_parts: Vec<&str> = foreign.split('.').collect();
    let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    cases.push((
        "another key's signature under the service's kid",
        format!(
            "{}.{}.{}",
            b64(header.to_string()),
            foreign_parts[1],
            foreign_parts[2]
        ),
        "invalid_token",
    ));
    // No kid at all, otherwise correct: the service names its key.
    let pkcs8: String = key
        .to_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let no_kid = EncodingKey::from_ed_der(
        &base64::engine::general_purpose::STANDARD
            .decode(pkcs8)
            .unwrap(),
    );
    cases.push((
        "no kid",
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &valid, &no_kid).unwrap(),
        "invalid_token",
    ));

    // Not a JWT at all.
    cases.push(("garbage", "not.a.jwt".to_owned(), "invalid_token"));
    cases.push((
        "two segments",
        format!("{}.{}", parts[0], parts[1]),
        "invalid_token",
    ));

    for (what, token, code) in &cases {
        let resp = app.me(Some(token)).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 401, "{what}: {text}");
        let body: common::error::ErrorBody = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: not a JSON error ({e}): {text}"));
        assert_eq!(body.error, *code, "{what}: {text}");
    }

    // The genuine token still works after all that.
    app.me_ok(&good).await;
}

#[tokio::test]
async fn a_token_of_a_deleted_user_is_not_a_server_error() {
    // A validly signed token for an id that does not exist: 404 JSON, not a 500.
    let app = spawn_app().await;
    let claims = app.claims(&uuid::Uuid::now_v7().to_string(), "ghost", Role::User);
    let token = app.signing_key.sign(&claims).unwrap();
    expect_error(app.me(Some(&token)).await, 404, "not_found").await;
}
