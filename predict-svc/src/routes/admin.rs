//! The registry's admin API: list versions (with their stage and share of users), promote one
//! (also how to roll back), and read and steer rollouts.

use crate::db::versions;
use crate::error::PredictError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use common::jwt::AdminUser;
use contracts::rollouts::RolloutAction;
use serde_json::json;
use std::collections::BTreeMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/models", web::get().to(list))
        .route(
            "/admin/models/{name}/versions/{version}/promote",
            web::post().to(promote),
        )
        .route("/admin/models/{name}/rollouts", web::get().to(rollouts))
        .route(
            "/admin/models/{name}/rollouts/{id}/{action}",
            web::post().to(act),
        );
}

/// The most rollouts `GET /admin/models/{name}/rollouts` lists.
const MAX_LISTED: i64 = 50;

/// The model's rollouts with every transition (the audit table), newest first.
async fn rollouts(
    state: web::Data<AppState>,
    _admin: AdminUser,
    name: web::Path<String>,
) -> Result<HttpResponse, PredictError> {
    let name = name.into_inner();
    if !crate::registry::INITIAL_MODELS.contains(&name.as_str()) {
        return Err(PredictError::UnknownModel(name));
    }
    let list = state.controller.list(&name, MAX_LISTED).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Pause, resume, abort (roll back) or promote an open rollout; the audit table records who.
async fn act(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, PredictError> {
    let (name, id, action) = path.into_inner();
    let action = RolloutAction::parse(&action)
        .ok_or_else(|| PredictError::UnknownRollout(format!("action `{action}`")))?;
    let record = state
        .controller
        .act(&name, &id, action, &admin.name)
        .await?;
    tracing::info!(model = %name, rollout = %id, action = action.as_str(), by = %admin.name, "rollout steered by an admin");
    Ok(HttpResponse::Ok().json(record))
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
    // An open rollout of the model ends first: promoted when its candidate is the version
    // chosen, aborted otherwise. The audit table says who.
    if let Some(open) = state.models.rollout_of(&name) {
        let action = if open.candidate.version == version {
            RolloutAction::Promote
        } else {
            RolloutAction::Abort
        };
        state
            .controller
            .act(&name, &open.rollout_id, action, &admin.name)
            .await?;
    }
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
