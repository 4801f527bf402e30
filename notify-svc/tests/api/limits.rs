//! The bounds on what one user may hold and send: sockets per user, and messages per socket.

use crate::helpers::*;
use futures_util::SinkExt;
use notify_svc::WsSettings;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Sends `join_admin` on every socket and checks each answers with the seed's `message`.
async fn all_answer(sockets: &mut [Ws]) {
    for ws in sockets.iter_mut() {
        send_json(ws, json!({"event": "join_admin"})).await;
        assert_eq!(next_event(ws).await["event"], "message");
    }
}

#[tokio::test]
async fn an_admins_sixth_socket_is_429_and_a_closed_one_frees_its_slot() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let admin = world.auth.admin();
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(notify.connect(&admin).await);
    }
    let (status, body) = refused(&notify.ws_url, Some(&admin)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_sockets"))
    );
    assert!(
        body["msg"].as_str().is_some_and(|m| m.contains('5')),
        "{body}"
    );
    // The cap is per user: another admin still gets in.
    let mut other = notify.connect(&world.auth.admin()).await;
    all_answer(std::slice::from_mut(&mut other)).await;
    let stats = notify.stats();
    assert_eq!((stats.open_sockets, stats.user_limit_refused), (6, 1));

    // The first five keep working: they answer and receive the events.
    all_answer(&mut sockets).await;
    let event = world.feedback(1).await;
    for ws in sockets.iter_mut() {
        assert_eq!(next_event(ws).await["id"], event.id.to_string());
    }

    // Once a close is echoed, its slot is free: a new socket gets in, and a sixth is refused.
    let mut closing = sockets.remove(0);
    closing.close(None).await.unwrap();
    close_code(&mut closing, Duration::from_secs(5)).await;
    let mut again = notify.connect(&admin).await;
    all_answer(std::slice::from_mut(&mut again)).await;
    let (status, _) = refused(&notify.ws_url, Some(&admin)).await;
    assert_eq!(status, 429);
    assert_eq!(notify.stats().user_limit_refused, 2);
}

#[tokio::test]
async fn the_per_user_cap_is_configurable() {
    let world = World::new();
    let notify = world
        .spawn(WsSettings {
            max_per_user: 1,
            ..test_settings()
        })
        .await;
    let admin = world.auth.admin();
    let first = notify.connect(&admin).await;
    let (status, _) = refused(&notify.ws_url, Some(&admin)).await;
    assert_eq!(status, 429);
    // A client that just drops its connection frees the slot too, once notify-svc sees it.
    drop(first);
    eventually(
        Duration::from_secs(5),
        "the dropped socket is released",
        || notify.stats().open_sockets == 0,
    )
    .await;
    let mut ws = notify.connect(&admin).await;
    all_answer(std::slice::from_mut(&mut ws)).await;
}

#[tokio::test]
async fn a_client_sending_faster_than_its_budget_is_closed_with_1008() {
    let world = World::new();
    let notify = world
        .spawn(WsSettings {
            message_rate: 1,
            message_burst: 3,
            ..test_settings()
        })
        .await;
    let admin = world.auth.admin();

    // Within the budget: the burst is answered and the socket stays open.
    let mut calm = notify.connect(&admin).await;
    for _ in 0..3 {
        send_json(&mut calm, json!({"event": "join_admin"})).await;
    }
    for _ in 0..3 {
        assert_eq!(next_event(&mut calm).await["event"], "message");
    }
    let event = world.feedback(1).await;
    assert_eq!(next_event(&mut calm).await["id"], event.id.to_string());

    // Ten at once: three answers, then a close with 1008 and a reason.
    let mut flood = notify.connect(&admin).await;
    for _ in 0..10 {
        flood
            .feed(Message::text(json!({"event": "join_admin"}).to_string()))
            .await
            .unwrap();
    }
    flood.flush().await.unwrap();
    let mut answers = 0;
    loop {
        match receive(&mut flood, Duration::from_secs(5)).await {
            Received::Json(v) => {
                assert_eq!(v["event"], "message", "{v}");
                answers += 1;
            }
            Received::Closed(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1008);
                assert!(frame.reason.contains("too many messages"), "{frame:?}");
                break;
            }
            other => panic!("expected answers then a 1008 close, got {other:?}"),
        }
    }
    assert_eq!(answers, 3);
    assert_eq!(notify.stats().flooders_closed, 1);
    // The other socket of the same admin is not affected.
    let event = world.feedback(2).await;
    assert_eq!(next_event(&mut calm).await["id"], event.id.to_string());
}
