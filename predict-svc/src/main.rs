use common::config::Env;
use common::migrate::Command;
use common::server::main_wrapper;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    main_wrapper("predict-svc", async {
        match Command::from_process("predict-svc")? {
            Command::Migrate => {
                common::migrate::run("predict-svc", predict_svc::db::SCHEMA, Env::from_process())
                    .await?;
            }
            Command::Serve => {
                let config = predict_svc::Config::from_env(Env::from_process())?;
                predict_svc::build(config)
                    .await?
                    .run_until_stopped()
                    .await?;
            }
        }
        Ok(())
    })
    .await
}
