//! Metrics on each service's `GET /metrics`, in the Prometheus text format (version 0.0.4):
//! counters, gauges and histograms with labels, registered once per process.
//!
//! The series, their values and the text exposition are the `prometheus-client` crate's (the
//! Prometheus project's own Rust client: its `Family`, `Counter`, `Gauge`, `Histogram` and
//! `encoding::prometheus_text`). What this module keeps around it, and why no crate does it:
//!
//! - **Families made on first use, by name, from anywhere.** The crate's `Registry` takes
//!   `&mut self` to register and would list a name twice if two parts of a process (or two
//!   instances of a service in one test process) registered it: here a name gives the same
//!   family every time, behind one lock taken only when a family is made or rendered.
//! - **Label names known at run time** (`&["service", "route", …]`), not a derived struct per
//!   family: a `LabelSet` writes the family's names beside each series' values.
//! - **The OpenTelemetry mirror.** With OTLP configured ([`export_to`]), every recording also
//!   goes to an OpenTelemetry instrument of the same name, help and labels. prometheus-client has
//!   no OpenTelemetry bridge, and OpenTelemetry's Prometheus exporter (`opentelemetry-prometheus`)
//!   is discontinued, so one handle records to both.
//! - **Values kept elsewhere** ([`Registry::on_render`]): read into gauges and counters at each
//!   scrape through the same handles, so they reach the mirror too (a crate `Collector` would
//!   only write the text).
//! - **The HTTP middleware** ([`track`]): the route pattern, never the raw path, as a label.
//!
//! Handles are cheap to clone and safe to use from any thread. Label values come from a fixed set
//! (routes of the table, statuses, model names), never from raw client input, so the number of
//! series stays bounded. Counters count whole events (`u64`); gauges and observations are `f64`.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::{Family as PromFamily, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::metrics::histogram::Histogram as PromHistogram;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

/// Latency buckets in seconds, from 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Durations of long jobs in seconds, from 1 s to 2 h.
pub const JOB_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];

/// One series' label values, written beside its family's label names. Two sets are the same
/// series when their values are (the names are the family's).
#[derive(Clone, Debug)]
struct LabelSet {
    names: Arc<[String]>,
    values: Vec<String>,
}

impl PartialEq for LabelSet {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Eq for LabelSet {}

impl std::hash::Hash for LabelSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.values.hash(state);
    }
}

impl EncodeLabelSet for LabelSet {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for (name, value) in self.names.iter().zip(&self.values) {
            (name.as_str(), value.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// The buckets a histogram family gives each new series (also its OpenTelemetry boundaries).
#[derive(Clone, Debug)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<PromHistogram> for Buckets {
    fn new_metric(&self) -> PromHistogram {
        PromHistogram::new(self.0.iter().copied())
    }
}

type CounterFamily = PromFamily<LabelSet, PromCounter>;
type GaugeFamily = PromFamily<LabelSet, PromGauge<f64, AtomicU64>>;
type HistogramFamily = PromFamily<LabelSet, PromHistogram, Buckets>;

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

enum Kind {
    Counter,
    Gauge,
    Histogram(Buckets),
}

/// A family: its description, its series, and the instrument it mirrors to.
struct Family<S> {
    name: String,
    help: String,
    label_names: Arc<[String]>,
    kind: Kind,
    series: S,
    otel: OnceLock<Option<Instrument>>,
}

impl<S> Family<S> {
    fn new(name: &str, help: &str, label_names: &[&str], kind: Kind, series: S) -> Arc<Self> {
        Arc::new(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            label_names: label_names.iter().map(|l| (*l).to_owned()).collect(),
            kind,
            series,
            otel: OnceLock::new(),
        })
    }

