//! The verifier's key cache against a real JWKS endpoint whose key set the tests change: keys
//! are fetched again once they are older than the refresh period (a key removed from the set
//! stops being trusted) and on an unknown `kid`, never more than once per minimum interval.
//! Time is moved forward on tokio's test clock rather than waited for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::{App, HttpResponse, test, web};
use common::config::JwtConfig;
use common::jwt::{Authenticated, JwkSet, JwtVerifier, Role, SigningKeyPair};
use common::testing::claims;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A stand-in for auth-svc's JWKS endpoint: serves whatever set the test puts in it and
/// counts the fetches.
struct KeyServer {
    keys: Mutex<JwkSet>,
    fetches: AtomicUsize,
    /// Answer 503 (and count the request all the same).
    down: AtomicBool,
}

impl KeyServer {
    fn set(&self, keys: &[&SigningKeyPair]) {
        *self.keys.lock().unwrap() = JwkSet {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        };
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// Starts the key server on a free port; returns it with its JWKS URL.
fn serve_keys(keys: &[&SigningKeyPair]) -> (Arc<KeyServer>, String) {
    let server = Arc::new(KeyServer {
        keys: Mutex::new(JwkSet::default()),
        fetches: AtomicUsize::new(0),
        down: AtomicBool::new(false),
    });
    server.set(keys);
    let served = web::Data::from(server.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let running = actix_web::HttpServer::new(move || {
        App::new().app_data(served.clone()).route(
            "/.well-known/jwks.json",
            web::get().to(|k: web::Data<KeyServer>| async move {
                k.fetches.fetch_add(1, Ordering::SeqCst);
                if k.down.load(Ordering::SeqCst) {
                    return HttpResponse::ServiceUnavailable().finish();
                }
                let set = k.keys.lock().unwrap().clone();
                HttpResponse::Ok().json(set)
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(running);
    (
        server,
        format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
    )
}

const PERIOD: Duration = Duration::from_secs(300);

fn verifier(jwks_url: String) -> web::Data<JwtVerifier> {
    web::Data::new(JwtVerifier::remote(&JwtConfig {
        jwks_url,
        issuer: JwtConfig::DEFAULT_ISSUER.into(),
        audience: JwtConfig::DEFAULT_AUDIENCE.into(),
        jwks_refresh: PERIOD,
    }))
}

/// Moves tokio's clock (which the verifier's cache reads) forward by `by`, then lets it run on.
async fn advance(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

fn token(key: &SigningKeyPair) -> String {
    key.sign(&claims("ana", Role::User)).unwrap()
}

#[tokio::test]
async fn a_key_removed_from_the_set_is_refused_once_the_refresh_period_has_passed() {
    let a = SigningKeyPair::generate().unwrap();
    let b = SigningKeyPair::generate().unwrap();
    let (keys, url) = serve_keys(&[&a, &b]);
    let verifier = verifier(url);
    // A route behind the verifier, as every service has.
    let app =
        test::init_service(App::new().app_data(verifier.clone()).route(
            "/me",
            web::get().to(|Authenticated(c): Authenticated| async move {
                HttpResponse::Ok().body(c.name)
            }),
        ))
        .await;
    let status = |token: String| {
        let req = test::TestRequest::get()
            .uri("/me")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request();
        let app = &app;
        async move { test::call_service(app, req).await.status().as_u16() }
    };
    let signed_by_a = token(&a);

    assert_eq!(status(signed_by_a.clone()).await, 200);
    assert_eq!(keys.fetches(), 1, "the first token fetched the keys");
    // An emergency rotation removes A from the set.
    keys.set(&[&b]);
    // Within the period the cached keys are used as they are: no fetch, A still trusted.
    advance(PERIOD - Duration::from_secs(1)).await;
    assert_eq!(status(signed_by_a.clone()).await, 200);
    assert_eq!(
        keys.fetches(),
        1,
        "keys younger than the period are not fetched"
    );
    // Past the period the set is fetched again before verifying: A is gone, its token refused.
    advance(Duration::from_secs(2)).await;
    assert_eq!(status(signed_by_a.clone()).await, 401);
    assert_eq!(keys.fetches(), 2);
    // Tokens of the keys still published keep working, from the fresh cache.
    assert_eq!(status(token(&b)).await, 200);
    assert_eq!(
        verifier.verify(&token(&b)).await.unwrap().name,
        "ana",
        "the verifier itself agrees"
    );
    assert_eq!(keys.fetches(), 2);
}

#[tokio::test]
async fn an_unknown_kid_still_fetches_the_keys_at_once_but_never_more_than_once_an_interval() {
    let a = SigningKeyPair::generate().unwrap();
    let c = SigningKeyPair::generate().unwrap();
    let (keys, url) = serve_keys(&[&a]);
    let verifier = verifier(url);
    assert_eq!(verifier.refresh_keys().await.unwrap(), 1);
    assert_eq!(keys.fetches(), 1);

    // A key added to the set is picked up on its first token, well within the period, once
    // the one-second floor between fetches has passed.
    advance(Duration::from_millis(1100)).await;
    keys.set(&[&a, &c]);
    assert_eq!(verifier.verify(&token(&c)).await.unwrap().name, "ana");
    assert_eq!(keys.fetches(), 2);

    // A burst of made-up kids right after a fetch causes none.
    let strangers: Vec<SigningKeyPair> = (0..20)
        .map(|_| SigningKeyPair::generate().unwrap())
        .collect();
    for stranger in &strangers {
        assert!(verifier.verify(&token(stranger)).await.is_err());
    }
    assert_eq!(keys.fetches(), 2, "the floor between fetches holds");
    // After the floor, one more burst causes exactly one fetch.
    advance(Duration::from_millis(1100)).await;
    for stranger in &strangers {
        assert!(verifier.verify(&token(stranger)).await.is_err());
    }
    assert_eq!(keys.fetches(), 3);
    // The known keys were kept through all of it.
    assert!(verifier.verify(&token(&a)).await.is_ok());
    assert!(verifier.verify(&token(&c)).await.is_ok());
}

#[tokio::test]
async fn when_the_key_endpoint_fails_at_refresh_time_the_keys_held_are_kept_and_asked_again() {
    let a = SigningKeyPair::generate().unwrap();
    let b = SigningKeyPair::generate().unwrap();
    let (keys, url) = serve_keys(&[&a, &b]);
    let verifier = verifier(url);
    assert_eq!(verifier.refresh_keys().await.unwrap(), 2);

    // auth-svc is restarting when the period ends: the fetch fails, the keys held stay.
    keys.down.store(true, Ordering::SeqCst);
    advance(PERIOD + Duration::from_secs(1)).await;
    assert_eq!(verifier.verify(&token(&a)).await.unwrap().name, "ana");
    assert_eq!(keys.fetches(), 2, "the periodic fetch was tried");
    // Not again at once: the floor between fetches holds for failed fetches too.
    assert!(verifier.verify(&token(&a)).await.is_ok());
    assert_eq!(keys.fetches(), 2);

    // Back, without A: the next token after the floor has the set fetched and A refused.
    keys.set(&[&b]);
    keys.down.store(false, Ordering::SeqCst);
    advance(Duration::from_millis(1100)).await;
    assert!(verifier.verify(&token(&a)).await.is_err());
    assert_eq!(keys.fetches(), 3);
    assert!(verifier.verify(&token(&b)).await.is_ok());
}
