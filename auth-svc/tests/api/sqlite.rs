//! The same service and queries on SQLite (the all-in-one mode's backend).

use crate::helpers::{PASSWORD, Store, expect_error, spawn_app_with};
use common::jwt::Role;

#[tokio::test]
async fn register_login_refresh_and_me_work_on_sqlite() {
    let store = Store::sqlite();
    let app = spawn_app_with(store.clone(), Some(("boss", "the admin's own password"))).await;
    let Store::Sqlite(dir) = &store else {
        unreachable!()
    };
    // The schema lives in an attached file beside the main one.
    assert!(dir.0.join("main.db").exists());
    assert!(dir.0.join("auth.db").exists());

    let user = app.register_ok("Ana", PASSWORD).await;
    assert_eq!(user["role"], "user");
    expect_error(app.register("ana", PASSWORD).await, 409, "username_taken").await;
    expect_error(
        app.login("ana", "wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;

    let pair = app.login_ok("ana", PASSWORD).await;
    assert_eq!(pair.expires_in, 900);
    let me = app.me_ok(&pair.access_token).await;
    assert_eq!(me["id"], user["id"]);

    // Rotation and reuse detection, as on PostgreSQL.
    let second = app.refresh_ok(&pair.refresh_token).await;
    app.me_ok(&second.access_token).await;
    expect_error(
        app.refresh(&pair.refresh_token).await,
        401,
        "refresh_token_reused",
    )
    .await;
    assert_eq!(
        app.refresh(&second.refresh_token).await.status().as_u16(),
        401
    );
    expect_error(app.refresh("garbage").await, 401, "invalid_refresh_token").await;

    // The admin was bootstrapped into SQLite too.
    let admin = app.login_ok("boss", "the admin's own password").await;
    let claims = app
        .verifier()
        .await
        .verify(&admin.access_token)
        .await
        .unwrap();
    assert_eq!(claims.role, Role::Admin);

    // Data survives a restart on the same files.
    app.service.stop().await;
    let again = spawn_app_with(store, None).await;
    let pair = again.login_ok("ANA", PASSWORD).await;
    again.refresh_ok(&pair.refresh_token).await;
    let ready = again.client.get(again.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}
