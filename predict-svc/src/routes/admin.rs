//! The registry's admin API: list versions, promote one (also how to roll back).

use crate::db::versions;
use crate::error::PredictError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use common::jwt::AdminUser;
use serde_json::json;
use std::collections::BTreeMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/models", web::get().to(list)).route(
        "/admin/models/{name}/versions/{version}/promote",
        web::post().to(promote),
    );
}

async fn list(state: web::Data<AppState>, _admin: AdminUser) -> Result<HttpResponse, PredictError> {
    let all = state.db.run(versions::list).await?;
    let mut by_model: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    let mut active: BTreeMap<String, i32> = BTreeMap::new();
    for v in &all {
        if v.status == versions::ACTIVE {
            active.insert(v.name.clone(), v.version);
        }
        by_model
            .entry(v.name.clone())
            .or_default()
            .push(v.to_json());
    }
    let models: Vec<_> = by_model
        .into_iter()
        .map(|(name, versions)| {
            let served = state.models.get(&name).map(|m| m.version);
            json!({
                "name": name,
                "active_version": active.get(&name),
                "served_version": served,
                "versions": versions,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"models": models})))
}

async fn promote(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PredictError> {
    let (name, version) = path.into_inner();
    let info = state
        .models
        .promote(state.bus.as_ref(), &name, version)
        .await?
        .ok_or_else(|| PredictError::UnknownVersion(name.clone(), version))?;
    tracing::info!(model = %name, version, by = %admin.name, "model version promoted");
    Ok(HttpResponse::Ok().json(json!({
        "msg": format!("{name} v{version} is now the active version"),
        "model": info.to_json(),
    })))
}
