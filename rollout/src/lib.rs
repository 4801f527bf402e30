//! The statistics of a model rollout, as pure functions and state machines (no I/O, no async):
//!
//! - [`assign`]: which users a canary serves (sticky, by a hash of user and rollout) and which
//!   answers ask for a label (by a hash of the prediction id);
//! - [`evidence`]: labelled outcomes sorted into the decision sample (requested, paired, under
//!   the per-user cap) and what is only shown (unsolicited, unpaired);
//! - [`betting`]: the always-valid test and confidence bounds the decisions use;
//! - [`stage`]: the stages `candidate → shadow → canary → active` (or `rejected` /
//!   `rolled_back`), the policy, and the rules that move a rollout;
//! - [`sim`]: a seeded simulation of rollouts, for `cargo xtask bench rollout` and the tests.
//!
//! `docs/rollouts.md` explains the method and shows the simulation's figures.

pub mod assign;
pub mod betting;
pub mod evidence;
pub mod sim;
pub mod stage;

pub use evidence::{Arm, Evidence, Outcome, Recorded};
pub use stage::{Policy, Reason, Rollout, Stage, Stats, Transition, Verdict};
