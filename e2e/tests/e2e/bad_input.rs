//! The bad-input suite: hundreds of malformed, hostile or unauthorised requests to every public
//! route, through the gateway. Each must be answered with a 4xx JSON error (`{"error", "msg"}`),
//! never a 5xx: a bad token is a 401, a user on an admin route a 403, an oversize body a 413
//! (a 429 is always acceptable: the gateway rate-limits). Afterwards every service is still
//! ready and a normal predict → feedback → report flow works.
//!
//! Failures are collected and reported together, one line per case: the group and case, the
//! request, the answer (status, body, and whether the gateway itself or an upstream answered).

mod admin;
mod auth;
mod bodies;
mod case;
mod feedback;
mod predict;
mod raw;
mod routes;
mod tokens;

use crate::helpers::*;
use admin::*;
use auth::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bodies::*;
use case::*;
use common::jwt::{Role, SigningKeyPair};
use ed25519_dalek::Signer;
use feedback::*;
use futures_util::{SinkExt, StreamExt};
use predict::*;
use raw::*;
use reqwest::Method;
use routes::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokens::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const MIB: usize = 1024 * 1024;
const BOUNDARY: &str = "bad-input-boundary-7d1f";
const SQL_OR: &str = "' OR 1=1 --";
const SQL_DROP: &str = "\"; DROP TABLE feedback; --";
/// A well-formed prediction id that was never served.
const UNKNOWN_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

