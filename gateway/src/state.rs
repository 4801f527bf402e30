use crate::config::Config;
use crate::ratelimit::RateLimiter;
use crate::routes::{RouteTable, Upstream};
use common::jwt::JwtVerifier;
use std::collections::HashMap;

pub struct GatewayState {
    pub routes: RouteTable,
    pub upstreams: HashMap<Upstream, String>,
    pub client: reqwest::Client,
    pub verifier: std::sync::Arc<JwtVerifier>,
    pub max_upload_bytes: usize,
    pub max_body_bytes: usize,
    pub rate_limiter: RateLimiter,
    pub body_timeout: std::time::Duration,
}

impl GatewayState {
    pub fn new(config: &Config, rate_limiter: RateLimiter) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(GatewayState {
            routes: config.routes.clone(),
            upstreams: config.upstreams.clone(),
            client,
            verifier: std::sync::Arc::new(JwtVerifier::remote(&config.jwt)),
            max_upload_bytes: config.max_upload_bytes,
            max_body_bytes: config.max_body_bytes,
            rate_limiter,
            body_timeout: config.body_timeout,
        })
    }
}
