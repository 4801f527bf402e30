use crate::helpers::{PASSWORD, expect_error, spawn_app, stored_password_hash};
use serde_json::json;

#[tokio::test]
async fn register_answers_201_with_the_user_and_never_the_password() {
    let app = spawn_app().await;
    let resp = app.register("ana", PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 201);
    let text = resp.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["username"], "ana");
    assert_eq!(body["role"], "user");
    let id = body["id"].as_str().expect("an id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "id {id} is a UUID");
    assert!(!text.contains(PASSWORD), "the password leaks: {text}");
    assert!(!text.contains("$2"), "a bcrypt hash leaks: {text}");
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());

    // The account is usable right away, and /me returns the same user.
    let pair = app.login_ok("ana", PASSWORD).await;
    let me = app.me_ok(&pair.access_token).await;
    assert_eq!(me["id"], id);
    assert_eq!(me["username"], "ana");
}

#[tokio::test]
async fn a_taken_name_is_409_also_with_other_letter_case() {
    let app = spawn_app().await;
    app.register_ok("Ana", PASSWORD).await;
    for name in ["Ana", "ana", "ANA"] {
        let resp = app.register(name, "another password").await;
        expect_error(resp, 409, "username_taken").await;
    }
    // The first owner keeps the account; the would-be second one did not change the password.
    app.login_ok("ana", PASSWORD).await;
    let resp = app.login("Ana", "another password").await;
    expect_error(resp, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn a_missing_field_is_400_with_the_seed_message() {
    let app = spawn_app().await;
    let bodies = [
        json!({}),
        json!({"username": "ana"}),
        json!({"password": PASSWORD}),
        json!({"username": "", "password": PASSWORD}),
        json!({"username": "ana", "password": ""}),
        json!({"username": null, "password": PASSWORD}),
    ];
    for body in &bodies {
        let resp = app.post_json("/register", body).await;
        let err = expect_error(resp, 400, "missing_field").await;
        assert_eq!(err.msg, "Username and password required", "for {body}");
    }
    // Nothing was created along the way.
    let resp = app.login("ana", PASSWORD).await;
    expect_error(resp, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn passwords_outside_8_to_72_bytes_are_422() {
    let app = spawn_app().await;
    for (name, password) in [
        ("short", "1234567".to_owned()),
        ("long", "x".repeat(73)),
        // 37 two-byte characters: 37 characters, but 74 bytes.
        ("multibyte", "é".repeat(37)),
    ] {
        let resp = app.register(name, &password).await;
        expect_error(resp, 422, "validation_failed").await;
        let resp = app.login(name, &password).await;
        expect_error(resp, 401, "invalid_credentials").await;
    }
    // The limits themselves are accepted.
    app.register_ok("eight", "12345678").await;
    app.register_ok("seventytwo", &"x".repeat(72)).await;
    app.register_ok("multibyte72", &"é".repeat(36)).await;
    app.login_ok("seventytwo", &"x".repeat(72)).await;
    app.login_ok("multibyte72", &"é".repeat(36)).await;
}

#[tokio::test]
async fn invalid_user_names_are_422() {
    let app = spawn_app().await;
    let too_long = "a".repeat(65);
    for name in [
        "ab",
        too_long.as_str(),
        "ana maría",
        "ana maria",
        "x'; DROP TABLE auth.users; --",
        "ana/../root",
        "<script>",
    ] {
        let resp = app.register(name, PASSWORD).await;
        expect_error(resp, 422, "validation_failed").await;
    }
    app.register_ok("abc", PASSWORD).await;
    app.register_ok(&"a".repeat(64), PASSWORD).await;
    app.register_ok("a.b-c_9", PASSWORD).await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in [r#"{"username": "ana", "password": "#, "not json at all", ""] {
        let resp = app.post_raw("/register", "application/json", body).await;
        let status = resp.status().as_u16();
        assert_eq!(status, 400, "body {body:?}");
        let err: common::error::ErrorBody = resp.json().await.unwrap();
        assert!(
            err.error == "invalid_json" || err.error == "invalid_body",
            "code {}",
            err.error
        );
    }
    // A field of the wrong type is a well-formed body with a bad value.
    let resp = app
        .post_json("/register", &json!({"username": 42, "password": PASSWORD}))
        .await;
    expect_error(resp, 422, "invalid_field").await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    let resp = app
        .post_raw(
            "/register",
            "text/plain",
            &json!({"username": "ana", "password": PASSWORD}).to_string(),
        )
        .await;
    expect_error(resp, 415, "unsupported_media_type").await;
    let resp = app
        .post_raw(
            "/register",
            "application/x-www-form-urlencoded",
            "username=ana&password=correct+horse+battery+staple",
        )
        .await;
    expect_error(resp, 415, "unsupported_media_type").await;
    // Neither attempt created the user.
    app.register_ok("ana", PASSWORD).await;
}

#[tokio::test]
async fn the_stored_password_is_a_bcrypt_hash() {
    let app = spawn_app().await;
    app.register_ok("ana", PASSWORD).await;
    app.register_ok("bob", PASSWORD).await;
    let ana = stored_password_hash(&app.store.url(), "ana").await;
    let bob = stored_password_hash(&app.store.url(), "bob").await;
    assert!(
        ana.starts_with("$2b$") || ana.starts_with("$2y$"),
        "not a bcrypt hash: {ana}"
    );
    assert_eq!(ana.len(), 60, "bcrypt hashes are 60 characters: {ana}");
    assert!(!ana.contains(PASSWORD));
    assert!(bcrypt::verify(PASSWORD, &ana).unwrap());
    // Salted: the same password gives different hashes.
    assert_ne!(ana, bob);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let huge = json!({"username": "a".repeat(70 * 1024), "password": PASSWORD});
    let resp = app.post_json("/register", &huge).await;
    expect_error(resp, 413, "payload_too_large").await;
    // The service is fine afterwards.
    app.register_ok("ana", PASSWORD).await;
}
