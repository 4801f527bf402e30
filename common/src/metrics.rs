//! Metrics in the Prometheus text format (version 0.0.4), served on each service's
//! `GET /metrics`: counters, gauges and histograms with labels, registered once per process.
//!
//! Metric handles are cheap to clone and safe to use from any thread; recording takes one short
//! lock per metric family. Label values come from a fixed set (routes of the table, statuses,
//! model names), never from raw client input, so the number of series stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

/// Latency buckets in seconds, from 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Durations of long jobs in seconds, from 1 s to 2 h.
pub const JOB_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];

type Labels = Vec<String>;

enum Kind {
    Counter,
    Gauge,
    Histogram(Vec<f64>),
}

#[derive(Default, Clone)]
struct Series {
    /// Counter or gauge value; histogram sum.
    value: f64,
    /// Histogram: observations per bucket (not cumulative) and in all.
    buckets: Vec<u64>,
    count: u64,
}

struct Family {
    name: String,
    help: String,
    label_names: Vec<String>,
    kind: Kind,
    series: Mutex<BTreeMap<Labels, Series>>,
    /// The same family as an OpenTelemetry instrument, when metrics are exported over OTLP.
    otel: OnceLock<Option<Instrument>>,
}

/// An OpenTelemetry instrument mirroring a family: every recording goes to both.
enum Instrument {
    Counter(opentelemetry::metrics::Counter<f64>),
    Gauge(opentelemetry::metrics::Gauge<f64>),
    Histogram(opentelemetry::metrics::Histogram<f64>),
}

/// The meter the families mirror to; set once when OTLP export is configured.
static OTEL_METER: OnceLock<opentelemetry::metrics::Meter> = OnceLock::new();

/// Mirrors every family, from now on, to `meter` (exported over OTLP by its provider).
pub fn export_to(meter: opentelemetry::metrics::Meter) {
    let _ = OTEL_METER.set(meter);
}

impl Family {
    fn instrument(&self) -> Option<&Instrument> {
        self.otel
            .get_or_init(|| {
                let meter = OTEL_METER.get()?;
                let name = self.name.clone();
                let help = self.help.clone();
                Some(match &self.kind {
                    Kind::Counter => {
                        Instrument::Counter(meter.f64_counter(name).with_description(help).build())
                    }
                    Kind::Gauge => {
                        Instrument::Gauge(meter.f64_gauge(name).with_description(help).build())
                    }
                    Kind::Histogram(bounds) => Instrument::Histogram(
                        meter
                            .f64_histogram(name)
                            .with_description(help)
                            .with_boundaries(bounds.clone())
                            .build(),
                    ),
                })
            })
            .as_ref()
    }

    fn attributes(&self, labels: &[&str]) -> Vec<opentelemetry::KeyValue> {
        self.label_names
            .iter()
            .zip(labels)
            .map(|(n, v)| opentelemetry::KeyValue::new(n.clone(), (*v).to_owned()))
            .collect()
    }

    /// Sends a recording to the OpenTelemetry instrument: an increase, a gauge's new value or
    /// an observation.
    fn mirror(&self, labels: &[&str], value: f64) {
        match self.instrument() {
            Some(Instrument::Counter(c)) if value > 0.0 => c.add(value, &self.attributes(labels)),
            Some(Instrument::Gauge(g)) => g.record(value, &self.attributes(labels)),
            Some(Instrument::Histogram(h)) => h.record(value, &self.attributes(labels)),
            _ => {}
        }
    }

    fn with<R>(&self, labels: &[&str], f: impl FnOnce(&mut Series) -> R) -> R {
        let key: Labels = labels.iter().map(|l| (*l).to_owned()).collect();
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = series.entry(key).or_insert_with(|| Series {
            buckets: match &self.kind {
                Kind::Histogram(bounds) => vec![0; bounds.len()],
                _ => vec![],
            },
            ..Series::default()
        });
        f(entry)
    }

