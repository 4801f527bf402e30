//! A rollout's stages and the decisions that move it: `candidate → shadow → canary (steps) →
//! active`, or `rejected` (the offline gate failed) / `rolled_back`.
//!
//! After every outcome counted in the decision sample ([`crate::evidence`]), in this order:
//!
//! 1. **Roll back** when the candidate is worse by more than the margin at the policy's
//!    confidence: the always-valid upper bound of Δ = accuracy(candidate) − accuracy(active) is
//!    below `−margin` (the betting wealth against "Δ ≥ −margin" reached `1/α`). In any stage.
//! 2. **Promote** when the candidate is non-inferior: the lower bound of Δ is above `−margin`.
//!    Only from the canary, once `min_outcomes_per_stage` outcomes were counted since the canary
//!    began: the candidate has served real users before it serves all of them.
//! 3. **Inconclusive** (keep the active version) when the sample reaches `max_outcomes`.
//! 4. **Step up** (shadow → the first canary share, then each next share) after
//!    `min_outcomes_per_stage` outcomes in the current stage with no sign of harm: the observed
//!    Δ is not below `−margin`. A candidate that looks worse stays at its share until the test
//!    decides or its estimate recovers. Promotion does not wait for the last step: the steps
//!    limit how many users a candidate can harm while the evidence is gathered, and the
//!    evidence (paired, shadow or served) is the same at every share.
//!
//! Both tests run at level `α = 1 − confidence` each; as Δ cannot be both above and below
//! `−margin`, a candidate is wrongly promoted (it is worse by more than the margin) or wrongly
//! rolled back (it is not) with probability at most `α`, however often the controller looks.

use crate::assign::{canary_point, in_canary};
use crate::betting::{self, Counts};
use crate::evidence::{Arm, Evidence, Outcome, Pairs, Recorded, Tally};
use serde::{Deserialize, Serialize};

/// What a rollout decides with; every field is configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// How much worse (accuracy, as a share: 0.01 = 1 point) the candidate may be and still be
    /// promoted.
    pub margin: f64,
    /// Confidence of each decision (0.95: α = 5 %).
    pub confidence: f64,
    /// Outcomes in the decision sample after which the rollout ends inconclusive.
    pub max_outcomes: u64,
    /// The largest share of the decision sample one user may hold.
    pub user_cap: f64,
    /// The canary's shares of users, in order.
    pub canary_steps: Vec<f64>,
    /// Outcomes counted in a stage before it may step up, and in the canary before promotion.
    pub min_outcomes_per_stage: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            margin: 0.01,
            confidence: 0.95,
            max_outcomes: 2000,
            user_cap: 0.10,
            canary_steps: vec![0.05, 0.25, 0.50],
            min_outcomes_per_stage: 100,
        }
    }
}

/// A policy that cannot decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

impl Policy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        let fail = |msg: String| Err(PolicyError(msg));
        let unit = |x: f64| x > 0.0 && x < 1.0;
        if !unit(self.margin) {
            return fail(format!("margin {} is not within (0, 1)", self.margin));
        }
        if !unit(self.confidence) {
            return fail(format!(
                "confidence {} is not within (0, 1)",
                self.confidence
            ));
        }
        if !(self.user_cap > 0.0 && self.user_cap <= 1.0) {
            return fail(format!("user cap {} is not within (0, 1]", self.user_cap));
        }
        if self.canary_steps.is_empty() || !self.canary_steps.iter().all(|&s| unit(s)) {
            return fail("canary steps must be shares within (0, 1), at least one".into());
        }
        if self.canary_steps.windows(2).any(|w| w[0] >= w[1]) {
            return fail("canary steps must increase".into());
        }
        if self.max_outcomes < 2 * self.min_outcomes_per_stage.max(1) {
            return fail(format!(
                "max outcomes {} leave no room for a shadow and a canary stage of {} each",
                self.max_outcomes, self.min_outcomes_per_stage
            ));
        }
        Ok(())
    }

    fn alpha(&self) -> f64 {
        1.0 - self.confidence
    }

    /// The mean of `(1 + Δ) / 2` at Δ = −margin.
    fn boundary(&self) -> f64 {
        (1.0 - self.margin) / 2.0
    }
}

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Candidate,
    Shadow,
    Canary,
    Active,
    Rejected,
    RolledBack,
}

