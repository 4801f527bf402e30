//! The client's address behind a proxy: believed from `X-Forwarded-For` only when the peer is
//! a trusted proxy, and then the same on the HTTP path (rate limits, the header upstream) as on
//! the WebSocket.

use crate::helpers::*;
use common::testing::{redis_prefix, redis_url};
use gateway::ratelimit::{RateLimitConfig, parse_limits};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// The address a test client claims, as a proxy in front of the gateway would forward it.
const CLIENT: &str = "198.51.100.7";
/// Another client behind the same proxy.
const NEIGHBOUR: &str = "198.51.100.8";

/// A gateway counting one request an hour per client, whose notify-svc refuses every upgrade
/// saying what it received; behind this machine (where the tests connect from) as a trusted proxy,
/// or not.
async fn gateway(trust_this_machine: bool) -> TestGateway {
    let trusted_proxies = if trust_this_machine {
        vec![gateway::edge::Cidr::parse("127.0.0.1").unwrap()]
    } else {
        vec![]
    };
    spawn_gateway_with(Setup {
        redis_url: Some(redis_url()),
        prefix: redis_prefix(),
        rate_limit: RateLimitConfig {
            enabled: true,
            default: parse_limits("1/hour").unwrap(),
            ..RateLimitConfig::disabled()
        },
        web: repo_web(),
        trusted_proxies,
        notify_url: Some(spawn_refusing_upstream()),
    })
    .await
}

/// A public route (predict-svc's health, an echo here), as relayed for `client`: the status and
/// the `X-Forwarded-For` the upstream received.
async fn health_for(gw: &TestGateway, client: &str) -> (u16, Option<String>) {
    let r = gw
        .client
        .get(gw.at("/v2/health/live"))
        .header("X-Forwarded-For", format!("6.6.6.6, {client}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let seen: Value = r.json().await.unwrap();
    let forwarded = seen["headers"]["x-forwarded-for"]
        .as_str()
        .map(str::to_owned);
    (status, forwarded)
}

/// The `X-Forwarded-For` notify-svc received with an admin's upgrade relayed for `client`.
async fn upgrade_for(gw: &TestGateway, client: &str) -> String {
    let url = gw.at("/ws").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    let admin = gw.admin_token().await;
    headers.insert("authorization", format!("Bearer {admin}").parse().unwrap());
    headers.insert(
        "x-forwarded-for",
        format!("6.6.6.6, {client}").parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503, "notify-svc's refusal, relayed");
            let seen: Value = serde_json::from_slice(&resp.body().clone().unwrap()).unwrap();
            seen["headers"]["x-forwarded-for"]
                .as_str()
                .unwrap()
                .to_owned()
        }
        Ok(_) => panic!("the upgrade was accepted"),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let gw = gateway(true).await;
    // Counted per forwarded address: the client's second request is refused, not its
    // neighbour's first; upstream, the client is the right-most untrusted hop.
    assert_eq!(
        health_for(&gw, CLIENT).await,
        (200, Some(CLIENT.to_owned()))
    );
    assert_eq!(health_for(&gw, CLIENT).await.0, 429);
    assert_eq!(
        health_for(&gw, NEIGHBOUR).await,
        (200, Some(NEIGHBOUR.to_owned()))
    );
    // The WebSocket takes the client's address from the same place.
    assert_eq!(upgrade_for(&gw, CLIENT).await, CLIENT);
}

#[tokio::test]
async fn from_an_untrusted_peer_a_forwarded_address_is_not_believed() {
    let gw = gateway(false).await;
    // The peer is the client, whatever it claims: one count for both claims.
    assert_eq!(
        health_for(&gw, CLIENT).await,
        (200, Some("127.0.0.1".to_owned()))
    );
    assert_eq!(health_for(&gw, NEIGHBOUR).await.0, 429);
    assert_eq!(upgrade_for(&gw, CLIENT).await, "127.0.0.1");
}
