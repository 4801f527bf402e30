//! Redis goes away and comes back: feedback is still accepted, and its event reaches the admin
//! once Redis is back. The test runs its own Redis server (the real one, on a free port), since
//! stopping the shared one would disturb every other test.

use crate::feedback::{joined, next_event};
use crate::helpers::*;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct OwnRedis {
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (the tests need Redis installed)");
        let redis = OwnRedis { child: Some(child) };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on {port}");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn feedback_posted_while_redis_is_down_arrives_when_it_is_back() {
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let system = System::start_on(&format!("redis://127.0.0.1:{port}")).await;
    let user = system.user("patient").await;
    let admin = system.admin().await;
    let (mut admin_ws, welcome) = joined(&system, &admin).await;
    assert_eq!(welcome["event"], "message");

    redis.stop();
    let r = system
        .client
        .post(system.at("/feedback"))
        .bearer_auth(&user)
        .json(&json!({"prediction": 4, "correct": true, "comment": "while Redis was down"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "feedback is accepted while Redis is down");
    let created: Value = r.json().await.unwrap();
    assert!(
        next_event(&mut admin_ws, Duration::from_millis(500))
            .await
            .is_none()
    );

    let _redis = OwnRedis::start(port);
    let event = next_event(&mut admin_ws, Duration::from_secs(20))
        .await
        .expect("the event arrives once Redis is back");
    assert_eq!(event["event"], "new_feedback");
    assert_eq!(event["data"]["id"], created["id"]);
    assert_eq!(event["data"]["comment"], "while Redis was down");
}
