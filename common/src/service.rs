//! The skeleton every service but the gateway runs on: one app factory ([`ServiceApp`]: tracing,
//! metrics, JSON extractor errors, `/health` and `/ready`, the JSON no-route answer, the split of
//! the public and management planes) and one running service ([`RunningService`]: its server,
//! its ports and its background tasks, stopped in order).
//!
//! Nothing here touches a database: a service brings its own readiness checks and tasks.

use crate::config::CommonConfig;
use crate::health::Readiness;
use crate::server::RunningServer;
use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;

type Configure = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// What a service adds to the skeleton: its name (in metrics and logs), its readiness checks,
/// its shared state and its routes.
#[derive(Clone)]
pub struct ServiceApp {
    name: &'static str,
    readiness: Readiness,
    setup: Vec<Configure>,
}

impl ServiceApp {
    /// `routes` are the service's own (public ones and `/internal/…`: the planes are split
    /// for it).
    pub fn new(
        name: &'static str,
        readiness: Readiness,
        routes: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        ServiceApp {
            name,
            readiness,
            setup: vec![Arc::new(routes)],
        }
    }

    /// Shared state the handlers extract (`web::Data<T>`); every worker gets a clone.
    pub fn data<T: Send + Sync + 'static>(mut self, data: web::Data<T>) -> Self {
        self.setup
            .push(Arc::new(move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(data.clone());
            }));
        self
    }

    /// The `App` one server worker runs.
    pub fn app(
        self,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        let mut app = App::new()
            // /metrics and /internal/ only on the management port.
            .wrap(from_fn(crate::server::split_planes))
            .wrap(from_fn(crate::telemetry::trace_http))
            .wrap(from_fn(crate::metrics::track))
            .configure(crate::metrics::service(self.name));
        for setup in &self.setup {
            app = app.configure(|cfg| setup(cfg));
        }
        app.configure(crate::http::configure_extractors)
            .configure(crate::health::configure(self.readiness))
            .default_service(web::to(crate::http::no_route))
    }

    /// Binds the configured ports and starts serving; `tasks` (already running) then belong to
    /// the service. If the ports cannot be bound, the tasks are stopped before the error returns.
    pub async fn serve(
        self,
        config: &CommonConfig,
        tasks: Vec<Box<dyn BackgroundTask>>,
    ) -> anyhow::Result<RunningService> {
        let name = self.name;
        match crate::server::start(config, move || self.clone().app()) {
            Ok(server) => Ok(RunningService::new(name, server).with_tasks(tasks)),
            Err(e) => {
                stop_tasks(tasks).await;
                Err(e.into())
            }
        }
    }
}

/// Work a service runs beside its server (an outbox relay, a job worker, an event feed).
#[async_trait]
pub trait BackgroundTask: Send + 'static {
    /// The service has begun to stop: anything that would hold the drain up stops now. Returns
    /// at once.
    fn begin_stop(&self) {}

    /// The server has drained: finish and wait for the end.
    async fn stop(self: Box<Self>);
}

/// A task a service may run or not, as configured.
#[async_trait]
impl<T: BackgroundTask> BackgroundTask for Option<T> {
    fn begin_stop(&self) {
        if let Some(task) = self {
            task.begin_stop();
        }
    }

    async fn stop(self: Box<Self>) {
        if let Some(task) = *self {
            Box::new(task).stop().await;
        }
    }
}

/// Tasks that hold nothing worth finishing: stopping aborts them.
pub struct AbortOnStop(pub Vec<JoinHandle<()>>);

#[async_trait]
impl BackgroundTask for AbortOnStop {
    async fn stop(self: Box<Self>) {
        for task in self.0 {
            task.abort();
            let _ = task.await;
        }
    }
}

async fn stop_tasks(tasks: Vec<Box<dyn BackgroundTask>>) {
    for task in &tasks {
        task.begin_stop();
    }
    for task in tasks {
        task.stop().await;
    }
}

/// A service serving on its ports, with the background tasks it owns.
pub struct RunningService {
    pub name: &'static str,
    /// The public port: the service's routes, `/health`, `/ready`.
    pub port: u16,
    /// The management port: `/metrics` and `/internal/…` (and `/health`, `/ready`).
    pub management_port: u16,
    handle: ServerHandle,
    server: JoinHandle<std::io::Result<()>>,
    tasks: Vec<Box<dyn BackgroundTask>>,
    stopping: AtomicBool,
}

impl RunningService {
    /// Starts serving a bound server (a service without the [`ServiceApp`] skeleton: the gateway).
    pub fn new(name: &'static str, server: RunningServer) -> Self {
        RunningService {
            name,
            port: server.port,
            management_port: server.management_port,
            handle: server.server.handle(),
            server: tokio::spawn(server.server),
            tasks: Vec::new(),
            stopping: AtomicBool::new(false),
        }
    }

