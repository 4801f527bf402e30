#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The gateway against the real auth-svc (PostgreSQL), and against small upstreams made by the
//! tests where an upstream must misbehave (down, slow) or report what it received.

mod forwarded;
mod hardening;
mod helpers;
mod metrics;
mod pages;
mod proxying;
mod ratelimit;
mod routing;
mod tokens;
mod upstreams;
mod ws;
