use crate::helpers::*;
use common::bus::{Envelope, events};
use common::jwt::Role;
use futures_util::SinkExt;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn an_admin_receives_new_feedback_within_a_second() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let mut ws = notify.connect(&world.auth.admin()).await;

    let envelope = world.feedback(41).await;
    let event = next_json(&mut ws, Duration::from_secs(1)).await;
    assert_eq!(
        event,
        json!({"event": "new_feedback", "id": envelope.id.to_string(), "data": feedback_dict(41)})
    );
}

#[tokio::test]
async fn join_admin_is_answered_with_the_seed_message() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let mut ws = notify.connect(&world.auth.admin()).await;
    send_json(&mut ws, json!({"event": "join_admin"})).await;
    assert_eq!(
        next_event(&mut ws).await,
        json!({"event": "message", "data": {"data": "Te has unido a la sala de notificaciones de administradores."}})
    );
    // Joining again changes nothing: one room, each event once.
    send_json(&mut ws, json!({"event": "join_admin"})).await;
    assert_eq!(next_event(&mut ws).await["event"], "message");
    let envelope = world.feedback(1).await;
    assert_eq!(next_event(&mut ws).await["id"], envelope.id.to_string());
    assert_silent(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn retrain_and_model_events_are_pushed_under_their_names() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let mut ws = notify.connect(&world.auth.admin()).await;
    let finished = json!({"job_id": "j1", "model": "mnist-mlp", "state": "succeeded",
        "model_version": 3, "promoted": true, "reason": null, "metrics": null});
    for (kind, data, name) in [
        (
            events::RETRAIN_PROGRESS,
            json!({"job_id": "j1", "model": "mnist-mlp", "stage": "training", "epoch": 1,
                   "epochs": 2, "loss": 0.25, "val_accuracy": 0.9, "eta_seconds": 12.0}),
            "retrain_progress",
        ),
        (events::RETRAIN_FINISHED, finished, "retrain_finished"),
        (
            events::MODEL_PROMOTED,
            json!({"model": "mnist-mlp", "version": 3, "sha256": "ab12"}),
            "model_promoted",
        ),
    ] {
        let envelope = Envelope::new(kind, data.clone());
        world.publish_live(&envelope).await;
        let event = next_event(&mut ws).await;
        assert_eq!(event["event"], name);
        assert_eq!(event["id"], envelope.id.to_string());
        assert_eq!(event["data"], data);
    }
}

#[tokio::test]
async fn an_event_delivered_twice_reaches_clients_once() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let mut ws = notify.connect(&world.auth.admin()).await;
    let envelope = Envelope::new(events::FEEDBACK_CREATED, feedback_dict(3));
    world.publish_envelope(&envelope).await;
    world.publish_envelope(&envelope).await;
    let next = world.feedback(4).await;
    assert_eq!(next_event(&mut ws).await["id"], envelope.id.to_string());
    assert_eq!(next_event(&mut ws).await["id"], next.id.to_string());
    assert_eq!(notify.stats().duplicates_dropped, 1);
}

#[tokio::test]
async fn two_replicas_each_deliver_to_their_own_clients() {
    let world = World::new();
    let first = world.spawn(test_settings()).await;
    let second = world.spawn(test_settings()).await;
    let mut a = first.connect(&world.auth.admin()).await;
    let mut b = second
        .connect(&world.auth.token("other-admin", Role::Admin))
        .await;
    for n in 0..3 {
        let envelope = world.feedback(n).await;
        assert_eq!(next_event(&mut a).await["id"], envelope.id.to_string());
        assert_eq!(next_event(&mut b).await["id"], envelope.id.to_string());
    }
    assert_eq!((first.stats().admins, second.stats().admins), (1, 1));
}

#[tokio::test]
async fn malformed_messages_get_error_events_and_pings_get_pongs() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let mut ws = notify.connect(&world.auth.admin()).await;
    for (sent, code) in [
        (Message::text("hello"), "invalid_message"),
        (Message::text(r#"{"event":"dance"}"#), "unknown_event"),
        (
            Message::text(r#"{"event":"resume","last_event_id":42}"#),
            "invalid_last_event_id",
        ),
        (Message::binary(vec![1u8, 2, 3]), "invalid_message"),
    ] {
        ws.send(sent).await.unwrap();
        let answer = next_event(&mut ws).await;
        assert_eq!(answer["event"], "error");
        assert_eq!(answer["data"]["error"], code, "{answer}");
    }
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            use futures_util::StreamExt;
            if let Some(Ok(Message::Pong(p))) = ws.next().await {
                return p;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&pong[..], b"are you there");
}
