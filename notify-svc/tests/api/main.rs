#![allow(clippy::unwrap_used, clippy::expect_used)]
//! notify-svc against the real Redis (a unique key prefix per test), with tokens signed by a
//! test key whose JWKS is served as auth-svc would, and tokio-tungstenite as the client.

mod auth;
mod backpressure;
mod delivery;
mod helpers;
mod limits;
mod recovery;
mod replay;
