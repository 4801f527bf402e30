use crate::helpers::*;
use contracts::models::{ArtifactInfo, Registration};
use serde_json::{Value, json};

/// `POST /internal/models/{model}/versions` with `bytes` as the body and `content_type`.
async fn post_artifact(
    app: &TestApp,
    model: &str,
    query: &Registration,
    content_type: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(app.internal(&format!("/internal/models/{model}/versions")))
        .bearer_auth(&app.service)
        .query(query)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

pub async fn register(app: &TestApp, model: &str, job: &str) -> reqwest::Response {
    let bytes = std::fs::read(model_dir().join(format!("{model}.onnx"))).unwrap();
    let query = Registration::of_job(job, &json!({"accuracy": 0.99})).unwrap();
    post_artifact(app, model, &query, "application/octet-stream", bytes).await
}

pub async fn models(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.at("/admin/models"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn model<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap()
}

#[tokio::test]
async fn the_registry_imports_registers_promotes_and_rolls_back() {
    let (app, backing) = spawn_app().await;
    let list = models(&app).await;
    for name in ["mnist-mlp", "mnist-cnn"] {
        let m = model(&list, name);
        assert_eq!(m["active_version"], 1, "{m}");
        let v1 = &m["versions"][0];
        assert_eq!(v1["status"], "active");
        assert_eq!(v1["source"], "initial");
        assert_eq!(v1["sha256"].as_str().unwrap().len(), 64);
    }
    let r = app
        .client
        .get(app.at("/admin/models"))
        .bearer_auth(&app.user)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;

    // A retrain job registers a candidate; the same job again gets the same version.
    let r = register(&app, "mnist-cnn", "job-1").await;
    assert_eq!(r.status(), 201);
    let v2: Value = r.json().await.unwrap();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["status"], "candidate");
    assert_eq!(v2["metrics"]["accuracy"], 0.99);
    let again: Value = register(&app, "mnist-cnn", "job-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["version"], 2);
    let none = Registration::default();
    let octets = "application/octet-stream";
    let junk = post_artifact(
        &app,
        "mnist-cnn",
        &none,
        octets,
        b"not an onnx file".to_vec(),
    );
    assert_error(junk.await, 422, "invalid_artifact").await;
    // The file comes as raw bytes, not base64 in JSON; metrics are a JSON object.
    let bytes = std::fs::read(model_dir().join("mnist-cnn.onnx")).unwrap();
    let json_body = post_artifact(&app, "mnist-cnn", &none, "application/json", bytes.clone());
    assert_error(json_body.await, 415, "unsupported_media_type").await;
    let bad_metrics = Registration {
        metrics: Some("[1, 2]".into()),
        ..Registration::default()
    };
    let r = post_artifact(&app, "mnist-cnn", &bad_metrics, octets, bytes).await;
    assert_error(r, 400, "invalid_query").await;

    let promote = |v: i32| {
        app.client
            .post(app.at(&format!("/admin/models/mnist-cnn/versions/{v}/promote")))
            .bearer_auth(&app.admin)
            .send()
    };
    assert_eq!(promote(2).await.unwrap().status(), 200);
    let m = models(&app).await;
    let cnn = model(&m, "mnist-cnn");
    assert_eq!(cnn["active_version"], 2);
    assert_eq!(cnn["served_version"], 2);
    assert_eq!(cnn["versions"][1]["status"], "retired");
    let png = digits::grid_to_png(&mnist_test().images[3]).unwrap();
    let served: Value = app
        .upload("v2", "d.png", png.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(served["model_version"], 2);

    // Rolling back is promoting the old version again.
    assert_eq!(promote(1).await.unwrap().status(), 200);
    let served: Value = app.upload("v2", "d.png", png).await.json().await.unwrap();
    assert_eq!(served["model_version"], 1);
    assert_error(promote(9).await.unwrap(), 404, "not_found").await;
    let r = app
        .client
        .post(app.at("/admin/models/mnist-cnn/versions/2/promote"))
        .bearer_auth(&app.user)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;

    // The database itself refuses a second active version of one model.
    let db = common::db::Db::connect(&backing.db.url, Default::default())
        .await
        .unwrap();
    let second_active = db
        .run(|c| {
            use diesel::connection::SimpleConnection;
            c.batch_execute(
                "UPDATE models.model_versions SET status = 'active' WHERE name = 'mnist-cnn'",
            )
            .map_err(common::db::DbError::from)
        })
        .await;
    assert!(second_active.unwrap_err().is_unique_violation());
}

#[tokio::test]
async fn a_retrain_job_reads_the_active_artifact_and_promotes_through_the_internal_api() {
    let (app, _backing) = spawn_app().await;
    let r = app
        .client
        .get(app.internal("/internal/models/mnist-mlp/active"))
        .bearer_auth(&app.service)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let info = ArtifactInfo::from_headers(|name| r.headers().get(name)?.to_str().ok()).unwrap();
    assert_eq!(info.version, 1);
    let active = r.bytes().await.unwrap();
    let on_disk = std::fs::read(model_dir().join("mnist-mlp.onnx")).unwrap();
    assert_eq!(active, on_disk);
    assert_eq!(info.sha256, common::digest::sha256_hex(&on_disk));
    let r = app
        .client
        .get(app.internal("/internal/models/mnist-unknown/active"))
        .bearer_auth(&app.service)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;

    let v2: Value = register(&app, "mnist-mlp", "job-7")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v2["version"], 2);
    // No internal route promotes: a job starts a rollout, an admin may promote by hand.
    let r = app
        .client
        .post(app.internal("/internal/models/mnist-mlp/versions/2/promote"))
        .bearer_auth(&app.service)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let promote = |v: i32| {
        app.client
            .post(app.at(&format!("/admin/models/mnist-mlp/versions/{v}/promote")))
            .bearer_auth(&app.admin)
            .send()
    };
    let r = promote(2).await.unwrap();
    assert_eq!(r.status(), 200);
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();
    let served: Value = app.upload("v1", "d.png", png).await.json().await.unwrap();
    assert_eq!(served["model_version"], 2);
    // Promoting the active version again changes nothing; an unknown one is a 404.
    assert_eq!(promote(2).await.unwrap().status(), 200);
    assert_error(promote(5).await.unwrap(), 404, "not_found").await;
}

#[tokio::test]
async fn internal_routes_need_a_service_token_with_their_scope_on_the_management_port() {
    use common::service_auth::scopes;
    let (app, _backing) = spawn_app().await;
    let cases = [
        (
            "GET",
            "/internal/models/mnist-mlp/active",
            scopes::MODELS_READ,
        ),
        (
            "POST",
            "/internal/models/mnist-mlp/rollouts",
            scopes::MODELS_PROMOTE,
        ),
        (
            "POST",
            "/internal/models/mnist-mlp/versions",
            scopes::MODELS_REGISTER,
        ),
        (
            "GET",
            "/internal/predictions/nope",
            scopes::PREDICTIONS_READ,
        ),
    ];
    let send = |method: &str, url: String, token: Option<String>| {
        let mut request = app.client.request(method.parse().unwrap(), url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for (method, path, scope) in cases {
        let url = app.internal(path);
        assert_error(
            send(method, url.clone(), None).await.unwrap(),
            401,
            "missing_token",
        )
        .await;
        for token in [&app.user, &app.admin] {
            let r = send(method, url.clone(), Some(token.clone()))
                .await
                .unwrap();
            assert_error(r, 403, "forbidden").await;
        }
        let others: Vec<&str> = scopes::ALL
            .iter()
            .copied()
            .filter(|s| *s != scope)
            .collect();
        let r = send(method, url.clone(), Some(app.service_with(&others)))
            .await
            .unwrap();
        assert_error(r, 403, "forbidden").await;
        // Past the guard: the route's own answer (a body error for a bodiless registration,
        // an unknown prediction, or success).
        let r = send(method, url, Some(app.service_with(&[scope])))
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(
            matches!(status, 200 | 400 | 404 | 415),
            "{method} {path}: {status}"
        );
        if path.ends_with("/active") || path.ends_with("/promote") {
            assert_eq!(status, 200, "{method} {path}");
        }
        // The public port has no /internal/ at all.
        let r = send(method, app.at(path), Some(app.service.clone()))
            .await
            .unwrap();
        assert_error(r, 404, "not_found").await;
    }
    let r = app.client.get(app.at("/metrics")).send().await.unwrap();
    assert_error(r, 404, "not_found").await;
    let r = app
        .client
        .get(app.internal("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The management port serves no public route.
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png).file_name("d.png"),
    );
    let r = app
        .client
        .post(app.internal("/api/v1/predict"))
        .bearer_auth(&app.user)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}
