use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn the_open_inference_protocol_serves_both_models() {
    let (app, _backing) = spawn_app().await;
    let test = mnist_test();
    let ready = app
        .client
        .get(app.at("/v2/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let meta: Value = app
        .client
        .get(app.at("/v2/models/mnist-cnn"))
        .bearer_auth(&app.user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["name"], "mnist-cnn");
    assert_eq!(meta["inputs"][0]["name"], "input");
    assert_eq!(meta["outputs"][0]["name"], "probabilities");

    let n = 16;
    let flat: Vec<f32> = digits::to_input_batch(test.images[..n].iter());
    for (model, shape) in [
        ("mnist-mlp", json!([n, 784])),
        ("mnist-cnn", json!([n, 1, 28, 28])),
    ] {
        let r = app
            .client
            .post(app.at(&format!("/v2/models/{model}/infer")))
            .bearer_auth(&app.user)
            .json(&json!({
                "id": "req-1",
                "inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": flat}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["id"], "req-1");
        assert_eq!(body["model_name"], model);
        let out = &body["outputs"][0];
        assert_eq!(out["shape"], json!([n, 10]));
        let data: Vec<f64> = out["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mut right = 0;
        for (i, row) in data.chunks(10).enumerate() {
            let sum: f64 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}");
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            right += usize::from(best == usize::from(test.labels[i]));
        }
        assert!(right >= 15, "{model}: {right}/16");
    }

    let bad = app
        .client
        .post(app.at("/v2/models/mnist-mlp/infer"))
        .bearer_auth(&app.user)
        .json(&json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": vec![0.0; 10]}]}))
        .send()
        .await
        .unwrap();
    assert_error(bad, 400, "invalid_tensor").await;
    let unknown = app
        .client
        .post(app.at("/v2/models/resnet/infer"))
        .bearer_auth(&app.user)
        .json(&json!({"inputs": []}))
        .send()
        .await
        .unwrap();
    assert_error(unknown, 404, "not_found").await;
    let broken = app
        .client
        .post(app.at("/v2/models/mnist-mlp/infer"))
        .bearer_auth(&app.user)
        .header("content-type", "application/json")
        .body("{\"inputs\": [")
        .send()
        .await
        .unwrap();
    assert_error(broken, 400, "invalid_json").await;
}