impl Stage {
    /// Whether the rollout still gathers evidence.
    pub fn is_open(self) -> bool {
        matches!(self, Stage::Shadow | Stage::Canary)
    }
}

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The offline gate passed: shadow begins.
    GatePassed,
    /// The offline gate failed: never served.
    GateFailed,
    /// Enough outcomes in the stage and the candidate does not look worse than the margin.
    NoSignOfHarm,
    /// Non-inferior within the margin at the policy's confidence.
    NonInferior,
    /// Worse by more than the margin at the policy's confidence.
    Inferior,
    /// The decision sample reached its maximum without a decision: the active version stays.
    MaxOutcomes,
    /// The rollout ran out of time without a decision: the active version stays.
    TimeLimit,
    /// A newer candidate of the same model started its own rollout: this one ends, the active
    /// version stays.
    Superseded,
    /// An admin rolled the candidate back by hand.
    Aborted,
    /// An admin promoted the candidate by hand.
    PromotedByAdmin,
}

/// How a rollout ended, as an admin reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Promoted,
    RolledBack,
    Inconclusive,
}

impl Reason {
    /// The verdict of a rollout that ended for this reason (`None` when it goes on).
    pub fn verdict(self) -> Option<Verdict> {
        match self {
            Reason::NonInferior | Reason::PromotedByAdmin => Some(Verdict::Promoted),
            Reason::Inferior | Reason::GateFailed | Reason::Aborted => Some(Verdict::RolledBack),
            Reason::MaxOutcomes | Reason::TimeLimit | Reason::Superseded => {
                Some(Verdict::Inconclusive)
            }
            Reason::GatePassed | Reason::NoSignOfHarm => None,
        }
    }
}

/// A value with its always-valid bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The statistics behind a decision, as recorded with each transition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The decision sample.
    pub pairs: Pairs,
    /// Δ = accuracy(candidate) − accuracy(active) on the pairs; `lower` and `upper` are each a
    /// one-sided bound at the policy's confidence (the ones the decision compares to −margin;
    /// together an interval at `1 − 2α`).
    pub difference: Estimate,
    /// Each version's accuracy on the pairs, with an interval at the policy's confidence.
    pub active: Estimate,
    pub candidate: Estimate,
    /// Requested paired outcomes left out by the per-user cap.
    pub over_cap: u64,
    /// Requested labels with one version's output (shown only).
    pub active_unpaired: Tally,
    pub candidate_unpaired: Tally,
    /// Unsolicited labels (shown only, never decided on: biased towards wrong answers).
    pub active_unsolicited: Tally,
    pub candidate_unsolicited: Tally,
}

/// A stage change, with the statistics at that moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: Stage,
    pub to: Stage,
    /// The canary's share of users after the transition.
    pub share: f64,
    pub reason: Reason,
    pub stats: Stats,
}

/// A move the rollout's stage does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageError {
    pub stage: Stage,
    pub wanted: Stage,
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a rollout in {:?} cannot move to {:?}",
            self.stage, self.wanted
        )
    }
}

impl std::error::Error for StageError {}

/// One candidate's rollout against the active version. It serialises whole (policy, stage,
/// evidence), so a controller can keep it between outcomes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rollout {
    id: String,
    policy: Policy,
    stage: Stage,
    step: usize,
    evidence: Evidence,
    in_stage: u64,
    in_canary: u64,
}

