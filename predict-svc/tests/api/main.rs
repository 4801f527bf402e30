#![allow(clippy::unwrap_used, clippy::expect_used)]
//! predict-svc against the real PostgreSQL, Redis and ONNX Runtime, serving the models trained
//! by `cargo xtask train` from real MNIST digits.

mod batching;
mod bounded_redis;
mod budget;
mod helpers;
mod oip;
mod predict;
mod registry;
mod rollouts;
mod swap;
