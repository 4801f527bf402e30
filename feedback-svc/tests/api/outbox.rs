use crate::helpers::{
    DEAD_REDIS, Options, Store, next_event, spawn_app, spawn_app_with, spawn_app_without_relay,
    wait_for_outbox,
};
use base64::Engine;
use common::jwt::Role;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn a_post_reaches_subscribers_and_the_history_stream() {
    let app = spawn_app().await;
    let mut events = app.subscribe().await;
    let ana = app.user("ana", Role::User);
    let pid = app.predict.serve(&ana, "mnist-cnn", 2, 3);
    let id = app
        .feedback_ok(
            &ana,
            json!({"prediction": 3, "correct": false, "label": 5, "comment": "un 5", "prediction_id": pid}),
        )
        .await;

    // The relay is woken by the insert; no polling interval to wait for.
    let event = next_event(&mut events, 5)
        .await
        .expect("an event is published");
    assert_eq!(event.kind, "feedback.created");
    assert_eq!(event.id.get_version_num(), 7, "UUIDv7 event ids");
    let data = &event.data;
    assert_eq!(data["id"], id);
    assert_eq!(data["username"], "ana");
    assert_eq!(data["prediction"], 3);
    assert_eq!(data["correct"], false);
    assert_eq!(data["comment"], "un 5");
    assert!(chrono::DateTime::parse_from_rfc3339(data["timestamp"].as_str().unwrap()).is_ok());
    assert_eq!(data["prediction_id"], pid.as_str());
    assert_eq!(data["label"], 5);
    assert_eq!(data["model"], "mnist-cnn");
    assert_eq!(data["model_version"], 2);
    // The input the model saw, for the admins' feed.
    let input = base64::engine::general_purpose::STANDARD
        .decode(data["input"].as_str().expect("the event carries the input"))
        .unwrap();
    assert_eq!(input, crate::helpers::input_of(&pid));

    let rows = wait_for_outbox(&app, 5, |rows| {
        rows.len() == 1 && rows[0].published_at.is_some()
    })
    .await;
    assert_eq!(rows[0].event_id, event.id.to_string());
    assert_eq!(rows[0].attempts, 1);
    let history = app.history().await;
    assert_eq!(history, vec![event]);
}

#[tokio::test]
async fn with_redis_down_feedback_is_accepted_and_published_once_redis_is_back() {
    let mut options = Options::new(Store::postgres());
    options.redis_url = DEAD_REDIS.into();
    let mut app = spawn_app_with(options).await;
    let ana = app.user("ana", Role::User);
    let id = app
        .feedback_ok(
            &ana,
            json!({"prediction": 4, "correct": true, "comment": "sin redis"}),
        )
        .await;

    // The relay keeps trying; the event stays pending, its lease given back each time.
    let rows = wait_for_outbox(&app, 20, |rows| {
        rows.len() == 1
            && rows[0].attempts >= 2
            && rows[0].published_at.is_none()
            && rows[0].claimed_until.is_none()
    })
    .await;
    assert!(rows[0].last_error.is_some(), "{rows:?}");
    // Stopping the service stops its relay after the batch in progress.
    app.stop().await;
    let pending = app.outbox().await;
    assert!(pending[0].published_at.is_none());

    // Redis is back: a relay publishes what was kept.
    let mut events = app.subscribe().await;
    let relay = app.relay(100);
    assert_eq!(relay.process_batch().await.unwrap(), 1);
    let event = next_event(&mut events, 5).await.expect("the kept event");
    assert_eq!(event.data["id"], id);
    assert_eq!(event.data["comment"], "sin redis");
    assert_eq!(event.id.to_string(), pending[0].event_id);
    assert_eq!(app.history().await, vec![event]);
    let rows = app.outbox().await;
    assert!(rows[0].published_at.is_some());
    assert!(rows[0].last_error.is_none());
    // Nothing is left to publish.
    assert_eq!(relay.process_batch().await.unwrap(), 0);
}

