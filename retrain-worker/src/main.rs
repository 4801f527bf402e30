use common::config::Env;
use common::server::main_wrapper;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    main_wrapper("retrain-worker", async {
        let config = retrain_worker::Config::from_env(Env::from_process())?;
        retrain_worker::build(config)
            .await?
            .run_until_stopped()
            .await?;
        Ok(())
    })
    .await
}
