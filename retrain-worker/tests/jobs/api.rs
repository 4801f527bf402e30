use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn the_job_api_queues_lists_and_refuses_bad_requests() {
    let cluster = Cluster::start().await;
    // An API-only replica: jobs stay queued, so what the API shows is what it stored.
    let worker = cluster
        .worker("api-only", &[("RETRAIN_WORKER_ENABLED", "false")])
        .await;
    let url = format!("{}/admin/retrain", worker.url);
    let post = |token: Option<&str>, body: &str| {
        let mut request = cluster
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let admin = Some(cluster.admin.as_str());

    assert_error(post(None, "{}").await.unwrap(), 401, "missing_token").await;
    assert_error(
        post(Some(&cluster.user), "{}").await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    let cases = [
        (r#"{"model": "mnist-gpt"}"#, 400, "unknown_model"),
        (r#"{"epochs": 0}"#, 422, "invalid_field"),
        (r#"{"epochs": 10000}"#, 422, "invalid_field"),
        (r#"{"epochs": "three"}"#, 400, "invalid_body"),
        (r#"{"from_scratch": "yes"}"#, 400, "invalid_body"),
        (r#"{"mnist_sample": -1}"#, 422, "invalid_field"),
        (r#"{"learning_rate": 1}"#, 400, "invalid_body"),
        (r#"{"model": "#, 400, "invalid_body"),
        (r#"[1, 2]"#, 400, "invalid_body"),
        (r#"{"model": "mnist-\u0000"}"#, 400, "unknown_model"),
    ];
    for (body, status, code) in cases {
        let r = post(admin, body).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["error"], code, "{body}: {answer}");
    }
    let text = cluster
        .client
        .post(&url)
        .bearer_auth(&cluster.admin)
        .header("content-type", "text/plain")
        .body(r#"{"model": "mnist-mlp"}"#)
        .send()
        .await
        .unwrap();
    assert_error(text, 415, "unsupported_media_type").await;
    let huge = format!(r#"{{"model": "{}"}}"#, "x".repeat(10_000));
    assert_error(post(admin, &huge).await.unwrap(), 413, "payload_too_large").await;

    // No body at all: the defaults (v2's model, fine-tuning).
    let r = cluster
        .client
        .post(&url)
        .bearer_auth(&cluster.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["msg"], "Proceso de retraining iniciado");
    let first_id = first["job_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/admin/retrain/{first_id}"));
    assert_eq!(first["job"]["model"], "mnist-cnn");
    assert_eq!(first["job"]["from_scratch"], false);
    assert_eq!(first["job"]["state"], "queued");

    let second = cluster
        .post_job(
            &worker.url,
            json!({"model": "mnist-mlp", "epochs": 4, "from_scratch": true, "mnist_sample": 500}),
        )
        .await;
    let second_id = second["job_id"].as_str().unwrap();
    let job = cluster.job(&worker.url, second_id).await;
    assert_eq!(job["model"], "mnist-mlp");
    assert_eq!(job["epochs"], 4);
    assert_eq!(job["from_scratch"], true);
    assert_eq!(job["mnist_sample"], 500);
    assert_eq!(job["state"], "queued");
    assert_eq!(job["requested_by"], "boss");
    assert_eq!(job["attempts"], 0);
    assert!(job["metrics"].is_null() && job["reason"].is_null());

    // Newest first; filters and paging.
    let list = |query: &str| {
        cluster
            .client
            .get(format!("{url}{query}"))
            .bearer_auth(&cluster.admin)
            .send()
    };
    let all: Value = list("").await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second_id, first_id.as_str()]);
    let page: Value = list("?limit=1").await.unwrap().json().await.unwrap();
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_before"], second_id);
    let rest: Value = list(&format!("?before={second_id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["jobs"][0]["job_id"], first_id.as_str());
    let none: Value = list("?state=succeeded")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["jobs"], json!([]));
    assert_error(list("?state=sleeping").await.unwrap(), 400, "invalid_query").await;
    assert_error(list("?limit=0").await.unwrap(), 400, "invalid_query").await;
    let r = cluster
        .client
        .get(format!("{url}/0190-nope"))
        .bearer_auth(&cluster.admin)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    let r = cluster
        .client
        .get(&url)
        .bearer_auth(&cluster.user)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;
    worker.app.unwrap().stop().await;
}
