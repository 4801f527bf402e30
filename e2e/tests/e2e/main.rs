#![allow(clippy::unwrap_used, clippy::expect_used)]

mod feedback;
mod helpers;
mod predict;
mod redis_down;
