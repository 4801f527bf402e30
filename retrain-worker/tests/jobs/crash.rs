use crate::helpers::*;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed when dropped, so a failing test leaves no worker behind.
struct Process(Child);

impl Process {
    /// SIGKILL: no shutdown, no cleanup.
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The worker binary, started as its own process with the cluster's configuration.
fn spawn_worker_process(cluster: &Cluster, consumer: &str) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_retrain-worker"))
            .env_clear()
            .envs(cluster.worker_vars(consumer, &[]))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test]
async fn a_job_whose_worker_is_killed_is_finished_by_another_and_registers_one_version() {
    let cluster = Cluster::start().await;
    let mut doomed = spawn_worker_process(&cluster, "doomed");
    // This replica only answers the API until the doomed worker has the job.
    let api = cluster
        .worker("api", &[("RETRAIN_WORKER_ENABLED", "false")])
        .await;
    let posted = cluster
        .post_job(
            &api.url,
            json!({"model": "mnist-mlp", "epochs": 8, "mnist_sample": 6000}),
        )
        .await;
    let id = posted["job_id"].as_str().unwrap().to_owned();

    // Killed (SIGKILL: no shutdown, no cleanup) once it is training.
    let running = cluster
        .wait_job(&api.url, &id, Duration::from_secs(120), |j| {
            j["state"] == "running" && j["progress"]["stage"] == "training"
        })
        .await;
    assert_eq!(running["worker"], "doomed");
    doomed.kill();

    // Another worker takes the job over once it has been idle for the reclaim time, and runs it
    // again from the start.
    let rescuer = cluster.worker("rescuer", &[]).await;
    let job = cluster.wait_final(&api.url, &id).await;
    assert_ne!(job["state"], "failed", "{job}");
    assert_eq!(job["worker"], "rescuer");
    assert_eq!(job["attempts"], 2);

    // One version for the job, whatever the first attempt got to.
    let registry = cluster.registry("mnist-mlp").await;
    let for_job: Vec<_> = registry["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["source_job_id"] == id.as_str())
        .collect();
    assert_eq!(for_job.len(), 1, "{registry}");
    assert_eq!(for_job[0]["version"], job["model_version"]);
    rescuer.app.unwrap().stop().await;
    api.app.unwrap().stop().await;
}

#[tokio::test]
async fn a_worker_stopped_gracefully_hands_its_job_back() {
    let cluster = Cluster::start().await;
    let first = cluster.worker("leaving", &[]).await;
    let posted = cluster
        .post_job(
            &first.url,
            json!({"model": "mnist-mlp", "epochs": 8, "mnist_sample": 6000}),
        )
        .await;
    let id = posted["job_id"].as_str().unwrap().to_owned();
    cluster
        .wait_job(&first.url, &id, Duration::from_secs(120), |j| {
            j["progress"]["stage"] == "training"
        })
        .await;
    let second = cluster.worker("staying", &[]).await;
    first.app.unwrap().stop().await;
    let job = cluster.wait_final(&second.url, &id).await;
    assert_ne!(job["state"], "failed", "{job}");
    assert_eq!(job["worker"], "staying");
    assert_eq!(job["attempts"], 2);
    second.app.unwrap().stop().await;
}
