//! Starting notify-svc for a test, publishing events the way feedback-svc does, and a small
//! WebSocket client.

use common::bus::{Envelope, EventBus, RedisBus};
use common::config::{CommonConfig, JwtConfig, Mode, RedisConfig};
use common::jwt::{JwkSet, Role, SigningKeyPair};
use common::kv::Redis;
use common::service::RunningService;
use common::testing::{claims, redis_prefix, redis_url, serve_jwks};
use futures_util::{SinkExt, StreamExt};
use notify_svc::{Config, Hub, Stats, WsSettings};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The history stream and its field, as feedback-svc writes them.
pub const HISTORY: &str = "events:history";

/// A signing key and its JWKS, served as auth-svc would.
pub struct Auth {
    pub key: SigningKeyPair,
    pub jwks_url: String,
}

impl Auth {
    pub fn new() -> Self {
        let key = SigningKeyPair::generate().unwrap();
        let jwks_url = serve_jwks(JwkSet {
            keys: vec![key.jwk()],
        });
        Auth { key, jwks_url }
    }

    pub fn token(&self, name: &str, role: Role) -> String {
        self.key.sign(&claims(name, role)).unwrap()
    }

    pub fn admin(&self) -> String {
        self.token("root-admin", Role::Admin)
    }

    pub fn user(&self) -> String {
        self.token("alice", Role::User)
    }
}

/// Settings fast enough for tests; each test changes what it exercises.
pub fn test_settings() -> WsSettings {
    WsSettings {
        heartbeat_interval: Duration::from_secs(5),
        client_timeout: Duration::from_secs(10),
        send_queue: 64,
        replay_limit: 100,
        max_connections: 100,
        max_per_user: 5,
        message_rate: 50,
        message_burst: 50,
    }
}

pub struct TestNotify {
    pub url: String,
    pub ws_url: String,
    pub app: RunningService,
    pub hub: Arc<Hub>,
}

impl TestNotify {
    pub fn stats(&self) -> Stats {
        self.hub.stats()
    }

    pub async fn connect(&self, token: &str) -> Ws {
        connect(&self.ws_url, Some(token)).await.unwrap()
    }

    pub async fn connect_with(&self, token: &str, query: &str) -> Ws {
        connect(&format!("{}?{query}", self.ws_url), Some(token))
            .await
            .unwrap()
    }
}

/// One test's world: the key, a Redis prefix, and a way to publish on it.
pub struct World {
    pub auth: Auth,
    pub prefix: String,
    pub redis: Redis,
}

impl World {
    pub fn new() -> Self {
        let prefix = redis_prefix();
        let redis = Redis::connect(&redis_url(), &prefix).unwrap();
        World {
            auth: Auth::new(),
            prefix,
            redis,
        }
    }

    pub fn config(&self, ws: WsSettings) -> Config {
        Config {
            common: CommonConfig {
                mode: Mode::Development,
                bind_addr: "127.0.0.1:0".parse().unwrap(),
                management_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                shutdown_timeout_secs: 2,
                workers: 2,
            },
            redis: RedisConfig {
                url: redis_url(),
                prefix: self.prefix.clone(),
            },
            jwt: JwtConfig {
                jwks_url: self.auth.jwks_url.clone(),
                issuer: JwtConfig::DEFAULT_ISSUER.into(),
                audience: JwtConfig::DEFAULT_AUDIENCE.into(),
                jwks_refresh: JwtConfig::DEFAULT_JWKS_REFRESH,
            },
            ws,
        }
    }

    /// A notify-svc replica on this world's Redis prefix.
    pub async fn spawn(&self, ws: WsSettings) -> TestNotify {
        self.spawn_with(self.config(ws)).await
    }

    pub async fn spawn_with(&self, config: Config) -> TestNotify {
        let (app, hub) = notify_svc::build_with_hub(config).await.unwrap();
        let port = app.port;
        TestNotify {
            url: format!("http://127.0.0.1:{port}"),
            ws_url: format!("ws://127.0.0.1:{port}/ws"),
            app,
            hub,
        }
    }

