//! `cargo xtask bench rollout`: the rollout decision (`rollout` crate) replayed on the real
//! model's answers to the 10,000 MNIST test digits, 100 seeds per candidate.

use super::*;
use ::rollout::sim::{self, Feedback, Population, Rng, Run, Scenario, Source};
use ::rollout::{Policy, Verdict};
use clap::Parser;

const ROLL_AUTH: Service = Service {
    name: "auth-svc",
    port: 18151,
};
const ROLL_PREDICT: Service = Service {
    name: "predict-svc",
    port: 18152,
};
/// Digits per inference request (predict-svc's default `OIP_MAX_BATCH`).
const ROLL_BATCH: usize = 256;

/// The bench's settings; the defaults are the acceptance scenario.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "cargo xtask bench rollout",
    about = "Replay rollouts on the real model's answers"
)]
pub(super) struct RolloutArgs {
    /// Seeds (runs) per candidate.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The served model whose answers are replayed (the active version).
    #[arg(long, default_value = "mnist-mlp")]
    model: String,
    /// Candidates, in accuracy points from the active version (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "-5,-2,0,3"
    )]
    candidates: Vec<i64>,
    /// More disagreements between candidate and active version, half each way, in points of
    /// the digits (two trained models differ on some digits at equal accuracy).
    #[arg(long, default_value_t = 2.0)]
    churn: f64,
    /// Each digit turned by a seeded angle within ± this many degrees, as users' handwriting is
    /// turned (0: the digits as they are).
    #[arg(long, default_value_t = 30.0)]
    turn: f32,
    /// The canary's shares of users in percent, in order (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10")]
    canary: Vec<f64>,
    /// Percent of answers that ask for a label.
    #[arg(long, default_value_t = 20.0)]
    requested: f64,
    /// Percent of label requests answered.
    #[arg(long, default_value_t = 50.0)]
    answered: f64,
    /// Percent of right answers labelled unasked (wrong answers: `--wrong-factor` times more).
    #[arg(long, default_value_t = 2.0)]
    unsolicited: f64,
    #[arg(long, default_value_t = 5.0)]
    wrong_factor: f64,
    /// Users in the pool; the k-th sends a share proportional to 1/k.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// The decision sample's maximum (then inconclusive).
    #[arg(long, default_value_t = Policy::default().max_outcomes)]
    max_outcomes: u64,
    /// Outcomes per stage before a step up, and in the canary before promotion.
    #[arg(long, default_value_t = Policy::default().min_outcomes_per_stage)]
    min_per_stage: u64,
}

pub(super) fn rollout(root: &Path, args: &[String]) -> Result<()> {
    let args = match RolloutArgs::try_parse_from(
        std::iter::once("rollout".to_owned()).chain(args.iter().cloned()),
    ) {
        Ok(args) => args,
        // `cargo xtask bench rollout -- --help` (without `--`, xtask's own help answers).
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            print!("{e}");
            return Ok(());
        }
        Err(e) => bail!("{e}"),
    };
    setup::run(root)?;
    train::train_models(root, false)?;
    let test =
        digits::load_test(&setup::mnist_dir(root)).context("loading the MNIST test digits")?;
    let images = turned(&test.images, args.turn);
    let (correct, version) = answers_of(root, &args.model, &images, &test.labels)?;
    let right = correct.iter().filter(|&&r| r).count();
    println!();
    println!(
        "active version: {} v{version}, right on {right} of the {} MNIST test digits ({:.2} %){}, \
         answered by predict-svc (release) through POST /v2/models/{}/infer",
        args.model,
        correct.len(),
        100.0 * right as f64 / correct.len() as f64,
        if args.turn > 0.0 {
            format!(", each turned by a seeded angle within ±{}°", args.turn)
        } else {
            String::new()
        },
        args.model
    );
    print_setting(&args, correct.len());
    for source in [Source::Requested, Source::Unsolicited] {
        print_block(&args, &correct, source)?;
    }
    Ok(())
}

/// Each digit turned by its own angle, uniform within `±degrees` (a fixed seed: the same
/// population for every run).
fn turned(images: &[digits::Grid], degrees: f32) -> Vec<digits::Grid> {
    if degrees <= 0.0 {
        return images.to_vec();
    }
    let mut rng = Rng::new(0x7075_726e);
    images
        .iter()
        .map(|grid| {
            let angle = (rng.unit() as f32 * 2.0 - 1.0) * degrees;
            digits::augment::rotate(grid, angle)
        })
        .collect()
}

