//! A seeded simulation of rollouts: requests from a pool of users, labels requested at random
//! and answered or not, unsolicited labels likelier on wrong answers, and a candidate whose
//! quality is known because it is derived from the active version's correctness per input.
//!
//! Everything is a function of the seed, so a run can be replayed exactly; no I/O. `cargo xtask
//! bench rollout` feeds it the real model's correctness on the MNIST test digits; the crate's
//! tests feed it synthetic correctness.

use crate::assign::{canary_point, feedback_requested};
use crate::evidence::Outcome;
use crate::stage::{Policy, PolicyError, Rollout, Verdict};

/// SplitMix64: a small, fast generator, good enough to draw simulated users and coins.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Shuffles in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// A candidate derived from the active version's correctness per input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub correct: Vec<bool>,
    /// Inputs the active version gets right and the candidate wrong.
    pub made_wrong: usize,
    /// Inputs the active version gets wrong and the candidate right.
    pub made_right: usize,
}

/// A candidate whose accuracy differs from the active version's by exactly `delta` inputs
/// (positive: better), which also disagrees with it on `churn` more inputs, half each way (two
/// trained models differ on some inputs even at equal accuracy). The inputs flipped are a
/// seeded random choice among those the active version gets right, and those it gets wrong.
pub fn derive_candidate(
    active: &[bool],
    delta: i64,
    churn: usize,
    rng: &mut Rng,
) -> Result<Derived, String> {
    let mut right: Vec<usize> = (0..active.len()).filter(|&i| active[i]).collect();
    let mut wrong: Vec<usize> = (0..active.len()).filter(|&i| !active[i]).collect();
    let half = churn / 2;
    let made_wrong = half + usize::try_from(-delta).unwrap_or(0);
    let made_right = half + usize::try_from(delta).unwrap_or(0);
    if made_wrong > right.len() || made_right > wrong.len() {
        return Err(format!(
            "the active version gets {} inputs right and {} wrong: a candidate {delta:+} inputs \
             away with {churn} more disagreements needs {made_wrong} right and {made_right} wrong",
            right.len(),
            wrong.len()
        ));
    }
    rng.shuffle(&mut right);
    rng.shuffle(&mut wrong);
    let mut correct = active.to_vec();
    for &i in &right[..made_wrong] {
        correct[i] = false;
    }
    for &i in &wrong[..made_right] {
        correct[i] = true;
    }
    Ok(Derived {
        correct,
        made_wrong,
        made_right,
    })
}

/// Who sends requests: `users` users, the `k`-th most active sending a share proportional to
/// `1 / k^zipf` (a few heavy users, many light ones).
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    pub users: usize,
    pub zipf: f64,
}

/// How labels come back.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// Share of answers that ask for a label.
    pub requested: f64,
    /// Share of those requests a user answers (truthfully).
    pub answered: f64,
    /// Chance that a user labels a right answer nobody asked about.
    pub unsolicited: f64,
    /// How many times likelier an unsolicited label is on a wrong answer.
    pub wrong_factor: f64,
}

/// Which labels decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The requested ones (unsolicited ones are shown apart): the design.
    Requested,
    /// No label requested; the unsolicited ones decide: what the design avoids.
    Unsolicited,
}

/// One simulated deployment.
#[derive(Debug, Clone)]
pub struct Scenario<'a> {
    /// Whether the active version is right on each input.
    pub active: &'a [bool],
    /// Whether the candidate is right on each input.
    pub candidate: &'a [bool],
    pub policy: Policy,
    pub population: Population,
    pub feedback: Feedback,
    pub source: Source,
    /// Requests after which a run stops undecided.
    pub max_requests: u64,
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// `None` when no decision came within `max_requests`.
    pub verdict: Option<Verdict>,
    /// Requests served until the decision (or the end).
    pub requests: u64,
    /// Of them, served by the candidate.
    pub served_candidate: u64,
    /// The decision sample's size.
    pub outcomes: u64,
    /// Outcomes left out by the per-user cap.
    pub over_cap: u64,
    /// Δ as estimated from the decision sample at the end.
    pub difference: f64,
    /// The active version's accuracy as estimated from the decision sample at the end.
    pub active_accuracy: f64,
}

/// The pool's users, their canary points for one rollout, and the cumulative shares of their
/// traffic.
struct Pool {
    ids: Vec<String>,
    points: Vec<f64>,
    cumulative: Vec<f64>,
}

impl Pool {
    fn new(population: &Population, rollout_id: &str) -> Pool {
        let ids: Vec<String> = (0..population.users.max(1))
            .map(|i| format!("user-{i}"))
            .collect();
        let points = ids.iter().map(|id| canary_point(rollout_id, id)).collect();
        let weights: Vec<f64> = (1..=ids.len())
            .map(|k| (k as f64).powf(-population.zipf))
            .collect();
        let sum: f64 = weights.iter().sum();
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut running = 0.0;
        for w in weights {
            running += w / sum;
            cumulative.push(running);
        }
        Pool {
            ids,
            points,
            cumulative,
        }
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.ids.len() - 1)
    }
}

