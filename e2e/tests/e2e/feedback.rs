use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON text frame, skipping pings; `None` when nothing comes within `wait`.
pub async fn next_event(ws: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).ok();
        }
    }
}

pub async fn joined(system: &System, token: &str) -> (Socket, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(system.ws_url(token))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"event":"join_admin"}"#))
        .await
        .unwrap();
    let answer = next_event(&mut ws, Duration::from_secs(5)).await.unwrap();
    (ws, answer)
}

#[tokio::test]
async fn feedback_reaches_an_admin_socket_and_the_report() {
    let system = System::start().await;
    let user = system.user("giver").await;
    let admin = system.admin().await;

    let (mut admin_ws, welcome) = joined(&system, &admin).await;
    assert_eq!(welcome["event"], "message", "{welcome}");
    assert_eq!(
        welcome["data"]["data"],
        "Te has unido a la sala de notificaciones de administradores."
    );
    // A user gets no socket at all: 403 before the upgrade.
    match tokio_tungstenite::connect_async(system.ws_url(&user)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        Ok(_) => panic!("a user's WebSocket was opened"),
        Err(e) => panic!("no HTTP refusal: {e}"),
    }

    // A prediction, then feedback on it saying the true digit, through the gateway.
    let test = mnist_test();
    let served: Value = system
        .upload(
            &user,
            "v2",
            "d.png",
            digits::grid_to_png(&test.images[0]).unwrap(),
        )
        .await
        .json()
        .await
        .unwrap();
    let predicted = served["prediccion"].as_u64().unwrap();
    let label = (predicted + 1) % 10;
    let body = json!({
        "prediction": predicted,
        "correct": false,
        "comment": "no es",
        "prediction_id": served["prediction_id"],
        "label": label,
    });
    let post = |key: &'static str| {
        system
            .client
            .post(system.at("/feedback"))
            .bearer_auth(&user)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let r = post("retry-me").await.unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["msg"], "Feedback submitted successfully");

    let event = next_event(&mut admin_ws, Duration::from_secs(1))
        .await
        .expect("the admin socket gets the feedback within a second");
    assert_eq!(event["event"], "new_feedback");
    let data = &event["data"];
    assert_eq!(data["id"], created["id"]);
    assert_eq!(data["username"], "giver");
    assert_eq!(data["prediction"], predicted);
    assert_eq!(data["correct"], false);
    assert_eq!(data["comment"], "no es");
    assert!(data["timestamp"].as_str().is_some());
    assert_eq!(data["model"], "mnist-cnn");

    // A retried POST answers the first answer and stores nothing more.
    let again: Value = post("retry-me").await.unwrap().json().await.unwrap();
    assert_eq!(again["id"], created["id"]);
    let report: Value = system
        .client
        .get(system.at("/admin/report"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["total_feedback"], 1, "{report}");
    assert_eq!(report["incorrect_feedback"], 1);
    assert_eq!(report["correct_feedback"], 0);
    assert_eq!(
        report["confusion_matrix"][label as usize][predicted as usize], 1,
        "{report}"
    );
    let r = system
        .client
        .get(system.at("/admin/report"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A bad token never reaches notify-svc.
    let refused = tokio_tungstenite::connect_async(system.ws_url("not-a-token")).await;
    assert!(refused.is_err());
}

/// Feedback on a digit, through the gateway; returns the stored feedback's id.
async fn send_feedback(system: &System, user: &str, digit: u64) -> Value {
    let r = system
        .client
        .post(system.at("/feedback"))
        .bearer_auth(user)
        .json(&json!({"prediction": digit, "correct": true, "comment": format!("digit {digit}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].clone()
}

#[tokio::test]
async fn an_admin_who_reconnects_gets_what_was_missed_in_order_and_nothing_twice() {
    let system = System::start().await;
    let user = system.user("steady").await;
    let admin = system.admin().await;

    let (mut ws, _) = joined(&system, &admin).await;
    let first = send_feedback(&system, &user, 1).await;
    let seen = next_event(&mut ws, Duration::from_secs(2)).await.unwrap();
    assert_eq!(seen["data"]["id"], first, "{seen}");
    let last_id = seen["id"].as_str().unwrap().to_owned();
    ws.close(None).await.unwrap();

    // Three more while the admin is away.
    let mut missed = Vec::new();
    for digit in [2, 3, 4] {
        missed.push(send_feedback(&system, &user, digit).await);
    }
    // Wait until the relay has published them (the report counts stored feedback, the outbox
    // publishes right after each insert).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let url = format!("{}&last_event_id={last_id}", system.ws_url(&admin));
    let (mut back, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    back.send(Message::text(r#"{"event":"join_admin"}"#))
        .await
        .unwrap();
    let mut replayed = Vec::new();
    while let Some(event) = next_event(&mut back, Duration::from_secs(2)).await {
        if event["event"] == "new_feedback" {
            replayed.push(event["data"]["id"].clone());
        }
        if replayed.len() > missed.len() {
            break;
        }
    }
    assert_eq!(
        replayed, missed,
        "the missed feedback, oldest first, without the one already seen"
    );

    // And it is live again.
    let after = send_feedback(&system, &user, 5).await;
    let live = loop {
        let event = next_event(&mut back, Duration::from_secs(2))
            .await
            .expect("live events after the replay");
        if event["event"] == "new_feedback" {
            break event;
        }
    };
    assert_eq!(live["data"]["id"], after);
}