/// Starts auth-svc and predict-svc (release), asks `model` for every digit through the Open
/// Inference Protocol, and says which answers (the most probable digit) were right; with the
/// served version.
fn answers_of(
    root: &Path,
    model: &str,
    images: &[digits::Grid],
    labels: &[u8],
) -> Result<(Vec<bool>, String)> {
    // Only the two services it starts, not the whole fleet.
    let bin_dir = crate::up::build_packages(root, true, &[ROLL_AUTH.name, ROLL_PREDICT.name])?;
    let signals = prepare([&ROLL_AUTH, &ROLL_PREDICT])?;
    let env = predict_env(root, ROLL_AUTH.port, ROLL_PREDICT.port);
    let mut fleet = Fleet::new(signals.clone())?;
    start_all(&mut fleet, &bin_dir, &[&ROLL_AUTH, &ROLL_PREDICT], &env)?;
    let answers = (|| {
        let bearer = format!("Bearer {}", log_in(addr(ROLL_AUTH.port))?);
        let conn = Client::new(addr(ROLL_PREDICT.port));
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", bearer.as_str()),
        ];
        let mut digits_answered = Vec::with_capacity(images.len());
        let mut version = String::new();
        for chunk in images.chunks(ROLL_BATCH) {
            if signals.load(Ordering::SeqCst) > 0 {
                bail!("interrupted");
            }
            let body = serde_json::json!({"inputs": [{
                "name": "input", "datatype": "FP32", "shape": [chunk.len(), 784],
                "data": digits::to_input_batch(chunk),
            }]});
            let answer = conn.post(
                &format!("/v2/models/{model}/infer"),
                &headers,
                body.to_string().as_bytes(),
            )?;
            if answer.status != 200 {
                bail!(
                    "infer answered {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                );
            }
            let (predicted, served) = most_probable(&answer.body, chunk.len())?;
            digits_answered.extend(predicted);
            version = served;
        }
        Ok((digits_answered, version))
    })();
    fleet.stop_all();
    let (predicted, version) = answers?;
    let correct = predicted.iter().zip(labels).map(|(p, l)| p == l).collect();
    Ok((correct, version))
}

/// The most probable digit of each of `n` images in an infer answer, and the answer's
/// `model_version`.
fn most_probable(body: &[u8], n: usize) -> Result<(Vec<u8>, String)> {
    let answer: serde_json::Value =
        serde_json::from_slice(body).context("the infer answer is not JSON")?;
    let data = answer["outputs"][0]["data"]
        .as_array()
        .context("the infer answer has no outputs[0].data")?;
    if data.len() != n * digits::CLASSES {
        bail!(
            "expected {} probabilities, got {}",
            n * digits::CLASSES,
            data.len()
        );
    }
    let predicted = data
        .chunks(digits::CLASSES)
        .map(|p| {
            let p: Vec<f64> = p.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
            (0..digits::CLASSES)
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .map_or(0, |d| d as u8)
        })
        .collect();
    let version = answer["model_version"].as_str().unwrap_or("?").to_owned();
    Ok((predicted, version))
}

/// The rollout policy of the settings.
fn policy_of(args: &RolloutArgs) -> Result<Policy> {
    let policy = Policy {
        canary_steps: args.canary.iter().map(|p| p / 100.0).collect(),
        max_outcomes: args.max_outcomes,
        min_outcomes_per_stage: args.min_per_stage,
        ..Policy::default()
    };
    policy.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(policy)
}

fn print_setting(args: &RolloutArgs, digits: usize) {
    let policy = Policy::default();
    let churn = (args.churn / 100.0 * digits as f64).round() as usize;
    println!(
        "candidates: the active version's right/wrong per digit with a seeded choice of digits \
         flipped, so that the candidate's accuracy differs by exactly the points shown, and \
         {churn} more digits flipped half each way ({} points of churn: equal accuracy, other \
         mistakes)",
        args.churn
    );
    let canary: Vec<String> = args.canary.iter().map(|p| format!("{p} %")).collect();
    println!(
        "setting: canary {}, labels requested on {} % of answers and {} % of those answered, \
         unsolicited labels on {} % of right answers and {}× that on wrong ones; {} users (the \
         k-th sends ∝ 1/k), none over {} % of the decision sample; margin {} point at {} %, at \
         least {} outcomes per stage, at most {}; {} seeds per row; requests cycle through the \
         digits in a seeded order",
        canary.join(" → "),
        args.requested,
        args.answered,
        args.unsolicited,
        args.wrong_factor,
        args.users,
        100.0 * policy.user_cap,
        100.0 * policy.margin,
        100.0 * policy.confidence,
        args.min_per_stage,
        args.max_outcomes,
        args.seeds
    );
}

