//! One trace per request across the services and the bus, seen by an in-memory exporter.

use crate::feedback::{joined, next_event};
use crate::helpers::*;
use opentelemetry::trace::TraceId;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn one_feedback_is_one_trace_from_the_gateway_through_the_outbox_to_the_admin_socket() {
    let collected = common::telemetry::testing::collect_spans();
    let system = System::start().await;
    let admin = system.admin().await;
    let user = system.user("traced-user").await;
    let (mut ws, _) = joined(&system, &admin).await;

    // The client starts the trace; everything downstream continues it.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = system
        .client
        .post(system.at("/feedback"))
        .bearer_auth(&user)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"prediction": 4, "correct": true, "comment": "traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let event = loop {
        let event = next_event(&mut ws, Duration::from_secs(5)).await.unwrap();
        if event["event"] == "new_feedback" {
            break event;
        }
    };
    assert_eq!(event["data"]["comment"], "traced");
    // Spans are exported as they end; the push's ends right after the send.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let trace_id = TraceId::from_hex(trace).unwrap();
    let spans: Vec<_> = collected
        .spans()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect();
    let names: Vec<String> = spans.iter().map(|s| s.name.to_string()).collect();
    let count = |name: &str| names.iter().filter(|n| n.as_str() == name).count();
    // The gateway's span and feedback-svc's, one child of the other.
    assert_eq!(count("POST /feedback"), 2, "{names:?}");
    assert_eq!(count("outbox.publish"), 1, "{names:?}");
    assert_eq!(count("notify.push"), 1, "{names:?}");
    let by_name = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let http = by_name("POST /feedback");
    let (gateway, service) = if http[0].parent_span_id == http[1].span_context.span_id() {
        (http[1], http[0])
    } else {
        (http[0], http[1])
    };
    assert_eq!(
        gateway.parent_span_id.to_string(),
        "00f067aa0ba902b7",
        "the gateway's span continues the client's"
    );
    assert_eq!(service.parent_span_id, gateway.span_context.span_id());
    // Each says which service it is, though the process has one `service.name`.
    let component = |attributes: &[opentelemetry::KeyValue]| {
        attributes
            .iter()
            .find(|kv| kv.key.as_str() == "predictloop.service")
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(component(&gateway.attributes).as_deref(), Some("gateway"));
    assert_eq!(
        component(&service.attributes).as_deref(),
        Some("feedback-svc")
    );
    // The relay continues from feedback-svc's request (through the outbox row), and the push
    // from the relay (through the bus event).
    let publish = by_name("outbox.publish")[0];
    let push = by_name("notify.push")[0];
    assert_eq!(push.parent_span_id, publish.span_context.span_id());
    assert_eq!(publish.parent_span_id, service.span_context.span_id());
}

#[tokio::test]
async fn one_retrain_is_one_trace_from_the_request_through_the_job_to_its_rollout() {
    let collected = common::telemetry::testing::collect_spans();
    let system = System::start().await;
    let admin = system.admin().await;
    let (mut ws, _) = joined(&system, &admin).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let r = system
        .client
        .post(system.at("/admin/retrain"))
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .json(&json!({"model": "mnist-mlp", "epochs": 1, "mnist_sample": 20000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let finished = loop {
        let Some(event) = next_event(&mut ws, Duration::from_secs(120)).await else {
            panic!("no retrain_finished");
        };
        if event["event"] == "retrain_finished" {
            break event;
        }
    };
    assert_eq!(finished["data"]["state"], "succeeded", "{finished}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let trace_id = TraceId::from_hex(trace).unwrap();
    let names: Vec<String> = collected
        .spans()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .map(|s| s.name.to_string())
        .collect();
    let count = |name: &str| names.iter().filter(|n| n.as_str() == name).count();
    // The request at the gateway and at retrain-worker, the job it queued, the job's calls to
    // predict-svc (the active model, registration, the rollout's start), and the pushes of its
    // progress, its end and the rollout's start to the admin socket.
    assert_eq!(count("POST /admin/retrain"), 2, "{names:?}");
    assert_eq!(count("retrain.job"), 1, "{names:?}");
    assert_eq!(count("GET /internal/models/{name}/active"), 1, "{names:?}");
    assert_eq!(
        count("POST /internal/models/{name}/versions"),
        1,
        "{names:?}"
    );
    assert_eq!(
        count("POST /internal/models/{name}/rollouts"),
        1,
        "{names:?}"
    );
    assert!(
        count("notify.push") >= 3,
        "progress, the end, the rollout's start: {names:?}"
    );
}
