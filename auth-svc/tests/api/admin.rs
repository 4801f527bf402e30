//! Admin bootstrap from `ADMIN_USERNAME` / `ADMIN_PASSWORD` at start.

use crate::helpers::{PASSWORD, Store, expect_error, spawn_app_with};
use common::jwt::Role;

const ADMIN_PASSWORD: &str = "the admin's own password";

#[tokio::test]
async fn the_bootstrapped_admin_logs_in_with_the_admin_role() {
    let app = spawn_app_with(Store::postgres(), Some(("boss", ADMIN_PASSWORD))).await;
    let pair = app.login_ok("boss", ADMIN_PASSWORD).await;
    let claims = app
        .verifier()
        .await
        .verify(&pair.access_token)
        .await
        .unwrap();
    assert_eq!(claims.role, Role::Admin);
    assert_eq!(claims.name, "boss");
    let me = app.me_ok(&pair.access_token).await;
    assert_eq!(me["role"], "admin");
    // Nobody can register that name again.
    expect_error(app.register("Boss", PASSWORD).await, 409, "username_taken").await;
    // Users registered afterwards are plain users.
    let user = app.signup("ana").await;
    let claims = app
        .verifier()
        .await
        .verify(&user.access_token)
        .await
        .unwrap();
    assert_eq!(claims.role, Role::User);
}

#[tokio::test]
async fn a_user_who_took_the_admin_name_first_is_promoted_and_loses_the_old_password() {
    let store = Store::postgres();
    let first = spawn_app_with(store.clone(), None).await;
    first.register_ok("boss", PASSWORD).await;
    let squatter = first.login_ok("boss", PASSWORD).await;
    let claims = first
        .verifier()
        .await
        .verify(&squatter.access_token)
        .await
        .unwrap();
    assert_eq!(claims.role, Role::User);
    let squatter_id = claims.sub;
    first.service.stop().await;

    // Restart with the admin configured, on the same database.
    let app = spawn_app_with(store.clone(), Some(("boss", ADMIN_PASSWORD))).await;
    expect_error(
        app.login("boss", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let pair = app.login_ok("boss", ADMIN_PASSWORD).await;
    let claims = app
        .verifier()
        .await
        .verify(&pair.access_token)
        .await
        .unwrap();
    assert_eq!(claims.role, Role::Admin);
    let me = app.me_ok(&pair.access_token).await;
    assert_eq!(me["role"], "admin");
    // The same account, not a second one.
    assert_eq!(me["id"], squatter_id.as_str());
    assert_eq!(claims.sub, squatter_id);
    // The session opened with the old password is over.
    let resp = app.refresh(&squatter.refresh_token).await;
    assert_eq!(resp.status().as_u16(), 401);

    // A further restart with the same settings changes nothing: the admin's session survives.
    app.service.stop().await;
    let again = spawn_app_with(store, Some(("boss", ADMIN_PASSWORD))).await;
    let next = again.refresh_ok(&pair.refresh_token).await;
    let claims = again
        .verifier()
        .await
        .verify(&next.access_token)
        .await
        .unwrap();
    assert_eq!(claims.role, Role::Admin);
    again.login_ok("boss", ADMIN_PASSWORD).await;
    expect_error(
        again.login("boss", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}