/// One table: every candidate's runs decided on `source`'s labels.
fn print_block(args: &RolloutArgs, correct: &[bool], source: Source) -> Result<()> {
    println!();
    println!(
        "{}; each cell: runs (median / p90 requests until the decision)",
        match source {
            Source::Requested => "decided on requested labels (the design)",
            Source::Unsolicited =>
                "the same, decided on unsolicited labels instead (none requested)",
        }
    );
    println!(
        "{:<10} {:>22} {:>22} {:>22} {:>9} {:>8} {:>9}",
        "candidate", "rolled back", "promoted", "inconclusive", "Δ read", "served", "over cap"
    );
    for &points in &args.candidates {
        let runs = match runs_of(args, correct, points, source) {
            Ok(runs) => runs,
            // A candidate the active version's answers cannot give (e.g. 3 points better than a
            // version wrong on fewer digits): said, and the other rows still run.
            Err(e) => {
                println!("{:<10} {e:#}", format!("{points:+} points"));
                continue;
            }
        };
        let endings = sim::endings(&runs);
        let cell = |verdict| {
            endings
                .iter()
                .find(|e| e.verdict == Some(verdict))
                .map_or("0".to_owned(), |e| {
                    format!("{} ({} / {})", e.runs, e.median, e.p90)
                })
        };
        let mean =
            |f: &dyn Fn(&Run) -> f64| runs.iter().map(f).sum::<f64>() / runs.len().max(1) as f64;
        let undecided = runs.iter().filter(|r| r.verdict.is_none()).count();
        println!(
            "{:<10} {:>22} {:>22} {:>22} {:>+8.2} {:>7.2}% {:>9.1}{}",
            format!("{points:+} points"),
            cell(Verdict::RolledBack),
            cell(Verdict::Promoted),
            cell(Verdict::Inconclusive),
            100.0 * mean(&|r| r.difference),
            100.0 * mean(&|r| r.served_candidate as f64 / r.requests.max(1) as f64),
            mean(&|r| r.over_cap as f64),
            if undecided > 0 {
                format!("  ({undecided} undecided)")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// The runs of one candidate, `points` from the active version, one per seed, on every core.
fn runs_of(args: &RolloutArgs, correct: &[bool], points: i64, source: Source) -> Result<Vec<Run>> {
    let n = correct.len();
    let delta = (points as f64 / 100.0 * n as f64).round() as i64;
    let churn = (args.churn / 100.0 * n as f64).round() as usize;
    let policy = policy_of(args)?;
    let one = |seed: u64| -> Result<Run> {
        let candidate = sim::derive_candidate(correct, delta, churn, &mut Rng::new(!seed))
            .map_err(|e| anyhow::anyhow!("candidate {points:+} points: {e}"))?;
        let scenario = Scenario {
            active: correct,
            candidate: &candidate.correct,
            policy: policy.clone(),
            population: Population {
                users: args.users,
                zipf: 1.0,
            },
            feedback: Feedback {
                requested: args.requested / 100.0,
                answered: args.answered / 100.0,
                unsolicited: args.unsolicited / 100.0,
                wrong_factor: args.wrong_factor,
            },
            source,
            max_requests: 5_000_000,
        };
        sim::run(&scenario, seed).map_err(|e| anyhow::anyhow!("{e}"))
    };
    let one = &one;
    let threads = thread::available_parallelism().map_or(1, |t| t.get()) as u64;
    let per_thread: Vec<Result<Vec<Run>>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..args.seeds)
                        .filter(|s| s % threads == t)
                        .map(one)
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a simulation thread panicked")))
            })
            .collect()
    });
    let mut runs = Vec::with_capacity(args.seeds as usize);
    for part in per_thread {
        runs.extend(part?);
    }
    Ok(runs)
}
