#![allow(clippy::unwrap_used, clippy::expect_used)]

mod all_in_one;
mod bad_input;
mod bombs;
mod feedback;
mod helpers;
mod internal;
mod logout;
mod migrations;
mod predict;
mod redis_down;
mod retrain;
mod schema;
mod traces;
