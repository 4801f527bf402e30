use common::config::Env;
use common::migrate::Command;
use common::server::main_wrapper;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    main_wrapper("auth-svc", async {
        match Command::from_process("auth-svc")? {
            Command::Migrate => {
                common::migrate::run("auth-svc", auth_svc::db::SCHEMA, Env::from_process()).await?;
            }
            Command::Serve => {
                let config = auth_svc::Config::from_env(Env::from_process())?;
                auth_svc::build(config).await?.run_until_stopped().await?;
            }
        }
        Ok(())
    })
    .await
}
