//! Always-valid tests and confidence bounds for the mean of a variable that takes the values 0,
//! ½ and 1, by betting (Waudby-Smith & Ramdas, "Estimating means of bounded random variables by
//! betting", 2023).
//!
//! To test "the mean is at most μ", a gambler starts with 1 and, on each observation `x`, has
//! their wealth multiplied by `1 + λ (x − μ)` with a fixed `λ ≥ 0`. If the mean is at most μ,
//! each factor has expectation at most 1 whatever happened before: the wealth is a nonnegative
//! supermartingale, and by Ville's inequality it ever reaches `1/α` with probability at most `α`,
//! however long one watches and whenever one stops. We bet on a uniform mixture of
//! [`FRACTIONS`] (λ = f/μ, so every factor stays positive); a mixture of supermartingales is one,
//! so the same bound holds for the mixture, which grows nearly as fast as its best member.
//!
//! With a fixed λ per member the wealth depends only on how many 0s, ½s and 1s were seen, not on
//! their order: the statistic is a function of [`Counts`].
//!
//! A confidence bound is the set of μ the wealth has not refuted: the lower bound at level `α`
//! is the largest μ at which the wealth against "mean ≤ μ" is at least `1/α` (the wealth falls
//! as μ grows, so a bisection finds it). It holds at every sample size at once.

use serde::{Deserialize, Serialize};

/// The betting fractions `f` of the mixture, `λ = f/μ` against "mean ≤ μ": 0.05, 0.10, …, 0.95.
/// Small fractions win slowly but safely when the mean is barely above μ; large ones win fast
/// when it is clearly above. Changing them changes how fast a decision comes, never its error
/// rates.
pub const FRACTIONS: [f64; 19] = {
    let mut f = [0.0; 19];
    let mut i = 0;
    while i < 19 {
        f[i] = 0.05 * (i + 1) as f64;
        i += 1;
    }
    f
};

/// How many observations were 0, ½ and 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub zeros: u64,
    pub halves: u64,
    pub ones: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.zeros + self.halves + self.ones
    }

    /// The sample mean (½ when empty).
    pub fn mean(&self) -> f64 {
        match self.total() {
            0 => 0.5,
            n => (self.ones as f64 + 0.5 * self.halves as f64) / n as f64,
        }
    }

    /// The counts of `1 − x`.
    fn reflected(&self) -> Counts {
        Counts {
            zeros: self.ones,
            halves: self.halves,
            ones: self.zeros,
        }
    }
}

/// The log of the mixture wealth against "the mean is at most `mu`" (evidence that it is above),
/// for `mu` in `(0, 1)`.
pub fn log_wealth_above(counts: &Counts, mu: f64) -> f64 {
    let logs = FRACTIONS.map(|f| {
        let lambda = f / mu;
        term(counts.zeros, -lambda * mu)
            + term(counts.halves, lambda * (0.5 - mu))
            + term(counts.ones, lambda * (1.0 - mu))
    });
    log_mean_exp(&logs)
}

/// The log of the mixture wealth against "the mean is at least `mu`" (evidence that it is
/// below), for `mu` in `(0, 1)`: the wealth above `1 − mu` for `1 − x`.
pub fn log_wealth_below(counts: &Counts, mu: f64) -> f64 {
    log_wealth_above(&counts.reflected(), 1.0 - mu)
}

/// `n · ln(1 + step)`, zero when `n` is zero.
fn term(n: u64, step: f64) -> f64 {
    if n == 0 { 0.0 } else { n as f64 * step.ln_1p() }
}

/// `ln(mean(exp(values)))` without overflow.
fn log_mean_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = values.iter().map(|v| (v - max).exp()).sum();
    max + (sum / values.len() as f64).ln()
}

