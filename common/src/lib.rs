//! Shared plumbing of the predictloop services. No business logic of any one service lives here.

pub mod bus;
pub mod codes;
pub mod config;
#[cfg(feature = "db")]
pub mod db;
pub mod digest;
pub mod error;
pub mod health;
pub mod http;
pub mod infra;
pub mod jwt;
pub mod kv;
pub mod memory;
pub mod metrics;
#[cfg(feature = "db")]
pub mod migrate;
pub mod queue;
pub mod ratelimit;
pub mod server;
pub mod service;
pub mod service_auth;
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod testing;

pub use codes::ErrorCode;
pub use error::ApiError;
