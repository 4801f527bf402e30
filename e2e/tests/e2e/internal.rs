//! The internal plane: `/internal/` routes and `/metrics` only on the management ports, every
//! `/internal/` route behind a service token with its scope; the real flows (feedback reading
//! predictions, retrain-worker registering and promoting) get theirs from auth-svc's `POST /token`.

use crate::helpers::*;
use common::service_auth::scopes;
use serde_json::Value;

struct Route {
    service: &'static str,
    method: reqwest::Method,
    path: String,
    scope: &'static str,
    /// An ONNX file, sent as raw bytes.
    /// The body and its media type.
    body: Option<(&'static str, Vec<u8>)>,
}

async fn send(
    system: &System,
    route: &Route,
    url: String,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = system.client.request(route.method.clone(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((media_type, body)) = &route.body {
        request = request
            .header("content-type", *media_type)
            .body(body.clone());
    }
    request.send().await.unwrap()
}

async fn expect(response: reqwest::Response, status: u16, code: &str, what: &str) {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: {body}");
}

#[tokio::test]
async fn every_internal_route_needs_a_service_token_with_its_scope_on_the_management_port() {
    let system = System::start().await;
    let user = system.user("plane-user").await;
    let admin = system.admin().await;
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();
    let served: Value = system
        .upload(&user, "v1", "d.png", png)
        .await
        .json()
        .await
        .unwrap();
    let prediction = served["prediction_id"].as_str().unwrap().to_owned();
    let model_dir = std::env::var("MODEL_DIR").map_or_else(
        |_| common::testing::repo_root().join("data/models"),
        std::path::PathBuf::from,
    );
    let artifact = std::fs::read(model_dir.join("mnist-mlp.onnx")).unwrap();
    let routes = [
        Route {
            service: "predict-svc",
            method: reqwest::Method::GET,
            path: "/internal/models/mnist-mlp/active".into(),
            scope: scopes::MODELS_READ,
            body: None,
        },
        Route {
            service: "predict-svc",
            method: reqwest::Method::POST,
            path: "/internal/models/mnist-mlp/versions?source_job_id=e2e-plane".into(),
            scope: scopes::MODELS_REGISTER,
            body: Some(("application/octet-stream", artifact)),
        },
        Route {
            service: "predict-svc",
            method: reqwest::Method::POST,
            // The version registered just above begins its rollout.
            path: "/internal/models/mnist-mlp/rollouts".into(),
            scope: scopes::MODELS_PROMOTE,
            body: Some((
                "application/json",
                br#"{"candidate_version": 2, "active_version": 1}"#.to_vec(),
            )),
        },
        Route {
            service: "predict-svc",
            method: reqwest::Method::GET,
            path: format!("/internal/predictions/{prediction}"),
            scope: scopes::PREDICTIONS_READ,
            body: None,
        },
        Route {
            service: "feedback-svc",
            method: reqwest::Method::GET,
            path: "/internal/feedback/labelled".into(),
            scope: scopes::FEEDBACK_READ,
            body: None,
        },
    ];
    for route in &routes {
        let what = format!("{} {} on {}", route.method, route.path, route.service);
        let url = system.management(route.service, &route.path);
        expect(
            send(&system, route, url.clone(), None).await,
            401,
            "missing_token",
            &what,
        )
        .await;
        expect(
            send(&system, route, url.clone(), Some("e30.e30.e30")).await,
            401,
            "invalid_token",
            &what,
        )
        .await;
        for token in [&user, &admin] {
            expect(
                send(&system, route, url.clone(), Some(token)).await,
                403,
                "forbidden",
                &what,
            )
            .await;
        }
        let others: Vec<&str> = scopes::ALL
            .iter()
            .copied()
            .filter(|s| *s != route.scope)
            .collect();
        let wrong = system.service_token(&others);
        expect(
            send(&system, route, url.clone(), Some(&wrong)).await,
            403,
            "forbidden",
            &what,
        )
        .await;
        let right = system.service_token(&[route.scope]);
        // Not on the public port, even with the right token; nor through the gateway.
        let public = system.public(route.service, &route.path);
        expect(
            send(&system, route, public, Some(&right)).await,
            404,
            "not_found",
            &what,
        )
        .await;
        expect(
            send(&system, route, system.at(&route.path), Some(&right)).await,
            404,
            "not_found",
            &what,
        )
        .await;
        let ok = send(&system, route, url, Some(&right)).await;
        let status = ok.status().as_u16();
        assert!(
            status == 200 || status == 201,
            "{what} with its scope: {status} {}",
            ok.text().await.unwrap()
        );
    }
    // The token endpoint is auth-svc's own: the gateway does not route it.
    let token = system
        .client
        .post(system.at("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    expect(token, 404, "not_found", "POST /token through the gateway").await;
    // /metrics: only on the management ports.
    for service in [
        "gateway",
        "auth-svc",
        "predict-svc",
        "feedback-svc",
        "retrain-worker",
    ] {
        let public = system
            .client
            .get(system.public(service, "/metrics"))
            .send()
            .await
            .unwrap();
        expect(
            public,
            404,
            "not_found",
            &format!("{service}'s public /metrics"),
        )
        .await;
        let metrics = system
            .client
            .get(system.management(service, "/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status(), 200, "{service}'s management /metrics");
        assert!(
            metrics
                .text()
                .await
                .unwrap()
                .contains("http_requests_total")
        );
    }
}
