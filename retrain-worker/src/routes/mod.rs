//! The job API (through the gateway, admins only).

pub mod jobs;

pub use jobs::configure;
