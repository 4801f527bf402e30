//! The labelled outcomes of one rollout, sorted into what may decide and what may only be shown.
//!
//! Only labels the system asked for (the answer carried `"feedback_requested": true`, chosen at
//! random by [`crate::assign::feedback_requested`]) enter the decision: which predictions get a
//! label does not then depend on whether the answer was right, so their accuracy estimates the
//! accuracy of all predictions. Unsolicited labels (users report wrong answers more often than
//! right ones) are tallied apart for display.
//!
//! A requested label scores both versions on the same input when both outputs exist (the served
//! one, and the other run in shadow): a *paired* outcome. Only paired outcomes decide; a
//! requested label with one output (the shadow run was dropped under load) is tallied for display.
//!
//! **Per-user cap.** An outcome enters the decision sample only if, once it is in, its user holds
//! at most `max(1, ⌊cap × n⌋)` of the `n` outcomes counted so far (`cap` is a share, 10 % by
//! default). Outcomes are taken in the order they arrive (the order feedback was committed), and
//! one that would break the cap is left out for good (counted as over the cap, shown, never
//! decided on). The rule depends only on the past and on who sent the outcome, never on whether
//! it was right, so the decision's guarantee is untouched; a heavy user is throttled to the
//! share, not shut out: their outcomes count again as the sample grows. While the sample is
//! under `1/cap` outcomes each user counts at most once.

use crate::betting::Counts;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The two versions of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// The version serving users before the rollout.
    Active,
    /// The new version under evaluation.
    Candidate,
}

/// One label on one prediction of the rollout, scored against each version's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub user: String,
    /// The answer asked for this label (`"feedback_requested": true`).
    pub requested: bool,
    /// Whether the active version's output was right, when it has one for this prediction.
    pub active_correct: Option<bool>,
    /// Whether the candidate's output was right, when it has one.
    pub candidate_correct: Option<bool>,
}

/// Right answers out of labelled ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub correct: u64,
    pub total: u64,
}

impl Tally {
    fn add(&mut self, correct: bool) {
        self.total += 1;
        self.correct += u64::from(correct);
    }

    /// The share right (`None` when nothing is labelled).
    pub fn accuracy(&self) -> Option<f64> {
        (self.total > 0).then(|| self.correct as f64 / self.total as f64)
    }
}

/// The decision sample: paired requested outcomes by which versions were right.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairs {
    pub both_right: u64,
    pub both_wrong: u64,
    /// The candidate right, the active version wrong.
    pub candidate_only: u64,
    /// The active version right, the candidate wrong.
    pub active_only: u64,
}

impl Pairs {
    pub fn total(&self) -> u64 {
        self.both_right + self.both_wrong + self.candidate_only + self.active_only
    }

    /// Each pair as `(1 + candidate − active) / 2`: 0 when only the active version is right, ½
    /// when both agree, 1 when only the candidate is; its mean is `(1 + Δ) / 2` where Δ is the
    /// candidate's accuracy minus the active version's.
    pub fn difference(&self) -> Counts {
        Counts {
            zeros: self.active_only,
            halves: self.both_right + self.both_wrong,
            ones: self.candidate_only,
        }
    }

    /// One version's right (1) and wrong (0) answers on the pairs.
    pub fn accuracy(&self, arm: Arm) -> Counts {
        let only = match arm {
            Arm::Active => self.active_only,
            Arm::Candidate => self.candidate_only,
        };
        let right = self.both_right + only;
        Counts {
            zeros: self.total() - right,
            halves: 0,
            ones: right,
        }
    }
}

/// Where an outcome went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Into the decision sample.
    Counted,
    /// A requested paired outcome left out by the per-user cap.
    OverCap,
    /// A requested label with one version's output: shown, not decided on.
    Unpaired,
    /// A label nobody asked for: shown apart, never decided on.
    Unsolicited,
    /// A label with no output to score (nothing recorded).
    Unscored,
}

/// Everything labelled in one rollout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evidence {
    user_cap: f64,
    pairs: Pairs,
    over_cap: u64,
    unpaired: [Tally; 2],
    unsolicited: [Tally; 2],
    per_user: HashMap<String, u64>,
}

/// Adds each version's score to its tally; `into` when there was one, else [`Recorded::Unscored`].
fn tally_each(tallies: &mut [Tally; 2], scores: [Option<bool>; 2], into: Recorded) -> Recorded {
    let mut scored = Recorded::Unscored;
    for (tally, score) in tallies.iter_mut().zip(scores) {
        if let Some(right) = score {
            tally.add(right);
            scored = into;
        }
    }
    scored
}

fn slot(arm: Arm) -> usize {
    match arm {
        Arm::Active => 0,
        Arm::Candidate => 1,
    }
}

impl Evidence {
    /// No outcomes yet; no user will hold more than `user_cap` (0 to 1) of the decision sample.
    pub fn new(user_cap: f64) -> Self {
        Evidence {
            user_cap,
            ..Evidence::default()
        }
    }

