//! The admin report: the seed's totals plus accuracy per model version, a confusion matrix and
//! daily counts, shaped from the database's aggregates.

use crate::db::report::{ConfusionCount, DayCount, VersionCount};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Days covered by `daily`, today (UTC) included.
pub const DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionAccuracy {
    pub model: Option<String>,
    pub model_version: Option<i32>,
    pub total_feedback: i64,
    pub correct_feedback: i64,
    pub incorrect_feedback: i64,
    pub accuracy_percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: String,
    pub total_feedback: i64,
    pub correct_feedback: i64,
}

/// Unlinked first-sorting flag, model, version.
type VersionKey = (bool, Option<String>, Option<i32>);

fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64 * 100.0
    }
}

/// The first day `daily` covers.
pub fn first_day(today: chrono::NaiveDate) -> chrono::NaiveDate {
    today - chrono::Days::new((DAYS - 1) as u64)
}

pub fn build(
    versions: &[VersionCount],
    confusion: &[ConfusionCount],
    days: &[DayCount],
    today: chrono::NaiveDate,
) -> Value {
    let by_model_version = accuracy_by_version(versions);
    let total: i64 = by_model_version.iter().map(|v| v.total_feedback).sum();
    let correct: i64 = by_model_version.iter().map(|v| v.correct_feedback).sum();
    let (matrix, labelled) = confusion_matrix(confusion);
    let mut report = json!({
        "total_feedback": total,
        "correct_feedback": correct,
        "incorrect_feedback": total - correct,
        "labelled_feedback": labelled,
        "by_model_version": by_model_version,
        "confusion_matrix": matrix,
        "daily": daily(days, today),
    });
    if total == 0 {
        // The seed's answer when there is nothing to report, beside the (zero) figures.
        report["msg"] = json!("No hay feedback disponible");
    } else {
        report["accuracy_percentage"] = json!(percent(correct, total));
    }
    report
}

/// Per model version; feedback not linked to a prediction is the (null, null) group, last.
fn accuracy_by_version(versions: &[VersionCount]) -> Vec<VersionAccuracy> {
    let mut per_version: BTreeMap<VersionKey, (i64, i64)> = BTreeMap::new();
    for v in versions {
        let entry = per_version
            .entry((v.model.is_none(), v.model.clone(), v.model_version))
            .or_default();
        entry.0 += v.count;
        if v.correct {
            entry.1 += v.count;
        }
    }
    per_version
        .into_iter()
        .map(
            |((_, model, model_version), (total, correct))| VersionAccuracy {
                model,
                model_version,
                total_feedback: total,
                correct_feedback: correct,
                incorrect_feedback: total - correct,
                accuracy_percentage: percent(correct, total),
            },
        )
        .collect()
}

/// Rows are the true label, columns the prediction; with the number of labelled feedback.
fn confusion_matrix(confusion: &[ConfusionCount]) -> ([[i64; 10]; 10], i64) {
    let mut matrix = [[0i64; 10]; 10];
    let mut labelled = 0;
    for c in confusion {
        let Some(label) = c.label else { continue };
        if let (Ok(row @ 0..10), Ok(col @ 0..10)) =
            (usize::try_from(label), usize::try_from(c.prediction))
        {
            matrix[row][col] += c.count;
            labelled += c.count;
        }
    }
    (matrix, labelled)
}

/// The last [`DAYS`] days up to `today`, each with its counts (zero when nothing came).
fn daily(days: &[DayCount], today: chrono::NaiveDate) -> Vec<Day> {
    let mut by_day: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for d in days {
        let entry = by_day.entry(d.day.as_str()).or_default();
        entry.0 += d.count;
        if d.correct {
            entry.1 += d.count;
        }
    }
    first_day(today)
        .iter_days()
        .take(DAYS as usize)
        .map(|day| {
            let date = day.format("%Y-%m-%d").to_string();
            let (total, correct) = by_day.get(date.as_str()).copied().unwrap_or_default();
            Day {
                date,
                total_feedback: total,
                correct_feedback: correct,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    #[test]
    fn an_empty_report_has_the_seed_message_and_zero_figures() {
        let r = build(&[], &[], &[], today());
        assert_eq!(r["msg"], "No hay feedback disponible");
        assert_eq!(r["total_feedback"], 0);
        assert!(r.get("accuracy_percentage").is_none());
        assert_eq!(r["daily"].as_array().unwrap().len(), 30);
        assert_eq!(r["daily"][0]["date"], "2026-10-31");
        assert_eq!(r["daily"][29]["date"], "2026-11-29");
        assert_eq!(r["confusion_matrix"].as_array().unwrap().len(), 10);
    }

    #[test]
    fn figures_add_up() {
        let v = |model: Option<&str>, version, correct, count| VersionCount {
            model: model.map(str::to_owned),
            model_version: version,
            correct,
            count,
        };
        let r = build(
            &[
                v(Some("mnist-cnn"), Some(2), true, 3),
                v(Some("mnist-cnn"), Some(2), false, 1),
                v(None, None, true, 1),
                v(Some("mnist-cnn"), Some(1), false, 2),
            ],
            &[
                ConfusionCount {
                    label: Some(3),
                    prediction: 8,
                    count: 2,
                },
                ConfusionCount {
                    label: Some(7),
                    prediction: 7,
                    count: 4,
                },
            ],
            &[DayCount {
                day: "2026-11-29".into(),
                correct: true,
                count: 4,
            }],
            today(),
        );
        assert_eq!(r["total_feedback"], 7);
        assert_eq!(r["correct_feedback"], 4);
        assert_eq!(r["incorrect_feedback"], 3);
        assert!((r["accuracy_percentage"].as_f64().unwrap() - 400.0 / 7.0).abs() < 1e-9);
        let versions = r["by_model_version"].as_array().unwrap();
        assert_eq!(versions.len(), 3);
        assert_eq!(versions[0]["model_version"], 1);
        assert_eq!(versions[1]["accuracy_percentage"], 75.0);
        assert!(versions[2]["model"].is_null());
        assert_eq!(r["confusion_matrix"][3][8], 2);
        assert_eq!(r["confusion_matrix"][7][7], 4);
        assert_eq!(r["labelled_feedback"], 6);
        assert_eq!(r["daily"][29]["total_feedback"], 4);
    }
}