    fn render(&self, out: &mut String) {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(&self.help));
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (values, s) in series.iter() {
            let labels = label_text(&self.label_names, values, None);
            match &self.kind {
                Kind::Counter | Kind::Gauge => {
                    let _ = writeln!(out, "{}{labels} {}", self.name, number(s.value));
                }
                Kind::Histogram(bounds) => {
                    let mut cumulative = 0;
                    for (bound, count) in bounds.iter().zip(&s.buckets) {
                        cumulative += count;
                        let le = label_text(&self.label_names, values, Some(&number(*bound)));
                        let _ = writeln!(out, "{}_bucket{le} {cumulative}", self.name);
                    }
                    let inf = label_text(&self.label_names, values, Some("+Inf"));
                    let _ = writeln!(out, "{}_bucket{inf} {}", self.name, s.count);
                    let _ = writeln!(out, "{}_sum{labels} {}", self.name, number(s.value));
                    let _ = writeln!(out, "{}_count{labels} {}", self.name, s.count);
                }
            }
        }
    }
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn label_text(names: &[String], values: &[String], le: Option<&str>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{n}=\"{v}\"")
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The metric families of this process.
type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<Family>>>,
    /// Run before each rendering: they copy values kept elsewhere into gauges and counters.
    hooks: Mutex<Vec<Hook>>,
}

static GLOBAL: OnceLock<Registry> = OnceLock::new();

/// The process's registry, which `GET /metrics` renders.
pub fn global() -> &'static Registry {
    GLOBAL.get_or_init(Registry::default)
}

impl Registry {
    /// The family called `name`, made on first use (so two parts of a process, or two
    /// instances of a service in one test process, share it).
    fn family(&self, name: &str, help: &str, label_names: &[&str], kind: Kind) -> Arc<Family> {
        let mut families = self
            .families
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = families.iter().find(|f| f.name == name) {
            return found.clone();
        }
        let family = Arc::new(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            label_names: label_names.iter().map(|l| (*l).to_owned()).collect(),
            kind,
            series: Mutex::new(BTreeMap::new()),
            otel: OnceLock::new(),
        });
        families.push(family.clone());
        family
    }

    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Counter {
        Counter(self.family(name, help, labels, Kind::Counter))
    }

    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Gauge {
        Gauge(self.family(name, help, labels, Kind::Gauge))
    }

    pub fn histogram(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Histogram {
        Histogram(self.family(name, help, labels, Kind::Histogram(buckets.to_vec())))
    }

    /// Runs `hook` before each rendering, to read values kept elsewhere (a hub's socket count).
    pub fn on_render(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(hook));
    }

    /// Every family in the Prometheus text format.
    pub fn render(&self) -> String {
        for hook in self
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            hook();
        }
        let families = self
            .families
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut out = String::new();
        for family in families {
            family.render(&mut out);
        }
        out
    }
}

/// A count that only goes up.
#[derive(Clone)]
pub struct Counter(Arc<Family>);

impl Counter {
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1.0);
    }

    pub fn add(&self, labels: &[&str], by: f64) {
        let by = by.max(0.0);
        self.0.with(labels, |s| s.value += by);
        self.0.mirror(labels, by);
    }

    /// Sets the total of a count kept elsewhere (it never goes down there either).
    pub fn set_total(&self, labels: &[&str], total: f64) {
        let increase = self.0.with(labels, |s| {
            let increase = (total - s.value).max(0.0);
            s.value += increase;
            increase
        });
        self.0.mirror(labels, increase);
    }
}

/// A value that goes up and down.
#[derive(Clone)]
pub struct Gauge(Arc<Family>);

impl Gauge {
    pub fn set(&self, labels: &[&str], value: f64) {
        self.0.with(labels, |s| s.value = value);
        self.0.mirror(labels, value);
    }

    pub fn add(&self, labels: &[&str], by: f64) {
        let value = self.0.with(labels, |s| {
            s.value += by;
            s.value
        });
        self.0.mirror(labels, value);
    }
}