impl Rollout {
    /// A candidate that has not passed the offline gate yet.
    pub fn new(id: impl Into<String>, policy: Policy) -> Result<Rollout, PolicyError> {
        policy.validate()?;
        Ok(Rollout {
            id: id.into(),
            evidence: Evidence::new(policy.user_cap),
            policy,
            stage: Stage::Candidate,
            step: 0,
            in_stage: 0,
            in_canary: 0,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// The share of users the candidate serves: the current step in the canary, all once active,
    /// none otherwise.
    pub fn share(&self) -> f64 {
        match self.stage {
            Stage::Canary => self.policy.canary_steps[self.step],
            Stage::Active => 1.0,
            _ => 0.0,
        }
    }

    /// Whether the user at `point` ([`canary_point`] of this rollout) is served the candidate.
    pub fn serves_candidate_at(&self, point: f64) -> bool {
        in_canary(point, self.share())
    }

    /// Whether this user is served the candidate now.
    pub fn serves_candidate(&self, user_id: &str) -> bool {
        self.serves_candidate_at(canary_point(&self.id, user_id))
    }

    /// The offline gate's verdict: a passing candidate enters shadow, a failing one is rejected.
    pub fn gate(&mut self, passed: bool) -> Result<Transition, StageError> {
        let (to, reason) = if passed {
            (Stage::Shadow, Reason::GatePassed)
        } else {
            (Stage::Rejected, Reason::GateFailed)
        };
        if self.stage != Stage::Candidate {
            return Err(StageError {
                stage: self.stage,
                wanted: to,
            });
        }
        Ok(self.move_to(to, reason))
    }

    /// Takes one labelled outcome in; the transition it caused, if any.
    pub fn observe(&mut self, outcome: &Outcome) -> (Recorded, Option<Transition>) {
        if !self.stage.is_open() {
            return (Recorded::Unscored, None);
        }
        let recorded = self.evidence.record(outcome);
        if recorded != Recorded::Counted {
            return (recorded, None);
        }
        self.in_stage += 1;
        if self.stage == Stage::Canary {
            self.in_canary += 1;
        }
        (recorded, self.decide())
    }

    /// Ends an open rollout that ran out of time: inconclusive, the active version stays.
    pub fn expire(&mut self) -> Option<Transition> {
        self.stage
            .is_open()
            .then(|| self.move_to(Stage::RolledBack, Reason::TimeLimit))
    }

    /// Ends an open rollout for a reason outside the test: an admin's abort
    /// ([`Reason::Aborted`]) or promotion ([`Reason::PromotedByAdmin`]), or a newer candidate
    /// ([`Reason::Superseded`]).
    pub fn end(&mut self, reason: Reason) -> Result<Transition, StageError> {
        let to = match reason {
            Reason::PromotedByAdmin => Stage::Active,
            _ => Stage::RolledBack,
        };
        let ends = matches!(
            reason,
            Reason::Aborted | Reason::PromotedByAdmin | Reason::Superseded
        );
        if !self.stage.is_open() || !ends {
            return Err(StageError {
                stage: self.stage,
                wanted: to,
            });
        }
        Ok(self.move_to(to, reason))
    }

    /// Counts the evidence again from `outcomes` (in their order), without deciding: after an
    /// admin excluded a user's labels. The stage stays where it is; the next outcome decides on
    /// the recounted evidence.
    pub fn recount<'a>(&mut self, outcomes: impl IntoIterator<Item = &'a Outcome>) {
        let mut evidence = Evidence::new(self.policy.user_cap);
        for outcome in outcomes {
            evidence.record(outcome);
        }
        self.evidence = evidence;
    }

    /// The rules of the module's documentation, after a counted outcome.
    fn decide(&mut self) -> Option<Transition> {
        let difference = self.evidence.pairs().difference();
        let (mu, threshold) = (self.policy.boundary(), (1.0 / self.policy.alpha()).ln());
        let min = self.policy.min_outcomes_per_stage;
        if betting::log_wealth_below(&difference, mu) >= threshold {
            return Some(self.move_to(Stage::RolledBack, Reason::Inferior));
        }
        if self.stage == Stage::Canary
            && self.in_canary >= min
            && betting::log_wealth_above(&difference, mu) >= threshold
        {
            return Some(self.move_to(Stage::Active, Reason::NonInferior));
        }
        if difference.total() >= self.policy.max_outcomes {
            return Some(self.move_to(Stage::RolledBack, Reason::MaxOutcomes));
        }
        let has_next =
            self.stage == Stage::Shadow || self.step + 1 < self.policy.canary_steps.len();
        if self.in_stage >= min && difference.mean() >= mu && has_next {
            if self.stage == Stage::Canary {
                self.step += 1;
            }
            return Some(self.move_to(Stage::Canary, Reason::NoSignOfHarm));
        }
        None
    }

    fn move_to(&mut self, to: Stage, reason: Reason) -> Transition {
        let from = self.stage;
        self.stage = to;
        self.in_stage = 0;
        Transition {
            from,
            to,
            share: self.share(),
            reason,
            stats: self.stats(),
        }
    }

    /// The statistics now.
    pub fn stats(&self) -> Stats {
        let alpha = self.policy.alpha();
        let pairs = self.evidence.pairs();
        let d = pairs.difference();
        let to_delta = |mean: f64| 2.0 * mean - 1.0;
        let e = &self.evidence;
        Stats {
            pairs,
            difference: Estimate {
                estimate: to_delta(d.mean()),
                lower: to_delta(betting::lower_bound(&d, alpha)),
                upper: to_delta(betting::upper_bound(&d, alpha)),
            },
            active: accuracy(pairs.accuracy(Arm::Active), alpha),
            candidate: accuracy(pairs.accuracy(Arm::Candidate), alpha),
            over_cap: e.over_cap(),
            active_unpaired: e.unpaired(Arm::Active),
            candidate_unpaired: e.unpaired(Arm::Candidate),
            active_unsolicited: e.unsolicited(Arm::Active),
            candidate_unsolicited: e.unsolicited(Arm::Candidate),
        }
    }
}

/// An accuracy with a two-sided interval at `1 − alpha` (`alpha / 2` each side).
fn accuracy(counts: Counts, alpha: f64) -> Estimate {
    let estimate = if counts.total() == 0 {
        0.0
    } else {
        counts.ones as f64 / counts.total() as f64
    };
    Estimate {
        estimate,
        lower: betting::lower_bound(&counts, alpha / 2.0),
        upper: betting::upper_bound(&counts, alpha / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outcomes from distinct users: `pattern` repeated, each `(active, candidate)` right or not.
    fn feed(rollout: &mut Rollout, pattern: &[(bool, bool)], times: usize) -> Vec<Transition> {
        let mut transitions = Vec::new();
        let start = rollout.evidence().pairs().total() + rollout.evidence().over_cap();
        for i in 0..times * pattern.len() {
            let (active, candidate) = pattern[i % pattern.len()];
            let outcome = Outcome {
                user: format!("user-{}", start as usize + i),
                requested: true,
                active_correct: Some(active),
                candidate_correct: Some(candidate),
            };
            if let (_, Some(t)) = rollout.observe(&outcome) {
                transitions.push(t);
            }
        }
        transitions
    }

    fn started(policy: Policy) -> Rollout {
        let mut rollout = Rollout::new("r1", policy).unwrap();
        let t = rollout.gate(true).unwrap();
        assert_eq!(
            (t.from, t.to, t.reason),
            (Stage::Candidate, Stage::Shadow, Reason::GatePassed)
        );
        rollout
    }

    const AGREE: (bool, bool) = (true, true);
    const ACTIVE_ONLY: (bool, bool) = (true, false);
    const CANDIDATE_ONLY: (bool, bool) = (false, true);

    #[test]
    fn a_policy_that_cannot_decide_is_refused() {
        let bad = [
            Policy {
                margin: 0.0,
                ..Policy::default()
            },
            Policy {
                confidence: 1.0,
                ..Policy::default()
            },
            Policy {
                user_cap: 0.0,
                ..Policy::default()
            },
            Policy {
                canary_steps: vec![],
                ..Policy::default()
            },
            Policy {
                canary_steps: vec![0.25, 0.05],
                ..Policy::default()
            },
            Policy {
                canary_steps: vec![0.05, 1.0],
                ..Policy::default()
            },
            Policy {
                max_outcomes: 150,
                ..Policy::default()
            },
        ];
        for policy in bad {
            assert!(Rollout::new("r", policy.clone()).is_err(), "{policy:?}");
        }
        assert!(Policy::default().validate().is_ok());
    }

    #[test]
    fn the_gate_starts_shadow_or_rejects_once() {
        let mut rejected = Rollout::new("r", Policy::default()).unwrap();
        let t = rejected.gate(false).unwrap();
        assert_eq!(
            (t.to, t.reason.verdict()),
            (Stage::Rejected, Some(Verdict::RolledBack))
        );
        let mut rollout = started(Policy::default());
        assert_eq!(rollout.gate(true).unwrap_err().stage, Stage::Shadow);
    }

    #[test]
    fn a_clearly_worse_candidate_is_rolled_back_in_shadow_never_served() {
        let mut rollout = started(Policy::default());
        // Δ = −10 points: the candidate is wrong on one input in ten the active version gets.
        let mut pattern = vec![AGREE; 9];
        pattern.push(ACTIVE_ONLY);
        let transitions = feed(&mut rollout, &pattern, 30);
        assert_eq!(transitions.len(), 1, "{transitions:?}");
        let t = &transitions[0];
        assert_eq!(
            (t.from, t.to, t.reason),
            (Stage::Shadow, Stage::RolledBack, Reason::Inferior)
        );
        assert_eq!(t.share, 0.0);
        assert!(t.stats.difference.upper < -0.01, "{:?}", t.stats.difference);
        assert!(
            t.stats.pairs.total() < 100,
            "decided within the shadow stage"
        );
        assert!(!rollout.serves_candidate("user-1"));
    }

    #[test]
    fn an_equal_candidate_climbs_every_step_then_is_promoted() {
        let mut rollout = started(Policy::default());
        let transitions = feed(&mut rollout, &[AGREE], 2000);
        let moves: Vec<(Stage, f64, Reason)> = transitions
            .iter()
            .map(|t| (t.to, t.share, t.reason))
            .collect();
        assert_eq!(
            moves,
            [
                (Stage::Canary, 0.05, Reason::NoSignOfHarm),
                (Stage::Canary, 0.25, Reason::NoSignOfHarm),
                (Stage::Canary, 0.50, Reason::NoSignOfHarm),
                (Stage::Active, 1.0, Reason::NonInferior),
            ]
        );
        let counted: Vec<u64> = transitions.iter().map(|t| t.stats.pairs.total()).collect();
        assert_eq!(&counted[..3], &[100, 200, 300]);
        let last = &transitions[3].stats;
        assert!(last.difference.lower > -0.01 && last.difference.upper >= 0.0);
        assert_eq!(rollout.share(), 1.0);
        assert!(rollout.serves_candidate("anyone"));
    }

    #[test]
    fn a_candidate_that_looks_worse_stays_at_its_share() {
        let mut rollout = started(Policy::default());
        // Δ̂ = −2 points, too few outcomes to conclude: no step up.
        let mut pattern = vec![AGREE; 49];
        pattern.push(ACTIVE_ONLY);
        let transitions = feed(&mut rollout, &pattern, 3);
        assert!(transitions.is_empty(), "{transitions:?}");
        assert_eq!(rollout.stage(), Stage::Shadow);
        assert_eq!(rollout.stats().pairs.total(), 150);
    }

    #[test]
    fn no_decision_by_the_maximum_is_inconclusive() {
        let policy = Policy {
            max_outcomes: 300,
            ..Policy::default()
        };
        let mut rollout = started(policy);
        // Δ̂ = −1 point exactly: on the margin, neither test can conclude.
        let mut pattern = vec![AGREE; 97];
        pattern.extend([ACTIVE_ONLY, ACTIVE_ONLY, CANDIDATE_ONLY]);
        let transitions = feed(&mut rollout, &pattern, 4);
        let last = transitions.last().unwrap();
        assert_eq!(
            (last.to, last.reason),
            (Stage::RolledBack, Reason::MaxOutcomes)
        );
        assert_eq!(last.reason.verdict(), Some(Verdict::Inconclusive));
        assert_eq!(last.stats.pairs.total(), 300);
        // Closed: further outcomes change nothing.
        assert!(feed(&mut rollout, &[ACTIVE_ONLY], 10).is_empty());
        assert_eq!(rollout.stats().pairs.total(), 300);
    }

    #[test]
    fn an_open_rollout_expires_inconclusive() {
        let mut rollout = started(Policy::default());
        feed(&mut rollout, &[AGREE], 10);
        let t = rollout.expire().unwrap();
        assert_eq!(
            (t.to, t.reason.verdict()),
            (Stage::RolledBack, Some(Verdict::Inconclusive))
        );
        assert!(rollout.expire().is_none());
    }

    #[test]
    fn the_canary_serves_its_share_of_users() {
        let mut rollout = started(Policy::default());
        let users: Vec<String> = (0..4000).map(|i| format!("u{i}")).collect();
        let served = |r: &Rollout| users.iter().filter(|u| r.serves_candidate(u)).count();
        assert_eq!(served(&rollout), 0, "shadow serves nobody");
        feed(&mut rollout, &[AGREE], 100);
        assert_eq!(rollout.stage(), Stage::Canary);
        let at_5 = served(&rollout);
        assert!((140..=260).contains(&at_5), "{at_5}");
    }

    #[test]
    fn unsolicited_labels_never_move_a_rollout() {
        let mut rollout = started(Policy::default());
        for i in 0..1000 {
            let outcome = Outcome {
                user: format!("u{i}"),
                requested: false,
                active_correct: Some(true),
                candidate_correct: Some(false),
            };
            assert_eq!(rollout.observe(&outcome), (Recorded::Unsolicited, None));
        }
        let stats = rollout.stats();
        assert_eq!(stats.pairs.total(), 0);
        assert_eq!(stats.candidate_unsolicited.total, 1000);
        assert_eq!(stats.candidate_unsolicited.correct, 0);
        assert_eq!(rollout.stage(), Stage::Shadow);
    }

    #[test]
    fn a_transition_reads_as_json_an_admin_understands() {
        let mut rollout = started(Policy::default());
        let t = feed(&mut rollout, &[AGREE], 100).pop().unwrap();
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["from"], "shadow");
        assert_eq!(json["to"], "canary");
        assert_eq!(json["reason"], "no_sign_of_harm");
        assert_eq!(json["share"], 0.05);
        assert_eq!(json["stats"]["pairs"]["both_right"], 100);
        let active = &json["stats"]["active"];
        assert_eq!(active["estimate"], 1.0);
        assert!(active["lower"].as_f64().unwrap() > 0.9);
    }

    #[test]
    fn admins_end_an_open_rollout_once_and_a_recount_keeps_the_stage() {
        let mut rollout = started(Policy::default());
        feed(&mut rollout, &[AGREE], 5);
        // The state survives a round trip through its stored form.
        let text = serde_json::to_string(&rollout).unwrap();
        let mut back: Rollout = serde_json::from_str(&text).unwrap();
        assert_eq!(back.stats(), rollout.stats());
        assert_eq!(back.stage(), Stage::Shadow);
        // Counted again without the first two outcomes: the stage stays, the sample shrinks.
        let kept: Vec<Outcome> = (2..5)
            .map(|i| Outcome {
                user: format!("user-{i}"),
                requested: true,
                active_correct: Some(true),
                candidate_correct: Some(true),
            })
            .collect();
        back.recount(&kept);
        assert_eq!(back.evidence().pairs().both_right, 3);
        assert_eq!(back.stage(), Stage::Shadow);
        assert!(
            back.end(Reason::Inferior).is_err(),
            "only admin or superseding endings"
        );
        let t = back.end(Reason::PromotedByAdmin).unwrap();
        assert_eq!(
            (t.to, t.reason.verdict()),
            (Stage::Active, Some(Verdict::Promoted))
        );
        assert!(back.end(Reason::Aborted).is_err(), "ended once");
        let t = rollout.end(Reason::Superseded).unwrap();
        assert_eq!(
            (t.to, t.reason.verdict()),
            (Stage::RolledBack, Some(Verdict::Inconclusive))
        );
        let mut aborted = started(Policy::default());
        let t = aborted.end(Reason::Aborted).unwrap();
        assert_eq!(
            (t.to, t.reason.verdict()),
            (Stage::RolledBack, Some(Verdict::RolledBack))
        );
    }
}
