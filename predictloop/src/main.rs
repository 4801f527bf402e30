//! `predictloop`: the whole system in one process (the all-in-one mode). Configured like the
//! services, from the environment; see docs/configuration.md and docs/running.md.

use common::server::main_wrapper;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    main_wrapper("predictloop", async {
        let system = predictloop::System::start(predictloop::Settings::from_process()).await?;
        system.run_until_stopped().await;
        Ok(())
    })
    .await
}
