//! The web pages: served from the fixed table with their content types, the pages' CSP and
//! revalidation; nothing else on disk is reachable, and the API still answers JSON.

use crate::helpers::{assert_error, spawn_gateway, spawn_gateway_serving};
use common::testing::TempDir;
use gateway::pages::{ASSETS, Root, WebConfig};
use gateway::ratelimit::RateLimitConfig;

/// A web dir holding every file of the table, each with a body naming its URL.
struct FakeWebDir(TempDir);

impl FakeWebDir {
    fn create() -> Self {
        let dir = TempDir::new();
        for asset in ASSETS {
            let path = match asset.root {
                Root::Web => dir.0.join(asset.file),
                Root::Vendor => dir.0.join("node_modules").join(asset.file),
            };
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, Self::body(asset.url)).unwrap();
        }
        // Beside the table's files, one that must never be served.
        std::fs::write(dir.0.join("static/secret.txt"), "not for the web").unwrap();
        FakeWebDir(dir)
    }

    fn body(url: &str) -> String {
        format!("content of {url}\n")
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_file_of_the_table_is_served_with_its_type_and_pages_get_their_policy() {
    let dir = FakeWebDir::create();
    let gw = spawn_gateway_serving(
        None,
        String::new(),
        RateLimitConfig::disabled(),
        WebConfig::at(&dir.0.0),
    )
    .await;
    let host = gw.url.trim_start_matches("http://").to_owned();
    for asset in ASSETS {
        let r = gw.client.get(gw.at(asset.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", asset.url);
        assert_eq!(
            header(&r, "content-type"),
            asset.content_type,
            "{}",
            asset.url
        );
        assert_eq!(header(&r, "cache-control"), "no-cache", "{}", asset.url);
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        let csp = header(&r, "content-security-policy");
        if asset.content_type.starts_with("text/html") {
            for directive in [
                "default-src 'none'",
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self' data: blob:",
                &format!("connect-src 'self' ws://{host} wss://{host}"),
                "frame-ancestors 'none'",
            ] {
                assert!(csp.contains(directive), "{}: {csp}", asset.url);
            }
        } else {
            assert_eq!(csp, "default-src 'none'; frame-ancestors 'none'");
        }
        let etag = header(&r, "etag");
        assert!(etag.starts_with('"'), "{etag}");
        assert_eq!(r.text().await.unwrap(), FakeWebDir::body(asset.url));

        let again = gw
            .client
            .get(gw.at(asset.url))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{}", asset.url);
        assert_eq!(again.text().await.unwrap(), "");
    }

    // Files beside the table's are not reachable, by name or by climbing.
    for path in [
        "/static/secret.txt",
        "/static/%2e%2e/index.html",
        "/vendor/chart.js/package.json",
        "/index.html",
    ] {
        let r = gw.client.get(gw.at(path)).send().await.unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 404),
            "{path}: {}",
            r.status()
        );
        assert!(
            header(&r, "content-type").starts_with("application/json"),
            "{path}"
        );
        assert!(!r.text().await.unwrap().contains("not for the web"));
    }

    let r = gw.client.post(gw.at("/")).send().await.unwrap();
    assert_eq!(header(&r, "allow"), "GET, HEAD");
    assert_error(r, 405, "method_not_allowed").await;

    let head = gw.client.head(gw.at("/dashboard")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        header(&head, "content-length"),
        FakeWebDir::body("/dashboard").len().to_string()
    );
}

#[tokio::test]
async fn the_api_beside_the_pages_still_answers_json_with_the_strict_policy() {
    let gw = spawn_gateway().await;
    let page = gw.client.get(gw.at("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("/static/try.js"), "{html}");

    let r = gw.client.get(gw.at("/me")).send().await.unwrap();
    assert_eq!(
        header(&r, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_error(r, 401, "missing_token").await;

    // `/admin/...` stays the API's: the dashboard page is `/dashboard`.
    let r = gw.client.get(gw.at("/admin/report")).send().await.unwrap();
    assert_error(r, 401, "missing_token").await;
    let token = gw.user_token().await;
    let r = gw.get_with("/admin/report", &token).await;
    assert_error(r, 403, "forbidden").await;
}

#[tokio::test]
async fn without_its_web_files_the_gateway_starts_and_the_pages_answer_503() {
    let gw = spawn_gateway_serving(
        None,
        String::new(),
        RateLimitConfig::disabled(),
        WebConfig::at("/nonexistent/predictloop-web"),
    )
    .await;
    for path in [
        "/",
        "/dashboard",
        "/static/app.css",
        "/vendor/chart.umd.min.js",
    ] {
        let r = gw.client.get(gw.at(path)).send().await.unwrap();
        assert_error(r, 503, "web_unavailable").await;
    }
    let r = gw.client.get(gw.at("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The API's description is in the binary.
    let r = gw.client.get(gw.at("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_openapi_document_describes_the_routes_it_is_served_beside() {
    let gw = spawn_gateway().await;
    let r = gw.client.get(gw.at("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/json");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    assert_eq!(
        header(&r, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    let etag = header(&r, "etag");
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    // What it says of a route is what the gateway does: /admin/report needs an admin token.
    let report = &doc["paths"]["/admin/report"]["get"];
    assert!(report["responses"]["403"].is_object(), "{report}");
    let r = gw.client.get(gw.at("/admin/report")).send().await.unwrap();
    assert_error(r, 401, "missing_token").await;

    let again = gw
        .client
        .get(gw.at("/openapi.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let r = gw.client.post(gw.at("/openapi.json")).send().await.unwrap();
    assert_error(r, 405, "method_not_allowed").await;
}
