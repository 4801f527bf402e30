use crate::helpers::*;
use digits::{OutputFormat, Rendering};
use serde_json::Value;

/// Share of `n` test digits, each encoded by `encode`, that `version` recognises through the
/// gateway, with requests sent 8 at a time.
async fn accuracy(
    system: &System,
    token: &str,
    version: &str,
    n: usize,
    encode: fn(&digits::Grid) -> Vec<u8>,
) -> f64 {
    let test = mnist_test();
    let mut right = 0usize;
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let answers = futures_util::future::join_all(chunk.iter().map(|&i| {
            let bytes = encode(&test.images[i]);
            async move { (i, system.upload(token, version, "digit", bytes).await) }
        }))
        .await;
        for (i, r) in answers {
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            right += usize::from(body["prediccion"].as_u64() == Some(u64::from(test.labels[i])));
        }
    }
    right as f64 / n as f64
}

#[tokio::test]
async fn five_hundred_test_digits_through_the_gateway() {
    let system = System::start().await;
    let token = system.user("reader").await;
    let png = |g: &digits::Grid| digits::grid_to_png(g).unwrap();
    let v1 = accuracy(&system, &token, "v1", 500, png).await;
    let v2 = accuracy(&system, &token, "v2", 500, png).await;
    let drawn = |g: &digits::Grid| {
        digits::encode(
            g,
            &Rendering::drawn(280),
            OutputFormat::Jpeg { quality: 85 },
        )
        .unwrap()
    };
    let drawn_v2 = accuracy(&system, &token, "v2", 500, drawn).await;
    eprintln!(
        "through the gateway: v1 {v1:.3}, v2 {v2:.3}, v2 on dark-on-light 280×280 JPEG {drawn_v2:.3}"
    );
    assert!(v1 >= 0.96, "v1 {v1}");
    assert!(v2 >= 0.98, "v2 {v2}");
    assert!(drawn_v2 >= 0.90, "drawn {drawn_v2}");
}

#[tokio::test]
async fn bad_uploads_through_the_gateway_get_their_status() {
    let system = System::start().await;
    let token = system.user("careless").await;
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();
    let check = |status: u16, code: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status().as_u16(), status);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], code, "{body}");
        }
    };
    check(415, "not_an_image")(
        system
            .upload(&token, "v1", "x.txt", b"plain text".to_vec())
            .await,
    )
    .await;
    let mut broken = png.clone();
    broken.truncate(60);
    check(400, "corrupt_image")(system.upload(&token, "v2", "x.png", broken).await).await;
    let mut big = png.clone();
    big.resize(6 * 1024 * 1024, 0);
    check(413, "payload_too_large")(system.upload(&token, "v1", "x.png", big).await).await;
    let r = system
        .client
        .post(system.at("/api/v1/predict"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().text("nofile", "x"))
        .send()
        .await
        .unwrap();
    check(400, "missing_file")(r).await;
    let r = system
        .client
        .post(system.at("/api/v2/predict"))
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(png).file_name("d.png"),
        ))
        .send()
        .await
        .unwrap();
    check(401, "missing_token")(r).await;
}

#[tokio::test]
async fn the_rate_limits_count_per_user_and_refuse_with_retry_after() {
    let system = System::start_configured(|settings| {
        settings.set("RATE_LIMIT_ROUTES", "/api/v1/predict=3/hour")
    })
    .await;
    let (ana, ben) = (system.user("ana").await, system.user("ben").await);
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();
    for left in [2, 1, 0] {
        let r = system.upload(&ana, "v1", "d.png", png.clone()).await;
        assert_eq!(r.status(), 200);
        let header = r.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(header.contains(&format!("r={left}")), "{header}");
    }
    let refused = system.upload(&ana, "v1", "d.png", png.clone()).await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1200).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    // Another user, and another route of the same user, still have theirs.
    assert_eq!(
        system
            .upload(&ben, "v1", "d.png", png.clone())
            .await
            .status(),
        200
    );
    assert_eq!(system.upload(&ana, "v2", "d.png", png).await.status(), 200);
}
