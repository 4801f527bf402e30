use common::config::Env;
use common::server::main_wrapper;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    main_wrapper("notify-svc", async {
        let config = notify_svc::Config::from_env(Env::from_process())?;
        notify_svc::build(config).await?.run_until_stopped().await?;
        Ok(())
    })
    .await
}
