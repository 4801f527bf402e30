//! Rate limits counted in the real Redis, shared by gateway replicas.

use crate::helpers::*;
use common::testing::{redis_prefix, redis_url};
use futures_util::future::join_all;
use gateway::ratelimit::{RateLimitConfig, parse_limits, parse_route_limits};
use serde_json::json;
use std::time::Duration;

fn config(default: &str, routes: &str) -> RateLimitConfig {
    RateLimitConfig {
        enabled: true,
        default: parse_limits(default).unwrap(),
        routes: parse_route_limits(routes).unwrap(),
        exempt: vec!["/health".into(), "/ready".into()],
        fail_open: true,
        timeout: Duration::from_millis(500),
        oip_quotas: gateway::ratelimit::parse_oip_quotas(RateLimitConfig::DEFAULT_OIP_QUOTAS)
            .unwrap(),
    }
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn three_hundred_concurrent_requests_on_two_gateways_admit_exactly_the_quota() {
    let prefix = redis_prefix();
    let limits = config("120/hour", "");
    let a = spawn_limited_gateway(Some(redis_url()), prefix.clone(), limits.clone()).await;
    let b = spawn_limited_gateway(Some(redis_url()), prefix, limits).await;
    // A public route, so both gateways see the same client: this machine's address.
    let requests = (0..300).map(|i| {
        let gateway = if i % 2 == 0 { &a } else { &b };
        async move {
            gateway
                .client
                .get(gateway.at("/v2/health/live"))
                .send()
                .await
                .unwrap()
        }
    });
    let answers = join_all(requests).await;
    let mut admitted = 0;
    let mut refused = 0;
    for r in answers {
        match r.status().as_u16() {
            200 => admitted += 1,
            429 => {
                refused += 1;
                assert!(header(&r, "retry-after").is_some());
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["error"], "rate_limited");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((admitted, refused), (120, 180));
    // Both gateways run in this process: /metrics counts their decisions together.
    let text = a
        .client
        .get(format!("{}/metrics", a.management_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("rate_limit_decisions_total{decision=\"allowed\"} 120"),
        "{text}"
    );
    assert!(
        text.contains("rate_limit_decisions_total{decision=\"refused\"} 180"),
        "{text}"
    );
}

#[tokio::test]
async fn the_headers_count_down_and_a_refusal_says_when_to_retry() {
    let gateway = spawn_limited_gateway(
        Some(redis_url()),
        redis_prefix(),
        config("1000/day", "/feedback=3/minute"),
    )
    .await;
    let ana = gateway.user_token().await;
    let feedback = |token: &str| {
        gateway
            .client
            .post(gateway.at("/feedback"))
            .bearer_auth(token)
            .json(&json!({"prediction": 1, "correct": true}))
            .send()
    };
    for left in [2, 1, 0] {
        let r = feedback(&ana).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "ratelimit-policy").unwrap(),
            "\"minute\";q=3;w=60"
        );
        let state = header(&r, "ratelimit").unwrap();
        assert!(
            state.starts_with(&format!("\"minute\";r={left};t=")),
            "{state}"
        );
    }
    let r = feedback(&ana).await.unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert!(header(&r, "ratelimit").unwrap().contains(";r=0;"));
    let body = assert_error(r, 429, "rate_limited").await;
    assert!(body["msg"].as_str().unwrap().contains("3 per minute"));

    // The limit is per user and per route: another user, or another route, is not held up.
    let bea = gateway.user_token().await;
    assert_eq!(feedback(&bea).await.unwrap().status(), 200);
    let me = gateway
        .client
        .get(gateway.at("/me"))
        .bearer_auth(&ana)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(
        header(&me, "ratelimit-policy").unwrap(),
        "\"day\";q=1000;w=86400"
    );
    // Health is never limited and carries no rate-limit headers.
    let health = gateway
        .client
        .get(gateway.at("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(header(&health, "ratelimit").is_none());
}

#[tokio::test]
async fn the_quota_is_whole_again_once_its_window_has_passed() {
    let gateway =
        spawn_limited_gateway(Some(redis_url()), redis_prefix(), config("2/2s", "")).await;
    let get = || gateway.client.get(gateway.at("/v2/health/live")).send();
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(get().await.unwrap().status(), 429);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "ratelimit").unwrap().contains(";r=1;"));
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(get().await.unwrap().status(), 429);
}

#[tokio::test]
async fn with_redis_unreachable_the_gateway_fails_open_or_closed_as_configured() {
    // Nothing listens on port 1.
    let down = Some("redis://127.0.0.1:1".to_owned());
    let open = spawn_limited_gateway(down.clone(), redis_prefix(), config("1/day", "")).await;
    for _ in 0..3 {
        let r = open
            .client
            .get(open.at("/v2/health/live"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "fail-open lets requests through");
        assert!(header(&r, "ratelimit").is_none());
    }
    let mut strict = config("1/day", "");
    strict.fail_open = false;
    let closed = spawn_limited_gateway(down, redis_prefix(), strict).await;
    let r = closed
        .client
        .get(closed.at("/v2/health/live"))
        .send()
        .await
        .unwrap();
    assert_error(r, 503, "rate_limit_unavailable").await;
    // Unlimited routes do not need Redis at all.
    let r = closed
        .client
        .get(closed.at("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_refusal_names_the_request_it_refuses() {
    let gateway =
        spawn_limited_gateway(Some(redis_url()), redis_prefix(), config("1/hour", "")).await;
    let first = gateway
        .client
        .get(gateway.at("/v2/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let refused = gateway
        .client
        .get(gateway.at("/v2/health/live"))
        .header("X-Request-Id", "support-ticket-429")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(
        header(&refused, "x-request-id").as_deref(),
        Some("support-ticket-429")
    );
}

fn infer_body(images: usize) -> serde_json::Value {
    json!({"inputs": [{
        "name": "input", "datatype": "FP32", "shape": [images, 784], "data": vec![0; images * 784],
    }]})
}

#[tokio::test]
async fn an_infer_request_counts_against_its_models_predict_quota_once_per_image() {
    let limits = config("100/hour", "/api/v2/predict=10/day; /api/v1/predict=3/day");
    let gateway = spawn_limited_gateway(Some(redis_url()), redis_prefix(), limits).await;
    let token = gateway.user_token().await;
    let infer = |model: &str, images: usize| {
        gateway
            .client
            .post(gateway.at(&format!("/v2/models/{model}/infer")))
            .bearer_auth(&token)
            .json(&infer_body(images))
            .send()
    };
    // Seven images of mnist-cnn: seven of /api/v2/predict's ten.
    let r = infer("mnist-cnn", 7).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "ratelimit").as_deref(),
        Some("\"day\";r=3;t=60480")
    );
    // Four more do not fit in the three left: refused whole, and only the edge's one counted.
    let r = infer("mnist-cnn", 4).await.unwrap();
    assert!(header(&r, "retry-after").is_some());
    let body = assert_error(r, 429, "rate_limited").await;
    assert!(
        body["msg"].as_str().unwrap().contains("carries 4 images"),
        "{body}"
    );
    // Two are left, for an upload as for an infer request.
    let upload = gateway
        .client
        .post(gateway.at("/api/v2/predict"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    assert_eq!(infer("mnist-cnn", 1).await.unwrap().status(), 200);
    assert_eq!(infer("mnist-cnn", 1).await.unwrap().status(), 429);
    // mnist-mlp counts against /api/v1/predict's three: a batch of five can never pass.
    let r = infer("mnist-mlp", 5).await.unwrap();
    let body = assert_error(r, 429, "rate_limited").await;
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .contains("more than the limit of 3 per day"),
        "{body}"
    );
    assert_eq!(infer("mnist-mlp", 2).await.unwrap().status(), 200);
    // A model with no predict quota counts per image against /v2/models' (the default) limits.
    let r = infer("other", 30).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "ratelimit").as_deref(),
        Some("\"hour\";r=70;t=1080")
    );
}