async fn log_in(system: &System, username: &str, password: &str) -> Value {
    let r = system
        .client
        .post(system.at("/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn status_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_input_gets_a_4xx_json_error_everywhere_and_the_system_stays_healthy() {
    let system = System::start().await;
    let user = system.user("bad-input-user").await;
    let refresh = log_in(&system, "bad-input-user", "password-123").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = system.admin().await;
    let test = mnist_test();
    let png = digits::grid_to_png(&test.images[0]).unwrap();
    well_formed_tokens_are_accepted(&system).await;

    let mut run = Run::default();
    bad_tokens(&mut run, &system, &user, &refresh, &png).await;
    websocket_upgrades(&mut run, &system, &user, &admin, &refresh).await;
    run.check_all(&system, forbidden_cases(&user)).await;
    run.check_all(&system, auth_cases(&refresh)).await;
    run.check_all(&system, logout_cases(&user)).await;
    run.check_all(&system, feedback_cases(&user)).await;
    run.check_all(&system, predict_cases(&user, &png)).await;
    run.check_all(&system, inference_cases(&user)).await;
    run.check_all(&system, admin_cases(&admin)).await;
    run.check_all(&system, path_traversal_cases(&user, &admin))
        .await;
    run.check_all(&system, wrong_method_cases(&user, &admin))
        .await;

    still_ready(&system).await;
    let created = normal_flow(&mut run, &system, &png, test.labels[0]).await;
    nothing_else_stored(&system, &admin, &created).await;
    socket_limits(&system, &admin).await;
    log_in(&system, ADMIN.0, ADMIN.1).await;
    run.report();
}

/// Controls: a token signed by this suite's forger is accepted, so the tokens it forges are
/// refused for what they change, not for how they are made.
async fn well_formed_tokens_are_accepted(system: &System) {
    let claims = common::testing::claims(ADMIN.0, Role::Admin);
    let forged = Forger::new(&system.signing_key).sign(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": system.signing_key.kid()}),
        &serde_json::to_value(&claims).unwrap(),
    );
    for token in [forged, system.signing_key.sign(&claims).unwrap()] {
        let (status, body) = status_of(
            system
                .client
                .get(system.at("/admin/report"))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, 200, "a well-formed admin token is accepted: {body}");
    }
}

/// Every kind of bad token on user routes and admin routes.
async fn bad_tokens(run: &mut Run, system: &System, user: &str, refresh: &str, png: &[u8]) {
    let credentials = bad_credentials(system, user, refresh);
    let multipart = file_form("d.png", png);
    for (kind, authorization) in &credentials {
        let routes = [
            get("bad tokens", format!("GET /me: {kind}"), "/me"),
            post("bad tokens", format!("POST /feedback: {kind}"), "/feedback")
                .json(r#"{"prediction": 1, "correct": true}"#),
            post(
                "bad tokens",
                format!("POST /api/v1/predict: {kind}"),
                "/api/v1/predict",
            )
            .multipart(multipart.clone()),
            post(
                "bad tokens",
                format!("POST /v2/models/mnist-cnn/infer: {kind}"),
                "/v2/models/mnist-cnn/infer",
            )
            .json(tensor(
                json!("input"),
                json!([1, 784]),
                json!("FP32"),
                json!(vec![0.0; 784]),
            )),
            get(
                "bad tokens",
                format!("GET /admin/report: {kind}"),
                "/admin/report",
            ),
            post(
                "bad tokens",
                format!("POST /admin/retrain: {kind}"),
                "/admin/retrain",
            )
            .json(r#"{"epochs": 0}"#),
            get("bad tokens", format!("GET /ws: {kind}"), "/ws"),
        ];
        for c in routes {
            run.check(system, c.authorization(authorization.clone()).expect(401))
                .await;
        }
    }
}

/// The same refusals for a WebSocket upgrade, with the token in the query as browsers send it.
async fn websocket_upgrades(
    run: &mut Run,
    system: &System,
    user: &str,
    admin: &str,
    refresh: &str,
) {
    let ws_base = system.ws_url("");
    let expired = {
        let mut c = common::testing::claims(ADMIN.0, Role::Admin);
        c.exp = c.iat - 3600;
        c.nbf = c.iat - 7200;
        system.signing_key.sign(&c).unwrap()
    };
    for (name, url, expect) in [
        ("no token", ws_base.replace("?access_token=", ""), Some(401)),
        ("an empty token", ws_base.clone(), Some(401)),
        ("a garbage token", format!("{ws_base}garbage"), Some(401)),
        ("an expired token", format!("{ws_base}{expired}"), Some(401)),
        ("a user's token", system.ws_url(user), Some(403)),
        (
            "the refresh token",
            format!("{ws_base}{}", enc(refresh)),
            Some(401),
        ),
        (
            "last_event_id not a UUID",
            format!("{}&last_event_id=not-a-uuid", system.ws_url(admin)),
            None,
        ),
        (
            "last_event_id ' OR 1=1 --",
            format!("{}&last_event_id={}", system.ws_url(admin), enc(SQL_OR)),
            None,
        ),
        (
            "last_event_id NUL",
            format!("{}&last_event_id=%00", system.ws_url(admin)),
            None,
        ),
    ] {
        let answer = ws_attempt(&url).await;
        run.record(
            "WebSocket upgrades",
            name.to_owned(),
            "GET /ws (upgrade)",
            expect,
            answer,
        );
    }
}

/// Every service is still up after the bad requests.
async fn still_ready(system: &System) {
    for path in ["/health", "/ready", "/v2/health/live", "/v2/health/ready"] {
        let (status, body) = status_of(system.client.get(system.at(path))).await;
        assert_eq!(status, 200, "GET {path} after the bad requests: {body}");
    }
}

/// A normal upload and feedback still work; the feedback created.
async fn normal_flow(run: &mut Run, system: &System, png: &[u8], label: u8) -> Value {
    let after = system.user("after-the-storm").await;
    let served: Value = system
        .upload(&after, "v2", "d.png", png.to_vec())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(served["prediccion"], u64::from(label), "{served}");
    let feedback = json!({
        "prediction": served["prediccion"],
        "correct": true,
        "comment": SQL_DROP,
        "prediction_id": served["prediction_id"],
    });
    let post_feedback = |key: &'static str, body: &Value| {
        system
            .client
            .post(system.at("/feedback"))
            .bearer_auth(&after)
            .header("Idempotency-Key", key)
            .json(body)
    };
    let (status, created) = status_of(post_feedback("after-1", &feedback)).await;
    assert_eq!(status, 201, "{created}");
    // The same key for another request is refused, and counted among the bad requests.
    let mut other = feedback.clone();
    other["comment"] = json!("another comment");
    let answer = send_builder(post_feedback("after-1", &other)).await;
    run.record(
        "bad headers",
        "/feedback: an Idempotency-Key reused for another body".into(),
        "POST /feedback",
        Some(422),
        answer,
    );

    created
}

/// Nothing the bad requests sent was stored: one feedback, its SQL kept as text, no job.
async fn nothing_else_stored(system: &System, admin: &str, created: &Value) {
    let (status, listed) = status_of(
        system
            .client
            .get(system.at("/admin/feedback"))
            .bearer_auth(admin),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["comment"], SQL_DROP, "{listed}");
    assert_eq!(listed["items"][0]["id"], created["id"]);
    let (status, injected) = status_of(
        system
            .client
            .get(system.at(&format!("/admin/feedback?username={}", enc("' OR '1'='1"))))
            .bearer_auth(admin),
    )
    .await;
    assert_eq!(status, 200, "{injected}");
    assert_eq!(
        injected["total"], 0,
        "an SQL filter value matches no one: {injected}"
    );
    let (status, report) = status_of(
        system
            .client
            .get(system.at("/admin/report"))
            .bearer_auth(admin),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["total_feedback"], 1, "{report}");
    let (status, jobs) = status_of(
        system
            .client
            .get(system.at("/admin/retrain"))
            .bearer_auth(admin),
    )
    .await;
    assert_eq!(status, 200, "{jobs}");
    assert_eq!(
        jobs["jobs"],
        json!([]),
        "no bad request started a retrain: {jobs}"
    );
    let (status, models) = status_of(
        system
            .client
            .get(system.at("/admin/models"))
            .bearer_auth(admin),
    )
    .await;
    assert_eq!(status, 200, "{models}");
}

/// An admin holds at most five sockets: the sixth is 429 JSON while the five keep working,
/// and a flood of messages on one of them closes it with 1008.
async fn socket_limits(system: &System, admin: &str) {
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let (socket, welcome) = crate::feedback::joined(system, admin).await;
        assert_eq!(
            welcome["event"], "message",
            "notify-svc still serves admins: {welcome}"
        );
        sockets.push(socket);
    }
    let sixth = ws_attempt(&system.ws_url(admin)).await.unwrap();
    let body: Value = serde_json::from_slice(&sixth.body).unwrap_or(Value::Null);
    assert_eq!(
        (sixth.status, body["error"].as_str()),
        (429, Some("too_many_sockets")),
        "{body}"
    );
    for socket in sockets.iter_mut() {
        socket
            .send(Message::text(r#"{"event":"join_admin"}"#))
            .await
            .unwrap();
        let answer = crate::feedback::next_event(socket, Duration::from_secs(5)).await;
        assert_eq!(answer.map(|a| a["event"].clone()), Some(json!("message")));
    }
    let mut flooded = sockets.pop().unwrap();
    // Twice the default burst (20), at once.
    for _ in 0..40 {
        if flooded
            .feed(Message::text(r#"{"event":"join_admin"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = flooded.flush().await;
    let mut close = None;
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_secs(5), flooded.next()).await
    {
        if let Message::Close(frame) = frame {
            close = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(close, Some(1008), "a flood of messages closes the socket");
}

async fn send_builder(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?.to_vec();
    Ok(Answer { status, body })
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    // A key longer than the block is hashed first (RFC 4231 test case 6).
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}
