use common::config::Env;
use common::migrate::Command;
use common::server::main_wrapper;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    main_wrapper("feedback-svc", async {
        match Command::from_process("feedback-svc")? {
            Command::Migrate => {
                common::migrate::run(
                    "feedback-svc",
                    feedback_svc::db::SCHEMA,
                    Env::from_process(),
                )
                .await?;
            }
            Command::Serve => {
                let config = feedback_svc::Config::from_env(Env::from_process())?;
                feedback_svc::build(config)
                    .await?
                    .run_until_stopped()
                    .await?;
            }
        }
        Ok(())
    })
    .await
}
