#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The retrain worker against the real thing: PostgreSQL, Redis, predict-svc with ONNX Runtime
//! and the trained models, feedback-svc; workers in this process and as killed child processes.

mod api;
mod crash;
mod gate;
mod helpers;
mod restart;
