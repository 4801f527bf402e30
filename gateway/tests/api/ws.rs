//! `GET /ws` through the gateway to a real notify-svc (real Redis, a unique prefix), with
//! tokens signed by a test key whose JWKS both services read.

use crate::helpers::{closed_port_url, local};
use common::bus::{Envelope, EventBus, RedisBus, events};
use common::config::JwtConfig;
use common::jwt::{JwkSet, Role, SigningKeyPair};
use common::kv::Redis;
use common::service::RunningService;
use common::testing::{claims, redis_prefix, redis_url, serve_jwks};
use futures_util::{SinkExt, StreamExt};
use gateway::ratelimit::{RateLimitConfig, parse_limits};
use gateway::routes::{RouteTable, Upstream};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct WsWorld {
    key: SigningKeyPair,
    redis: Redis,
    /// notify-svc and its hub.
    notify: Option<(RunningService, std::sync::Arc<notify_svc::Hub>)>,
    gateway: String,
}

impl WsWorld {
    /// notify-svc (unless `with_notify` is false: a closed port) behind the gateway.
    async fn start(with_notify: bool) -> Self {
        let settings = with_notify.then(notify_svc::WsSettings::default);
        Self::start_with(settings, RateLimitConfig::disabled()).await
    }

    /// notify-svc with these settings (none: a closed port) behind a gateway with these rate
    /// limits (counted in the real Redis under the test's prefix).
    async fn start_with(
        notify_settings: Option<notify_svc::WsSettings>,
        rate_limit: RateLimitConfig,
    ) -> Self {
        let key = SigningKeyPair::generate().unwrap();
        let jwks_url = serve_jwks(JwkSet {
            keys: vec![key.jwk()],
        });
        let jwt = JwtConfig {
            jwks_url,
            issuer: JwtConfig::DEFAULT_ISSUER.into(),
            audience: JwtConfig::DEFAULT_AUDIENCE.into(),
            jwks_refresh: JwtConfig::DEFAULT_JWKS_REFRESH,
        };
        let prefix = redis_prefix();
        let (notify, notify_url) = if let Some(ws) = notify_settings {
            let (app, hub) = notify_svc::build_with_hub(notify_svc::Config {
                common: local(0),
                redis: common::config::RedisConfig {
                    url: redis_url(),
                    prefix: prefix.clone(),
                },
                jwt: jwt.clone(),
                ws,
            })
            .await
            .unwrap();
            let url = format!("http://127.0.0.1:{}", app.port);
            (Some((app, hub)), url)
        } else {
            (None, closed_port_url())
        };
        let mut upstreams: HashMap<Upstream, String> = Upstream::ALL
            .iter()
            .map(|u| (*u, closed_port_url()))
            .collect();
        upstreams.insert(Upstream::Notify, notify_url);
        let gw = gateway::build(gateway::Config {
            common: local(0),
            jwt,
            upstreams,
            routes: RouteTable::defaults(),
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(1000),
            max_upload_bytes: crate::helpers::UPLOAD_LIMIT,
            max_body_bytes: crate::helpers::BODY_LIMIT,
            redis_url: rate_limit.enabled.then(redis_url),
            redis_prefix: prefix.clone(),
            rate_limit,
            edge: gateway::edge::EdgeConfig::defaults(),
            body_timeout: Duration::from_secs(10),
            web: gateway::pages::WebConfig::at(concat!(env!("CARGO_MANIFEST_DIR"), "/../web")),
        })
        .await
        .unwrap();
        let gateway = format!("127.0.0.1:{}", gw.port);
        gw.spawn();
        WsWorld {
            key,
            redis: Redis::connect(&redis_url(), &prefix).unwrap(),
            notify,
            gateway,
        }
    }

    fn token(&self, role: Role) -> String {
        self.key.sign(&claims("someone", role)).unwrap()
    }

    fn url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.gateway)
    }

    async fn connect(&self, query: &str, token: Option<&str>) -> Result<Ws, tungstenite::Error> {
        let mut request = self.url(query).into_client_request()?;
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        Ok(tokio_tungstenite::connect_async(request).await?.0)
    }

    async fn admin_socket(&self, query: &str) -> Ws {
        self.connect(query, Some(&self.token(Role::Admin)))
            .await
            .unwrap()
    }

    fn notify_sockets(&self) -> u64 {
        self.notify.as_ref().unwrap().1.stats().open_sockets
    }

    /// Publishes as feedback-svc does: the history first, then the bus.
    async fn feedback(&self, id: i64) -> Envelope {
        let envelope = Envelope::new(
            events::FEEDBACK_CREATED,
            json!({"id": id, "username": "alice", "prediction": 3, "correct": true, "comment": "",
                   "timestamp": "2026-11-28T10:00:00.123456", "prediction_id": null, "label": 3,
                   "model": null, "model_version": null, "input": null}),
        );
        let _: String = redis::cmd("XADD")
            .arg(self.redis.key("events:history"))
            .arg("*")
            .arg("event")
            .arg(serde_json::to_string(&envelope).unwrap())
            .query_async(&mut self.redis.conn())
            .await
            .unwrap();
        RedisBus::new(self.redis.clone())
            .publish(&envelope)
            .await
            .unwrap();
        envelope
    }
}

