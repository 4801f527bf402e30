use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

fn ids(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_replays_exactly_what_was_missed_in_order() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let admin = world.auth.admin();
    let mut ws = notify.connect(&admin).await;
    world.feedback(1).await;
    let seen = world.feedback(2).await;
    next_event(&mut ws).await;
    assert_eq!(next_event(&mut ws).await["id"], seen.id.to_string());
    drop(ws);

    let mut missed = Vec::new();
    for n in 3..=5 {
        missed.push(world.feedback(n).await.id.to_string());
    }
    let mut ws = notify
        .connect_with(&admin, &format!("last_event_id={}", seen.id))
        .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_event(&mut ws).await);
    }
    assert_eq!(ids(&got), missed);
    assert!(got.iter().all(|e| e["event"] == "new_feedback"));
    assert_eq!(got[0]["data"], feedback_dict(3));
    // Then live events, and nothing twice.
    let live = world.feedback(6).await;
    assert_eq!(next_event(&mut ws).await["id"], live.id.to_string());
    assert_silent(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(notify.stats().events_replayed, 3);
}

#[tokio::test]
async fn the_switch_from_history_to_live_has_no_gap_and_no_duplicate() {
    let world = std::sync::Arc::new(World::new());
    let notify = world.spawn(test_settings()).await;
    let first = world.feedback(0).await;
    // Events keep coming while the client reconnects.
    let publisher = {
        let world = world.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 1..=60 {
                ids.push(world.feedback(n).await.id.to_string());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(40)).await;
    let mut ws = notify
        .connect_with(&world.auth.admin(), &format!("last_event_id={}", first.id))
        .await;
    let published = publisher.await.unwrap();
    let mut got = Vec::new();
    for _ in 0..published.len() {
        got.push(next_event(&mut ws).await);
    }
    assert_eq!(ids(&got), published);
    assert_silent(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn resume_asks_for_a_replay_on_an_open_socket() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let admin = world.auth.admin();
    let mut ws = notify.connect(&admin).await;
    let last = world.feedback(1).await;
    next_event(&mut ws).await;
    drop(ws);
    let missed = world.feedback(2).await;

    let mut ws = notify.connect(&admin).await;
    send_json(
        &mut ws,
        json!({"event": "resume", "last_event_id": last.id}),
    )
    .await;
    assert_eq!(next_event(&mut ws).await["id"], missed.id.to_string());
    // Asking again repeats nothing this socket already has.
    send_json(
        &mut ws,
        json!({"event": "resume", "last_event_id": last.id}),
    )
    .await;
    assert_silent(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn an_id_that_is_not_in_the_history_is_reported_and_live_events_go_on() {
    let world = World::new();
    let notify = world
        .spawn(notify_svc::WsSettings {
            replay_limit: 2,
            ..test_settings()
        })
        .await;
    let admin = world.auth.admin();
    let old = world.feedback(1).await;
    let mut missed = Vec::new();
    for n in 2..=4 {
        missed.push(world.feedback(n).await.id.to_string());
    }
    // Three events were missed; only two may be replayed.
    let mut ws = notify
        .connect_with(&admin, &format!("last_event_id={}", old.id))
        .await;
    // The last of the missed events may still have been on its way from the bus when the
    // socket joined, and then arrives live: nothing else comes before the error, or after it
    // before the new event.
    let late = |event: &serde_json::Value| {
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        assert!(missed.contains(&id), "unexpected event: {event}");
    };
    let mut answer = next_event(&mut ws).await;
    while answer["event"] != "error" {
        late(&answer);
        answer = next_event(&mut ws).await;
    }
    assert_eq!(answer["data"]["error"], "replay_unavailable");
    let live = world.feedback(5).await;
    let mut next = next_event(&mut ws).await;
    while next["id"] != live.id.to_string() {
        late(&next);
        next = next_event(&mut ws).await;
    }

    let unknown = uuid::Uuid::now_v7();
    let mut ws = notify
        .connect_with(&admin, &format!("last_event_id={unknown}"))
        .await;
    assert_eq!(
        next_event(&mut ws).await["data"]["error"],
        "replay_unavailable"
    );
}
