use crate::helpers::*;
use std::time::Duration;

#[tokio::test]
async fn events_published_while_the_subscription_was_down_arrive_once_it_is_back() {
    let world = World::new();
    let link = RedisLink::start().await;
    let mut config = world.config(test_settings());
    config.redis.url = link.url.clone();
    let notify = world.spawn_with(config).await;
    let mut ws = notify.connect(&world.auth.admin()).await;
    let before = world.feedback(1).await;
    assert_eq!(next_event(&mut ws).await["id"], before.id.to_string());

    link.cut();
    eventually(Duration::from_secs(5), "the subscription is lost", || {
        notify.stats().subscription_losses == 1
    })
    .await;
    let ready = reqwest::get(format!("{}/ready", notify.url)).await.unwrap();
    assert_eq!(ready.status(), 503);
    // Published on the bus with nobody listening there: only the history has it.
    let missed = world.feedback(2).await;
    link.restore();

    assert_eq!(next_event(&mut ws).await["id"], missed.id.to_string());
    let after = world.feedback(3).await;
    assert_eq!(next_event(&mut ws).await["id"], after.id.to_string());
    assert_silent(&mut ws, Duration::from_millis(300)).await;
    let ready = reqwest::get(format!("{}/ready", notify.url)).await.unwrap();
    assert_eq!(ready.status(), 200);
}
