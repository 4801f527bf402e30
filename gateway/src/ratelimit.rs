//! The gateway's rate limits: which limits apply to a route, who the client is, and the
//! `RateLimit-Policy` / `RateLimit` headers of the IETF httpapi draft.
//!
//! As in the prototype (Flask-Limiter), a route with limits of its own uses only those; every
//! other route gets the default limits; each route counts separately, per client. The client is
//! the verified token's subject, else the IP address.

use common::config::Env;
use common::ratelimit::{Decision, Limit, LimitState, RateLimitStore};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Limits of every route without limits of its own.
    pub default: Vec<Limit>,
    /// Routes (by their path in the route table) with limits of their own.
    pub routes: Vec<(String, Vec<Limit>)>,
    /// Paths never limited (a path and everything below it).
    pub exempt: Vec<String>,
    /// With the store unreachable: let requests through (true) or refuse them with 503.
    pub fail_open: bool,
    /// The longest a request waits for the store before the failure mode applies.
    pub timeout: Duration,
    /// Proxies in front of the gateway whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Open Inference Protocol models and the predict route whose limits their infer requests
    /// count against, one per image (`RATE_LIMIT_OIP_QUOTAS`); a model not listed counts
    /// against the `/v2/models` route's limits, also per image.
    pub oip_quotas: Vec<(String, String)>,
}

impl RateLimitConfig {
    pub const DEFAULT_LIMITS: &'static str = "200/day, 50/hour";
    pub const DEFAULT_ROUTE_LIMITS: &'static str =
        "/api/v1/predict=100/day; /api/v2/predict=150/day";
    /// With the web pages' paths (`crate::pages::EXEMPT_PREFIXES`).
    pub const DEFAULT_EXEMPT: &'static str = concat!(
        "/health, /ready, /metrics, /.well-known/jwks.json, /v2/health, ",
        "/dashboard, /static, /vendor"
    );
    pub const DEFAULT_OIP_QUOTAS: &'static str =
        "mnist-mlp=/api/v1/predict; mnist-cnn=/api/v2/predict";

    pub fn read(env: &mut Env) -> Self {
        let enabled = env.or("RATE_LIMIT_ENABLED", true);
        let default =
            match parse_limits(&env.or("RATE_LIMIT_DEFAULT", Self::DEFAULT_LIMITS.to_owned())) {
                Ok(limits) => limits,
                Err(e) => {
                    env.problem(format!("RATE_LIMIT_DEFAULT: {e}"));
                    vec![]
                }
            };
        let routes = match parse_route_limits(
            &env.or("RATE_LIMIT_ROUTES", Self::DEFAULT_ROUTE_LIMITS.to_owned()),
        ) {
            Ok(routes) => routes,
            Err(e) => {
                env.problem(format!("RATE_LIMIT_ROUTES: {e}"));
                vec![]
            }
        };
        let exempt = env
            .or("RATE_LIMIT_EXEMPT", Self::DEFAULT_EXEMPT.to_owned())
            .split(',')
            .map(|p| p.trim().trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        let fail_open = match env
            .or("RATE_LIMIT_FAILURE_MODE", "open".to_owned())
            .as_str()
        {
            "open" => true,
            "closed" => false,
            other => {
                env.problem(format!(
                    "RATE_LIMIT_FAILURE_MODE: `{other}` is neither `open` nor `closed`"
                ));
                true
            }
        };
        let timeout = Duration::from_millis(env.in_range("RATE_LIMIT_TIMEOUT_MS", 250, 1..=10_000));
        let trusted_proxies = env
            .or("TRUSTED_PROXIES", String::new())
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|s| match Cidr::parse(s) {
                Some(c) => Some(c),
                None => {
                    env.problem(format!(
                        "TRUSTED_PROXIES: `{s}` is not an IP address or CIDR"
                    ));
                    None
                }
            })
            .collect();
        let oip_quotas = match parse_oip_quotas(
            &env.or("RATE_LIMIT_OIP_QUOTAS", Self::DEFAULT_OIP_QUOTAS.to_owned()),
        ) {
            Ok(quotas) => quotas,
            Err(e) => {
                env.problem(format!("RATE_LIMIT_OIP_QUOTAS: {e}"));
                vec![]
            }
        };
        RateLimitConfig {
            enabled,
            default,
            routes,
            exempt,
            fail_open,
            timeout,
            trusted_proxies,
            oip_quotas,
        }
    }

    /// Rate limiting off (tests of other things).
    pub fn disabled() -> Self {
        RateLimitConfig {
            enabled: false,
            default: vec![],
            routes: vec![],
            exempt: vec![],
            fail_open: true,
            timeout: Duration::from_millis(250),
            trusted_proxies: vec![],
            oip_quotas: vec![],
        }
    }
}

