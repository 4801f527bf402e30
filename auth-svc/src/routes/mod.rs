mod account;
mod service_tokens;
mod tokens;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/register", web::post().to(account::register))
        .route("/login", web::post().to(account::login))
        .route("/me", web::get().to(account::me))
        .service(
            web::resource("/token")
                .app_data(service_tokens::form_config())
                .route(web::post().to(service_tokens::issue)),
        )
        .route("/token/refresh", web::post().to(tokens::refresh))
        .route("/logout", web::post().to(tokens::logout))
        .route("/.well-known/jwks.json", web::get().to(tokens::jwks));
}