/// Observations counted into buckets, with their sum.
#[derive(Clone)]
pub struct Histogram(Arc<Family>);

impl Histogram {
    pub fn observe(&self, labels: &[&str], value: f64) {
        let bounds = match &self.0.kind {
            Kind::Histogram(bounds) => bounds.clone(),
            _ => return,
        };
        self.0.with(labels, |s| {
            if let Some(i) = bounds.iter().position(|b| value <= *b) {
                s.buckets[i] += 1;
            }
            s.count += 1;
            s.value += value;
        });
        self.0.mirror(labels, value);
    }
}

/// `GET /metrics` for a service's `App`.
///
/// Metrics are for a scraper that talks to the process directly (Prometheus to the pod's
/// management port): [`crate::server::split_planes`] answers 404 for them on the public port.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.route(
        "/metrics",
        actix_web::web::get().to(|| async {
            actix_web::HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .body(global().render())
        }),
    );
}

/// The HTTP metrics every service records: requests by route, method and status, and their
/// latency. The route is the matched pattern (`/admin/retrain/{job_id}`), never the raw path.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Counter,
    latency: Histogram,
}

impl HttpMetrics {
    pub fn get() -> &'static HttpMetrics {
        static METRICS: OnceLock<HttpMetrics> = OnceLock::new();
        METRICS.get_or_init(|| HttpMetrics {
            requests: global().counter(
                "http_requests_total",
                "HTTP requests answered, by route, method and status.",
                &["service", "route", "method", "status"],
            ),
            latency: global().histogram(
                "http_request_duration_seconds",
                "Time from receiving a request to its answer's headers, by route, method and status.",
                &["service", "route", "method", "status"],
                LATENCY_BUCKETS,
            ),
        })
    }

    pub fn record(&self, service: &str, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [service, route, method, status.as_str()];
        self.requests.inc(&labels);
        self.latency.observe(&labels, seconds);
    }
}

/// The `service` label of a service's HTTP metrics: app data of its `App`.
#[derive(Clone, Copy)]
pub struct ServiceName(pub &'static str);

impl ServiceName {
    /// The name of the service whose `App` took this request, if it registered one.
    pub fn of(req: &actix_web::dev::ServiceRequest) -> Option<&'static str> {
        req.app_data::<actix_web::web::Data<ServiceName>>()
            .map(|s| s.0)
    }
}

/// What every service's `App` gets: `GET /metrics` and the name its HTTP metrics carry.
/// Add the [`track`] middleware with `App::wrap(from_fn(common::metrics::track))`.
pub fn service(name: &'static str) -> impl Fn(&mut actix_web::web::ServiceConfig) + Clone {
    move |cfg| {
        cfg.app_data(actix_web::web::Data::new(ServiceName(name)));
        configure(cfg);
    }
}

/// The method as a label: the standard ones, else `OTHER` (a client may send any token).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

/// The route label of a request when no pattern matched it (a 404, or a gateway route, which
/// sets its own through [`RouteLabel`]).
pub const UNMATCHED: &str = "unmatched";

/// A route label a handler chose (the gateway's route table entry), put in the request's
/// extensions.
#[derive(Clone)]
pub struct RouteLabel(pub String);