    /// Tasks stopped with the service, after its server.
    pub fn with_tasks(mut self, tasks: Vec<Box<dyn BackgroundTask>>) -> Self {
        self.tasks.extend(tasks);
        self
    }

    /// Stops accepting connections and starts draining the requests in flight; the tasks are
    /// told first. Returns at once; [`RunningService::stop`] waits for the end.
    pub fn begin_stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for task in &self.tasks {
            task.begin_stop();
        }
        // The command is sent now; the returned future only waits for its completion.
        drop(self.handle.stop(true));
    }

    /// Stops gracefully: the server drains (bounded by `SHUTDOWN_TIMEOUT_SECS`), then the tasks
    /// finish.
    pub async fn stop(self) {
        let name = self.name;
        if let Err(e) = self.finish().await {
            tracing::error!(service = name, error = %e, "server failed");
        }
    }

    /// Serves until SIGTERM or Ctrl-C (or until the server fails), then stops gracefully.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        tokio::select! {
            () = crate::server::wait_for_signal() => {
                tracing::info!("shutdown signal received: draining in-flight requests");
            }
            ended = &mut self.server => {
                self.begin_stop();
                for task in std::mem::take(&mut self.tasks) {
                    task.stop().await;
                }
                return joined(ended);
            }
        }
        self.finish().await
    }

    async fn finish(mut self) -> std::io::Result<()> {
        self.begin_stop();
        let result = joined((&mut self.server).await);
        tracing::info!(service = self.name, "server stopped");
        for task in std::mem::take(&mut self.tasks) {
            task.stop().await;
        }
        result
    }
}

fn joined(outcome: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    outcome.map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test;

    struct Greeting(&'static str);

    async fn hello(greeting: web::Data<Greeting>) -> &'static str {
        greeting.0
    }

    fn skeleton() -> ServiceApp {
        let routes = |cfg: &mut web::ServiceConfig| {
            cfg.route("/hello", web::get().to(hello));
        };
        ServiceApp::new("skeleton-test", Readiness::new(), routes)
            .data(web::Data::new(Greeting("hi")))
    }

    #[actix_web::test]
    async fn the_app_serves_the_routes_health_and_json_errors() {
        let app = test::init_service(skeleton().app()).await;
        let get = |uri: &str| test::TestRequest::get().uri(uri).to_request();
        let resp = test::call_service(&app, get("/hello")).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(test::read_body(resp).await, "hi");
        let resp = test::call_service(&app, get("/health")).await;
        assert_eq!(resp.status().as_u16(), 200);
        let resp = test::call_service(&app, get("/ready")).await;
        assert_eq!(resp.status().as_u16(), 200);
        let resp = test::call_service(&app, get("/nowhere")).await;
        assert_eq!(resp.status().as_u16(), 404);
        let body: crate::error::ErrorBody = test::read_body_json(resp).await;
        assert_eq!(body.error, "not_found");
        // Without a management listener, a request is on the public plane: no /metrics.
        let resp = test::call_service(&app, get("/metrics")).await;
        assert_eq!(resp.status().as_u16(), 404);
    }

    struct Recorder {
        log: Arc<std::sync::Mutex<Vec<&'static str>>>,
    }

    #[async_trait]
    impl BackgroundTask for Recorder {
        fn begin_stop(&self) {
            self.log.lock().unwrap().push("begin_stop");
        }
        async fn stop(self: Box<Self>) {
            self.log.lock().unwrap().push("stop");
        }
    }

    fn local() -> CommonConfig {
        CommonConfig {
            mode: crate::config::Mode::Development,
            bind_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            management_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            shutdown_timeout_secs: 5,
            workers: 1,
        }
    }

    #[actix_web::test]
    async fn a_service_serves_both_planes_then_stops_its_tasks_after_the_server() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = Recorder { log: log.clone() };
        let service = skeleton()
            .serve(&local(), vec![Box::new(task)])
            .await
            .expect("binds");
        // No idle connection kept: the server's drain would wait for it.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let get =
            |port: u16, path: &str| client.get(format!("http://127.0.0.1:{port}{path}")).send();
        let hello = get(service.port, "/hello").await.unwrap();
        assert_eq!(hello.text().await.unwrap(), "hi");
        let metrics = get(service.management_port, "/metrics").await.unwrap();
        assert_eq!(metrics.status().as_u16(), 200);
        let hidden = get(service.management_port, "/hello").await.unwrap();
        assert_eq!(hidden.status().as_u16(), 404);

        service.begin_stop();
        service.begin_stop();
        let port = service.port;
        service.stop().await;
        let log = log.lock().unwrap().clone();
        assert_eq!(log, ["begin_stop", "stop"]);
        assert!(get(port, "/hello").await.is_err());
    }
}