/// The largest μ that the data refute at level `alpha` as an upper limit of the mean: the mean
/// is above this bound, at every sample size at once, with probability at least `1 − alpha`.
/// Zero when nothing is refuted.
pub fn lower_bound(counts: &Counts, alpha: f64) -> f64 {
    let threshold = (1.0 / alpha).ln();
    let refuted = |mu: f64| log_wealth_above(counts, mu) >= threshold;
    // The wealth falls as μ grows: bisect the boundary between refuted and not.
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    if !refuted(1e-12) {
        return 0.0;
    }
    for _ in 0..48 {
        let mid = 0.5 * (lo + hi);
        if refuted(mid.max(1e-12)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The upper bound of the mean at level `alpha` (see [`lower_bound`]).
pub fn upper_bound(counts: &Counts, alpha: f64) -> f64 {
    1.0 - lower_bound(&counts.reflected(), alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(zeros: u64, halves: u64, ones: u64) -> Counts {
        Counts {
            zeros,
            halves,
            ones,
        }
    }

    #[test]
    fn no_data_refutes_nothing() {
        let empty = Counts::default();
        assert_eq!(log_wealth_above(&empty, 0.3), 0.0);
        assert_eq!(lower_bound(&empty, 0.05), 0.0);
        assert_eq!(upper_bound(&empty, 0.05), 1.0);
    }

    #[test]
    fn bounds_enclose_the_mean_and_narrow_with_data() {
        let small = counts(20, 0, 80);
        let large = counts(200, 0, 800);
        for c in [small, large] {
            let (lo, hi) = (lower_bound(&c, 0.05), upper_bound(&c, 0.05));
            assert!(lo < 0.8 && 0.8 < hi, "{lo} {hi}");
        }
        let width = |c: &Counts| upper_bound(c, 0.05) - lower_bound(c, 0.05);
        assert!(width(&large) < 0.5 * width(&small));
        // A 95 % bound after 1,000 coin flips at 0.8 is about ±3 points with a fixed sample
        // size; holding at every size costs a little more, not several times more.
        assert!(width(&large) < 0.12, "{}", width(&large));
    }

    #[test]
    fn a_lower_confidence_level_gives_a_tighter_bound() {
        let c = counts(30, 40, 130);
        assert!(lower_bound(&c, 0.2) > lower_bound(&c, 0.05));
        assert!(upper_bound(&c, 0.2) < upper_bound(&c, 0.05));
    }

    #[test]
    fn wealth_does_not_depend_on_order_and_falls_as_mu_grows() {
        let c = counts(5, 90, 15);
        let mut last = f64::INFINITY;
        for mu in [0.3, 0.4, 0.45, 0.5, 0.55, 0.6] {
            let w = log_wealth_above(&c, mu);
            assert!(w < last);
            last = w;
        }
        // Against "mean ≥ 0.6", data with mean 0.55 are evidence; against "≥ 0.5" they are not.
        assert!(log_wealth_below(&c, 0.6) > 0.0);
        assert!(log_wealth_below(&c, 0.5) < 0.0);
    }

    #[test]
    fn ties_at_the_tested_value_are_no_evidence_either_way() {
        let ties = counts(0, 1000, 0);
        assert!(log_wealth_above(&ties, 0.5).abs() < 1e-12);
        assert!(log_wealth_below(&ties, 0.5).abs() < 1e-12);
        // …but a thousand ties refute a mean of 0.495 (a difference of −1 point).
        assert!(log_wealth_above(&ties, 0.495) > (20.0_f64).ln());
    }

    #[test]
    fn bounds_stay_within_zero_and_one() {
        let all_ones = counts(0, 0, 50);
        assert!(upper_bound(&all_ones, 0.05) <= 1.0);
        assert!(lower_bound(&all_ones, 0.05) > 0.9);
        let all_zeros = counts(50, 0, 0);
        assert_eq!(lower_bound(&all_zeros, 0.05), 0.0);
        assert!(upper_bound(&all_zeros, 0.05) < 0.1);
    }
}