/// Middleware recording [`HttpMetrics`]: `App::wrap(from_fn(common::metrics::track))`.
pub async fn track(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    let started = std::time::Instant::now();
    let service = ServiceName::of(&req).unwrap_or("unknown");
    let method = method_label(req.method()).to_owned();
    let pattern = req.match_pattern();
    let response = next.call(req).await?;
    let route = response
        .request()
        .extensions()
        .get::<RouteLabel>()
        .map(|r| r.0.clone())
        .or(pattern)
        .unwrap_or_else(|| UNMATCHED.to_owned());
    HttpMetrics::get().record(
        service,
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_prometheus_text_format() {
        let registry = Registry::default();
        let jobs = registry.counter("jobs_total", "Jobs run.", &["outcome"]);
        jobs.inc(&["ok"]);
        jobs.add(&["ok"], 2.0);
        jobs.inc(&["fail\"ed"]);
        let open = registry.gauge("open_sockets", "Open sockets.", &[]);
        open.add(&[], 3.0);
        open.add(&[], -1.0);
        let latency = registry.histogram("latency_seconds", "Latency.", &["route"], &[0.1, 1.0]);
        latency.observe(&["/a"], 0.05);
        latency.observe(&["/a"], 0.5);
        latency.observe(&["/a"], 5.0);
        // The same name gives the same family.
        registry
            .counter("jobs_total", "Jobs run.", &["outcome"])
            .inc(&["ok"]);
        let text = registry.render();
        let expected = [
            "# HELP jobs_total Jobs run.",
            "# TYPE jobs_total counter",
            "jobs_total{outcome=\"fail\\\"ed\"} 1",
            "jobs_total{outcome=\"ok\"} 4",
            "# TYPE open_sockets gauge",
            "open_sockets 2",
            "# TYPE latency_seconds histogram",
            "latency_seconds_bucket{route=\"/a\",le=\"0.1\"} 1",
            "latency_seconds_bucket{route=\"/a\",le=\"1\"} 2",
            "latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3",
            "latency_seconds_sum{route=\"/a\"} 5.55",
            "latency_seconds_count{route=\"/a\"} 3",
        ];
        for line in expected {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    /// What an OTLP exporter would be handed: metric name → (kind, total of the values).
    #[derive(Clone, Default)]
    struct Pushed(Arc<Mutex<BTreeMap<String, (&'static str, f64)>>>);

    impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for Pushed {
        async fn export(
            &self,
            metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
            let mut pushed = self.0.lock().unwrap();
            for scope in metrics.scope_metrics() {
                for metric in scope.metrics() {
                    let AggregatedMetrics::F64(data) = metric.data() else {
                        continue;
                    };
                    let entry = match data {
                        MetricData::Sum(sum) => ("sum", sum.data_points().map(|p| p.value()).sum()),
                        MetricData::Gauge(g) => ("gauge", g.data_points().map(|p| p.value()).sum()),
                        MetricData::Histogram(h) => {
                            ("histogram", h.data_points().map(|p| p.count() as f64).sum())
                        }
                        _ => continue,
                    };
                    pushed.insert(metric.name().to_owned(), entry);
                }
            }
            Ok(())
        }

        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }

        fn shutdown_with_timeout(
            &self,
            _timeout: std::time::Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }

        fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
            opentelemetry_sdk::metrics::Temporality::Cumulative
        }
    }

    #[test]
    fn with_otlp_configured_every_family_is_also_pushed() {
        let pushed = Pushed::default();
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_periodic_exporter(pushed.clone())
            .build();
        export_to(opentelemetry::metrics::MeterProvider::meter(
            &provider, "test",
        ));
        let registry = Registry::default();
        let jobs = registry.counter("jobs_total", "Jobs run.", &["outcome"]);
        jobs.inc(&["ok"]);
        jobs.add(&["failed"], 2.0);
        // A count kept elsewhere: only the increase is pushed.
        jobs.set_total(&["ok"], 4.0);
        registry.gauge("open", "Open.", &[]).set(&[], 7.0);
        let latency = registry.histogram("latency_seconds", "Latency.", &[], &[0.1, 1.0]);
        latency.observe(&[], 0.05);
        latency.observe(&[], 3.0);
        provider.force_flush().unwrap();
        let pushed = pushed.0.lock().unwrap().clone();
        assert_eq!(
            pushed.get("jobs_total"),
            Some(&("sum", 6.0)),
            "{:?}",
            pushed.keys()
        );
        assert_eq!(pushed.get("open"), Some(&("gauge", 7.0)));
        assert_eq!(pushed.get("latency_seconds"), Some(&("histogram", 2.0)));
        // And /metrics shows the same.
        let text = registry.render();
        assert!(text.contains("jobs_total{outcome=\"ok\"} 4"), "{text}");
    }
}