    /// Sorts one outcome in (see the module's documentation).
    pub fn record(&mut self, outcome: &Outcome) -> Recorded {
        let scores = [outcome.active_correct, outcome.candidate_correct];
        if !outcome.requested {
            return tally_each(&mut self.unsolicited, scores, Recorded::Unsolicited);
        }
        let (Some(active), Some(candidate)) = (outcome.active_correct, outcome.candidate_correct)
        else {
            return tally_each(&mut self.unpaired, scores, Recorded::Unpaired);
        };
        if !self.admit(&outcome.user) {
            self.over_cap += 1;
            return Recorded::OverCap;
        }
        let pairs = &mut self.pairs;
        *match (candidate, active) {
            (true, true) => &mut pairs.both_right,
            (false, false) => &mut pairs.both_wrong,
            (true, false) => &mut pairs.candidate_only,
            (false, true) => &mut pairs.active_only,
        } += 1;
        Recorded::Counted
    }

    /// Whether the user may add one outcome to the decision sample under the cap; counts it in
    /// when so.
    fn admit(&mut self, user: &str) -> bool {
        let after = self.pairs.total() + 1;
        let limit = ((self.user_cap * after as f64).floor() as u64).max(1);
        let held = self.per_user.get(user).copied().unwrap_or(0);
        if held + 1 > limit {
            return false;
        }
        *self.per_user.entry(user.to_owned()).or_insert(0) += 1;
        true
    }

    /// The decision sample.
    pub fn pairs(&self) -> Pairs {
        self.pairs
    }

    /// Requested paired outcomes left out by the per-user cap.
    pub fn over_cap(&self) -> u64 {
        self.over_cap
    }

    /// Requested labels on predictions with one version's output.
    pub fn unpaired(&self, arm: Arm) -> Tally {
        self.unpaired[slot(arm)]
    }

    /// Unsolicited labels scored against a version's output.
    pub fn unsolicited(&self, arm: Arm) -> Tally {
        self.unsolicited[slot(arm)]
    }

    /// The most outcomes any one user holds in the decision sample.
    pub fn largest_user_share(&self) -> u64 {
        self.per_user.values().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(user: &str, requested: bool, active: Option<bool>, cand: Option<bool>) -> Outcome {
        Outcome {
            user: user.to_owned(),
            requested,
            active_correct: active,
            candidate_correct: cand,
        }
    }

    #[test]
    fn only_requested_paired_labels_decide() {
        let mut e = Evidence::new(1.0);
        let r = |e: &mut Evidence, req, a, c| e.record(&outcome("u", req, a, c));
        assert_eq!(r(&mut e, true, Some(true), Some(false)), Recorded::Counted);
        assert_eq!(
            r(&mut e, false, Some(false), Some(true)),
            Recorded::Unsolicited
        );
        assert_eq!(r(&mut e, false, Some(false), None), Recorded::Unsolicited);
        assert_eq!(r(&mut e, true, None, Some(true)), Recorded::Unpaired);
        assert_eq!(r(&mut e, true, None, None), Recorded::Unscored);
        let expected = Pairs {
            active_only: 1,
            ..Pairs::default()
        };
        assert_eq!(e.pairs(), expected);
        assert_eq!(
            e.unsolicited(Arm::Active),
            Tally {
                correct: 0,
                total: 2
            }
        );
        assert_eq!(e.unsolicited(Arm::Candidate).accuracy(), Some(1.0));
        assert_eq!(e.unpaired(Arm::Candidate).total, 1);
        assert_eq!(e.unpaired(Arm::Active).accuracy(), None);
    }

    #[test]
    fn pairs_read_as_a_difference_and_as_accuracies() {
        let p = Pairs {
            both_right: 90,
            both_wrong: 2,
            candidate_only: 3,
            active_only: 5,
        };
        let d = p.difference();
        assert_eq!((d.zeros, d.halves, d.ones), (5, 92, 3));
        // (1 + Δ) / 2 with Δ = 93 % − 95 %.
        assert!((d.mean() - (1.0 + (0.93 - 0.95)) / 2.0).abs() < 1e-12);
        assert_eq!(p.accuracy(Arm::Candidate).ones, 93);
        assert_eq!(p.accuracy(Arm::Active).ones, 95);
        assert_eq!(p.accuracy(Arm::Active).total(), 100);
    }

    #[test]
    fn no_user_holds_more_than_the_cap() {
        let mut e = Evidence::new(0.1);
        // One heavy user sends every other outcome; 500 others one each.
        let mut results = Vec::new();
        for i in 0..1000 {
            let user = if i % 2 == 0 {
                "heavy".to_owned()
            } else {
                format!("u{i}")
            };
            results.push(e.record(&outcome(&user, true, Some(true), Some(true))));
            let n = e.pairs().total();
            assert!(e.largest_user_share() <= ((n as f64 * 0.1) as u64).max(1));
        }
        let counted = results.iter().filter(|r| **r == Recorded::Counted).count() as u64;
        assert_eq!(counted, e.pairs().total());
        assert_eq!(counted + e.over_cap(), 1000);
        // The heavy user keeps about a tenth: 500 others make 500 / 0.9 ≈ 555 outcomes.
        assert_eq!(e.largest_user_share(), 55);
        assert_eq!(e.pairs().total(), 555);
    }

    #[test]
    fn while_small_each_user_counts_once() {
        let mut e = Evidence::new(0.1);
        for user in ["a", "b", "a", "c", "a"] {
            e.record(&outcome(user, true, Some(false), Some(true)));
        }
        assert_eq!(e.pairs().total(), 3);
        assert_eq!(e.over_cap(), 2);
    }
}