/// `"mnist-mlp=/api/v1/predict; mnist-cnn=/api/v2/predict"`.
pub fn parse_oip_quotas(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (model, route) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not like `mnist-cnn=/api/v2/predict`"))?;
            let (model, route) = (model.trim(), route.trim());
            if model.is_empty() || model.contains('/') {
                return Err(format!("`{model}` is not a model name"));
            }
            if !route.starts_with('/') {
                return Err(format!("`{route}` is not a path"));
            }
            Ok((model.to_owned(), route.to_owned()))
        })
        .collect()
}

/// The model of an Open Inference Protocol infer path, `/v2/models/{name}/infer`.
pub fn oip_infer_model(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/v2/models/")?.strip_suffix("/infer")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// `"200/day, 50/hour"`, also `"100 per day"` as the prototype wrote them, and `"5/10s"`.
pub fn parse_limits(text: &str) -> Result<Vec<Limit>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_limit)
        .collect()
}

fn parse_limit(text: &str) -> Result<Limit, String> {
    let (count, per) = text
        .split_once('/')
        .or_else(|| text.split_once(" per "))
        .ok_or_else(|| format!("`{text}` is not like `100/day` or `100 per day`"))?;
    let quota: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{count}` in `{text}` is not a positive count"))?;
    let per = per.trim();
    let seconds = match per.trim_end_matches('s') {
        "second" | "sec" => 1,
        "minute" | "min" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        _ => per
            .strip_suffix('s')
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!("`{per}` in `{text}` is not second, minute, hour, day or a number of seconds like `30s`")
            })?,
    };
    Ok(Limit::new(quota, Duration::from_secs(seconds)))
}

/// `"/api/v1/predict=100/day; /api/v2/predict=150/day, 10/minute"`.
pub fn parse_route_limits(text: &str) -> Result<Vec<(String, Vec<Limit>)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (path, limits) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not like `/path=100/day`"))?;
            let path = path.trim();
            if !path.starts_with('/') {
                return Err(format!("`{path}` is not a path"));
            }
            Ok((path.to_owned(), parse_limits(limits)?))
        })
        .collect()
}

/// An IP network: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    address: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, bits) = match text.split_once('/') {
            Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { address, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[whole] & mask) == (b[whole] & mask)
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the right-most
/// address in `X-Forwarded-For` that is not a trusted proxy (the left part is the client's
/// to write, so it is not believed).
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    if let Some(chain) = forwarded_for {
        for hop in chain.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
            if !is_trusted(client) {
                break;
            }
        }
    }
    Some(client)
}

/// What the check decided, with the headers to send either way.
pub enum Verdict {
    /// Not limited (exempt route, or limiting off).
    Unlimited,
    Allowed(Vec<(&'static str, String)>),
    Refused {
        headers: Vec<(&'static str, String)>,
        retry_after: Duration,
        message: String,
    },
    /// The store could not be asked and the gateway fails closed.
    Unavailable,
}

pub struct RateLimiter {
    config: RateLimitConfig,
    store: Option<Arc<dyn RateLimitStore>>,
    /// Checks that could not reach the store, for logs and metrics.
    pub store_failures: AtomicU64,
    last_failure_log: std::sync::Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig, store: Option<Arc<dyn RateLimitStore>>) -> Self {
        RateLimiter {
            config,
            store,
            store_failures: AtomicU64::new(0),
            last_failure_log: std::sync::Mutex::new(None),
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The limits of a request to `path`, served by the table's route `route`.
    pub fn limits_for(&self, route: &str, path: &str) -> &[Limit] {
        if !self.config.enabled
            || self.config.exempt.iter().any(|e| {
                path == e
                    || (path.starts_with(e.as_str()) && path.as_bytes().get(e.len()) == Some(&b'/'))
            })
        {
            return &[];
        }
        self.config
            .routes
            .iter()
            .find(|(p, _)| p == route || p == path)
            .map_or(&self.config.default, |(_, limits)| limits)
    }

    /// The route whose limits a request counts against: its own, but an infer request of a
    /// model listed in `oip_quotas` counts against that model's predict route.
    pub fn quota_route<'a>(&'a self, route: &'a str, path: &str) -> &'a str {
        oip_infer_model(path)
            .and_then(|model| self.config.oip_quotas.iter().find(|(m, _)| m == model))
            .map_or(route, |(_, quota)| quota.as_str())
    }

    /// Counts a request of `client` (`user:<sub>` or `ip:<address>`) on `route`.
    pub async fn check(&self, route: &str, path: &str, client: &str) -> Verdict {
        self.check_n(route, path, client, 1, 1).await
    }

    /// Counts `cost` requests at once, all or nothing: what is still to count of a request
    /// carrying `images` images (the refusal's sentence names those).
    pub async fn check_n(
        &self,
        route: &str,
        path: &str,
        client: &str,
        cost: u32,
        images: u32,
    ) -> Verdict {
        let verdict = self.decide(route, path, client, cost, images).await;
        let decision = match &verdict {
            Verdict::Unlimited => None,
            Verdict::Allowed(_) => Some("allowed"),
            Verdict::Refused { .. } => Some("refused"),
            Verdict::Unavailable => Some("store_unavailable_refused"),
        };
        if let Some(decision) = decision {
            decisions().inc(&[decision]);
        }
        verdict
    }

    async fn decide(
        &self,
        route: &str,
        path: &str,
        client: &str,
        cost: u32,
        images: u32,
    ) -> Verdict {
        let limits = self.limits_for(route, path);
        let Some(store) = self.store.as_ref().filter(|_| !limits.is_empty()) else {
            return Verdict::Unlimited;
        };
        let key = format!("{route}:{client}");
        let result =
            tokio::time::timeout(self.config.timeout, store.acquire_n(&key, limits, cost)).await;
        let decision = match result {
            Ok(Ok(decision)) => decision,
            Ok(Err(e)) => return self.store_failed(&e.to_string()),
            Err(_) => return self.store_failed("timed out"),
        };
        let headers = headers(&decision);
        if decision.allowed {
            Verdict::Allowed(headers)
        } else {
            let exhausted = decision
                .states
                .iter()
                .filter(|s| s.remaining < cost)
                .map(|s| describe(&s.limit))
                .collect::<Vec<_>>()
                .join(" and ");
            let wait = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let message = match limits.iter().find(|l| l.quota < images) {
                Some(limit) => format!(
                    "Too many images: this request carries {images}, more than the limit of {} on {route} allows at once.",
                    describe(limit)
                ),
                None if images > 1 => format!(
                    "Too many requests: this request carries {images} images, more than are left of the limit of {exhausted} on {route}; try again in {wait} s."
                ),
                None => format!(
                    "Too many requests: the limit of {exhausted} on {route} is reached; try again in {wait} s."
                ),
            };
            Verdict::Refused {
                headers,
                retry_after: decision.retry_after,
                message,
            }
        }
    }

    fn store_failed(&self, error: &str) -> Verdict {
        let total = self.store_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.config.fail_open {
            decisions().inc(&["store_unavailable_allowed"]);
        }
        // At most one log line a second: an outage must not flood the logs.
        if let Ok(mut last) = self.last_failure_log.lock()
            && last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            *last = Some(Instant::now());
            tracing::warn!(
                error,
                failures = total,
                fail_open = self.config.fail_open,
                "rate-limit store unavailable; {}",
                if self.config.fail_open {
                    "letting requests through"
                } else {
                    "refusing requests"
                }
            );
        }
        if self.config.fail_open {
            Verdict::Unlimited
        } else {
            Verdict::Unavailable
        }
    }
}

/// Rate-limit decisions by outcome, for `/metrics`.
fn decisions() -> &'static common::metrics::Counter {
    static DECISIONS: std::sync::OnceLock<common::metrics::Counter> = std::sync::OnceLock::new();
    DECISIONS.get_or_init(|| {
        common::metrics::global().counter(
            "rate_limit_decisions_total",
            "Rate-limit checks by outcome: allowed, refused, and with the store unavailable \
             whether the request was let through (fail-open) or refused (fail-closed).",
            &["decision"],
        )
    })
}

fn describe(limit: &Limit) -> String {
    format!("{} per {}", limit.quota, window_name(limit.window))
}

fn window_name(window: Duration) -> String {
    match window.as_secs() {
        1 => "second".into(),
        60 => "minute".into(),
        3_600 => "hour".into(),
        86_400 => "day".into(),
        n => format!("{n}s"),
    }
}

/// `RateLimit-Policy: "day";q=200;w=86400, "hour";q=50;w=3600` and
/// `RateLimit: "day";r=199;t=432, "hour";r=49;t=72` (t: seconds until the quota is whole).
fn headers(decision: &Decision) -> Vec<(&'static str, String)> {
    let name = |s: &LimitState| format!("\"{}\"", window_name(s.limit.window));
    let policy = decision
        .states
        .iter()
        .map(|s| {
            format!(
                "{};q={};w={}",
                name(s),
                s.limit.quota,
                s.limit.window.as_secs()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let state = decision
        .states
        .iter()
        .map(|s| {
            format!(
                "{};r={};t={}",
                name(s),
                s.remaining,
                s.reset.as_secs_f64().ceil() as u64
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    vec![("ratelimit-policy", policy), ("ratelimit", state)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use common::ratelimit::MemoryRateLimiter;

    #[test]
    fn limits_parse_in_the_prototypes_words_and_ours() {
        assert_eq!(
            parse_limits("200 per day, 50/hour, 5/10s, 1/second").unwrap(),
            vec![
                Limit::new(200, Duration::from_secs(86_400)),
                Limit::new(50, Duration::from_secs(3_600)),
                Limit::new(5, Duration::from_secs(10)),
                Limit::new(1, Duration::from_secs(1)),
            ]
        );
        assert_eq!(
            parse_limits("10 per minutes").unwrap(),
            vec![Limit::new(10, Duration::from_secs(60))]
        );
        for bad in ["0/day", "ten/day", "5/fortnight", "5", "5/0s"] {
            assert!(parse_limits(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_oip_quotas(RateLimitConfig::DEFAULT_OIP_QUOTAS).unwrap()[1],
            ("mnist-cnn".to_owned(), "/api/v2/predict".to_owned())
        );
        assert!(parse_oip_quotas("mnist=api").is_err());
        assert_eq!(
            oip_infer_model("/v2/models/mnist-cnn/infer"),
            Some("mnist-cnn")
        );
        assert_eq!(oip_infer_model("/v2/models/mnist-cnn"), None);
        assert_eq!(oip_infer_model("/v2/models/a/b/infer"), None);
        let routes = parse_route_limits(RateLimitConfig::DEFAULT_ROUTE_LIMITS).unwrap();
        assert_eq!(routes[0].0, "/api/v1/predict");
        assert_eq!(
            routes[1].1,
            vec![Limit::new(150, Duration::from_secs(86_400))]
        );
        assert!(parse_route_limits("api=5/day").is_err());
    }

    #[test]
    fn the_client_address_is_believed_from_trusted_proxies_only() {
        let trusted = vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("::1").unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A direct client cannot claim another address.
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Behind a trusted proxy: the right-most untrusted hop, not what the client prepended.
        assert_eq!(
            client_ip(
                Some(ip("10.1.2.3")),
                Some("6.6.6.6, 198.51.100.7, 10.9.9.9"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some(ip("::ffff:10.1.2.3")), Some("198.51.100.7"), &trusted),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some(ip("10.1.2.3")), None, &trusted),
            Some(ip("10.1.2.3"))
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(
            Cidr::parse("192.168.1.0/24")
                .unwrap()
                .contains(ip("192.168.1.200"))
        );
        assert!(
            !Cidr::parse("192.168.1.0/25")
                .unwrap()
                .contains(ip("192.168.1.200"))
        );
    }

    #[tokio::test]
    async fn a_route_with_its_own_limits_uses_only_those_and_exempt_paths_none() {
        let mut env = Env::from_map(Default::default());
        let config = RateLimitConfig::read(&mut env);
        env.finish().unwrap();
        let limiter = RateLimiter::new(config, Some(Arc::new(MemoryRateLimiter::default())));
        assert_eq!(
            limiter.limits_for("/api/v1/predict", "/api/v1/predict"),
            &[Limit::new(100, Duration::from_secs(86_400))]
        );
        assert_eq!(limiter.limits_for("/feedback", "/feedback").len(), 2);
        assert!(
            limiter
                .limits_for("/.well-known/jwks.json", "/.well-known/jwks.json")
                .is_empty()
        );
        assert!(
            limiter
                .limits_for("/v2/health", "/v2/health/ready")
                .is_empty()
        );
        let Verdict::Allowed(headers) = limiter.check("/feedback", "/feedback", "user:1").await
        else {
            panic!("the first request is allowed");
        };
        assert_eq!(
            headers,
            vec![
                (
                    "ratelimit-policy",
                    "\"day\";q=200;w=86400, \"hour\";q=50;w=3600".to_owned()
                ),
                (
                    "ratelimit",
                    "\"day\";r=199;t=432, \"hour\";r=49;t=72".to_owned()
                ),
            ]
        );
    }
}
