//! `POST /admin/users/{id}/labels/exclude`: an admin leaves a user's labels out of every future
//! training job, and announces it (`labels.excluded`, through the outbox) to whoever decides
//! rollouts.

use crate::db::labels::{self, Exclusion};
use crate::db::outbox;
use crate::error::FeedbackError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use common::bus::Envelope;
use common::db::DbError;
use common::jwt::AdminUser;
use contracts::events::{Event, LabelsExcluded};
use diesel::Connection;
use serde_json::json;

/// The longest user id accepted (a token's `sub`).
pub const MAX_USER_ID_LEN: usize = 128;

/// The exclusion in force and whether this request made it.
struct Excluded {
    exclusion: Exclusion,
    new: bool,
    labels: i64,
}

/// Idempotent: excluding a user again changes nothing, publishes nothing and says
/// `already_excluded`. feedback-svc keeps no users, so any id is accepted; `labels` says how
/// many labelled feedback of that id there are (0 for an id nobody used).
pub async fn exclude(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    user_id: web::Path<String>,
) -> Result<HttpResponse, FeedbackError> {
    let user_id = user_id.into_inner();
    if user_id.is_empty()
        || user_id.len() > MAX_USER_ID_LEN
        || user_id.chars().any(char::is_control)
    {
        return Err(FeedbackError::InvalidPath(format!(
            "The user id must be 1 to {MAX_USER_ID_LEN} bytes without control characters."
        )));
    }
    let new = Exclusion {
        user_id: user_id.clone(),
        excluded_by: admin.name.clone(),
        excluded_at: crate::db::now(),
    };
    let result = state
        .db
        .run(move |c| c.transaction::<_, DbError, _>(|c| record(c, new)))
        .await;
    let excluded = match result {
        Ok(excluded) => excluded,
        // Another admin excluded the same user at the same moment: theirs is in force.
        Err(e) if e.is_unique_violation() => {
            let id = user_id.clone();
            state
                .db
                .run(move |c| {
                    let exclusion = labels::exclusion(c, &id)?
                        .ok_or_else(|| DbError::Task("the exclusion vanished".into()))?;
                    Ok::<_, DbError>(Excluded {
                        exclusion,
                        new: false,
                        labels: labels::labels_of(c, &id)?,
                    })
                })
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    if excluded.new {
        state.relay_wakeup.notify_one();
        tracing::info!(user_id = %user_id, admin = %admin.name, labels = excluded.labels, "labels excluded");
    }
    let e = &excluded.exclusion;
    Ok(HttpResponse::Ok().json(json!({
        "user_id": e.user_id,
        "labels": excluded.labels,
        "already_excluded": !excluded.new,
        "excluded_by": e.excluded_by,
        "excluded_at": crate::db::iso8601(e.excluded_at),
    })))
}

/// Stores the exclusion and its event, unless the user is excluded already.
fn record(c: &mut common::db::DbConnection, new: Exclusion) -> Result<Excluded, DbError> {
    let labels = labels::labels_of(c, &new.user_id)?;
    if let Some(exclusion) = labels::exclusion(c, &new.user_id)? {
        return Ok(Excluded {
            exclusion,
            new: false,
            labels,
        });
    }
    labels::insert_exclusion(c, &new)?;
    let event = Envelope::of(&Event::LabelsExcluded(LabelsExcluded {
        user_id: new.user_id.clone(),
        excluded_by: new.excluded_by.clone(),
        labels,
    }));
    outbox::insert(c, &event)?;
    Ok(Excluded {
        exclusion: new,
        new: true,
        labels,
    })
}
