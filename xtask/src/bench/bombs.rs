//! `cargo xtask bench bombs`.

use super::*;

const BOMB_GATEWAY: Service = Service {
    name: "gateway",
    port: 18160,
};
const BOMB_AUTH: Service = Service {
    name: "auth-svc",
    port: 18161,
};
const BOMB_PREDICT: Service = Service {
    name: "predict-svc",
    port: 18162,
};
/// The batch of an oversize inference body: 3,189 × 784 = 2,500,176 numbers (about 2.5
/// million), written as "0," in 5 MB: within the gateway's upload limit (10 MiB), over
/// predict-svc's body cap for the default batch of 256 (4.66 MiB).
const BOMB_OIP_BATCH: usize = 3189;
/// How long one bomb's answer is waited for.
const BOMB_TIMEOUT: Duration = Duration::from_secs(120);

/// The kinds of request the bench sends, how many of each, and the route each goes to.
const BOMB_KINDS: [(&str, usize); 4] = [
    ("35-byte GIF, 8192² canvas", 12),
    ("16-bit grey 8192² PNG", 4),
    ("RGBA 8192² PNG", 4),
    ("inference body, 2.5 M numbers", 4),
];

/// One request as sent: its kind (an index in [`BOMB_KINDS`]), path, content type and body.
struct Bomb {
    kind: usize,
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// One answer: status, `Retry-After` and the JSON error code.
struct BombAnswer {
    kind: usize,
    status: u16,
    retry_after: Option<String>,
    error: String,
    took: Duration,
}

pub(super) fn bombs(root: &Path) -> Result<()> {
    setup::run(root)?;
    train::train_models(root, false)?;
    let bin_dir = build(root, true)?;
    let services = [&BOMB_AUTH, &BOMB_PREDICT, &BOMB_GATEWAY];
    let signals = prepare(services)?;

    let env = predict_env(root, BOMB_AUTH.port, BOMB_PREDICT.port);
    let mut fleet = Fleet::new(signals.clone())?;
    start_all(&mut fleet, &bin_dir, &services, &env)?;
    let gateway = addr(BOMB_GATEWAY.port);
    let token = log_in(gateway)?;
    let bearer = format!("Bearer {token}");
    let upload = multipart_body(&bmp_of_test_digit(root)?);

    warm_up(gateway, &bearer, &upload)?;
    let before = normal_upload(gateway, &bearer, "v2", &upload)?;

    let bombs = bomb_requests()?;
    let watched = [BOMB_PREDICT.name, BOMB_GATEWAY.name];
    let (pids, baseline) = reset_peaks(&fleet, &watched)?;
    if signals.load(Ordering::SeqCst) > 0 {
        bail!("interrupted");
    }
    eprintln!(
        "sending {} bombs at once through the gateway...",
        bombs.len()
    );
    let answers = send_all_at_once(gateway, &bearer, bombs);
    let peak = pids
        .iter()
        .map(|&pid| vm_status_kib(pid, "VmHWM"))
        .collect::<Result<Vec<_>>>()?;
    let after = normal_upload(gateway, &bearer, "v2", &upload);
    fleet.stop_all();
    let after = after?;
    let answers = answers?;

    print_answers(&answers);
    print_memory(&watched, &baseline, &peak);
    println!();
    println!(
        "a normal upload (POST /api/v2/predict, a 28×28 BMP) answered 200 in {:.2} ms before the \
         bombs, {:.2} ms after",
        ms(before),
        ms(after)
    );
    Ok(())
}

/// The 24 requests: 12 GIFs, 4 16-bit and 4 RGBA PNGs (half of each kind to each predict
/// route), and 4 inference bodies (half to each model).
fn bomb_requests() -> Result<Vec<Bomb>> {
    let gif = digits::bombs::gif_canvas(8192);
    let grey16 = digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Grey16)?;
    let rgba = digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Rgba8)?;
    let infer = digits::bombs::oip_zeros(BOMB_OIP_BATCH);
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let mut bombs = Vec::new();
    for (kind, (_, count)) in BOMB_KINDS.iter().enumerate() {
        for i in 0..*count {
            let version = if i.is_multiple_of(2) { "v1" } else { "v2" };
            let image = |file: &str, mime: &str, bytes: &[u8]| Bomb {
                kind,
                path: format!("/api/{version}/predict"),
                content_type: content_type.clone(),
                body: multipart_file(file, mime, bytes),
            };
            bombs.push(match kind {
                0 => image("bomb.gif", "image/gif", &gif),
                1 => image("bomb16.png", "image/png", &grey16),
                2 => image("bomba.png", "image/png", &rgba),
                _ => Bomb {
                    kind,
                    path: format!(
                        "/v2/models/{}/infer",
                        if i.is_multiple_of(2) {
                            "mnist-cnn"
                        } else {
                            "mnist-mlp"
                        }
                    ),
                    content_type: "application/json".to_owned(),
                    body: infer.clone(),
                },
            });
        }
    }
    Ok(bombs)
}

