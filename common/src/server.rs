//! Running an HTTP server with graceful shutdown: on SIGTERM or Ctrl-C the listener closes,
//! in-flight requests finish (bounded by the configured timeout), then the process exits.

use actix_web::dev::{Server, ServerHandle};
use std::future::Future;

/// A started server: its bound port (useful with port 0) and the future that runs it.
pub struct RunningServer {
    pub port: u16,
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

/// Binds the configured address (port 0 picks a free port) and builds the server with the
/// settings every service shares: worker count, our own signal handling, bounded drain.
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
    let server = actix_web::HttpServer::new(factory)
        .workers(config.workers)
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout_secs)
        .listen(listener)?
        .run();
    tracing::info!(addr = %config.bind_addr, port, "listening");
    Ok(RunningServer { port, server })
}