/// Runs one rollout of `scenario` with `seed`: requests cycle through the inputs in a seeded
/// order, each from a user drawn from the pool, until the rollout decides.
pub fn run(scenario: &Scenario<'_>, seed: u64) -> Result<Run, PolicyError> {
    let n = scenario.active.len().min(scenario.candidate.len());
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let id = format!("sim-{seed}");
    let pool = Pool::new(&scenario.population, &id);
    let mut rollout = Rollout::new(id, scenario.policy.clone())?;
    let _ = rollout.gate(true);
    let mut served_candidate = 0;
    let mut verdict = None;
    let mut requests = 0;
    while requests < scenario.max_requests && n > 0 && verdict.is_none() {
        let digit = order[(requests % n as u64) as usize];
        requests += 1;
        let user = pool.draw(&mut rng);
        let on_candidate = rollout.serves_candidate_at(pool.points[user]);
        served_candidate += u64::from(on_candidate);
        let served_right = if on_candidate {
            scenario.candidate[digit]
        } else {
            scenario.active[digit]
        };
        let Some(decides) = label(scenario, seed, requests, served_right, &mut rng) else {
            continue;
        };
        let outcome = Outcome {
            user: pool.ids[user].clone(),
            requested: decides,
            active_correct: Some(scenario.active[digit]),
            candidate_correct: Some(scenario.candidate[digit]),
        };
        verdict = rollout.observe(&outcome).1.and_then(|t| t.reason.verdict());
    }
    let pairs = rollout.evidence().pairs();
    let accuracy = pairs.accuracy(crate::evidence::Arm::Active);
    Ok(Run {
        verdict,
        requests,
        served_candidate,
        outcomes: pairs.total(),
        over_cap: rollout.evidence().over_cap(),
        difference: 2.0 * pairs.difference().mean() - 1.0,
        active_accuracy: accuracy.ones as f64 / accuracy.total().max(1) as f64,
    })
}

/// Whether request number `request` comes back labelled, and if so whether the label may decide:
/// `Some(true)` for a requested label answered (or, with [`Source::Unsolicited`], any label),
/// `Some(false)` for an unsolicited one kept apart, `None` for no label. One coin is drawn either
/// way, so both sources see the same users and inputs.
fn label(
    scenario: &Scenario<'_>,
    seed: u64,
    request: u64,
    served_right: bool,
    rng: &mut Rng,
) -> Option<bool> {
    let f = &scenario.feedback;
    let coin = rng.unit();
    let requested = scenario.source == Source::Requested
        && feedback_requested(&format!("{seed:x}-{request:x}"), f.requested);
    if requested {
        return (coin < f.answered).then_some(true);
    }
    let chance = f.unsolicited * if served_right { 1.0 } else { f.wrong_factor };
    (coin < chance).then_some(scenario.source == Source::Unsolicited)
}

/// The runs that ended one way.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    /// `None`: no decision within the request limit.
    pub verdict: Option<Verdict>,
    pub runs: usize,
    /// Requests until the decision: median and 90th percentile.
    pub median: u64,
    pub p90: u64,
}

/// How the runs ended, in the order rolled back, promoted, inconclusive, undecided (endings no
/// run had are left out).
pub fn endings(runs: &[Run]) -> Vec<Ending> {
    let order = [
        Some(Verdict::RolledBack),
        Some(Verdict::Promoted),
        Some(Verdict::Inconclusive),
        None,
    ];
    order
        .into_iter()
        .filter_map(|verdict| {
            let mut requests: Vec<u64> = runs
                .iter()
                .filter(|r| r.verdict == verdict)
                .map(|r| r.requests)
                .collect();
            requests.sort_unstable();
            (!requests.is_empty()).then(|| Ending {
                verdict,
                runs: requests.len(),
                median: quantile(&requests, 0.5),
                p90: quantile(&requests, 0.9),
            })
        })
        .collect()
}

