//! The service's routes: `GET /ws`, besides `/health` and `/ready`.

mod ws;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(ws::connect));
}
