//! `cargo xtask bench notify`.

use super::*;

const NOTIFY_GATEWAY: Service = Service {
    name: "gateway",
    port: 18186,
};
const NOTIFY_AUTH: Service = Service {
    name: "auth-svc",
    port: 18187,
};
const NOTIFY_FEEDBACK: Service = Service {
    name: "feedback-svc",
    port: 18188,
};
const NOTIFY_SVC: Service = Service {
    name: "notify-svc",
    port: 18189,
};
/// Admin sockets open at once.
const SOCKETS: usize = 1_000;
/// Feedback posted while they listen, one every [`FEEDBACK_EVERY`].
const FEEDBACKS: u32 = 20;
const FEEDBACK_EVERY: Duration = Duration::from_millis(200);
const FEEDBACK_BODY: &[u8] = br#"{"prediction":3,"correct":true,"comment":"bench"}"#;
/// Sockets in their handshake at once, so that accept queues never overflow.
const CONNECTING_AT_ONCE: usize = 64;
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long memory is left to settle before each reading.
const SETTLE: Duration = Duration::from_secs(2);
/// How long deliveries are waited for after the last `POST /feedback`.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Descriptors a process needs besides the benchmark's sockets.
const FD_MARGIN: u64 = 256;

pub(super) fn notify(root: &Path) -> Result<()> {
    // xtask holds one descriptor per socket, the gateway two (client side and notify-svc side),
    // notify-svc one; the services inherit our limit.
    check_open_files(2 * SOCKETS as u64 + FD_MARGIN)?;
    let bin_dir = build(root, true)?;
    let services = [&NOTIFY_AUTH, &NOTIFY_FEEDBACK, &NOTIFY_SVC, &NOTIFY_GATEWAY];
    let signals = prepare(services)?;

    let mut env = shared_env(NOTIFY_AUTH.port);
    env.extend(
        [
            ("ADMIN_USERNAME", BENCH_ADMIN.to_owned()),
            ("ADMIN_PASSWORD", BENCH_ADMIN_PASSWORD.to_owned()),
            (
                "FEEDBACK_URL",
                format!("http://127.0.0.1:{}", NOTIFY_FEEDBACK.port),
            ),
            (
                "NOTIFY_URL",
                format!("http://127.0.0.1:{}", NOTIFY_SVC.port),
            ),
            ("WS_MAX_CONNECTIONS", (2 * SOCKETS).to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    // No predict-svc: the bench's feedback is not linked to a prediction.
    let mut fleet = Fleet::new(signals.clone())?;
    start_all(&mut fleet, &bin_dir, &services, &env)?;
    let gateway = addr(NOTIFY_GATEWAY.port);
    let user_token = log_in(gateway)?;
    let admin_token = admin_token(gateway)?;

    // One socket first, so that one-time work (JWKS fetches, lazy set-up) is not counted as
    // memory per socket, and a socket that cannot join fails here with its reason.
    warm_up(gateway, &admin_token, &signals)?;
    thread::sleep(SETTLE);
    let watched = [NOTIFY_SVC.name, NOTIFY_GATEWAY.name];
    let before = rss_of(&fleet, &watched)?;

    eprintln!("opening {SOCKETS} admin WebSockets through the gateway...");
    let sockets = open_sockets(gateway, &admin_token, &signals)?;
    let joined = sockets.joined();
    eprintln!("{joined} sockets joined the admins' room");
    thread::sleep(SETTLE);
    let after = rss_of(&fleet, &watched)?;

    eprintln!("posting {FEEDBACKS} feedbacks, one every {FEEDBACK_EVERY:?}...");
    let posted = post_feedback(gateway, &user_token, &signals)?;
    let expected = joined * posted.sent.len();
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while sockets.received() < expected && Instant::now() < deadline {
        if signals.load(Ordering::SeqCst) > 0 {
            bail!("interrupted");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let failed = sockets.failed();
    let outcomes = sockets.stop();
    fleet.stop_all();

    let deliveries = Deliveries::of(&outcomes, &posted.sent);
    let memory: Vec<_> = watched
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(name, (&before, &after))| (*name, before, after))
        .collect();
    print_notify_table(joined, failed, &posted, &deliveries, &memory);
    Ok(())
}

/// Fails with advice when the open-files limit cannot hold the sockets.
fn check_open_files(needed: u64) -> Result<()> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        eprintln!("warning: cannot read /proc/self/limits; assuming {needed} files may be open");
        return Ok(());
    };
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return Ok(());
    };
    let mut values = line["Max open files".len()..].split_whitespace();
    let parse = |v: Option<&str>| match v {
        Some("unlimited") | None => u64::MAX,
        Some(v) => v.parse().unwrap_or(u64::MAX),
    };
    let (soft, hard) = (parse(values.next()), parse(values.next()));
    if soft >= needed {
        return Ok(());
    }
    let how = if hard >= needed {
        format!(
            "e.g. `ulimit -n {}` in this shell",
            needed.max(4096).min(hard)
        )
    } else {
        format!(
            "the hard limit is {hard}, so raise that first: as root `ulimit -Hn`, or \
             /etc/security/limits.conf, or systemd's LimitNOFILE"
        )
    };
    bail!(
        "the open-files limit is {soft}, but the bench needs about {needed}: the gateway holds two \
         descriptors for each of the {SOCKETS} WebSockets (client and notify-svc sides) and \
         inherits this process's limit. Raise it to at least {needed} and run again; {how}"
    )
}

/// One admin socket, opened, joined and closed.
fn warm_up(gateway: SocketAddr, token: &str, signals: &AtomicUsize) -> Result<()> {
    let mut sockets = Sockets::new();
    sockets.open(gateway, token)?;
    let deadline = Instant::now() + JOIN_TIMEOUT;
    while sockets.joined() + sockets.failed() < 1 && Instant::now() < deadline {
        if signals.load(Ordering::SeqCst) > 0 {
            bail!("interrupted");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let joined = sockets.joined() == 1;
    let outcome = sockets.stop().pop();
    if !joined {
        let why = outcome.and_then(|o| o.error);
        bail!(
            "an admin WebSocket could not join through the gateway: {}",
            why.as_deref().unwrap_or("no answer in time")
        );
    }
    Ok(())
}

/// [`SOCKETS`] admin sockets, at most [`CONNECTING_AT_ONCE`] in their handshake at a time;
/// returns once every one has joined or failed.
fn open_sockets(gateway: SocketAddr, token: &str, signals: &AtomicUsize) -> Result<Sockets> {
    let mut sockets = Sockets::new();
    let deadline = Instant::now() + JOIN_TIMEOUT;
    let settled = |s: &Sockets| s.joined() + s.failed();
    while settled(&sockets) < SOCKETS {
        if signals.load(Ordering::SeqCst) > 0 {
            bail!("interrupted");
        }
        if Instant::now() >= deadline {
            bail!(
                "only {} of {SOCKETS} WebSockets joined within {} s ({} failed)",
                sockets.joined(),
                JOIN_TIMEOUT.as_secs(),
                sockets.failed()
            );
        }
        if sockets.opened() < SOCKETS && sockets.opened() - settled(&sockets) < CONNECTING_AT_ONCE {
            sockets.open(gateway, token)?;
        } else {
            thread::sleep(Duration::from_millis(2));
        }
    }
    if sockets.joined() == 0 {
        let why = sockets.stop().into_iter().find_map(|o| o.error);
        bail!(
            "no WebSocket could join: {}",
            why.as_deref().unwrap_or("unknown")
        );
    }
    Ok(sockets)
}

struct Posted {
    /// When each stored feedback was sent, by its id.
    sent: HashMap<i64, Instant>,
    /// How long each `POST /feedback` took to answer 201.
    answered: Vec<Duration>,
    errors: Vec<String>,
}

/// [`FEEDBACKS`] unlinked feedbacks through the gateway, [`FEEDBACK_EVERY`] apart.
fn post_feedback(gateway: SocketAddr, token: &str, signals: &AtomicUsize) -> Result<Posted> {
    let conn = Client::new(gateway);
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let mut posted = Posted {
        sent: HashMap::new(),
        answered: Vec::new(),
        errors: Vec::new(),
    };
    let start = Instant::now();
    for i in 0..FEEDBACKS {
        if signals.load(Ordering::SeqCst) > 0 {
            bail!("interrupted");
        }
        let at = start + FEEDBACK_EVERY * i;
        thread::sleep(at.saturating_duration_since(Instant::now()));
        let sent = Instant::now();
        match conn.post("/feedback", &headers, FEEDBACK_BODY) {
            Ok(answer) if answer.status == 201 => {
                let id = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.get("id").and_then(serde_json::Value::as_i64));
                match id {
                    Some(id) => {
                        posted.answered.push(sent.elapsed());
                        posted.sent.insert(id, sent);
                    }
                    None => posted.errors.push(format!(
                        "201 without a numeric id: {}",
                        String::from_utf8_lossy(&answer.body)
                    )),
                }
            }
            Ok(answer) => posted.errors.push(format!(
                "answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )),
            Err(e) => posted.errors.push(e.to_string()),
        }
    }
    posted.answered.sort();
    Ok(posted)
}

/// What the joined sockets received of the posted feedback.
struct Deliveries {
    /// Send-to-receipt time of each first delivery of a feedback to a socket, sorted.
    latencies: Vec<Duration>,
    expected: usize,
    duplicates: usize,
    /// `new_feedback` events for feedback this run did not post.
    strays: usize,
    /// Sockets that ended before being told to stop, with the first reason.
    ended_early: usize,
    first_end: Option<String>,
}

impl Deliveries {
    fn of(outcomes: &[crate::ws_client::Outcome], sent: &HashMap<i64, Instant>) -> Self {
        let mut d = Deliveries {
            latencies: Vec::new(),
            expected: 0,
            duplicates: 0,
            strays: 0,
            ended_early: 0,
            first_end: None,
        };
        for outcome in outcomes.iter().filter(|o| o.joined) {
            d.expected += sent.len();
            if let Some(error) = &outcome.error {
                d.ended_early += 1;
                d.first_end.get_or_insert_with(|| error.clone());
            }
            let mut seen = HashSet::new();
            for delivery in &outcome.deliveries {
                match sent.get(&delivery.feedback_id) {
                    Some(at) if seen.insert(delivery.feedback_id) => {
                        d.latencies.push(delivery.at.saturating_duration_since(*at))
                    }
                    Some(_) => d.duplicates += 1,
                    None => d.strays += 1,
                }
            }
        }
        d.latencies.sort();
        d
    }

    fn missing(&self) -> usize {
        self.expected.saturating_sub(self.latencies.len())
    }
}

/// VmRSS in KiB of each named service.
fn rss_of(fleet: &Fleet, names: &[&str]) -> Result<Vec<u64>> {
    names
        .iter()
        .map(|name| {
            let pid = fleet
                .pid(name)
                .with_context(|| format!("{name} is not running"))?;
            vm_rss_kib(pid).with_context(|| format!("reading the memory of {name} (pid {pid})"))
        })
        .collect()
}

fn print_notify_table(
    joined: usize,
    failed: usize,
    posted: &Posted,
    deliveries: &Deliveries,
    memory: &[(&str, u64, u64)],
) {
    println!();
    println!("new_feedback to admin WebSockets, all through the gateway, release build");
    println!(
        "  sockets: {joined} joined, {failed} failed; feedback: {} stored of {FEEDBACKS} posted {} ms apart",
        posted.sent.len(),
        FEEDBACK_EVERY.as_millis()
    );
    if let Some(error) = posted.errors.first() {
        println!(
            "  {} POST /feedback failed, the first: {error}",
            posted.errors.len()
        );
    }
    println!(
        "  POST /feedback answered 201 in p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&posted.answered, 0.50)),
        ms(percentile(&posted.answered, 0.99))
    );
    if deliveries.ended_early > 0 {
        println!(
            "  {} sockets ended early, the first: {}",
            deliveries.ended_early,
            deliveries.first_end.as_deref().unwrap_or("")
        );
    }
    println!();
    println!("delivery latency, POST /feedback sent -> new_feedback received");
    println!(
        "{:>10} {:>10} {:>8} {:>10} {:>7} {:>9} {:>9} {:>9}",
        "expected", "received", "missing", "duplicate", "stray", "p50 ms", "p99 ms", "max ms"
    );
    let l = &deliveries.latencies;
    println!(
        "{:>10} {:>10} {:>8} {:>10} {:>7} {:>9.2} {:>9.2} {:>9.2}",
        deliveries.expected,
        l.len(),
        deliveries.missing(),
        deliveries.duplicates,
        deliveries.strays,
        ms(percentile(l, 0.50)),
        ms(percentile(l, 0.99)),
        ms(l.last().copied().unwrap_or_default())
    );
    println!();
    println!("memory per idle socket, VmRSS before and after opening {joined} idle sockets");
    println!(
        "{:<12} {:>11} {:>11} {:>15}",
        "process", "before MiB", "after MiB", "per socket KiB"
    );
    for (name, before, after) in memory {
        let per_socket = (*after as f64 - *before as f64) / joined.max(1) as f64;
        println!(
            "{name:<12} {:>11.1} {:>11.1} {per_socket:>15.1}",
            *before as f64 / 1024.0,
            *after as f64 / 1024.0
        );
    }
}
