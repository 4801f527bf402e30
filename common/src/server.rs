//! Running an HTTP server with graceful shutdown: on SIGTERM or Ctrl-C the listener closes,
//! in-flight requests finish (bounded by the configured timeout), then the process exits.

use actix_web::dev::{Server, ServerHandle};
use std::future::Future;

/// A started server: its bound ports (useful with port 0) and the future that runs it.
pub struct RunningServer {
    /// The public port: the service's routes, `/health`, `/ready`.
    pub port: u16,
    /// The management port: `/metrics` and `/internal/…` (and `/health`, `/ready`).
    pub management_port: u16,
    pub server: Server,
}

impl RunningServer {
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until a shutdown signal, then stops gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received: draining in-flight requests");
            handle.stop(true).await;
        });
        let result = self.server.await;
        signals.abort();
        tracing::info!("server stopped");
        result
    }

    /// Runs in the background (tests): the handle stops it.
    pub fn spawn(self) -> ServerHandle {
        let handle = self.server.handle();
        tokio::spawn(self.server);
        handle
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). actix's own signal handling is turned off by the
/// services because it treats SIGINT as a forced stop.
pub async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Runs a service's `main`: logs a start-up failure as one clear line and exits non-zero.
/// A service binary's whole `main`: telemetry, then `serve` with the process's environment
/// until it stops; a failure is logged and printed, and the process exits non-zero.
pub async fn serve_main<F, Fut>(service: &'static str, serve: F) -> std::process::ExitCode
where
    F: FnOnce(crate::config::Env) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    main_wrapper(service, serve(crate::config::Env::from_process())).await
}

/// A service binary's `main`: `common::service_main!("gateway", gateway)` serves the crate's
/// `build(Config::from_env(env)?)` (as [`serve_main`]); with `, migrate` after the crate, the
/// binary also has the `migrate` command of its crate's `db::SCHEMA`
/// (`common::migrate::serve_or_migrate_main`).
#[macro_export]
macro_rules! service_main {
    ($service:literal, $krate:ident) => {
        $crate::service_main!(@main $krate, $crate::server::serve_main, $service);
    };
    ($service:literal, $krate:ident, migrate) => {
        $crate::service_main!(
            @main $krate, $crate::migrate::serve_or_migrate_main, $service, $krate::db::SCHEMA
        );
    };
    (@main $krate:ident, $run:path, $($arg:expr),+) => {
        #[actix_web::main]
        async fn main() -> std::process::ExitCode {
            $run($($arg),+, |env| async {
                let config = $krate::Config::from_env(env)?;
                Ok($krate::build(config).await?.run_until_stopped().await?)
            })
            .await
        }
    };
}

pub async fn main_wrapper<F>(service: &'static str, run: F) -> std::process::ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    crate::telemetry::init(service);
    let result = run.await;
    // Flushing blocks, and the exporter needs this runtime meanwhile: off its thread.
    let _ = tokio::task::spawn_blocking(|| {
        crate::telemetry::shutdown(std::time::Duration::from_secs(3));
    })
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(service, error = format!("{e:#}"), "failed");
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{service}: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Which of a service's two listeners a connection came in on (connection data, see
/// [`split_planes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    Public,
    Management,
}

/// Whether `path` belongs to the management plane.
pub fn is_management_path(path: &str) -> bool {
    path == "/metrics" || path == "/internal" || path.starts_with("/internal/")
}

/// The plane a request came in on; [`Plane::Public`] when the server did not say (an `App`
/// under test without listeners).
pub fn plane_of(req: &actix_web::HttpRequest) -> Plane {
    req.conn_data::<Plane>().copied().unwrap_or(Plane::Public)
}

/// Middleware every service's `App` wraps: `/metrics` and `/internal/…` answer only on the
/// management port, and the management port answers nothing else but `/health` and `/ready`;
/// anything else is the JSON 404 of a path with no route. The path is judged both as sent and as
/// the router matched it (percent-decoded), so an encoded path cannot slip through.
pub async fn split_planes<B: actix_web::body::MessageBody>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    let management = is_management_path(req.path())
        || req.match_pattern().is_some_and(|p| is_management_path(&p));
    let allowed = match plane_of(req.request()) {
        Plane::Public => !management,
        Plane::Management => management || matches!(req.path(), "/health" | "/ready"),
    };
    if allowed {
        return next
            .call(req)
            .await
            .map(actix_web::dev::ServiceResponse::map_into_left_body);
    }
    let error = crate::http::no_such_route(req.request());
    Ok(req.error_response(error).map_into_right_body())
}

/// Binds the configured addresses (port 0 picks a free port), the public one and the
/// management one, and builds the server with the settings every service shares: worker count,
/// our own signal handling, bounded drain. Each connection is marked with its [`Plane`]; the
/// service's `App` must wrap [`split_planes`].
pub fn start<F, I, S, B>(
    config: &crate::config::CommonConfig,
    factory: F,
) -> std::io::Result<RunningServer>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: actix_service::IntoServiceFactory<S, actix_http::Request>,
    S: actix_web::dev::ServiceFactory<actix_http::Request, Config = actix_web::dev::AppConfig>
        + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<actix_http::Response<B>> + 'static,
    <S::Service as actix_web::dev::Service<actix_http::Request>>::Future: 'static,
    S::Service: 'static,
    B: actix_web::body::MessageBody + 'static,
{
    let listener = std::net::TcpListener::bind(config.bind_addr)?;
    let port = listener.local_addr()?.port();
    let management = std::net::TcpListener::bind(config.management_addr).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "binding the management port {} (MANAGEMENT_BIND_ADDR): {e}",
                config.management_addr
            ),
        )
    })?;
    let management_port = management.local_addr()?.port();
    let server = actix_web::HttpServer::new(factory)
        .on_connect(move |connection, data| {
            let local = connection
                .downcast_ref::<actix_web::rt::net::TcpStream>()
                .and_then(|stream| stream.local_addr().ok());
            let plane = match local {
                Some(addr) if addr.port() == management_port => Plane::Management,
                _ => Plane::Public,
            };
            data.insert(plane);
        })
        .workers(config.workers)
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout_secs)
        .listen(listener)?
        .listen(management)?
        .run();
    tracing::info!(addr = %config.bind_addr, port, "listening");
    tracing::info!(
        addr = %config.management_addr,
        port = management_port,
        "management port (/metrics, /internal/) listening"
    );
    Ok(RunningServer {
        port,
        management_port,
        server,
    })
}
