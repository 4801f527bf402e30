//! What every answer carries and what the gateway refuses before routing: CORS by allowlist,
//! security headers, the size of the request line and headers, a client that sends too slowly.

use crate::helpers::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let gw = spawn_gateway().await;
    let token = gw.user_token().await;
    for r in [
        gw.client.get(gw.at("/health")).send().await.unwrap(),
        gw.client.get(gw.at("/nowhere")).send().await.unwrap(),
        gw.client
            .post(gw.at("/feedback"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"prediction": 3, "correct": true}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(header(&r, "x-content-type-options").unwrap(), "nosniff");
        assert_eq!(header(&r, "x-frame-options").unwrap(), "DENY");
        assert_eq!(header(&r, "referrer-policy").unwrap(), "no-referrer");
        assert!(
            header(&r, "content-security-policy")
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(header(&r, "cache-control").unwrap(), "no-store");
    }
}

#[tokio::test]
async fn only_listed_origins_get_cors_answers() {
    let gw = spawn_gateway().await;
    let preflight = |origin: &str| {
        gw.client
            .request(reqwest::Method::OPTIONS, gw.at("/api/v1/predict"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight(ALLOWED_ORIGIN).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        header(&ok, "access-control-allow-origin").unwrap(),
        ALLOWED_ORIGIN
    );
    assert!(
        header(&ok, "access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    let evil = preflight("https://evil.example.com").await.unwrap();
    assert!(header(&evil, "access-control-allow-origin").is_none());
    assert_error(evil, 403, "cors_origin_not_allowed").await;

    // A simple request: the allowed origin may read the answer, another may not.
    let from = |origin: &str| {
        gw.client
            .get(gw.at("/.well-known/jwks.json"))
            .header("origin", origin)
            .send()
    };
    let r = from(ALLOWED_ORIGIN).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin").unwrap(),
        ALLOWED_ORIGIN
    );
    assert!(
        header(&r, "access-control-expose-headers")
            .unwrap()
            .contains("ratelimit")
    );
    assert!(
        header(&r, "vary")
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin")
    );
    let r = from("https://evil.example.com").await.unwrap();
    assert!(header(&r, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn an_overlong_request_line_or_header_block_is_refused_as_json() {
    let gw = spawn_gateway().await;
    let long_path = format!("/health?{}", "a".repeat(9 * 1024));
    let r = gw.client.get(gw.at(&long_path)).send().await.unwrap();
    assert_error(r, 414, "uri_too_long").await;
    let mut request = gw.client.get(gw.at("/health"));
    for i in 0..20 {
        request = request.header(format!("x-filler-{i}"), "b".repeat(1000));
    }
    assert_error(request.send().await.unwrap(), 431, "headers_too_large").await;
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_is_cut_off() {
    let gw = spawn_gateway().await;
    let token = gw.user_token().await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /feedback HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"prediction\":"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}
