//! The Redis key-value store, event bus and job queue against the real Redis (a unique key
//! prefix per test), and the database pool against the real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::bus::{Envelope, EventBus, RedisBus};
use common::kv::{KeyValueStore, Redis};
use common::queue::{JobQueue, RedisJobQueue};
use common::testing::{redis_prefix, redis_url};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::json;
use std::time::Duration;

/// A connection under a fresh prefix; every key under it is deleted when this is dropped.
struct TestRedis {
    redis: Redis,
}

impl TestRedis {
    fn new() -> Self {
        TestRedis {
            redis: Redis::connect(&redis_url(), &redis_prefix()).unwrap(),
        }
    }

    fn prefix(&self) -> String {
        self.redis.prefix().to_owned()
    }

    /// A raw command on the server, bypassing the code under test.
    async fn raw<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        cmd.query_async(&mut conn).await.unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.redis.prefix());
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(redis_url()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        })
        .join();
    }
}

/// The next event of a subscription, failing the test when none comes.
async fn next_event(stream: &mut BoxStream<'static, Envelope>) -> Envelope {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("the subscription is still open")
}

mod kv {
    use super::*;

    #[tokio::test]
    async fn set_get_delete() {
        let t = TestRedis::new();
        let kv = &t.redis;
        assert_eq!(kv.get("greeting").await.unwrap(), None);
        kv.set("greeting", b"hola", None).await.unwrap();
        assert_eq!(
            kv.get("greeting").await.unwrap().as_deref(),
            Some(&b"hola"[..])
        );
        // Overwrite.
        kv.set("greeting", b"adios", None).await.unwrap();
        assert_eq!(
            kv.get("greeting").await.unwrap().as_deref(),
            Some(&b"adios"[..])
        );
        // Binary values come back byte for byte.
        let bytes = [0u8, 255, 10, 13, 0, 7];
        kv.set("bytes", &bytes, None).await.unwrap();
        assert_eq!(kv.get("bytes").await.unwrap().as_deref(), Some(&bytes[..]));

        // The key is stored under the prefix, without an expiry.
        let stored: Option<Vec<u8>> = t
            .raw(redis::cmd("GET").arg(format!("{}greeting", t.prefix())))
            .await;
        assert_eq!(stored.as_deref(), Some(&b"adios"[..]));
        let ttl: i64 = t
            .raw(redis::cmd("PTTL").arg(format!("{}greeting", t.prefix())))
            .await;
        assert_eq!(ttl, -1);

        assert!(kv.delete("greeting").await.unwrap());
        assert_eq!(kv.get("greeting").await.unwrap(), None);
        assert!(!kv.delete("greeting").await.unwrap());
    }

