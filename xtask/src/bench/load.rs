//! The load generator of `predict` and `gateway`: clients each on their own keep-alive
//! connection, sending without pause for a while.

use super::*;

pub(super) const WARM_UP: Duration = Duration::from_secs(1);
pub(super) const MEASURE: Duration = Duration::from_secs(5);
pub(super) const CONCURRENCY: [usize; 2] = [1, 64];

pub(super) struct Figures {
    pub(super) route: &'static str,
    pub(super) batching: bool,
    pub(super) clients: usize,
    pub(super) requests: usize,
    pub(super) errors: usize,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
}

/// Clients each on their own keep-alive connection, sending without pause; latencies of the
/// answers after the warm-up.
pub(super) fn load(
    route: &'static str,
    to: SocketAddr,
    token: &str,
    body: &[u8],
    clients: usize,
    batching: bool,
) -> Figures {
    let start = Instant::now();
    let measure_from = start + WARM_UP;
    let until = measure_from + MEASURE;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let auth = format!("Bearer {token}");
            let body = body.to_vec();
            thread::spawn(move || {
                let conn = Client::new(to);
                let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
                let headers = [
                    ("Authorization", auth.as_str()),
                    ("Content-Type", content_type.as_str()),
                ];
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    let ok = conn
                        .post("/api/v1/predict", &headers, &body)
                        .is_ok_and(|r| r.status == 200);
                    if sent >= measure_from {
                        if ok {
                            latencies.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in threads {
        if let Ok((l, e)) = t.join() {
            latencies.extend(l);
            errors += e;
        }
    }
    latencies.sort();
    Figures {
        route,
        batching,
        clients,
        requests: latencies.len(),
        errors,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

pub(super) fn print_table(all: &[Figures]) {
    println!();
    println!(
        "POST /api/v1/predict (mnist-mlp), {} s per row after {} s warm-up, release build",
        MEASURE.as_secs(),
        WARM_UP.as_secs()
    );
    println!(
        "{:<12} {:>9} {:>8} {:>10} {:>10} {:>10} {:>7}",
        "to", "batching", "clients", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for f in all {
        println!(
            "{:<12} {:>9} {:>8} {:>10.1} {:>10.2} {:>10.2} {:>7}",
            f.route,
            if f.batching { "on" } else { "off" },
            f.clients,
            f.requests as f64 / MEASURE.as_secs_f64(),
            f.p50.as_secs_f64() * 1000.0,
            f.p99.as_secs_f64() * 1000.0,
            f.errors
        );
    }
}
