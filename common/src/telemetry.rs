//! Logs and traces, set up once per process, the same way in every service.
//!
//! - Logs: JSON lines by default (one event a line), human-readable when `LOG_FORMAT=pretty`;
//!   the level filter comes from `RUST_LOG` (default `info`). Inside a request, every line
//!   carries the request's `trace_id` and `span_id` (fields of the request span, which the JSON
//!   lines list under `spans`).
//! - Traces: `tracing` spans become OpenTelemetry spans (tracing-opentelemetry). They are
//!   exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard `OTEL_*`
//!   variables apply; the service name is `OTEL_SERVICE_NAME`, else the service's own). Without
//!   an endpoint, spans still get ids, so logs and propagation work, but nothing is exported.
//! - Propagation: the W3C `traceparent`, from the client or started at the gateway, is taken
//!   from every request ([`trace_http`]), passed on every call to another service ([`inject`]),
//!   and carried in bus events, outbox rows and queued jobs ([`traceparent`], [`set_parent`]).

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// The header, and the field of events and jobs, that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The tracer provider of this process, flushed when the service stops.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The meter provider exporting metrics over OTLP, when configured.
static METER_PROVIDER: OnceLock<opentelemetry_sdk::metrics::SdkMeterProvider> = OnceLock::new();

/// Installs the global subscriber (logs and traces). Safe to call more than once (later calls
/// do nothing), which matters for tests that start several services in one process.
pub fn init(service: &'static str) {
    let provider = match build_provider(service) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{service}: OpenTelemetry exporter not started: {e}");
            SdkTracerProvider::builder()
                .with_resource(resource(service))
                .build()
        }
    };
    if otlp_configured() {
        match build_meter_provider(service) {
            Ok(meters) => {
                crate::metrics::export_to(opentelemetry::metrics::MeterProvider::meter(
                    &meters,
                    "predictloop",
                ));
                let _ = METER_PROVIDER.set(meters);
            }
            Err(e) => eprintln!("{service}: OpenTelemetry metrics exporter not started: {e}"),
        }
    }
    if install(provider, service) {
        tracing::info!(
            service,
            otlp = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok(),
            "logging and tracing initialised"
        );
    }
}

fn resource(service: &'static str) -> opentelemetry_sdk::Resource {
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .build()
}

fn otlp_configured() -> bool {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.is_empty())
}

/// Metrics over OTLP: the same families `/metrics` shows, pushed periodically
/// (`OTEL_METRIC_EXPORT_INTERVAL`, 60 s by default).
fn build_meter_provider(
    service: &'static str,
) -> Result<opentelemetry_sdk::metrics::SdkMeterProvider, String> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_resource(resource(service))
        .with_periodic_exporter(exporter)
        .build())
}

fn build_provider(service: &'static str) -> Result<SdkTracerProvider, String> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service));
    if otlp_configured() {
        // The tonic client needs the Tokio runtime the service runs on: init is called there.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| e.to_string())?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Installs `provider` behind the global subscriber; false if one was installed already.
pub fn install(provider: SdkTracerProvider, service: &'static str) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("pretty"));
    let tracer = provider.tracer(service);
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = if pretty {
        registry.with(fmt::layer().with_target(false)).try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true),
            )
            .try_init()
    };
    if result.is_ok() {
        let _ = PROVIDER.set(provider);
        true
    } else {
        false
    }
}

/// Sends the spans still buffered, waiting at most `timeout` (a collector that is down must not
/// hold up a stopping service).
pub fn shutdown(timeout: Duration) {
    if let Some(provider) = PROVIDER.get()
        && let Err(e) = provider.shutdown_with_timeout(timeout)
    {
        eprintln!("traces not flushed: {e}");
    }
    if let Some(meters) = METER_PROVIDER.get()
        && let Err(e) = meters.shutdown_with_timeout(timeout)
    {
        eprintln!("metrics not flushed: {e}");
    }
}

fn propagator() -> &'static TraceContextPropagator {
    static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();
    PROPAGATOR.get_or_init(TraceContextPropagator::new)
}

/// The W3C `traceparent` of the current span, to carry in an event, a job or a request.
pub fn traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    propagator().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the trace in `traceparent` (when there is a valid one).
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), value.to_owned())]);
    let context = propagator().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// Records the span's own trace and span ids as its fields, so log lines inside it carry them.
pub fn record_span_ids(span: &tracing::Span) {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
        span.record("span_id", span_context.span_id().to_string());
    }
}

/// The request headers of a call to another service, with the current trace context.
pub fn inject(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match traceparent() {
        Some(value) => request.header(TRACEPARENT, value),
        None => request,
    }
}

/// A span for work that continues a trace carried in an event or a job.
#[macro_export]
macro_rules! continued_span {
    ($name:expr, $traceparent:expr) => {{
        let span = tracing::info_span!(
            $name,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty
        );
        $crate::telemetry::set_parent(&span, $traceparent);
        $crate::telemetry::record_span_ids(&span);
        span
    }};
}

/// Middleware: one span per request, child of the client's `traceparent` when it sends one,
/// named after the route pattern. `App::wrap(from_fn(common::telemetry::trace_http))`.
pub async fn trace_http(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    use tracing::Instrument;
    let method = crate::metrics::method_label(req.method());
    // Never the raw path: it would make one span name per URL (ids, junk).
    let route = req
        .match_pattern()
        .unwrap_or_else(|| crate::metrics::UNMATCHED.to_owned());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // Which service answers: its own `service.name` when it runs alone, an attribute that
    // tells them apart in the all-in-one process (one `service.name` for all).
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{method} {route}").as_str(),
        otel.kind = "server",
        predictloop.service = tracing::field::Empty,
        http.request.method = method,
        http.route = route.as_str(),
        http.response.status_code = tracing::field::Empty,
        request_id = request_id.as_str(),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let parent = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(service) = crate::metrics::ServiceName::of(&req) {
        span.record("predictloop.service", service);
    }
    set_parent(&span, parent.as_deref());
    record_span_ids(&span);
    let response = next.call(req).instrument(span.clone()).await?;
    // The gateway names its routes after their route-table entry once it has matched one.
    if let Some(label) = response
        .request()
        .extensions()
        .get::<crate::metrics::RouteLabel>()
    {
        // The OpenTelemetry span has started (its ids are logged), so rename it there.
        span.context()
            .span()
            .update_name(format!("{method} {}", label.0));
        span.record("http.route", label.0.as_str());
    }
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    Ok(response)
}

/// Test support: an exporter that keeps every finished span in memory.
#[cfg(feature = "testing")]
pub mod testing {
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Clone, Default)]
    pub struct Collected(Arc<Mutex<Vec<SpanData>>>);

    impl Collected {
        pub fn spans(&self) -> Vec<SpanData> {
            self.0.lock().map(|s| s.clone()).unwrap_or_default()
        }
    }

    impl SpanExporter for Collected {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if let Ok(mut spans) = self.0.lock() {
                spans.extend(batch);
            }
            Ok(())
        }
    }

    /// Installs the global subscriber with spans exported, as they end, to the returned store.
    pub fn collect_spans() -> Collected {
        let collected = Collected::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(collected.clone())
            .build();
        super::install(provider, "tests");
        collected
    }
}
