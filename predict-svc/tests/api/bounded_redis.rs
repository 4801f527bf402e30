//! Redis bounded as deployed (docker-compose.yml, k8s dev overlay): `maxmemory` with
//! `volatile-lru`. Served predictions carry their TTL (so they are what may be evicted); keys
//! without one, like the job and history streams, are never evicted; once nothing evictable
//! is left, a prediction is answered 503 `store_unavailable`, not 500.

use crate::helpers::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A private redis-server configured like the deployments, but with a tiny bound.
struct BoundedRedis {
    child: Child,
    port: u16,
}

impl BoundedRedis {
    fn start(maxmemory: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args([
                "--maxmemory",
                maxmemory,
                "--maxmemory-policy",
                "volatile-lru",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("this test needs redis-server on the PATH");
        // Its log says when it accepts connections.
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("Ready to accept connections") => break,
                Some(Ok(_)) => {}
                _ => panic!("redis-server on port {port} did not start"),
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        BoundedRedis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `SET name value`, the value sent on redis-cli's standard input; the answer, trimmed.
    fn set_from_stdin(&self, name: &str, value: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "-x", "SET", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// One command through redis-cli; its answer, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for BoundedRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn predictions_keep_their_ttl_and_a_full_redis_answers_503_keeping_the_streams() {
    let redis = BoundedRedis::start("16mb");
    let backing = Backing::new();
    let mut config = config(&backing, BATCHING);
    config.backends.redis.url = redis.url();
    let ttl = config.prediction_ttl;
    let app = spawn_with(&backing, config).await;
    let png = digits::grid_to_png(&mnist_test().images[0]).unwrap();

    let r = app.upload("v1", "digit.png", png.clone()).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let key = format!(
        "{}predictions:{}",
        backing.prefix,
        body["prediction_id"].as_str().unwrap()
    );
    let pttl: u64 = redis.cli(&["PTTL", &key]).parse().unwrap();
    assert!(
        pttl > 0 && u128::from(pttl) <= ttl.as_millis(),
        "the served prediction's TTL is {pttl} ms"
    );

    // A stream entry, as the job queue and the event history write them, and a large value,
    // neither with a TTL. Then the bound is lowered below what they hold: Redis is full of data
    // it may not evict. (Filling it up to the bound through redis-cli would not stay full: the
    // client's own buffers count, and are freed when it disconnects.)
    let stream = format!("{}jobs:retrain", backing.prefix);
    assert!(!redis.cli(&["XADD", &stream, "*", "job", "{}"]).is_empty());
    let filler = format!("{}filler", backing.prefix);
    let big = "x".repeat(2 * 1024 * 1024);
    assert_eq!(redis.set_from_stdin(&filler, &big), "OK");
    assert_eq!(redis.cli(&["CONFIG", "SET", "maxmemory", "1mb"]), "OK");
    // A write makes Redis try to make room; only keys with a TTL may go.
    assert!(
        redis
            .cli(&["SET", &format!("{}probe", backing.prefix), "1"])
            .starts_with("OOM")
    );
    // The served prediction had a TTL: it was evicted to make room before Redis gave up.
    assert_eq!(redis.cli(&["EXISTS", &key]), "0");

    // Nothing evictable can make room: the prediction cannot be kept, and the client is told
    // to come back, in JSON.
    let r = app.upload("v1", "digit.png", png).await;
    assert_error(r, 503, "store_unavailable").await;

    // Only keys with a TTL were candidates: the stream and the filler are intact.
    assert_eq!(redis.cli(&["XLEN", &stream]), "1");
    assert_eq!(redis.cli(&["STRLEN", &filler]), big.len().to_string());
    assert_eq!(
        redis
            .cli(&["CONFIG", "GET", "maxmemory-policy"])
            .lines()
            .last(),
        Some("volatile-lru")
    );
}
