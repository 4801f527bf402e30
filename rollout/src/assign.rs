//! Reproducible coin flips: which users a canary serves, and which answers ask for a label.
//!
//! Both come from SHA-256 of a salted key, read as a point in `[0, 1)`: the same key gives the
//! same point on every replica and after every restart, and the points of different keys are
//! spread uniformly (and independently of anything the user or the model does).

use sha2::{Digest, Sha256};

/// Salt of the canary assignment, so it is independent of the label requests.
const CANARY_SALT: &[u8] = b"predictloop/rollout/canary";
/// Salt of the label requests.
const LABEL_SALT: &[u8] = b"predictloop/rollout/feedback-requested";

/// A point in `[0, 1)` from SHA-256 of the salt and the parts, each part preceded by its length
/// (so `("ab", "c")` and `("a", "bc")` differ); 53 bits, the precision of an `f64`.
fn unit_point(salt: &[u8], parts: &[&str]) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1_u64 << 53) as f64
}

/// The user's fixed point in `[0, 1)` for one rollout: the canary serves the candidate to the
/// user while this point is below its share ([`in_canary`]). A new rollout draws new points, so
/// the same users are not always the first to see a new version.
pub fn canary_point(rollout_id: &str, user_id: &str) -> f64 {
    unit_point(CANARY_SALT, &[rollout_id, user_id])
}

/// Whether a user at `point` ([`canary_point`]) is served the candidate when the canary's share
/// is `share` (0 to 1). The point never changes, so a user stays on the same side while the
/// share stays, and raising the share only adds users (a user below 5 % is below 25 % too).
pub fn in_canary(point: f64, share: f64) -> bool {
    point < share
}

/// Whether the answer for this prediction asks its user for the true label
/// (`"feedback_requested": true`): a share `share` (0 to 1) of predictions, chosen by a hash of
/// the prediction id, so the choice is reproducible and independent of the answer's content
/// (which the client cannot influence: the id is the server's).
pub fn feedback_requested(prediction_id: &str, share: f64) -> bool {
    unit_point(LABEL_SALT, &[prediction_id]) < share
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_keeps_their_side_and_raising_the_share_only_adds_users() {
        let users: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
        let served_at = |share: f64| -> Vec<bool> {
            users
                .iter()
                .map(|u| in_canary(canary_point("rollout-1", u), share))
                .collect()
        };
        let (five, twenty_five) = (served_at(0.05), served_at(0.25));
        assert_eq!(
            five,
            served_at(0.05),
            "the same share serves the same users"
        );
        for (at_5, at_25) in five.iter().zip(&twenty_five) {
            assert!(!at_5 || *at_25, "a user served at 5 % is served at 25 %");
        }
        let count = |v: &[bool]| v.iter().filter(|&&b| b).count();
        // Binomial(2000, p): within 4 standard deviations.
        assert!((60..=140).contains(&count(&five)), "{}", count(&five));
        assert!((440..=560).contains(&count(&twenty_five)));
        assert_eq!(count(&served_at(0.0)), 0);
        assert_eq!(count(&served_at(1.0)), users.len());
    }

    #[test]
    fn another_rollout_draws_other_users() {
        let first: Vec<bool> = (0..1000)
            .map(|i| in_canary(canary_point("a", &format!("u{i}")), 0.5))
            .collect();
        let second: Vec<bool> = (0..1000)
            .map(|i| in_canary(canary_point("b", &format!("u{i}")), 0.5))
            .collect();
        let same = first.iter().zip(&second).filter(|(a, b)| a == b).count();
        assert!((400..=600).contains(&same), "{same} of 1000 agree");
    }

    #[test]
    fn parts_are_delimited() {
        assert_ne!(canary_point("ab", "c"), canary_point("a", "bc"));
    }

    #[test]
    fn labels_are_requested_on_the_configured_share_reproducibly() {
        let ids: Vec<String> = (0..5000).map(|i| format!("0190a5b3-{i:08}")).collect();
        let asked: Vec<bool> = ids.iter().map(|id| feedback_requested(id, 0.2)).collect();
        let again: Vec<bool> = ids.iter().map(|id| feedback_requested(id, 0.2)).collect();
        assert_eq!(asked, again);
        let n = asked.iter().filter(|&&b| b).count();
        // Binomial(5000, 0.2): mean 1000, sd 28.
        assert!((890..=1110).contains(&n), "{n}");
        assert!(ids.iter().all(|id| !feedback_requested(id, 0.0)));
        assert!(ids.iter().all(|id| feedback_requested(id, 1.0)));
    }

    #[test]
    fn label_requests_do_not_follow_canary_assignment() {
        // The same string as a prediction id and as a user: the two salts make the two draws
        // unrelated.
        let keys: Vec<String> = (0..4000).map(|i| format!("k{i}")).collect();
        let both = keys
            .iter()
            .filter(|k| feedback_requested(k, 0.5) && in_canary(canary_point("", k), 0.5))
            .count();
        assert!((880..=1120).contains(&both), "{both}");
    }
}
