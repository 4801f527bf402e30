//! auth-svc's HTTP API, started on port 0 against a fresh PostgreSQL database per test (or a
//! SQLite file), exercised through real HTTP requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod health;
mod helpers;
mod login;
mod logout;
mod migrate;
mod refresh;
mod register;
mod service_tokens;
mod shutdown;
mod sqlite;
mod tokens;
