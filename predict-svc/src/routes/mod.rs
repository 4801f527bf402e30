mod admin;
mod internal;
mod oip;
mod predict;

use actix_web::web;

pub use oip::body_limit as oip_body_limit;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/predict", web::post().to(predict::v1))
        .route("/api/v2/predict", web::post().to(predict::v2))
        .configure(oip::configure)
        .configure(admin::configure)
        .configure(internal::configure);
}
