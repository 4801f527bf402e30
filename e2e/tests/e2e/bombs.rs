//! Issue 15's acceptance: decompression bombs and oversize inference bodies, 24 of them sent at
//! once through the gateway, are all refused (4xx, or 503 with `Retry-After` when the
//! preprocessing queue is full) while the memory they cost stays within 256 MiB; the system
//! answers a normal upload afterwards.
//!
//! The memory is this process's: the whole system runs in it (`predictloop::System`), and
//! nextest runs each test in a process of its own (`cargo xtask test`). Linux only: it reads
//! `/proc/self/status` and resets the peak with `/proc/self/clear_refs`.

use crate::helpers::*;
use serde_json::{Value, json};

/// How much the process's resident memory may grow while the bombs run.
const BUDGET_MIB: f64 = 256.0;
/// The batch of an oversize inference body: 3,189 × 784 = 2,500,176 numbers, about 2.5
/// million, as "0," (5 MB: under the gateway's upload limit, over predict-svc's body cap).
const OIP_BATCH: usize = 3189;

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Gif,
    Png16,
    PngRgba,
    Infer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gif => "35-byte GIF, 8192² canvas",
            Kind::Png16 => "16-bit 8192² PNG",
            Kind::PngRgba => "RGBA 8192² PNG",
            Kind::Infer => "inference body of 2.5 million numbers",
        }
    }

    /// What predict-svc answers this kind when it gets to read it.
    fn refusal(self) -> (u16, &'static str) {
        match self {
            Kind::Infer => (413, "payload_too_large"),
            _ => (400, "image_too_large"),
        }
    }
}

/// One answer: its status, `Retry-After` and error code.
struct Answer {
    kind: Kind,
    status: u16,
    retry_after: Option<u64>,
    error: String,
}

/// Sends `body` of `kind` and reads the answer.
async fn send(system: &System, token: &str, i: usize, kind: Kind, body: Vec<u8>) -> Answer {
    let request = match kind {
        Kind::Infer => {
            let model = if i.is_multiple_of(2) {
                "mnist-cnn"
            } else {
                "mnist-mlp"
            };
            system
                .client
                .post(system.at(&format!("/v2/models/{model}/infer")))
                .header("content-type", "application/json")
                .body(body)
        }
        _ => {
            // Half of each kind to each predict route.
            let version = if i.is_multiple_of(2) { "v1" } else { "v2" };
            let name = if kind == Kind::Gif {
                "bomb.gif"
            } else {
                "bomb.png"
            };
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(body).file_name(name),
            );
            system
                .client
                .post(system.at(&format!("/api/{version}/predict")))
                .multipart(form)
        }
    };
    let r = request.bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    Answer {
        kind,
        status,
        retry_after,
        error: body["error"].as_str().unwrap_or("").to_owned(),
    }
}

async fn assert_predicts(system: &System, token: &str, png: &[u8]) {
    for version in ["v1", "v2"] {
        let r = system.upload(token, version, "d.png", png.to_vec()).await;
        assert_eq!(r.status(), 200, "/api/{version}/predict");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["prediccion"].as_u64().is_some_and(|d| d <= 9),
            "{body}"
        );
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn twenty_four_bombs_at_once_are_refused_within_256_mib() {
    let system = System::start().await;
    let token = system.user("bomber").await;
    let test = mnist_test();
    let png = digits::grid_to_png(&test.images[0]).unwrap();

    // Warm up: each route once, so that models and sessions are loaded before the baseline.
    assert_predicts(&system, &token, &png).await;
    let pixels: Vec<f32> = test.images[0]
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    for model in ["mnist-mlp", "mnist-cnn"] {
        let body = json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": pixels}]});
        let r = system
            .client
            .post(system.at(&format!("/v2/models/{model}/infer")))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
    }

    // Every request's body is made before the baseline: what is measured is the system's.
    let gif = digits::bombs::gif_canvas(8192);
    let png16 = digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Grey16).unwrap();
    let rgba = digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Rgba8).unwrap();
    let infer = digits::bombs::oip_zeros(OIP_BATCH);
    let bombs: Vec<(Kind, Vec<u8>)> = std::iter::repeat_n((Kind::Gif, &gif), 12)
        .chain(std::iter::repeat_n((Kind::Png16, &png16), 4))
        .chain(std::iter::repeat_n((Kind::PngRgba, &rgba), 4))
        .chain(std::iter::repeat_n((Kind::Infer, &infer), 4))
        .map(|(kind, body)| (kind, body.clone()))
        .collect();

    // The peak resident memory (VmHWM) starts again from the current one.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let baseline = status_kib("VmRSS");
    let answers = futures_util::future::join_all(
        bombs
            .into_iter()
            .enumerate()
            .map(|(i, (kind, body))| send(&system, &token, i, kind, body)),
    )
    .await;
    let peak = status_kib("VmHWM");
    let growth = peak.saturating_sub(baseline) as f64 / 1024.0;

    for kind in [Kind::Gif, Kind::Png16, Kind::PngRgba, Kind::Infer] {
        let mut seen: Vec<String> = answers
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| format!("{} {}", a.status, a.error))
            .collect();
        seen.sort();
        seen.dedup_by(|a, b| a == b);
        let count = |s: &str| {
            answers
                .iter()
                .filter(|a| a.kind == kind && format!("{} {}", a.status, a.error) == s)
                .count()
        };
        let summary: Vec<String> = seen.iter().map(|s| format!("{} × {s}", count(s))).collect();
        eprintln!("{:<40} {}", kind.name(), summary.join(", "));
    }
    eprintln!(
        "resident memory: {:.1} MiB before, peak {:.1} MiB while 24 bombs ran: +{growth:.1} MiB (at most {BUDGET_MIB} MiB)",
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0
    );

    assert!(
        growth <= BUDGET_MIB,
        "the process grew by {growth:.1} MiB while the bombs ran"
    );
    for a in &answers {
        let (status, code) = a.kind.refusal();
        let refused = a.status == status && a.error == code;
        let overloaded =
            a.status == 503 && a.error == "overloaded" && a.retry_after.is_some_and(|s| s >= 1);
        assert!(
            refused || overloaded,
            "{}: {} {:?} (Retry-After {:?}); expected {status} {code}, or 503 overloaded with Retry-After",
            a.kind.name(),
            a.status,
            a.error,
            a.retry_after
        );
    }
    // The preprocessing gate holds PREPROCESS_CONCURRENCY + PREPROCESS_QUEUE images (5 per CPU
    // by default): at least that many were read and refused on their merits, not turned away.
    let held = 5 * std::thread::available_parallelism().map_or(1, |n| n.get());
    let read = answers
        .iter()
        .filter(|a| a.kind != Kind::Infer && a.status != 503)
        .count();
    assert!(
        read >= held.min(20),
        "only {read} of the 20 images were read, the gate holds {held}"
    );

    // A normal upload is answered afterwards.
    assert_predicts(&system, &token, &png).await;
}