/// Every bomb on a connection of its own, all released together.
fn send_all_at_once(
    gateway: SocketAddr,
    bearer: &str,
    bombs: Vec<Bomb>,
) -> Result<Vec<BombAnswer>> {
    let start = Arc::new(std::sync::Barrier::new(bombs.len()));
    let threads: Vec<_> = bombs
        .into_iter()
        .map(|bomb| {
            let start = start.clone();
            let bearer = bearer.to_owned();
            thread::spawn(move || {
                start.wait();
                let sent = Instant::now();
                let (status, retry_after, error) =
                    send_once(gateway, &bearer, &bomb.path, &bomb.content_type, &bomb.body)?;
                Ok(BombAnswer {
                    kind: bomb.kind,
                    status,
                    retry_after,
                    error,
                    took: sent.elapsed(),
                })
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| {
            t.join()
                .map_err(|_| anyhow::anyhow!("a sending thread panicked"))?
        })
        .collect()
}

/// One POST on a connection of its own (closed after the answer); the status, `Retry-After`
/// and the JSON body's `error`.
///
/// Written on the socket rather than with [`Client`]: the gateway may refuse a bomb (413, 429)
/// and close before it has read the body, and that early answer is what is measured; an HTTP
/// client (ureq included) reports the failed write of the rest of the body and drops the answer.
fn send_once(
    to: SocketAddr,
    bearer: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Option<String>, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(BOMB_TIMEOUT))?;
    stream.set_write_timeout(Some(BOMB_TIMEOUT))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {to}\r\nAuthorization: {bearer}\r\nContent-Type: \
         {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    // A server may answer and close before it has read the whole body: its answer counts.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer to POST {path}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("POST {path} answered no status line: {head:?}"))?;
    let retry_after = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().to_owned())
    });
    // The error object is short: whole in the body, or in its one chunk when chunked.
    let object = rest
        .find('{')
        .zip(rest.rfind('}'))
        .and_then(|(start, end)| rest.get(start..=end))
        .unwrap_or_default();
    let error = json_string_field(object.as_bytes(), "error").unwrap_or_default();
    Ok((status, retry_after, error))
}

/// The time of one normal upload to `/api/{version}/predict`, which must answer 200.
fn normal_upload(
    gateway: SocketAddr,
    bearer: &str,
    version: &str,
    upload: &[u8],
) -> Result<Duration> {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let sent = Instant::now();
    let (status, _, error) = send_once(
        gateway,
        bearer,
        &format!("/api/{version}/predict"),
        &content_type,
        upload,
    )?;
    let took = sent.elapsed();
    if status != 200 {
        bail!("a normal upload to /api/{version}/predict answered {status} {error}");
    }
    Ok(took)
}

/// Each route once, so that models and sessions are loaded before the baseline.
fn warm_up(gateway: SocketAddr, bearer: &str, upload: &[u8]) -> Result<()> {
    for version in ["v1", "v2"] {
        normal_upload(gateway, bearer, version, upload)?;
    }
    let one_image = digits::bombs::oip_zeros(1);
    for model in ["mnist-mlp", "mnist-cnn"] {
        let answer = send_once(
            gateway,
            bearer,
            &format!("/v2/models/{model}/infer"),
            "application/json",
            &one_image,
        )?;
        if answer.0 != 200 {
            bail!(
                "a one-image inference request to {model} answered {}",
                answer.0
            );
        }
    }
    Ok(())
}

/// The pids of the `watched` services, their peak memory (VmHWM) restarted from the current
/// resident memory, and that resident memory.
fn reset_peaks(fleet: &Fleet, watched: &[&str]) -> Result<(Vec<u32>, Vec<u64>)> {
    let pids: Vec<u32> = watched
        .iter()
        .map(|name| {
            fleet
                .pid(name)
                .with_context(|| format!("{name} is not running"))
        })
        .collect::<Result<_>>()?;
    // The peak (VmHWM) starts again from the current resident memory.
    for pid in &pids {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
            .with_context(|| format!("resetting the peak memory of pid {pid}"))?;
    }
    let baseline = pids
        .iter()
        .map(|&pid| vm_rss_kib(pid))
        .collect::<Result<Vec<_>>>()?;
    Ok((pids, baseline))
}

/// The answers of each kind, counted.
fn print_answers(answers: &[BombAnswer]) {
    println!();
    println!(
        "{} requests sent at once through the gateway, release build, {} CPU cores",
        answers.len(),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:<32} {:>6}  answers", "request", "sent");
    for (kind, (name, count)) in BOMB_KINDS.iter().enumerate() {
        let mut seen: Vec<String> = answers
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| match &a.retry_after {
                Some(wait) => format!("{} {} (Retry-After {wait})", a.status, a.error),
                None => format!("{} {}", a.status, a.error),
            })
            .collect();
        seen.sort();
        let mut summary = Vec::new();
        for answer in &seen {
            if summary.last().is_none_or(|(last, _)| last != answer) {
                summary.push((answer.clone(), 0));
            }
            if let Some(last) = summary.last_mut() {
                last.1 += 1;
            }
        }
        let summary: Vec<String> = summary.iter().map(|(a, n)| format!("{n} × {a}")).collect();
        let slowest = answers
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.took)
            .max()
            .unwrap_or_default();
        println!(
            "{name:<32} {count:>6}  {} (slowest {:.1} ms)",
            summary.join(", "),
            ms(slowest)
        );
    }
    let refused = answers
        .iter()
        .filter(|a| (400..500).contains(&a.status) || (a.status == 503 && a.retry_after.is_some()))
        .count();
    println!(
        "{refused} of {} answered 4xx or 503 with Retry-After",
        answers.len()
    );
}

fn print_memory(watched: &[&str], baseline: &[u64], peak: &[u64]) {
    println!();
    println!("resident memory while they ran: VmRSS before, VmHWM (peak) during");
    println!(
        "{:<12} {:>11} {:>10} {:>11}",
        "process", "before MiB", "peak MiB", "growth MiB"
    );
    for ((name, before), peak) in watched.iter().zip(baseline).zip(peak) {
        println!(
            "{name:<12} {:>11.1} {:>10.1} {:>11.1}",
            *before as f64 / 1024.0,
            *peak as f64 / 1024.0,
            peak.saturating_sub(*before) as f64 / 1024.0
        );
    }
}
