use common::config::Env;
use common::migrate::Command;
use common::server::main_wrapper;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    main_wrapper("retrain-worker", async {
        match Command::from_process("retrain-worker")? {
            Command::Migrate => {
                common::migrate::run(
                    "retrain-worker",
                    retrain_worker::db::SCHEMA,
                    Env::from_process(),
                )
                .await?;
            }
            Command::Serve => {
                let config = retrain_worker::Config::from_env(Env::from_process())?;
                retrain_worker::build(config)
                    .await?
                    .run_until_stopped()
                    .await?;
            }
        }
        Ok(())
    })
    .await
}