#[tokio::test]
async fn a_failing_publish_leaves_the_rest_of_the_batch_pending() {
    let app = spawn_app_without_relay().await;
    let ana = app.user("ana", Role::User);
    for digit in 0..3 {
        app.feedback_ok(&ana, json!({"prediction": digit, "correct": true}))
            .await;
    }
    let dead = feedback_svc::OutboxRelay::new(
        app.db.clone(),
        &common::infra::Infra::Redis(
            common::kv::Redis::connect(DEAD_REDIS, &app.redis_prefix).unwrap(),
        ),
        Default::default(),
    );
    let err = dead.process_batch().await.unwrap_err();
    assert!(
        matches!(
            err,
            feedback_svc::relay::RelayError::Publish { published: 0, .. }
        ),
        "{err}"
    );
    let rows = app.outbox().await;
    assert!(
        rows.iter()
            .all(|r| r.published_at.is_none() && r.claimed_until.is_none())
    );
    // Released at once: a working relay need not wait for the lease.
    assert_eq!(app.relay(100).process_batch().await.unwrap(), 3);
}

#[tokio::test]
async fn two_relays_at_once_publish_each_event_exactly_once() {
    let app = spawn_app_without_relay().await;
    let ana = app.user("ana", Role::User);
    const N: usize = 40;
    let bodies: Vec<_> = (0..N)
        .map(|i| json!({"prediction": i % 10, "correct": i % 3 == 0, "comment": format!("n{i}")}))
        .collect();
    let posts = bodies.iter().map(|body| app.post_feedback(&ana, body));
    for resp in futures_util::future::join_all(posts).await {
        assert_eq!(resp.status().as_u16(), 201);
    }
    let mut events = app.subscribe().await;

    // Small batches, so the two relays interleave many times.
    let run = |relay: feedback_svc::OutboxRelay| async move {
        let mut published = 0;
        loop {
            let n = relay.process_batch().await.unwrap();
            if n == 0 {
                return published;
            }
            published += n;
        }
    };
    let (a, b) = tokio::join!(run(app.relay(3)), run(app.relay(3)));
    assert_eq!(a + b, N, "published {a} + {b}");

    let mut seen = HashSet::new();
    while seen.len() < N {
        let event = next_event(&mut events, 5)
            .await
            .expect("every event arrives");
        assert!(seen.insert(event.id), "{} delivered twice", event.id);
    }
    // Nothing more arrives.
    assert!(
        tokio::time::timeout(
            Duration::from_millis(500),
            futures_util::StreamExt::next(&mut events)
        )
        .await
        .is_err()
    );
    let history = app.history().await;
    assert_eq!(history.len(), N);
    assert_eq!(history.iter().map(|e| e.id).collect::<HashSet<_>>(), seen);
    let rows = app.outbox().await;
    assert!(
        rows.iter()
            .all(|r| r.published_at.is_some() && r.attempts == 1),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_leased_event_waits_for_its_lease_and_a_lapsed_lease_is_taken_over() {
    let app = spawn_app_without_relay().await;
    let ana = app.user("ana", Role::User);
    app.feedback_ok(&ana, json!({"prediction": 1, "correct": true}))
        .await;
    app.feedback_ok(&ana, json!({"prediction": 2, "correct": true}))
        .await;
    // Another replica holds the first event; a crashed one held the second, its lease over.
    let now = feedback_svc::db::now();
    let claimed = app
        .db
        .run(move |c| {
            use feedback_svc::db::outbox::claim;
            let live = claim(
                c,
                "live-replica",
                now,
                now + chrono::Duration::seconds(60),
                1,
            )?;
            let lapsed = claim(
                c,
                "crashed-replica",
                now,
                now - chrono::Duration::seconds(1),
                1,
            )?;
            Ok::<_, common::db::DbError>((live, lapsed))
        })
        .await
        .unwrap();
    assert_eq!(claimed.0.len(), 1);
    assert_eq!(claimed.1.len(), 1);
    let mut events = app.subscribe().await;
    let relay = app.relay(10);
    assert_eq!(relay.process_batch().await.unwrap(), 1);
    let event = next_event(&mut events, 5).await.unwrap();
    assert_eq!(event.id.to_string(), claimed.1[0].event_id);
    assert_eq!(relay.process_batch().await.unwrap(), 0);
    let rows = app.outbox().await;
    assert!(rows[0].published_at.is_none() && rows[0].claimed_until.is_some());
    assert!(rows[1].published_at.is_some());
    assert_eq!(rows[1].attempts, 2);
}
