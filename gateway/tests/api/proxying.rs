use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn requests_arrive_upstream_as_sent_without_spoofable_headers() {
    let gw = spawn_gateway().await;
    let admin = gw.admin_token().await;
    let r = gw
        .client
        .get(gw.at("/admin/feedback?page=2&correct=false"))
        .bearer_auth(&admin)
        .header("X-User-Role", "admin")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Request-Id", "client-req-42")
        .header("Accept-Language", "es")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "client-req-42");
    assert!(
        r.headers().contains_key("content-length"),
        "a body of known length is not re-chunked"
    );
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["path"], "/admin/feedback");
    assert_eq!(seen["query"], "page=2&correct=false");
    let headers = &seen["headers"];
    assert_eq!(headers["x-request-id"], "client-req-42");
    assert_eq!(headers["accept-language"], "es");
    // The service verifies the token itself: it is passed on.
    assert_eq!(headers["authorization"], format!("Bearer {admin}"));
    assert!(headers.get("x-user-role").is_none(), "{headers}");
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "the client's claim is replaced"
    );
}

#[tokio::test]
async fn a_request_id_is_made_when_the_client_sends_none_or_a_bad_one() {
    let gw = spawn_gateway().await;
    let user = gw.user_token().await;
    let r = gw
        .client
        .post(gw.at("/feedback"))
        .bearer_auth(&user)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-request-id"], id.as_str());

    let r = gw
        .client
        .post(gw.at("/feedback"))
        .bearer_auth(&user)
        .header("X-Request-Id", "bad id with spaces")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn the_gateways_own_answers_carry_the_request_id_too() {
    let gw = spawn_gateway().await;
    let user = gw.user_token().await;
    let requests = [
        ("health", gw.client.get(gw.at("/health"))),
        ("unknown path", gw.client.get(gw.at("/nope"))),
        ("no token", gw.client.get(gw.at("/me"))),
        (
            "not an admin",
            gw.client.get(gw.at("/admin/report")).bearer_auth(&user),
        ),
        ("wrong method", gw.client.get(gw.at("/login"))),
        ("a page", gw.client.get(gw.at("/"))),
        (
            "a request target too long",
            gw.client
                .get(gw.at(&format!("/me?q={}", "x".repeat(9 * 1024)))),
        ),
        (
            "a refused preflight",
            gw.client
                .request(reqwest::Method::OPTIONS, gw.at("/login"))
                .header("Origin", "https://evil.example.com")
                .header("Access-Control-Request-Method", "POST"),
        ),
    ];
    for (what, request) in requests {
        // The client's own id comes back...
        let r = request
            .try_clone()
            .unwrap()
            .header("X-Request-Id", "support-ticket-7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "support-ticket-7", "{what}");
        // ...and without one, a new id, once.
        let r = request.send().await.unwrap();
        let ids: Vec<_> = r.headers().get_all("x-request-id").iter().collect();
        assert_eq!(ids.len(), 1, "{what}");
        assert!(
            uuid::Uuid::parse_str(ids[0].to_str().unwrap()).is_ok(),
            "{what}"
        );
    }
}

#[tokio::test]
async fn bodies_stream_through_up_to_the_route_limit() {
    let gw = spawn_gateway().await;
    let user = gw.user_token().await;
    // An upload route takes a few MiB.
    let big = vec![7u8; 3 * 1024 * 1024];
    let r = gw
        .client
        .post(gw.at("/api/v1/predict"))
        .bearer_auth(&user)
        .header("content-type", "application/octet-stream")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["body_len"], 3 * 1024 * 1024);

    // Over the upload limit, declared: refused before reaching the service.
    let r = gw
        .client
        .post(gw.at("/api/v2/predict"))
        .bearer_auth(&user)
        .body(vec![0u8; UPLOAD_LIMIT + 1])
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "payload_too_large").await;

    // A JSON route has a smaller limit; a chunked body (no Content-Length) is counted too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b' '; 8 * 1024])).collect();
    let r = gw
        .client
        .post(gw.at("/feedback"))
        .bearer_auth(&user)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "payload_too_large").await;
}
