use crate::helpers::*;
use predict_svc::engine::{self, BatchConfig, LoadedModel};
use std::time::Duration;

async fn load(batch: BatchConfig) -> std::sync::Arc<LoadedModel> {
    let env = engine::environment(&ort_dylib()).unwrap();
    let bytes = std::fs::read(model_dir().join("mnist-mlp.onnx")).unwrap();
    LoadedModel::load(env, "mnist-mlp", 1, "", bytes, batch)
        .await
        .unwrap()
}

/// Concurrent requests run together, and each still gets its own answer.
#[tokio::test]
async fn concurrent_requests_share_batches_and_get_their_own_answers() {
    let test = mnist_test();
    let alone = load(BatchConfig {
        max_size: 1,
        max_wait: Duration::ZERO,
        sessions: 1,
    })
    .await;
    let batched = load(BatchConfig {
        max_size: 32,
        max_wait: Duration::from_millis(50),
        sessions: 1,
    })
    .await;
    let inputs: Vec<Vec<f32>> = test.images[..24]
        .iter()
        .map(|g| digits::to_input(g).to_vec())
        .collect();

    let mut expected = Vec::new();
    for input in &inputs {
        expected.push(alone.infer(1, input.clone()).await.unwrap());
    }
    let answers =
        futures_util::future::join_all(inputs.iter().map(|input| batched.infer(1, input.clone())))
            .await;
    for (answer, want) in answers.into_iter().zip(&expected) {
        let answer = answer.unwrap();
        let diff = answer
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff < 1e-5,
            "a batched answer differs from the lone one by {diff}"
        );
    }
    let (batches, samples) = batched.batch_stats();
    assert_eq!(samples, 24);
    assert!(
        batches < 24 / 2,
        "24 concurrent requests ran as {batches} batches"
    );
    assert_eq!(
        alone.batch_stats(),
        (24, 24),
        "batching off: one batch a request"
    );
}