impl Drop for WsWorld {
    fn drop(&mut self) {
        if let Ok(mut conn) = self.redis.client().get_connection() {
            let key = self.redis.key("events:history");
            let _: Result<i64, _> = redis::cmd("DEL").arg(key).query(&mut conn);
        }
    }
}

async fn next_frame(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .unwrap();
        if !matches!(msg, Message::Ping(_)) {
            return msg;
        }
    }
}

async fn next_event(ws: &mut Ws) -> Value {
    match next_frame(ws).await {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn refusal(result: Result<Ws, tungstenite::Error>) -> (u16, Value) {
    match result {
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(ct.starts_with("application/json"), "{ct}");
            (
                resp.status().as_u16(),
                serde_json::from_slice(&body).unwrap(),
            )
        }
        Ok(_) => panic!("the upgrade was accepted"),
        Err(e) => panic!("unexpected error {e}"),
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_admin_socket_receives_events_through_the_gateway() {
    let world = WsWorld::start(true).await;
    let mut ws = world.admin_socket("").await;
    send_json(&mut ws, json!({"event": "join_admin"})).await;
    assert_eq!(
        next_event(&mut ws).await,
        json!({"event": "message", "data": {"data": "Te has unido a la sala de notificaciones de administradores."}})
    );
    let envelope = world.feedback(1).await;
    let event = next_event(&mut ws).await;
    assert_eq!(event["event"], "new_feedback");
    assert_eq!(event["id"], envelope.id.to_string());
    assert_eq!(event["data"]["id"], 1);
    // Control frames are relayed too.
    ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    match next_frame(&mut ws).await {
        Message::Pong(p) => assert_eq!(&p[..], b"hi"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[tokio::test]
async fn the_query_token_works_and_last_event_id_is_passed_on() {
    let world = WsWorld::start(true).await;
    let token = world.token(Role::Admin);
    let mut ws = world
        .connect(&format!("?access_token={token}"), None)
        .await
        .unwrap();
    let first = world.feedback(1).await;
    assert_eq!(next_event(&mut ws).await["id"], first.id.to_string());
    ws.close(None).await.unwrap();
    let missed = world.feedback(2).await;
    let mut ws = world
        .connect(
            &format!("?access_token={token}&last_event_id={}", first.id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(next_event(&mut ws).await["id"], missed.id.to_string());
    // notify-svc's own refusals come back as they are.
    let (status, body) = refusal(
        world
            .connect(&format!("?access_token={token}&last_event_id=nope"), None)
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_last_event_id"))
    );
}

#[tokio::test]
async fn a_users_upgrade_is_403_json_and_never_reaches_notify_svc() {
    let world = WsWorld::start(true).await;
    let user = world.token(Role::User);
    let (status, body) = refusal(world.connect("", Some(&user)).await).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    assert!(body["msg"].as_str().is_some_and(|m| m.contains("admins")));
    let (status, _) = refusal(
        world
            .connect(&format!("?access_token={user}&last_event_id=nope"), None)
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(world.notify_sockets(), 0, "no socket is held for the user");
    // The gateway refuses by itself: with notify-svc down a user still gets 403, not 502.
    let alone = WsWorld::start(false).await;
    let (status, _) = refusal(alone.connect("", Some(&alone.token(Role::User))).await).await;
    assert_eq!(status, 403);
}

/// Sends `join_admin` on every socket and checks each answers with the seed's `message`.
async fn all_answer(sockets: &mut [Ws]) {
    for ws in sockets.iter_mut() {
        send_json(ws, json!({"event": "join_admin"})).await;
        assert_eq!(next_event(ws).await["event"], "message");
    }
}

#[tokio::test]
async fn an_admins_sixth_socket_is_429_while_the_five_keep_working() {
    let world = WsWorld::start(true).await;
    let admin = world.token(Role::Admin);
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(world.connect("", Some(&admin)).await.unwrap());
    }
    let (status, body) = refusal(world.connect("", Some(&admin)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_sockets"))
    );
    all_answer(&mut sockets).await;
    let envelope = world.feedback(1).await;
    for ws in sockets.iter_mut() {
        assert_eq!(next_event(ws).await["id"], envelope.id.to_string());
    }
    // Once the gateway has echoed a close, notify-svc has freed the slot: a new one gets in.
    let mut closing = sockets.remove(0);
    closing.close(None).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), closing.next())
            .await
            .expect("the close is echoed in time")
        {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => continue,
        }
    }
    let mut again = world.connect("", Some(&admin)).await.unwrap();
    all_answer(std::slice::from_mut(&mut again)).await;
    let (status, _) = refusal(world.connect("", Some(&admin)).await).await;
    assert_eq!(status, 429);
    assert_eq!(world.notify_sockets(), 5);
}

#[tokio::test]
async fn a_client_flooding_messages_is_closed_with_1008() {
    let world = WsWorld::start_with(
        Some(notify_svc::WsSettings {
            message_rate: 1,
            message_burst: 3,
            ..notify_svc::WsSettings::default()
        }),
        RateLimitConfig::disabled(),
    )
    .await;
    let mut ws = world.admin_socket("").await;
    for _ in 0..10 {
        ws.feed(Message::text(json!({"event": "join_admin"}).to_string()))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    let mut answers = 0;
    loop {
        match next_frame(&mut ws).await {
            Message::Text(_) => answers += 1,
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1008);
                assert!(frame.reason.contains("too many messages"), "{frame:?}");
                break;
            }
            other => panic!("expected answers then a 1008 close, got {other:?}"),
        }
    }
    assert_eq!(answers, 3);
}

#[tokio::test]
async fn the_upgrade_counts_against_the_rate_limits() {
    let limits = RateLimitConfig {
        enabled: true,
        default: parse_limits("3/minute").unwrap(),
        ..RateLimitConfig::disabled()
    };
    let world = WsWorld::start_with(Some(notify_svc::WsSettings::default()), limits).await;
    let admin = world.token(Role::Admin);
    let mut request = world.url("").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let (_first, answer) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert!(
        answer.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .contains("r=2"),
        "{:?}",
        answer.headers()
    );
    let _second = world.connect("", Some(&admin)).await.unwrap();
    let _third = world.connect("", Some(&admin)).await.unwrap();
    match world.connect("", Some(&admin)).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 429);
            assert!(resp.headers().contains_key("retry-after"));
            let body: Value = serde_json::from_slice(&resp.body().clone().unwrap()).unwrap();
            assert_eq!(body["error"], "rate_limited", "{body}");
        }
        Ok(_) => panic!("the fourth upgrade in a minute was accepted"),
        Err(e) => panic!("unexpected error {e}"),
    }
    assert_eq!(
        world.notify_sockets(),
        3,
        "the refused one never reached notify-svc"
    );
    // Another admin has limits of their own.
    let _other = world.admin_socket("").await;
}

#[tokio::test]
async fn a_missing_or_bad_token_is_401_json_before_the_upgrade() {
    let world = WsWorld::start(true).await;
    let (status, body) = refusal(world.connect("", None).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token"))
    );
    let (status, body) = refusal(world.connect("", Some("not-a-token")).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let forged = SigningKeyPair::generate()
        .unwrap()
        .sign(&claims("mallory", Role::Admin))
        .unwrap();
    let (status, _) = refusal(
        world
            .connect(&format!("?access_token={forged}"), None)
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(world.notify_sockets(), 0, "nothing reached notify-svc");
}

#[tokio::test]
async fn notify_svc_down_is_502_json_before_the_upgrade() {
    let world = WsWorld::start(false).await;
    let (status, body) = refusal(world.connect("", Some(&world.token(Role::Admin))).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("upstream_unavailable"))
    );
    assert!(body["msg"].as_str().unwrap().contains("notify-svc"));
}

#[tokio::test]
async fn closing_either_side_closes_the_other() {
    let mut world = WsWorld::start(true).await;
    let mut ws = world.admin_socket("").await;
    eventually("notify-svc has the socket", || world.notify_sockets() == 1).await;
    ws.close(None).await.unwrap();
    eventually("notify-svc's socket is closed", || {
        world.notify_sockets() == 0
    })
    .await;

    let mut ws = world.admin_socket("").await;
    eventually("notify-svc has the socket", || world.notify_sockets() == 1).await;
    world.notify.take().unwrap().0.stop().await;
    match next_frame(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close, got {other:?}"),
    }
}
