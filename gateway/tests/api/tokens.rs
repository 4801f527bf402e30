use crate::helpers::*;
use actix_web::{App, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::config::JwtConfig;
use common::jwt::{Claims, JwkSet, Role, SigningKeyPair};
use gateway::routes::{RouteTable, Upstream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn claims(role: Role) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: JwtConfig::DEFAULT_ISSUER.into(),
        aud: JwtConfig::DEFAULT_AUDIENCE.into(),
        sub: "01a2244a-0000-7000-8000-000000000000".into(),
        name: "mallory".into(),
        role,
        iat: now,
        nbf: now,
        exp: now + 600,
        jti: uuid::Uuid::now_v7().to_string(),
    }
}

fn segment(value: &serde_json::Value) -> String {
    B64.encode(value.to_string())
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused_at_the_gateway() {
    let gw = spawn_gateway().await;
    let key = &gw.auth_key;
    let good = key.sign(&claims(Role::User)).unwrap();
    assert_eq!(
        gw.get_with("/me", &good).await.status(),
        404,
        "a valid token of no stored user reaches auth-svc"
    );

    let parts: Vec<&str> = good.split('.').collect();
    let payload: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();

    let mut forged = Vec::new();
    // alg: none, no signature.
    forged.push((
        "alg none",
        format!(
            "{}.{}.",
            segment(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": key.kid()})),
            parts[1]
        ),
    ));
    // HS256 signed with the public key as the HMAC secret (the classic confusion attack).
    let public_x = B64.decode(key.jwk().x).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key.kid().to_owned());
    forged.push((
        "hs256 with public key",
        jsonwebtoken::encode(
            &header,
            &claims(Role::Admin),
            &jsonwebtoken::EncodingKey::from_secret(&public_x).unwrap(),
        )
        .unwrap(),
    ));
    let mut c = claims(Role::User);
    c.exp = c.iat - 3600;
    c.nbf = c.iat - 7200;
    forged.push(("expired", key.sign(&c).unwrap()));
    let mut c = claims(Role::User);
    c.nbf = c.iat + 3600;
    c.exp = c.iat + 7200;
    forged.push(("not yet valid", key.sign(&c).unwrap()));
    let mut c = claims(Role::User);
    c.iss = "someone-else".into();
    forged.push(("wrong iss", key.sign(&c).unwrap()));
    let mut c = claims(Role::User);
    c.aud = "another-api".into();
    forged.push(("wrong aud", key.sign(&c).unwrap()));
    let mut tampered = payload.clone();
    tampered["role"] = "admin".into();
    forged.push((
        "tampered role",
        format!("{}.{}.{}", parts[0], segment(&tampered), parts[2]),
    ));
    forged.push((
        "unknown kid",
        SigningKeyPair::generate()
            .unwrap()
            .sign(&claims(Role::Admin))
            .unwrap(),
    ));
    forged.push(("garbage", "not.a.token".into()));
    forged.push(("empty signature", format!("{}.{}.", parts[0], parts[1])));

    for (what, token) in &forged {
        for path in ["/me", "/admin/report"] {
            let r = gw.get_with(path, token).await;
            assert_eq!(r.status(), 401, "{what} on {path}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert!(
                body["error"] == "invalid_token" || body["error"] == "token_expired",
                "{what}: {body}"
            );
        }
    }
    let r = gw
        .client
        .get(gw.at("/me"))
        .header("Authorization", format!("Basic {}", B64.encode("a:b")))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "missing_token").await;
}

/// A stand-in for auth-svc's JWKS endpoint whose keys the test rotates; counts fetches.
struct KeyServer {
    keys: Mutex<JwkSet>,
    fetches: AtomicUsize,
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_on_its_first_unknown_kid() {
    let first = SigningKeyPair::generate().unwrap();
    let second = SigningKeyPair::generate().unwrap();
    let keys = Arc::new(KeyServer {
        keys: Mutex::new(JwkSet {
            keys: vec![first.jwk()],
        }),
        fetches: AtomicUsize::new(0),
    });
    let served = web::Data::from(keys.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(served.clone())
            .route(
                "/.well-known/jwks.json",
                web::get().to(|k: web::Data<KeyServer>| async move {
                    k.fetches.fetch_add(1, Ordering::SeqCst);
                    let set = k.keys.lock().unwrap().clone();
                    HttpResponse::Ok().json(set)
                }),
            )
            .default_service(web::to(|| async {
                HttpResponse::Ok().json(serde_json::json!({"me": true}))
            }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let auth_url = format!("http://127.0.0.1:{port}");

    let gw = gateway::build(gateway::Config {
        common: local(0),
        jwt: JwtConfig {
            jwks_url: format!("{auth_url}/.well-known/jwks.json"),
            issuer: JwtConfig::DEFAULT_ISSUER.into(),
            audience: JwtConfig::DEFAULT_AUDIENCE.into(),
            jwks_refresh: JwtConfig::DEFAULT_JWKS_REFRESH,
        },
        upstreams: HashMap::from([(Upstream::Auth, auth_url)]),
        routes: RouteTable::defaults(),
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        max_upload_bytes: UPLOAD_LIMIT,
        max_body_bytes: BODY_LIMIT,
        redis_url: None,
        redis_prefix: String::new(),
        rate_limit: gateway::ratelimit::RateLimitConfig::disabled(),
        edge: gateway::edge::EdgeConfig::defaults(),
        body_timeout: Duration::from_secs(10),
        web: gateway::pages::WebConfig::at(concat!(env!("CARGO_MANIFEST_DIR"), "/../web")),
    })
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}/me", gw.port);
    gw.spawn();
    let client = reqwest::Client::new();
    let call = |token: String| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            r.status().as_u16()
        }
    };

    assert_eq!(call(first.sign(&claims(Role::User)).unwrap()).await, 200);
    let after_start = keys.fetches.load(Ordering::SeqCst);
    assert_eq!(call(first.sign(&claims(Role::User)).unwrap()).await, 200);
    assert_eq!(
        keys.fetches.load(Ordering::SeqCst),
        after_start,
        "known keys are cached"
    );

    // auth-svc rotates to a new key: the first token with its kid triggers one re-fetch
    // (once the one-second floor between fetches has passed).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    *keys.keys.lock().unwrap() = JwkSet {
        keys: vec![second.jwk()],
    };
    assert_eq!(call(second.sign(&claims(Role::User)).unwrap()).await, 200);
    assert_eq!(keys.fetches.load(Ordering::SeqCst), after_start + 1);

    // A burst of tokens with unknown kids does not hammer the key endpoint.
    let stranger = SigningKeyPair::generate().unwrap();
    for _ in 0..10 {
        assert_eq!(call(stranger.sign(&claims(Role::User)).unwrap()).await, 401);
    }
    assert!(keys.fetches.load(Ordering::SeqCst) <= after_start + 2);
}
