use crate::helpers::*;
use common::bus::events;
use notify_svc::WsSettings;
use serde_json::json;
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A client whose socket buffers little, so that not reading shows up quickly.
async fn sluggish_client(notify: &TestNotify, token: &str) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let port: u16 = notify.url.rsplit(':').next().unwrap().parse().unwrap();
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let mut request = notify.ws_url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected_while_others_keep_receiving() {
    let world = World::new();
    let notify = world
        .spawn(WsSettings {
            send_queue: 2,
            ..test_settings()
        })
        .await;
    let mut slow = sluggish_client(&notify, &world.auth.admin()).await;
    let mut fast = notify.connect(&world.auth.admin()).await;
    let comment = "x".repeat(16 * 1024);
    let mut sent = 0;
    while notify.stats().slow_clients_dropped == 0 {
        assert!(sent < 2_000, "the slow client was never dropped");
        let mut data = feedback_dict(sent);
        data["comment"] = json!(comment);
        let envelope = world.publish(events::FEEDBACK_CREATED, data).await;
        // The fast client keeps up, one event at a time.
        assert_eq!(next_event(&mut fast).await["id"], envelope.id.to_string());
        sent += 1;
    }
    assert_eq!(notify.stats().admins, 1);
    for n in 0..5 {
        let envelope = world.feedback(n).await;
        assert_eq!(next_event(&mut fast).await["id"], envelope.id.to_string());
    }
    // Reading again, the slow client finds what was buffered, then the close code.
    assert_eq!(
        close_code(&mut slow, Duration::from_secs(10)).await,
        Some(1013)
    );
    assert_eq!(notify.stats().slow_clients_dropped, 1);
}

#[tokio::test]
async fn a_client_that_does_not_answer_pings_is_closed() {
    let world = World::new();
    let notify = world
        .spawn(WsSettings {
            heartbeat_interval: Duration::from_millis(250),
            client_timeout: Duration::from_millis(1_000),
            ..test_settings()
        })
        .await;
    // Never read: tungstenite answers pings only while reading.
    let _dead = notify.connect(&world.auth.admin()).await;
    let mut alive = notify.connect(&world.auth.admin()).await;
    assert_silent(&mut alive, Duration::from_millis(2_000)).await;
    eventually(Duration::from_secs(5), "the dead client is closed", || {
        notify.stats().heartbeat_timeouts == 1
    })
    .await;
    let stats = notify.stats();
    assert_eq!((stats.open_sockets, stats.admins), (1, 1));
    let envelope = world.feedback(1).await;
    assert_eq!(next_event(&mut alive).await["id"], envelope.id.to_string());
}

#[tokio::test]
async fn stopping_the_service_closes_sockets_with_going_away() {
    let world = World::new();
    let notify = world.spawn(test_settings()).await;
    let mut ws = notify.connect(&world.auth.admin()).await;
    let stop = tokio::spawn(notify.app.stop());
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(1001)
    );
    stop.await.unwrap();
}
