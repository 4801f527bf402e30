//! `cargo xtask bench retrain`.

use super::*;

const RETRAIN_AUTH: Service = Service {
    name: "auth-svc",
    port: 18191,
};
const RETRAIN_PREDICT: Service = Service {
    name: "predict-svc",
    port: 18192,
};
const RETRAIN_FEEDBACK: Service = Service {
    name: "feedback-svc",
    port: 18193,
};
const RETRAIN_WORKER: Service = Service {
    name: "retrain-worker",
    port: 18195,
};
const RETRAIN_TIMEOUT: Duration = Duration::from_secs(3600);

struct RetrainRow {
    model: &'static str,
    digits: usize,
    state: String,
    total: Duration,
    training: f64,
    examples: u64,
    accuracy: f64,
}

pub(super) fn retrain(root: &Path) -> Result<()> {
    setup::run(root)?;
    train::train_models(root, false)?;
    let sizes: Vec<usize> = std::env::var("BENCH_RETRAIN_DIGITS")
        .unwrap_or_else(|_| "10000,60000".into())
        .split(',')
        .map(|n| n.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .context("BENCH_RETRAIN_DIGITS must be a comma-separated list of digit counts")?;
    let bin_dir = build(root, true)?;
    let services = [
        &RETRAIN_AUTH,
        &RETRAIN_PREDICT,
        &RETRAIN_FEEDBACK,
        &RETRAIN_WORKER,
    ];
    let signals = prepare(services)?;

    let env = retrain_env(root);
    let mut fleet = Fleet::new(signals.clone())?;
    start_all(&mut fleet, &bin_dir, &services, &env)?;
    let token = admin_token(addr(RETRAIN_AUTH.port))?;
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
    ];
    let conn = Client::new(addr(RETRAIN_WORKER.port));
    let mut rows = Vec::new();
    for model in ["mnist-mlp", "mnist-cnn"] {
        for &digits in &sizes {
            rows.push(time_job(&conn, &headers, &signals, model, digits)?);
        }
    }
    fleet.stop_all();
    print_retrain_table(&rows);
    Ok(())
}

/// The services' environment: the bench admin, the URLs between them, the assets and models.
fn retrain_env(root: &Path) -> Vec<(String, String)> {
    let mut env = shared_env(RETRAIN_AUTH.port);
    env.extend(
        [
            ("ADMIN_USERNAME", BENCH_ADMIN.to_owned()),
            ("ADMIN_PASSWORD", BENCH_ADMIN_PASSWORD.to_owned()),
            (
                "PREDICT_URL",
                format!("http://127.0.0.1:{}", RETRAIN_PREDICT.port),
            ),
            (
                "FEEDBACK_URL",
                format!("http://127.0.0.1:{}", RETRAIN_FEEDBACK.port),
            ),
            (
                "ORT_DYLIB_PATH",
                setup::onnxruntime_lib(root).display().to_string(),
            ),
            ("MNIST_DIR", setup::mnist_dir(root).display().to_string()),
            ("MODEL_DIR", train::model_dir(root).display().to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// One retrain job of `model` on `digits` MNIST digits, from `POST /admin/retrain` to its outcome.
fn time_job(
    conn: &Client,
    headers: &[(&str, &str)],
    signals: &AtomicUsize,
    model: &'static str,
    digits: usize,
) -> Result<RetrainRow> {
    if signals.load(Ordering::SeqCst) > 0 {
        bail!("interrupted");
    }
    let body = format!(r#"{{"model":"{model}","epochs":1,"mnist_sample":{digits}}}"#);
    let started = Instant::now();
    let posted = conn.post("/admin/retrain", headers, body.as_bytes())?;
    if posted.status != 202 {
        bail!(
            "POST /admin/retrain answered {}: {}",
            posted.status,
            String::from_utf8_lossy(&posted.body)
        );
    }
    let id = json_string_field(&posted.body, "job_id").context("no job_id")?;
    eprintln!("  {model} on {digits} digits: job {id}...");
    let job = loop {
        if signals.load(Ordering::SeqCst) > 0 {
            bail!("interrupted");
        }
        if started.elapsed() > RETRAIN_TIMEOUT {
            bail!("job {id} did not finish within {RETRAIN_TIMEOUT:?}");
        }
        let answer = conn.get(&format!("/admin/retrain/{id}"), headers)?;
        let job: serde_json::Value = serde_json::from_slice(&answer.body)
            .context("the job API answered something that is not JSON")?;
        if ["succeeded", "rejected", "failed"].contains(&job["state"].as_str().unwrap_or("")) {
            break job;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let total = started.elapsed();
    let training = &job["metrics"]["training"];
    let row = RetrainRow {
        model,
        digits,
        state: job["state"].as_str().unwrap_or("?").to_owned(),
        total,
        training: training["seconds"].as_f64().unwrap_or(f64::NAN),
        examples: training["examples"].as_u64().unwrap_or(0),
        accuracy: job["metrics"]["candidate"]["mnist"]["accuracy"]
            .as_f64()
            .unwrap_or(f64::NAN),
    };
    if job["state"] == "failed" {
        eprintln!("    failed: {}", job["reason"]);
    }
    Ok(row)
}

fn print_retrain_table(rows: &[RetrainRow]) {
    println!();
    println!(
        "retrain job, fine-tuning the active version for 1 epoch, release build, {} CPU cores",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<10} {:>8} {:>9} {:>10} {:>12} {:>12} {:>10} {:>9}",
        "model",
        "digits",
        "examples",
        "total s",
        "train+eval s",
        "examples/s",
        "accuracy",
        "outcome"
    );
    for row in rows {
        println!(
            "{:<10} {:>8} {:>9} {:>10.1} {:>12.1} {:>12.0} {:>9.2}% {:>9}",
            row.model,
            row.digits,
            row.examples,
            row.total.as_secs_f64(),
            row.training,
            row.examples as f64 / row.training,
            row.accuracy * 100.0,
            row.state
        );
    }
}
