use crate::helpers::*;
use crate::registry::register;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Promotion while 8 clients predict without pause, on two replicas: no request fails, and
/// both replicas switch to the new version (the other one through the bus).
#[tokio::test]
async fn promotion_under_load_swaps_every_replica_without_a_failure() {
    let backing = Backing::new();
    let a = Arc::new(spawn_with(&backing, config(&backing, BATCHING)).await);
    let b = Arc::new(spawn_with(&backing, config(&backing, BATCHING)).await);
    assert_eq!(register(&a, "mnist-mlp", "job-swap").await.status(), 201);

    let png = digits::grid_to_png(&mnist_test().images[1]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (png, stop, failures) = (png.clone(), stop.clone(), failures.clone());
        clients.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let r = app.upload("v1", "d.png", png.clone()).await;
                if r.status() != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let body: Value = r.json().await.unwrap();
                versions.push(body["model_version"].as_i64().unwrap());
            }
            versions
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let r = a
        .client
        .post(a.at("/admin/models/mnist-mlp/versions/2/promote"))
        .bearer_auth(&a.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);

    for client in clients {
        let versions = client.await.unwrap();
        assert!(versions.len() > 3, "each client kept predicting");
        assert_eq!(versions.first(), Some(&1));
        assert_eq!(
            versions.last(),
            Some(&2),
            "the replica switched: {versions:?}"
        );
        // Once on the new version, never back on the old.
        let first_new = versions.iter().position(|v| *v == 2).unwrap();
        assert!(
            versions[first_new..].iter().all(|v| *v == 2),
            "{versions:?}"
        );
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0);
}
