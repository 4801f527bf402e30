//! Requests any route must refuse: path traversal, a user on admin routes, a wrong method.

use super::*;

pub(super) fn path_traversal_cases(user: &str, admin: &str) -> Vec<Case> {
    let raw = |name: &str, path: &str| get("path traversal", name.to_owned(), path).raw();
    vec![
        raw("/api/v1/../../admin/report", "/api/v1/../../admin/report").bearer(user),
        raw(
            "%2e%2e segments to /admin/report",
            "/api/v1/%2e%2e/%2e%2e/admin/report",
        )
        .bearer(user),
        raw(
            "%2E%2E segments to /internal",
            "/v2/models/%2E%2E/%2E%2E/internal/predictions/1",
        )
        .bearer(user),
        raw("/feedback/../admin/report", "/feedback/../admin/report").bearer(user),
        raw(
            "/.well-known/../admin/report, no token",
            "/.well-known/../admin/report",
        ),
        raw(
            "/admin/retrain/..%2f..%2fetc%2fpasswd",
            "/admin/retrain/..%2f..%2fetc%2fpasswd",
        )
        .bearer(admin),
        raw(
            "/admin/feedback/..%2F..%2Fetc%2Fpasswd",
            "/admin/feedback/..%2F..%2Fetc%2Fpasswd",
        )
        .bearer(admin),
        raw(
            "/v2/models/..%2f..%2finternal",
            "/v2/models/..%2f..%2finternal%2fpredictions",
        )
        .bearer(user),
        raw("//admin/report", "//admin/report").bearer(user),
        raw("/admin/report/.", "/admin/report/.").bearer(admin),
        raw("/admin%5creport", "/admin%5creport").bearer(admin),
        raw("/api/v1/predict%00", "/api/v1/predict%00").bearer(user),
        raw("/admin/retrain/%00", "/admin/retrain/%00").bearer(admin),
        raw("/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/%2e%2e/etc/passwd"),
        raw(
            "overlong UTF-8 dots",
            "/%c0%ae%c0%ae/%c0%ae%c0%ae/admin/report",
        )
        .bearer(user),
        raw(
            "/api/v1/predict/..;/admin/report",
            "/api/v1/predict/..;/admin/report",
        )
        .bearer(user),
        raw(
            "/v2/models/mnist-cnn/../../../admin/models",
            "/v2/models/mnist-cnn/../../../admin/models",
        )
        .bearer(user),
    ]
}

pub(super) fn forbidden_cases(user: &str) -> Vec<Case> {
    let forbid = |method: Method, path: &str| {
        case(
            "a user on admin routes",
            format!("{method} {path}"),
            method,
            path,
        )
        .bearer(user)
        .expect(403)
    };
    vec![
        forbid(Method::GET, "/admin/report"),
        forbid(Method::GET, "/admin/feedback"),
        forbid(Method::GET, "/admin/feedback/1"),
        forbid(Method::POST, "/admin/retrain").json(r#"{"epochs": 1}"#),
        forbid(Method::GET, "/admin/retrain"),
        forbid(Method::GET, "/admin/retrain/some-job"),
        forbid(Method::GET, "/admin/models"),
        forbid(Method::GET, "/admin/models/mnist-cnn"),
        forbid(Method::POST, "/admin/models/mnist-cnn/versions/1/promote"),
    ]
}

pub(super) fn wrong_method_cases(user: &str, admin: &str) -> Vec<Case> {
    // A route that exists, asked with another method: 405, whether the gateway's table or the
    // service behind a prefix route refuses it.
    let m = |method: &str, path: &str| {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        case("wrong methods", format!("{method} {path}"), method, path).expect(405)
    };
    vec![
        m("GET", "/register"),
        m("PUT", "/login").json(r#"{"username": "x", "password": "y"}"#),
        m("GET", "/token/refresh"),
        m("GET", "/logout").bearer(user),
        m("POST", "/.well-known/jwks.json"),
        m("DELETE", "/me").bearer(user),
        m("POST", "/me").bearer(user),
        m("GET", "/api/v1/predict").bearer(user),
        m("PATCH", "/api/v2/predict").bearer(user),
        m("GET", "/feedback").bearer(user),
        m("DELETE", "/feedback").bearer(user),
        m("FOO", "/feedback").bearer(user),
        m("POST", "/v2/health/live"),
        m("POST", "/v2/models/mnist-cnn").bearer(user),
        m("GET", "/v2/models/mnist-cnn/infer").bearer(user),
        m("POST", "/admin/report").bearer(admin),
        m("DELETE", "/admin/feedback").bearer(admin),
        m("PUT", "/admin/retrain").bearer(admin),
        m("POST", "/admin/retrain/some-job").bearer(admin),
        m("DELETE", "/admin/retrain/some-job").bearer(admin),
        m("POST", "/admin/models").bearer(admin),
        m("GET", "/admin/models/mnist-cnn/versions/1/promote").bearer(admin),
        m("POST", "/health"),
        m("POST", "/ready"),
        m("POST", "/ws").bearer(admin),
        get("wrong methods", "GET /ws without an upgrade", "/ws").bearer(admin),
    ]
}
