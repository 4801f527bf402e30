//! The all-in-one mode (SQLite, the in-process queue): a restart loses the queue, not the jobs.

use common::config::{Env, Mode};
use common::db::Db;
use common::infra::MemoryInfra;
use retrain_worker::db::jobs::{self, Job};
use std::collections::HashMap;
use std::time::Duration;

fn job(id: &str, state: &str) -> Job {
    Job {
        id: id.to_owned(),
        model: "mnist-mlp".into(),
        epochs: 1,
        from_scratch: false,
        mnist_sample: Some(100),
        state: state.into(),
        progress: "{}".into(),
        metrics: None,
        reason: None,
        model_version: None,
        requested_by: "boss".into(),
        attempts: u8::from(state != jobs::QUEUED).into(),
        worker: None,
        created_at: retrain_worker::db::now(),
        started_at: None,
        finished_at: None,
    }
}

#[tokio::test]
async fn jobs_a_previous_run_left_unfinished_are_queued_again_at_start() {
    let dir = common::testing::TempDir::new();
    let database_url = format!("sqlite://{}/main.db", dir.0.display());
    // What the previous run left: a job queued, one interrupted while training, one finished.
    let db = Db::open_service(
        &database_url,
        "retrain",
        Mode::Development,
        true,
        retrain_worker::db::SCHEMA.postgres,
        retrain_worker::db::SCHEMA.sqlite,
    )
    .await
    .unwrap();
    db.run(|c| {
        jobs::insert(c, &job("01-queued", jobs::QUEUED))?;
        jobs::insert(c, &job("02-running", jobs::RUNNING))?;
        jobs::insert(c, &job("03-done", jobs::SUCCEEDED))
    })
    .await
    .unwrap();

    // The new process's queue starts empty; the service fills it as it starts.
    let name = format!("restart-{}", uuid::Uuid::new_v4());
    let (infra, redis_url) = MemoryInfra::register(&name);
    let vars: HashMap<String, String> = [
        ("BIND_ADDR", "127.0.0.1:0"),
        ("APP_ENV", "development"),
        ("DATABASE_URL", database_url.as_str()),
        ("REDIS_URL", redis_url.as_str()),
        ("AUTH_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json"),
        ("PREDICT_INTERNAL_URL", "http://127.0.0.1:9"),
        ("FEEDBACK_INTERNAL_URL", "http://127.0.0.1:9"),
        // No worker: the queue is read below instead.
        ("RETRAIN_WORKER_ENABLED", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = retrain_worker::Config::from_env(Env::from_map(vars)).unwrap();
    let app = retrain_worker::build(config).await.unwrap();

    let queue = infra.queue(retrain_worker::JOB_STREAM);
    let mut queued = Vec::new();
    while let Some(delivery) =
        common::queue::JobQueue::next(&queue, "test", Duration::from_millis(50))
            .await
            .unwrap()
    {
        queued.push(delivery.payload["job_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        queued,
        ["01-queued", "02-running"],
        "oldest first, not the finished one"
    );
    let interrupted = db
        .run(|c| jobs::find(c, "02-running"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(interrupted.state, jobs::QUEUED);
    assert!(
        interrupted.progress.contains("the process restarted"),
        "{}",
        interrupted.progress
    );

    app.stop().await;
    MemoryInfra::unregister(&name);
}
