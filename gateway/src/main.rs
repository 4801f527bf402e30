use common::config::Env;
use common::server::main_wrapper;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    main_wrapper("gateway", async {
        let config = gateway::Config::from_env(Env::from_process())?;
        gateway::build(config).await?.run_until_stopped().await?;
        Ok(())
    })
    .await
}