    /// Publishes as feedback-svc's relay does: appended to the history, then published live.
    pub async fn publish_envelope(&self, envelope: &Envelope) {
        let _: String = redis::cmd("XADD")
            .arg(self.redis.key(HISTORY))
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000)
            .arg("*")
            .arg("event")
            .arg(serde_json::to_string(envelope).unwrap())
            .query_async(&mut self.redis.conn())
            .await
            .unwrap();
        self.publish_live(envelope).await;
    }

    /// Publishes on the bus only (as the retrain worker may).
    pub async fn publish_live(&self, envelope: &Envelope) {
        RedisBus::new(self.redis.clone())
            .publish(envelope)
            .await
            .unwrap();
    }

    pub async fn publish(&self, kind: &str, data: Value) -> Envelope {
        let envelope = Envelope::new(kind, data);
        self.publish_envelope(&envelope).await;
        envelope
    }

    pub async fn feedback(&self, n: i64) -> Envelope {
        self.publish(common::bus::events::FEEDBACK_CREATED, feedback_dict(n))
            .await
    }
}

impl Drop for World {
    fn drop(&mut self) {
        drop_history(&self.redis);
    }
}

/// Deletes a test's history stream (its only lasting key).
pub fn drop_history(redis: &Redis) {
    if let Ok(mut conn) = redis.client().get_connection() {
        let _: Result<i64, _> = redis::cmd("DEL").arg(redis.key(HISTORY)).query(&mut conn);
    }
}

/// A stored feedback as feedback-svc's `to_dict()` gives it.
pub fn feedback_dict(id: i64) -> Value {
    json!({
        "id": id,
        "username": "alice",
        "prediction": 7,
        "correct": false,
        "comment": "era un 1",
        "timestamp": "2026-11-28T10:00:00.123456",
        "prediction_id": null,
        "label": 1,
        "model": null,
        "model_version": null,
    })
}

/// Opens a WebSocket, the token in the `Authorization` header when given.
pub async fn connect(url: &str, token: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut request = url.into_client_request()?;
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(ws)
}

/// The status and JSON body of a refused upgrade.
pub async fn refused(url: &str, token: Option<&str>) -> (u16, Value) {
    match connect(url, token).await {
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().clone().unwrap_or_default();
            let body: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
            (status, body)
        }
        Ok(_) => panic!("the upgrade was accepted"),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// What a socket received next, ignoring pings and pongs.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Closed(Option<CloseFrame>),
    Ended,
    TimedOut,
}

pub async fn receive(ws: &mut Ws, within: Duration) -> Received {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        return match next {
            Err(_) => Received::TimedOut,
            Ok(None) | Ok(Some(Err(_))) => Received::Ended,
            Ok(Some(Ok(Message::Text(t)))) => Received::Json(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Close(frame)))) => Received::Closed(frame),
            Ok(Some(Ok(_))) => continue,
        };
    }
}

/// The next JSON event, within `within`; panics otherwise.
pub async fn next_json(ws: &mut Ws, within: Duration) -> Value {
    match receive(ws, within).await {
        Received::Json(v) => v,
        other => panic!("expected an event, got {other:?}"),
    }
}

pub async fn next_event(ws: &mut Ws) -> Value {
    next_json(ws, Duration::from_secs(5)).await
}

/// Asserts nothing but pings arrive for a while.
pub async fn assert_silent(ws: &mut Ws, for_: Duration) {
    match receive(ws, for_).await {
        Received::TimedOut => {}
        other => panic!("expected silence, got {other:?}"),
    }
}

/// The close frame a socket ends with (reading past any events).
pub async fn close_code(ws: &mut Ws, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match receive(ws, left).await {
            Received::Json(_) => continue,
            Received::Closed(frame) => return frame.map(|f| u16::from(f.code)),
            Received::Ended => return None,
            Received::TimedOut => panic!("the socket was not closed in time"),
        }
    }
}

/// Polls until `check` holds, or panics after `within`.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy to Redis that a test can cut, as a network failure would.
pub struct RedisLink {
    pub url: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::broadcast::Sender<()>,
}

impl RedisLink {
    pub async fn start() -> Self {
        use std::sync::atomic::Ordering;
        let target = redis_url()
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, _) = tokio::sync::broadcast::channel(1);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let mut cut = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        RedisLink {
            url: format!("redis://127.0.0.1:{port}"),
            up,
            cut,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = self.cut.send(());
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