    #[tokio::test]
    async fn a_value_set_with_a_ttl_expires() {
        let t = TestRedis::new();
        let kv = &t.redis;
        kv.set("short", b"v", Some(Duration::from_millis(200)))
            .await
            .unwrap();
        kv.set("long", b"v", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(kv.get("short").await.unwrap().is_some());
        let ttl: i64 = t
            .raw(redis::cmd("PTTL").arg(format!("{}short", t.prefix())))
            .await;
        assert!(ttl > 0 && ttl <= 200, "pttl {ttl}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(kv.get("short").await.unwrap(), None);
        assert!(kv.get("long").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn set_if_absent_sets_only_once_until_it_expires() {
        let t = TestRedis::new();
        let kv = &t.redis;
        let ttl = Duration::from_millis(300);
        assert!(kv.set_if_absent("idem", b"first", ttl).await.unwrap());
        assert!(!kv.set_if_absent("idem", b"second", ttl).await.unwrap());
        assert_eq!(
            kv.get("idem").await.unwrap().as_deref(),
            Some(&b"first"[..])
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(kv.set_if_absent("idem", b"third", ttl).await.unwrap());
        assert_eq!(
            kv.get("idem").await.unwrap().as_deref(),
            Some(&b"third"[..])
        );
    }

    #[tokio::test]
    async fn incr_in_window_counts_and_starts_over_after_the_window() {
        let t = TestRedis::new();
        let kv = &t.redis;
        let window = Duration::from_millis(400);
        assert_eq!(kv.incr_in_window("hits", 1, window).await.unwrap(), 1);
        assert_eq!(kv.incr_in_window("hits", 2, window).await.unwrap(), 3);
        assert_eq!(kv.incr_in_window("hits", 1, window).await.unwrap(), 4);
        // Other counters are separate.
        assert_eq!(kv.incr_in_window("other", 1, window).await.unwrap(), 1);
        // The window runs from the first increment: later ones do not extend it.
        let ttl: i64 = t
            .raw(redis::cmd("PTTL").arg(format!("{}hits", t.prefix())))
            .await;
        assert!(ttl > 0 && ttl <= 400, "pttl {ttl}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(kv.incr_in_window("hits", 1, window).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn prefixes_keep_stores_apart() {
        let a = TestRedis::new();
        let b = TestRedis::new();
        a.redis.set("shared", b"a", None).await.unwrap();
        assert_eq!(b.redis.get("shared").await.unwrap(), None);
        b.redis.set("shared", b"b", None).await.unwrap();
        assert_eq!(
            a.redis.get("shared").await.unwrap().as_deref(),
            Some(&b"a"[..])
        );
        assert!(b.redis.delete("shared").await.unwrap());
        assert!(a.redis.get("shared").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error_not_a_hang() {
        // Nothing listens on port 1: connecting is lazy, the first command fails.
        let kv = Redis::connect("redis://127.0.0.1:1", &redis_prefix()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(30), kv.get("x"))
            .await
            .expect("an answer, not a hang");
        assert!(result.is_err());
        assert!(kv.ping().await.is_err());
        assert!(Redis::connect("not a url", "p:").is_err());
    }
}

mod bus {
    use super::*;
    use common::bus::events;

    #[tokio::test]
    async fn a_subscriber_receives_the_published_envelope() {
        let t = TestRedis::new();
        let bus = RedisBus::new(t.redis.clone());
        let mut stream = bus.subscribe(&[events::FEEDBACK_CREATED]).await.unwrap();
        let mut sent = Envelope::new(
            events::FEEDBACK_CREATED,
            json!({"id": 7, "prediction": 3, "correct": false, "comment": "era un 8"}),
        );
        sent.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        bus.publish(&sent).await.unwrap();
        let got = next_event(&mut stream).await;
        assert_eq!(got.id, sent.id);
        assert_eq!(got.kind, "feedback.created");
        assert_eq!(got.data, sent.data);
        assert_eq!(got.traceparent, sent.traceparent);
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn events_go_out_on_the_prefixed_events_channel_as_json() {
        let t = TestRedis::new();
        let bus = RedisBus::new(t.redis.clone());
        let client = redis::Client::open(redis_url()).unwrap();
        let mut raw = client.get_async_pubsub().await.unwrap();
        raw.subscribe(format!("{}events.retrain.progress", t.prefix()))
            .await
            .unwrap();
        let sent = Envelope::new(
            events::RETRAIN_PROGRESS,
            json!({"job_id": "j1", "progress": 0.5}),
        );
        bus.publish(&sent).await.unwrap();
        let mut messages = raw.on_message();
        let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .unwrap()
            .unwrap();
        let payload: serde_json::Value =
            serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
        assert_eq!(payload["type"], "retrain.progress");
        assert_eq!(payload["id"], sent.id.to_string());
        assert_eq!(payload["data"]["progress"], 0.5);
        // UUIDv7, RFC 3339 time.
        assert_eq!(sent.id.get_version_num(), 7);
        assert!(
            chrono::DateTime::parse_from_rfc3339(payload["occurred_at"].as_str().unwrap()).is_ok()
        );
    }

    #[tokio::test]
    async fn events_of_other_types_are_not_received() {
        let t = TestRedis::new();
        let bus = RedisBus::new(t.redis.clone());
        let mut stream = bus
            .subscribe(&[events::FEEDBACK_CREATED, events::MODEL_PROMOTED])
            .await
            .unwrap();
        // Not subscribed: published first, so it would arrive first if it were delivered.
        bus.publish(&Envelope::new(events::RETRAIN_PROGRESS, json!({"n": 1})))
            .await
            .unwrap();
        bus.publish(&Envelope::new(events::RETRAIN_FINISHED, json!({"n": 2})))
            .await
            .unwrap();
        let promoted = Envelope::new(events::MODEL_PROMOTED, json!({"n": 3}));
        bus.publish(&promoted).await.unwrap();
        let created = Envelope::new(events::FEEDBACK_CREATED, json!({"n": 4}));
        bus.publish(&created).await.unwrap();
        assert_eq!(next_event(&mut stream).await.id, promoted.id);
        assert_eq!(next_event(&mut stream).await.id, created.id);
    }

    #[tokio::test]
    async fn a_message_that_is_not_an_envelope_is_skipped() {
        let t = TestRedis::new();
        let bus = RedisBus::new(t.redis.clone());
        let mut stream = bus.subscribe(&[events::FEEDBACK_CREATED]).await.unwrap();
        let _: i64 = t
            .raw(
                redis::cmd("PUBLISH")
                    .arg(format!("{}events.feedback.created", t.prefix()))
                    .arg("{not an envelope"),
            )
            .await;
        let real = Envelope::new(events::FEEDBACK_CREATED, json!({}));
        bus.publish(&real).await.unwrap();
        assert_eq!(next_event(&mut stream).await.id, real.id);
    }

    #[tokio::test]
    async fn another_prefix_does_not_see_the_events() {
        let mine = TestRedis::new();
        let theirs = TestRedis::new();
        let my_bus = RedisBus::new(mine.redis.clone());
        let their_bus = RedisBus::new(theirs.redis.clone());
        let mut stream = my_bus.subscribe(&[events::FEEDBACK_CREATED]).await.unwrap();
        let mut their_stream = their_bus
            .subscribe(&[events::FEEDBACK_CREATED])
            .await
            .unwrap();

        let foreign = Envelope::new(events::FEEDBACK_CREATED, json!({"from": "theirs"}));
        their_bus.publish(&foreign).await.unwrap();
        let own = Envelope::new(events::FEEDBACK_CREATED, json!({"from": "mine"}));
        my_bus.publish(&own).await.unwrap();

        assert_eq!(next_event(&mut stream).await.id, own.id);
        assert_eq!(next_event(&mut their_stream).await.id, foreign.id);
    }

    #[tokio::test]
    async fn every_subscriber_gets_a_copy() {
        let t = TestRedis::new();
        let bus = RedisBus::new(t.redis.clone());
        let mut one = bus.subscribe(&[events::MODEL_PROMOTED]).await.unwrap();
        let mut two = bus.subscribe(&[events::MODEL_PROMOTED]).await.unwrap();
        let sent = Envelope::new(events::MODEL_PROMOTED, json!({"version": 2}));
        bus.publish(&sent).await.unwrap();
        assert_eq!(next_event(&mut one).await, sent);
        assert_eq!(next_event(&mut two).await, sent);
    }
}

mod queue {
    use super::*;

    fn queue(t: &TestRedis) -> RedisJobQueue {
        RedisJobQueue::new(t.redis.clone(), "jobs:retrain", "retrain-worker")
    }

    #[tokio::test]
    async fn an_enqueued_job_is_delivered_with_its_payload() {
        let t = TestRedis::new();
        let q = queue(&t);
        let payload = json!({"job_id": "j1", "model": "mnist-cnn", "epochs": 3});
        let id = q.enqueue(&payload).await.unwrap();
        let job = q
            .next("w1", Duration::from_secs(2))
            .await
            .unwrap()
            .expect("a job");
        assert_eq!(job.id, id);
        assert_eq!(job.payload, payload);
        // Delivered once: nothing more for anyone.
        assert_eq!(
            q.next("w1", Duration::from_millis(100)).await.unwrap(),
            None
        );
        assert_eq!(
            q.next("w2", Duration::from_millis(100)).await.unwrap(),
            None
        );
        // The stream lives under the prefix.
        let len: i64 = t
            .raw(redis::cmd("XLEN").arg(format!("{}jobs:retrain", t.prefix())))
            .await;
        assert_eq!(len, 1);
    }

    #[tokio::test]
    async fn next_waits_for_a_job_enqueued_later() {
        let t = TestRedis::new();
        let q = queue(&t);
        assert_eq!(q.next("w1", Duration::from_millis(50)).await.unwrap(), None);
        let producer = q.clone();
        let enqueue = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            producer.enqueue(&json!({"n": 1})).await.unwrap()
        });
        // A separate connection for the blocking read, as a worker would have.
        let worker = RedisJobQueue::new(
            Redis::connect(&redis_url(), &t.prefix()).unwrap(),
            "jobs:retrain",
            "retrain-worker",
        );
        let job = worker
            .next("w1", Duration::from_secs(3))
            .await
            .unwrap()
            .expect("the job enqueued while waiting");
        assert_eq!(job.id, enqueue.await.unwrap());
    }

    #[tokio::test]
    async fn jobs_are_shared_out_between_consumers() {
        let t = TestRedis::new();
        let q = queue(&t);
        let a = q.enqueue(&json!({"n": 1})).await.unwrap();
        let b = q.enqueue(&json!({"n": 2})).await.unwrap();
        let first = q.next("w1", Duration::from_secs(1)).await.unwrap().unwrap();
        let second = q.next("w2", Duration::from_secs(1)).await.unwrap().unwrap();
        assert_eq!(first.id, a);
        assert_eq!(first.payload, json!({"n": 1}));
        assert_eq!(second.id, b);
        assert_eq!(second.payload, json!({"n": 2}));
    }

    #[tokio::test]
    async fn an_unacknowledged_job_is_reclaimed_by_another_consumer_after_min_idle() {
        let t = TestRedis::new();
        let q = queue(&t);
        let payload = json!({"job_id": "crashy"});
        let id = q.enqueue(&payload).await.unwrap();
        let job = q.next("w1", Duration::from_secs(1)).await.unwrap().unwrap();
        assert_eq!(job.id, id);
        // w1 "crashes" without acknowledging. Not idle long enough yet:
        assert!(
            q.reclaim("w2", Duration::from_secs(60), 10)
                .await
                .unwrap()
                .is_empty()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reclaimed = q
            .reclaim("w2", Duration::from_millis(50), 10)
            .await
            .unwrap();
        assert_eq!(reclaimed.len(), 1);
        assert_eq!(reclaimed[0].id, id);
        assert_eq!(reclaimed[0].payload, payload);
        // Now w2 owns it; still pending until acknowledged.
        assert_eq!(q.pending().await.unwrap(), 1);
        q.ack(&id).await.unwrap();
        assert_eq!(q.pending().await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            q.reclaim("w3", Duration::from_millis(50), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_job_its_worker_keeps_touching_is_not_reclaimed() {
        let t = TestRedis::new();
        let q = queue(&t);
        let id = q.enqueue(&json!({"job_id": "long"})).await.unwrap();
        q.next("w1", Duration::from_secs(1)).await.unwrap().unwrap();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(q.touch("w1", &id).await.unwrap());
            assert!(
                q.reclaim("w2", Duration::from_millis(100), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        // Once the worker stops touching it, it is reclaimed; an acknowledged job cannot be touched.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reclaimed = q
            .reclaim("w2", Duration::from_millis(100), 10)
            .await
            .unwrap();
        assert_eq!(reclaimed.len(), 1);
        // w1 lost it and cannot take it back by touching it.
        assert!(!q.touch("w1", &id).await.unwrap());
        assert!(q.touch("w2", &id).await.unwrap());
        q.ack(&id).await.unwrap();
        assert!(!q.touch("w2", &id).await.unwrap());
    }

    #[tokio::test]
    async fn an_acknowledged_job_is_not_reclaimed() {
        let t = TestRedis::new();
        let q = queue(&t);
        q.enqueue(&json!({"n": 1})).await.unwrap();
        let job = q.next("w1", Duration::from_secs(1)).await.unwrap().unwrap();
        q.ack(&job.id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            q.reclaim("w2", Duration::from_millis(50), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            q.next("w2", Duration::from_millis(100)).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn pending_counts_delivered_unacknowledged_jobs() {
        let t = TestRedis::new();
        let q = queue(&t);
        assert_eq!(q.pending().await.unwrap(), 0);
        for n in 0..3 {
            q.enqueue(&json!({"n": n})).await.unwrap();
        }
        // Enqueued but not delivered: not pending.
        assert_eq!(q.pending().await.unwrap(), 0);
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(
                q.next("w1", Duration::from_secs(1))
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
            );
        }
        assert_eq!(q.pending().await.unwrap(), 3);
        q.ack(&ids[1]).await.unwrap();
        assert_eq!(q.pending().await.unwrap(), 2);
        // Acknowledging twice changes nothing.
        q.ack(&ids[1]).await.unwrap();
        assert_eq!(q.pending().await.unwrap(), 2);
        q.ack(&ids[0]).await.unwrap();
        q.ack(&ids[2]).await.unwrap();
        assert_eq!(q.pending().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn another_prefix_has_its_own_queue() {
        let mine = TestRedis::new();
        let theirs = TestRedis::new();
        queue(&theirs).enqueue(&json!({"n": 1})).await.unwrap();
        let q = queue(&mine);
        assert_eq!(
            q.next("w1", Duration::from_millis(100)).await.unwrap(),
            None
        );
        assert_eq!(queue(&theirs).pending().await.unwrap(), 0);
    }

    // Known defect, kept as a reproducer: `next` blocks on the `Redis` value's shared
    // multiplexed connection, whose response timeout is 5 s (common/src/kv.rs).
    #[tokio::test]
    async fn next_may_block_longer_than_five_seconds() {
        let t = TestRedis::new();
        let q = queue(&t);
        let producer = q.clone();
        let enqueue = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(6)).await;
            producer.enqueue(&json!({"late": true})).await.unwrap()
        });
        let job = q.next("w1", Duration::from_secs(10)).await.unwrap();
        assert_eq!(job.map(|j| j.id), Some(enqueue.await.unwrap()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_consumer_does_not_hold_up_other_commands() {
        let t = TestRedis::new();
        let q = queue(&t);
        q.ensure_group().await.unwrap();
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.next("w1", Duration::from_secs(4)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A worker publishing progress or writing a key while it also waits for jobs.
        t.redis.set("progress", b"50", None).await.unwrap();
        assert!(
            !waiting.is_finished(),
            "the set only went through once the blocking read had ended"
        );
        assert_eq!(waiting.await.unwrap().unwrap(), None);
    }
}

mod postgres {
    use common::db::{Backend, Db, DbError, PoolOptions};
    use common::testing::{TestDatabase, postgres_url};
    use diesel::connection::SimpleConnection;
    use std::time::Duration;

    #[tokio::test]
    async fn connects_to_postgres_pings_and_runs_queries() {
        let test_db = TestDatabase::create();
        let db = Db::connect(&test_db.url, PoolOptions::default())
            .await
            .unwrap();
        assert_eq!(db.backend(), Backend::Postgres);
        db.ping().await.unwrap();

        use diesel::RunQueryDsl;
        use diesel::sql_types::BigInt;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let n = db
            .run(|c| {
                c.batch_execute(
                    "CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT NOT NULL);
                     INSERT INTO items (name) VALUES ('siete'), ('ocho');",
                )?;
                let rows: Vec<Count> =
                    diesel::sql_query("SELECT count(*) AS n FROM items").load(c)?;
                Ok::<_, DbError>(rows[0].n)
            })
            .await
            .unwrap();
        assert_eq!(n, 2);
    }

    #[tokio::test]
    async fn an_unsupported_url_scheme_is_a_config_error_without_the_password() {
        for url in ["mysql://app:hunter2@127.0.0.1/db", "127.0.0.1:5432/db", ""] {
            match Db::connect(url, PoolOptions::default()).await {
                Err(DbError::Config(msg)) => {
                    assert!(msg.contains("postgres://"), "{msg}");
                    assert!(!msg.contains("hunter2"), "the password leaks: {msg}");
                }
                Err(other) => panic!("{url}: expected a Config error, got {other}"),
                Ok(_) => panic!("{url}: connected"),
            }
        }
    }

    #[tokio::test]
    async fn an_unreachable_postgres_is_a_connect_error_soon() {
        let url = "postgres://postgres:hunter2@127.0.0.1:1/postgres";
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            Db::connect(url, PoolOptions::default()),
        )
        .await
        .expect("an answer, not a hang");
        match result {
            Err(e @ DbError::Connect(_)) => {
                let msg = e.to_string();
                assert!(msg.contains("cannot connect"), "{msg}");
                assert!(!msg.contains("hunter2"), "the password leaks: {msg}");
                assert!(msg.contains("127.0.0.1"), "which server is not said: {msg}");
            }
            Err(other) => panic!("expected a Connect error, got {other}"),
            Ok(_) => panic!("connected to port 1"),
        }
    }

    // Known defect, kept as a reproducer: the first connection goes through the
    // `MultiConnection` (common/src/db.rs `connect_blocking`), whose error is only
    // "Invalid connection url for multiconnection", not PostgreSQL's reason.
    #[tokio::test]
    async fn a_connect_error_says_why() {
        let refused = Db::connect(
            "postgres://postgres@127.0.0.1:1/postgres",
            PoolOptions::default(),
        )
        .await
        .err()
        .unwrap()
        .to_string();
        assert!(refused.to_lowercase().contains("refused"), "{refused}");
        let base = postgres_url().rsplit_once('/').unwrap().0.to_owned();
        let missing = Db::connect(&format!("{base}/pl_no_such_db"), PoolOptions::default())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("does not exist"), "{missing}");
    }

    #[tokio::test]
    async fn a_missing_database_is_an_error_unless_creation_is_asked_for() {
        let name = format!("pl_test_{}", uuid::Uuid::new_v4().simple());
        let base = postgres_url().rsplit_once('/').unwrap().0.to_owned();
        let url = format!("{base}/{name}");
        match Db::connect(&url, PoolOptions::default()).await {
            Err(DbError::Connect(msg)) => assert!(msg.contains(&name), "{msg}"),
            Err(other) => panic!("expected a Connect error, got {other}"),
            Ok(_) => panic!("the database exists already"),
        }
        let created = Db::connect(
            &url,
            PoolOptions {
                create_database: true,
                ..Default::default()
            },
        )
        .await;
        let ping = match &created {
            Ok(db) => db.ping().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        drop(created);
        let admin_url = postgres_url();
        tokio::task::spawn_blocking(move || common::testing::drop_database(&admin_url, &name))
            .await
            .unwrap()
            .unwrap();
        ping.unwrap();
    }

    #[tokio::test]
    async fn an_exhausted_pool_is_a_pool_timeout() {
        let test_db = TestDatabase::create();
        let db = Db::connect(
            &test_db.url,
            PoolOptions {
                max_size: 1,
                connect_timeout: Duration::from_millis(300),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let busy = db.clone();
        let (holding_tx, holding_rx) = tokio::sync::oneshot::channel();
        let holder = tokio::spawn(async move {
            busy.run(move |c| {
                // The pool's only connection is taken from here on.
                let _ = holding_tx.send(());
                c.batch_execute("SELECT pg_sleep(2)")?;
                Ok::<_, DbError>(())
            })
            .await
        });
        holding_rx.await.unwrap();
        match db.ping().await {
            Err(DbError::PoolTimeout(_)) => {}
            other => panic!("expected a pool timeout, got {other:?}"),
        }
        holder.await.unwrap().unwrap();
        db.ping().await.unwrap();
    }

    /// The exit status the child below ends with, so that the parent knows it really ran.
    const CHILD_EXIT: i32 = 42;
    const CHILD_VAR: &str = "PREDICTLOOP_EXIT_CHILD";

    /// Run as a child process by the test below (and nothing without its variable, so that no
    /// test run that includes ignored tests is ended by it): connects once, as a test's or a
    /// service's set-up does, leaves threads connecting to PostgreSQL, and ends the process
    /// under them.
    #[test]
    #[ignore = "a child process of a_process_ending_while_threads_connect_to_postgres_exits_cleanly"]
    fn child_ends_while_threads_connect() {
        if std::env::var_os(CHILD_VAR).is_none() {
            return;
        }
        let url = postgres_url();
        drop(common::db::establish_postgres(&url));
        for _ in 0..6 {
            let url = url.clone();
            std::thread::spawn(move || {
                loop {
                    drop(common::db::establish_postgres(&url));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(30));
        std::process::exit(CHILD_EXIT);
    }

    /// Left to libpq, OpenSSL is initialised with a clean-up at exit that frees its state under
    /// the threads still inside a TLS connection: test processes crashed at exit (about one
    /// such exit in fifteen here) until `establish_postgres` initialised it first. Only a
    /// server that offers TLS can show it.
    #[test]
    fn a_process_ending_while_threads_connect_to_postgres_exits_cleanly() {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Tls {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            ssl: bool,
        }
        let mut conn = common::db::establish_postgres(&postgres_url()).unwrap();
        let tls: Vec<Tls> =
            diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .load(&mut conn)
                .unwrap();
        if !tls.first().is_some_and(|t| t.ssl) {
            eprintln!("skipped: this PostgreSQL does not offer TLS, so the crash cannot happen");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        for run in 1..=40 {
            let status = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "postgres::child_ends_while_threads_connect",
                    "--ignored",
                ])
                .env(CHILD_VAR, "1")
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert_eq!(
                status.code(),
                Some(CHILD_EXIT),
                "exit {run} of 40 ended with {status}"
            );
        }
    }
}
