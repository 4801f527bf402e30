//! Uploads decode within a budget: bombs are refused from their header, preprocessing runs a
//! bounded number at a time with a bounded queue, and the OIP route's body is bounded.

use crate::helpers::*;
use digits::bombs::{PngPixels, gif_canvas, png_zeros};
use predict_svc::gate::Preprocessing;
use serde_json::{Value, json};

#[tokio::test]
async fn decompression_bombs_are_refused_and_a_digit_still_predicts() {
    let (app, _backing) = spawn_app().await;
    let bombs = [
        ("GIF, 8192² canvas, 35 bytes", "bomb.gif", gif_canvas(8192)),
        (
            "16-bit PNG, 8192²",
            "bomb16.png",
            png_zeros(8192, PngPixels::Grey16).unwrap(),
        ),
        (
            "RGBA PNG, 8192²",
            "bomba.png",
            png_zeros(8192, PngPixels::Rgba8).unwrap(),
        ),
    ];
    for (what, name, bytes) in bombs {
        for version in ["v1", "v2"] {
            let r = app.upload(version, name, bytes.clone()).await;
            let body = assert_error(r, 400, "image_too_large").await;
            let msg = body["msg"].as_str().unwrap();
            assert!(
                msg.contains("8192×8192") && msg.contains("4096") && !msg.ends_with(".."),
                "{what}: {msg}"
            );
        }
    }
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();
    let r = app.upload("v2", "digit.png", png).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["prediccion"], u64::from(mnist_test().labels[0]));
}

#[tokio::test]
async fn the_decoding_budget_is_configurable() {
    let backing = Backing::new();
    let mut config = config(&backing, BATCHING);
    // 2048² RGBA (16 MiB decoded) is within the default budget, not within 8 MiB.
    config.preprocessing = Preprocessing::new(
        digits::DecodeLimits {
            max_side: 4096,
            max_bytes: 8 * 1024 * 1024,
        },
        1,
        0,
    );
    let app = spawn_with(&backing, config).await;
    let png = png_zeros(2048, PngPixels::Rgba8).unwrap();
    let r = app.upload("v1", "big.png", png).await;
    let body = assert_error(r, 400, "image_too_large").await;
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .contains("16 MiB once decoded"),
        "{body}"
    );
}

#[tokio::test]
async fn a_full_preprocessing_queue_answers_503_with_retry_after() {
    let backing = Backing::new();
    let mut config = config(&backing, BATCHING);
    let gate = Preprocessing::new(Default::default(), 1, 0);
    config.preprocessing = gate.clone();
    let app = spawn_with(&backing, config).await;
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();

    // The test holds the only turn, as a long decode would.
    let held = gate.occupy().await;
    let r = app.upload("v1", "digit.png", png.clone()).await;
    assert_eq!(r.headers()["retry-after"], "1");
    let body = assert_error(r, 503, "overloaded").await;
    assert!(
        body["msg"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    // The OIP route shares the gate.
    let r = app
        .client
        .post(app.at("/v2/models/mnist-mlp/infer"))
        .bearer_auth(&app.user)
        .json(&infer_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    assert_error(r, 503, "overloaded").await;

    drop(held);
    let r = app.upload("v1", "digit.png", png).await;
    assert_eq!(r.status(), 200);
    assert_eq!(gate.admitted(), 0);
}

fn infer_body(n: usize) -> Value {
    let flat: Vec<f32> = digits::to_input_batch(mnist_test().images[..n].iter());
    json!({"inputs": [{"name": "input", "shape": [n, 784], "datatype": "FP32", "data": flat}]})
}

#[tokio::test]
async fn oip_bodies_are_bounded_by_shape_batch_and_size() {
    let (app, _backing) = spawn_app().await;
    let post = |body: Vec<u8>| {
        app.client
            .post(app.at("/v2/models/mnist-cnn/infer"))
            .bearer_auth(&app.user)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let tensor = |shape: Value, data: Value| {
        json!({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": data}]})
            .to_string()
            .into_bytes()
    };
    // Data longer than the shape says.
    let r = post(tensor(json!([1, 784]), json!(vec![0; 785])))
        .await
        .unwrap();
    let body = assert_error(r, 400, "invalid_tensor").await;
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .contains("more values than shape"),
        "{body}"
    );
    // A shape over the largest batch.
    let r = post(tensor(json!([257, 784]), json!([0]))).await.unwrap();
    let body = assert_error(r, 400, "invalid_tensor").await;
    assert!(body["msg"].as_str().unwrap().contains("1 to 256"), "{body}");
    // The issue's body: 5 million zeros, 10 MB.
    let zeros = tensor(json!([256, 784]), json!(vec![0; 5_000_000]));
    assert!(zeros.len() > predict_svc::oip_body_limit(256));
    let r = post(zeros).await.unwrap();
    let body = assert_error(r, 413, "payload_too_large").await;
    assert!(
        body["msg"].as_str().unwrap().contains("4882432 bytes"),
        "{body}"
    );
    // The largest batch, written as Python writes float32 values, fits.
    let mut largest =
        String::from(r#"{"inputs":[{"name":"input","shape":[256,784],"datatype":"FP32","data":["#);
    for i in 0..256 * 784 {
        largest.push_str(if i == 0 { "" } else { ", " });
        largest.push_str("0.30000001192092896");
    }
    largest.push_str("]}]}");
    assert!(largest.len() <= predict_svc::oip_body_limit(256));
    let r = post(largest.into_bytes()).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["outputs"][0]["shape"], json!([256, 10]));
    // A valid request still answers.
    let r = post(infer_body(4).to_string().into_bytes()).await.unwrap();
    assert_eq!(r.status(), 200);
}