    fn labels(&self, values: &[&str]) -> LabelSet {
        LabelSet {
            names: self.label_names.clone(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn instrument(&self) -> Option<&Instrument> {
        self.otel
            .get_or_init(|| {
                let meter = OTEL_METER.get()?;
                let (name, help) = (self.name.clone(), self.help.clone());
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
                            .with_boundaries(bounds.0.to_vec())
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
}

impl<M, C: MetricConstructor<M>> Family<PromFamily<LabelSet, M, C>> {
    /// Runs `f` on the series of these label values, made on first use.
    fn with<R>(&self, labels: &[&str], f: impl FnOnce(&M) -> R) -> R {
        f(&self.series.get_or_create(&self.labels(labels)))
    }
}

/// A count that only goes up.
#[derive(Clone)]
pub struct Counter(Arc<Family<CounterFamily>>);

impl Counter {
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    pub fn add(&self, labels: &[&str], by: u64) {
        self.0.with(labels, |c| c.inc_by(by));
        self.0.mirror(labels, by as f64);
    }

    /// Sets the total of a count kept elsewhere (it never goes down there either).
    pub fn set_total(&self, labels: &[&str], total: u64) {
        let increase = self.0.with(labels, |c| {
            let increase = total.saturating_sub(c.get());
            c.inc_by(increase);
            increase
        });
        self.0.mirror(labels, increase as f64);
    }
}

/// A value that goes up and down.
#[derive(Clone)]
pub struct Gauge(Arc<Family<GaugeFamily>>);

impl Gauge {
    pub fn set(&self, labels: &[&str], value: f64) {
        self.0.with(labels, |g| g.set(value));
        self.0.mirror(labels, value);
    }

    pub fn add(&self, labels: &[&str], by: f64) {
        let before = self.0.with(labels, |g| g.inc_by(by));
        self.0.mirror(labels, before + by);
    }
}

/// Observations counted into buckets, with their sum.
#[derive(Clone)]
pub struct Histogram(Arc<Family<HistogramFamily>>);

impl Histogram {
    pub fn observe(&self, labels: &[&str], value: f64) {
        self.0.with(labels, |h| h.observe(value));
        self.0.mirror(labels, value);
    }
}

impl<S: prometheus_client::registry::Metric + Clone> Family<S> {
    /// Hands the series to the crate's registry, which renders them under `exposed`.
    fn register_as(&self, exposed: &str, exposition: &mut prometheus_client::registry::Registry) {
        // The crate ends every help text with a full stop, and ours have theirs already.
        let help = self.help.strip_suffix('.').unwrap_or(&self.help);
        exposition.register(exposed, help, self.series.clone());
    }
}

/// What a registry holds of a family: the handle every later request for its name gets.
trait Handle: Clone + Send + Sync + 'static {
    fn register(&self, exposition: &mut prometheus_client::registry::Registry);
}

impl Handle for Counter {
    fn register(&self, exposition: &mut prometheus_client::registry::Registry) {
        // The crate adds `_total` to a counter's name.
        let name = &self.0.name;
        self.0
            .register_as(name.strip_suffix("_total").unwrap_or(name), exposition);
    }
}

impl Handle for Gauge {
    fn register(&self, exposition: &mut prometheus_client::registry::Registry) {
        self.0.register_as(&self.0.name, exposition);
    }
}

impl Handle for Histogram {
    fn register(&self, exposition: &mut prometheus_client::registry::Registry) {
        self.0.register_as(&self.0.name, exposition);
    }
}

type Hook = Box<dyn Fn() + Send + Sync>;

/// The metric families of a process (tests make their own).
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    /// Run before each rendering: they copy values kept elsewhere into gauges and counters.
    hooks: Mutex<Vec<Hook>>,
}

#[derive(Default)]
struct Inner {
    exposition: prometheus_client::registry::Registry,
    /// Each family's handle by name (a `Counter`, `Gauge` or `Histogram`).
    by_name: HashMap<String, Box<dyn Any + Send + Sync>>,
}

static GLOBAL: OnceLock<Registry> = OnceLock::new();

/// The process's registry, which `GET /metrics` renders.
pub fn global() -> &'static Registry {
    GLOBAL.get_or_init(Registry::default)
}

impl Registry {
    /// The family called `name`, made by `make` and registered on first use (so two parts of a
    /// process, or two instances of a service in one test process, share it). Asked again
    /// for another kind, it answers a family of that kind that `/metrics` does not show.
    fn family<H: Handle>(&self, name: &str, make: impl FnOnce() -> H) -> H {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = inner.by_name.get(name) {
            if let Some(handle) = (**found).downcast_ref::<H>() {
                return handle.clone();
            }
            tracing::warn!(
                metric = name,
                "metric registered again as another type: not shown"
            );
            return make();
        }
        let handle = make();
        handle.register(&mut inner.exposition);
        inner
            .by_name
            .insert(name.to_owned(), Box::new(handle.clone()));
        handle
    }

    /// A counter; its name ends in `_total`, as Prometheus' counters do.
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Counter {
        self.family(name, || {
            Counter(Family::new(
                name,
                help,
                labels,
                Kind::Counter,
                PromFamily::default(),
            ))
        })
    }

    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Gauge {
        self.family(name, || {
            Gauge(Family::new(
                name,
                help,
                labels,
                Kind::Gauge,
                PromFamily::default(),
            ))
        })
    }

    pub fn histogram(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Histogram {
        let buckets = Buckets(buckets.into());
        self.family(name, || {
            let series = PromFamily::new_with_constructor(buckets.clone());
            Histogram(Family::new(
                name,
                help,
                labels,
                Kind::Histogram(buckets),
                series,
            ))
        })
    }

    /// Runs `hook` before each rendering, to read values kept elsewhere (a hub's socket count).
    pub fn on_render(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(hook));
    }

    /// Every family with at least one series, in the Prometheus text format.
    pub fn render(&self) -> String {
        for hook in self
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            hook();
        }
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        // Writing to a String cannot fail; a metric's own encoding could, and is logged.
        if let Err(e) = prometheus_text::encode(&mut out, &inner.exposition) {
            tracing::warn!(error = %e, "metrics not fully rendered");
        }
        out
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
                .content_type(prometheus_text::CONTENT_TYPE)
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
    use std::collections::BTreeMap;

    #[test]
    fn families_render_in_the_prometheus_text_format() {
        let registry = Registry::default();
        let jobs = registry.counter("jobs_total", "Jobs run.", &["outcome"]);
        jobs.inc(&["ok"]);
        jobs.add(&["ok"], 2);
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
        // A family without series yet is not listed.
        registry.gauge("idle", "Nothing yet.", &["kind"]);
        let text = registry.render();
        let expected = [
            "# HELP jobs_total Jobs run.",
            "# TYPE jobs_total counter",
            "jobs_total{outcome=\"fail\\\"ed\"} 1",
            "jobs_total{outcome=\"ok\"} 4",
            "# HELP open_sockets Open sockets.",
            "# TYPE open_sockets gauge",
            "open_sockets 2.0",
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
        assert_eq!(text.matches("# TYPE jobs_total").count(), 1, "{text}");
        assert!(!text.contains("idle"), "{text}");
    }

    #[test]
    fn a_name_taken_by_another_type_is_not_listed_twice() {
        let registry = Registry::default();
        registry.counter("things_total", "Things.", &[]).inc(&[]);
        registry.gauge("things_total", "Things.", &[]).set(&[], 5.0);
        let text = registry.render();
        assert_eq!(text.matches("# TYPE things_total").count(), 1, "{text}");
        assert!(text.contains("things_total 1\n"), "{text}");
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
        jobs.add(&["failed"], 2);
        // A count kept elsewhere: only the increase is pushed.
        jobs.set_total(&["ok"], 4);
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
