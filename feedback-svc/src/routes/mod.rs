mod admin;
mod exclusions;
mod feedback;
mod internal;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/feedback", web::post().to(feedback::submit))
        .route("/admin/report", web::get().to(admin::report))
        .route("/admin/feedback", web::get().to(admin::list))
        .route("/admin/feedback/{id}", web::get().to(admin::show))
        .route(
            "/admin/users/{id}/labels/exclude",
            web::post().to(exclusions::exclude),
        )
        .service(
            web::resource("/internal/feedback/labelled")
                .wrap(actix_web::middleware::from_fn(|req, next| {
                    common::service_auth::require(
                        common::service_auth::scopes::FEEDBACK_READ,
                        req,
                        next,
                    )
                }))
                .route(web::get().to(internal::labelled)),
        );
}
