use crate::helpers::*;
use digits::{OutputFormat, Rendering};
use serde_json::Value;

/// Accuracy of one API on the first `n` MNIST test digits, each encoded by `encode`.
async fn accuracy(
    app: &TestApp,
    version: &str,
    n: usize,
    encode: impl Fn(&digits::Grid) -> (Vec<u8>, &'static str),
) -> f64 {
    let test = mnist_test();
    let mut right = 0;
    for i in 0..n {
        let (bytes, name) = encode(&test.images[i]);
        let r = app.upload(version, name, bytes).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        if body["prediccion"].as_u64() == Some(u64::from(test.labels[i])) {
            right += 1;
        }
    }
    f64::from(right) / n as f64
}

#[tokio::test]
async fn real_digits_are_recognised_in_the_seed_format() {
    let (app, _backing) = spawn_app().await;
    let test = mnist_test();
    let png = digits::grid_to_png(&test.images[0]).unwrap();

    let r = app.upload("v1", "digit.png", png.clone()).await;
    assert_eq!(r.status(), 200);
    let v1: Value = r.json().await.unwrap();
    assert_eq!(v1["version"], "v1");
    assert_eq!(v1["model"], "mnist-mlp");
    assert_eq!(v1["model_version"], 1);
    assert_eq!(v1["prediccion"], u64::from(test.labels[0]));
    let p = v1["probabilidad"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert!(uuid::Uuid::parse_str(v1["prediction_id"].as_str().unwrap()).is_ok());

    let v2: Value = app
        .upload("v2", "digit.png", png)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v2["version"], "v2");
    assert_eq!(v2["mensaje"], "Predicción mejorada");
    assert_eq!(v2["model"], "mnist-cnn");
    let top: Vec<Value> = v2["top_k"].as_array().unwrap().clone();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["digit"], v2["prediccion"]);
    assert!(top[0]["probability"].as_f64() >= top[1]["probability"].as_f64());

    let png_accuracy_v1 = accuracy(&app, "v1", 200, |g| {
        (digits::grid_to_png(g).unwrap(), "d.png")
    })
    .await;
    let png_accuracy_v2 = accuracy(&app, "v2", 200, |g| {
        (digits::grid_to_png(g).unwrap(), "d.png")
    })
    .await;
    assert!(png_accuracy_v1 >= 0.96, "v1 {png_accuracy_v1}");
    assert!(png_accuracy_v2 >= 0.98, "v2 {png_accuracy_v2}");
    // Drawn dark on light, ten times larger, as JPEG: still recognised.
    let drawn = accuracy(&app, "v2", 100, |g| {
        (
            digits::encode(
                g,
                &Rendering::drawn(280),
                OutputFormat::Jpeg { quality: 85 },
            )
            .unwrap(),
            "d.jpg",
        )
    })
    .await;
    assert!(drawn >= 0.90, "drawn {drawn}");
}

#[tokio::test]
async fn a_served_prediction_can_be_read_back_for_feedback() {
    let (app, _backing) = spawn_app().await;
    let test = mnist_test();
    let r: Value = app
        .upload("v1", "d.png", digits::grid_to_png(&test.images[7]).unwrap())
        .await
        .json()
        .await
        .unwrap();
    let id = r["prediction_id"].as_str().unwrap();
    let stored: Value = app
        .client
        .get(app.internal(&format!("/internal/predictions/{id}")))
        .bearer_auth(&app.service)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["id"], id);
    assert_eq!(stored["username"], "ana");
    assert_eq!(stored["model"], "mnist-mlp");
    assert_eq!(stored["model_version"], 1);
    assert_eq!(stored["prediction"], r["prediccion"]);
    assert_eq!(stored["probabilities"].as_array().unwrap().len(), 10);
    use base64::Engine;
    let input = base64::engine::general_purpose::STANDARD
        .decode(stored["input"].as_str().unwrap())
        .unwrap();
    assert_eq!(input.len(), 784);
    let r = app
        .client
        .get(app.internal("/internal/predictions/nope"))
        .bearer_auth(&app.service)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn every_bad_upload_gets_its_status() {
    let (app, _backing) = spawn_app().await;
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();
    let post = |form: reqwest::multipart::Form| {
        app.client
            .post(app.at("/api/v1/predict"))
            .bearer_auth(&app.user)
            .multipart(form)
            .send()
    };

    // No `file` field: the seed's message.
    let form = reqwest::multipart::Form::new().text("other", "x");
    let body = assert_error(post(form).await.unwrap(), 400, "missing_file").await;
    assert_eq!(body["msg"], "No se encontró el archivo");
    // An empty file name: the seed's message.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png.clone()).file_name(""),
    );
    let body = assert_error(post(form).await.unwrap(), 400, "no_file_selected").await;
    assert_eq!(body["msg"], "No se seleccionó ningún archivo");
    // Not multipart at all.
    let r = app
        .client
        .post(app.at("/api/v1/predict"))
        .bearer_auth(&app.user)
        .json(&serde_json::json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "missing_file").await;
    // Not an image.
    assert_error(
        app.upload("v1", "a.txt", b"hello, not a picture".to_vec())
            .await,
        415,
        "not_an_image",
    )
    .await;
    // A corrupt image.
    let mut broken = png.clone();
    broken.truncate(broken.len() / 2);
    assert_error(
        app.upload("v2", "b.png", broken).await,
        400,
        "corrupt_image",
    )
    .await;
    // Over the 5 MiB limit.
    let mut huge = png.clone();
    huge.resize(5 * 1024 * 1024 + 1, 0);
    assert_error(
        app.upload("v1", "huge.png", huge).await,
        413,
        "payload_too_large",
    )
    .await;
    // No token.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png).file_name("d.png"),
    );
    let r = app
        .client
        .post(app.at("/api/v1/predict"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "missing_token").await;
}
