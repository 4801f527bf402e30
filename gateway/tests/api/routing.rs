use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn register_login_me_and_jwks_go_through_the_gateway() {
    let gw = spawn_gateway().await;
    gw.register("Carla", "password-123").await;
    let pair = gw.login("carla", "password-123").await;
    assert_eq!(pair["token_type"], "Bearer");
    assert!(pair["refresh_token"].as_str().is_some());
    let me = gw
        .get_with("/me", pair["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), 200);
    assert!(me.headers().contains_key("x-request-id"));
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["username"], "Carla");
    assert_eq!(me["role"], "user");

    let jwks: serde_json::Value = gw
        .client
        .get(gw.at("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], gw.auth_key.kid());
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");

    let wrong = gw
        .post_json(
            "/login",
            json!({"username": "carla", "password": "not-her-password"}),
        )
        .await;
    assert_error(wrong, 401, "invalid_credentials").await;
    let missing = gw.post_json("/login", json!({"username": "carla"})).await;
    let body = assert_error(missing, 400, "missing_field").await;
    assert_eq!(body["msg"], "Username and password required");
    let taken = gw
        .post_json(
            "/register",
            json!({"username": "CARLA", "password": "password-123"}),
        )
        .await;
    assert_error(taken, 409, "username_taken").await;
}

#[tokio::test]
async fn the_gateway_answers_health_and_unknown_paths_itself() {
    let gw = spawn_gateway().await;
    let health: serde_json::Value = gw
        .client
        .get(gw.at("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));

    for path in [
        "/nope",
        "/internal/predictions/1",
        "/internal",
        "/login/extra",
        "/admin/modelsx",
    ] {
        let r = gw.client.get(gw.at(path)).send().await.unwrap();
        assert_error(r, 404, "not_found").await;
    }
    let r = gw.client.delete(gw.at("/login")).send().await.unwrap();
    assert_error(r, 405, "method_not_allowed").await;
    // (dot segments are covered by the unit tests: the HTTP client normalises them away)
    for path in [
        "/admin//report",
        "/admin/models%2f..%2f..%2finternal",
        "/login%00",
    ] {
        let r = gw.client.get(gw.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert_error(r, 400, "invalid_path").await;
    }
}

#[tokio::test]
async fn roles_are_enforced_before_anything_is_forwarded() {
    let gw = spawn_gateway().await;
    let user = gw.user_token().await;
    let admin = gw.admin_token().await;

    let r = gw.client.get(gw.at("/admin/report")).send().await.unwrap();
    assert_error(r, 401, "missing_token").await;
    let r = gw.get_with("/admin/report", &user).await;
    assert_error(r, 403, "forbidden").await;
    // A forged identity header does not make a user an admin.
    let r = gw
        .client
        .get(gw.at("/admin/report"))
        .bearer_auth(&user)
        .header("X-User-Role", "admin")
        .header("X-User-Id", "root-admin")
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;
    // Nor does one without a token.
    let r = gw
        .client
        .get(gw.at("/me"))
        .header("X-User-Role", "admin")
        .header("X-User", "root-admin")
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "missing_token").await;

    let r = gw.get_with("/admin/report", &admin).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-upstream"], "echo");
    let r = gw
        .client
        .post(gw.at("/feedback"))
        .bearer_auth(&user)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a user reaches /feedback");
}