/// The nearest-rank quantile of sorted values (`q` in `(0, 1]`; 0 when there are none).
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` inputs, each right with probability `accuracy`.
    fn synthetic(n: usize, accuracy: f64, seed: u64) -> Vec<bool> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.unit() < accuracy).collect()
    }

    /// The acceptance setting: a canary at 10 %, labels requested on 20 % of answers and
    /// half of them answered, unsolicited labels 5× likelier on wrong answers.
    fn scenario<'a>(active: &'a [bool], candidate: &'a [bool], source: Source) -> Scenario<'a> {
        Scenario {
            active,
            candidate,
            policy: Policy {
                canary_steps: vec![0.10],
                max_outcomes: 1000,
                ..Policy::default()
            },
            population: Population {
                users: 500,
                zipf: 1.0,
            },
            feedback: Feedback {
                requested: 0.2,
                answered: 0.5,
                unsolicited: 0.02,
                wrong_factor: 5.0,
            },
            source,
            max_requests: 200_000,
        }
    }

    /// How many of `seeds` runs of a candidate `delta` inputs away (with 200 more
    /// disagreements) ended with `verdict`.
    fn count(active: &[bool], delta: i64, seeds: u64, verdict: Verdict) -> usize {
        (0..seeds)
            .filter(|&seed| {
                let mut rng = Rng::new(1_000_000 + seed);
                let candidate = derive_candidate(active, delta, 200, &mut rng).unwrap();
                let s = scenario(active, &candidate.correct, Source::Requested);
                run(&s, seed).unwrap().verdict == Some(verdict)
            })
            .count()
    }

    #[test]
    fn error_rates_hold_in_seeded_runs() {
        // 10,000 inputs, 92 % right; candidates derived exactly 100 inputs (1 point) apart per
        // point, with 2 points of churn.
        let active = synthetic(10_000, 0.92, 7);
        // On the margin (Δ = −1 point), promoting is the error the test bounds by α = 5 %.
        let at_margin = count(&active, -100, 200, Verdict::Promoted);
        assert!(at_margin <= 10, "promoted {at_margin} of 200 at the margin");
        let equal = count(&active, 0, 200, Verdict::RolledBack);
        assert!(
            equal <= 10,
            "an equal candidate rolled back {equal} of 200 times"
        );
        let worse = count(&active, -500, 200, Verdict::RolledBack);
        assert!(
            worse >= 190,
            "a candidate 5 points worse rolled back {worse} of 200 times"
        );
        let better = count(&active, 300, 200, Verdict::Promoted);
        assert!(
            better >= 180,
            "a candidate 3 points better promoted {better} of 200 times"
        );
    }

    #[test]
    fn unsolicited_labels_overstate_errors_requested_ones_do_not() {
        let active = synthetic(10_000, 0.95, 11);
        let mut rng = Rng::new(3);
        let candidate = derive_candidate(&active, 0, 200, &mut rng).unwrap();
        let truth = active.iter().filter(|&&r| r).count() as f64 / 1e4;
        let mean = |source| {
            let s = scenario(&active, &candidate.correct, source);
            let runs: Vec<Run> = (0..20).map(|seed| run(&s, seed).unwrap()).collect();
            runs.iter().map(|r| r.active_accuracy).sum::<f64>() / runs.len() as f64
        };
        let requested = mean(Source::Requested);
        let unsolicited = mean(Source::Unsolicited);
        assert!((requested - truth).abs() < 0.01, "{requested} vs {truth}");
        // Wrong answers 5× likelier to be labelled: 5 % errors read as about 21 %.
        assert!(unsolicited < truth - 0.1, "{unsolicited} vs {truth}");
    }

    #[test]
    fn a_derived_candidate_is_exactly_delta_away() {
        let active = synthetic(1000, 0.9, 1);
        let right = |v: &[bool]| v.iter().filter(|&&b| b).count() as i64;
        for delta in [-50, 0, 30] {
            let d = derive_candidate(&active, delta, 20, &mut Rng::new(5)).unwrap();
            assert_eq!(right(&d.correct) - right(&active), delta);
            let differ = d
                .correct
                .iter()
                .zip(&active)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(differ, delta.unsigned_abs() as usize + 20);
            assert_eq!(d.made_wrong + d.made_right, differ);
        }
        let wrong = 1000 - right(&active);
        assert!(derive_candidate(&active, wrong + 1, 0, &mut Rng::new(5)).is_err());
    }

    #[test]
    fn a_run_is_a_function_of_its_seed() {
        let active = synthetic(2000, 0.9, 2);
        let candidate = derive_candidate(&active, -100, 40, &mut Rng::new(9)).unwrap();
        let s = scenario(&active, &candidate.correct, Source::Requested);
        assert_eq!(run(&s, 42).unwrap(), run(&s, 42).unwrap());
        assert_ne!(run(&s, 42).unwrap(), run(&s, 43).unwrap());
    }

    #[test]
    fn endings_count_runs_and_read_quantiles() {
        let at = |verdict, requests| Run {
            verdict,
            requests,
            served_candidate: 0,
            outcomes: 0,
            over_cap: 0,
            difference: 0.0,
            active_accuracy: 0.0,
        };
        let mut runs: Vec<Run> = (1..=10)
            .map(|i| at(Some(Verdict::RolledBack), i * 100))
            .collect();
        runs.push(at(None, 7));
        let e = endings(&runs);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].runs, e[0].median, e[0].p90), (10, 500, 900));
        assert_eq!((e[1].verdict, e[1].runs), (None, 1));
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
