#![allow(clippy::unwrap_used, clippy::expect_used)]

mod feedback;
mod helpers;
mod migrations;
mod predict;
mod redis_down;
mod retrain;
