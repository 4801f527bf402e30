//! `GET /metrics` on the management port: the Prometheus text of the process, counting what it
//! served. The public port has no `/metrics`.

use crate::helpers::*;
use serde_json::json;

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_the_requests_served_by_route_and_status() {
    let gw = spawn_gateway().await;
    let token = gw.user_token().await;
    for _ in 0..2 {
        let r = gw
            .client
            .post(gw.at("/feedback"))
            .bearer_auth(&token)
            .json(&json!({"prediction": 3, "correct": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = gw.client.post(gw.at("/feedback")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = gw
        .client
        .get(format!("{}/metrics", gw.management_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let series = |status: u16| {
        format!(
            "http_requests_total{{service=\"gateway\",route=\"/feedback\",method=\"POST\",status=\"{status}\"}}"
        )
    };
    assert_eq!(value(&text, &series(200)), Some(2.0), "{text}");
    assert_eq!(value(&text, &series(401)), Some(1.0), "{text}");
    assert_eq!(
        value(
            &text,
            "http_request_duration_seconds_count{service=\"gateway\",route=\"/feedback\",method=\"POST\",status=\"200\"}"
        ),
        Some(2.0)
    );
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
    // The public port has no /metrics, relayed by a proxy or not; nor /internal/ (the gateway
    // has none, and would never relay one).
    for forwarded in [None, Some("203.0.113.7")] {
        let mut request = gw.client.get(gw.at("/metrics"));
        if let Some(ip) = forwarded {
            request = request.header("x-forwarded-for", ip);
        }
        assert_error(request.send().await.unwrap(), 404, "not_found").await;
    }
    let internal = gw
        .client
        .get(gw.at("/internal/predictions/1"))
        .send()
        .await
        .unwrap();
    assert_error(internal, 404, "not_found").await;
    // The management port serves nothing public: no proxying from there.
    let proxied = gw
        .client
        .post(format!("{}/feedback", gw.management_url))
        .bearer_auth(&token)
        .json(&json!({"prediction": 3, "correct": true}))
        .send()
        .await
        .unwrap();
    assert_error(proxied, 404, "not_found").await;
    // auth-svc runs in this test's process too: its own routes, by pattern.
    assert!(
        value(
            &text,
            "http_requests_total{service=\"auth-svc\",route=\"/login\",method=\"POST\",status=\"200\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
}
