use common::config::Env;
use common::server::main_wrapper;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    main_wrapper("predict-svc", async {
        let config = predict_svc::Config::from_env(Env::from_process())?;
        predict_svc::build(config)
            .await?
            .run_until_stopped()
            .await?;
        Ok(())
    })
    .await
}
