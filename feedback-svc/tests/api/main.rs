//! feedback-svc's HTTP API and outbox, started on port 0 against a fresh PostgreSQL database per
//! test (or a SQLite file) and real Redis under a unique key prefix, with a stand-in for
//! predict-svc's internal API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_list;
mod health;
mod helpers;
mod idempotency;
mod internal;
mod labels;
mod outbox;
mod report;
mod sqlite;
mod submit;
