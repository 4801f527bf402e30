//! The contracts between predictloop's services, one type per message, used by both sides:
//!
//! - [`events`]: what travels on the bus and in the `events:history` stream (`feedback.created`,
//!   `retrain.progress`, `retrain.finished`, `model.promoted`);
//! - [`rollouts`]: a candidate's rollout (start, audit, admin actions, what a served
//!   prediction keeps of it), with the `rollout` crate's statistics;
//! - [`jobs`]: the entry of the `jobs:retrain` queue, and a job's progress and metrics;
//! - [`models`], [`predictions`], [`feedback`]: the requests and answers of the `/internal/`
//!   routes (predict-svc's registry and served predictions, feedback-svc's labelled feedback).
//!
//! Only serde, uuid, chrono and the pure `rollout` crate: the gateway and notify-svc depend on it without linking any
//! backend. A renamed field breaks the build of both sides, not an end-to-end test.

pub mod events;
pub mod feedback;
pub mod jobs;
pub mod models;
pub mod predictions;
pub mod rollouts;

pub use events::Event;
