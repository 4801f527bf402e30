use crate::helpers::{expect_error, spawn_app};
use common::jwt::Role;
use serde_json::{Value, json};

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_list_paginates_newest_first_and_filters() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let bob = app.user("bob", Role::User);
    let admin = app.user("boss", Role::Admin);
    let mut posted = Vec::new();
    for i in 0..25 {
        let user = if i % 5 == 0 { &bob } else { &ana };
        let body = if i % 4 == 0 {
            json!({"prediction": 2, "correct": false, "label": 7})
        } else {
            json!({"prediction": i % 10, "correct": true})
        };
        posted.push(app.feedback_ok(user, body).await);
    }
    let pid = app.predict.serve(&ana, "mnist-cnn", 4, 1);
    let linked = app
        .feedback_ok(
            &ana,
            json!({"prediction": 1, "correct": true, "prediction_id": pid}),
        )
        .await;
    posted.push(linked);
    let newest_first: Vec<i64> = posted.iter().rev().copied().collect();

    let get = |query: &str| {
        let path = format!("/admin/feedback{query}");
        let token = admin.token.clone();
        let app = &app;
        async move { app.get_ok(&path, Some(&token)).await }
    };
    // Default page size 20.
    let first = get("").await;
    assert_eq!(first["total"], 26);
    assert_eq!(first["per_page"], 20);
    assert_eq!(first["pages"], 2);
    assert_eq!(ids(&first), newest_first[..20]);
    assert!(first["items"][0].get("input").is_none());
    let mut walked = Vec::new();
    for page in 1..=3 {
        let p = get(&format!("?per_page=10&page={page}")).await;
        assert_eq!(p["page"], page);
        assert_eq!(p["pages"], 3);
        walked.extend(ids(&p));
    }
    assert_eq!(walked, newest_first);
    assert_eq!(ids(&get("?per_page=10&page=4").await), Vec::<i64>::new());

    let wrong = get("?correct=false&per_page=100").await;
    assert_eq!(wrong["total"], 7);
    assert!(
        wrong["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["correct"] == false)
    );
    // Seven said a 2 was a 7; two more were 7s read right.
    let sevens = get("?label=7").await;
    assert_eq!(sevens["total"], 9);
    let bobs = get("?username=bob&per_page=100").await;
    assert_eq!(bobs["total"], 5);
    assert!(
        bobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["username"] == "bob")
    );
    assert_eq!(get("?username=bob&correct=false").await["total"], 2);
    let cnn = get("?model=mnist-cnn").await;
    assert_eq!(ids(&cnn), vec![linked]);
    assert_eq!(cnn["items"][0]["model_version"], 4);

    let today = chrono::Utc::now().date_naive();
    let tomorrow = today.succ_opt().unwrap();
    assert_eq!(get(&format!("?since={today}")).await["total"], 26);
    assert_eq!(get(&format!("?until={today}")).await["total"], 26);
    assert_eq!(get(&format!("?since={tomorrow}")).await["total"], 0);
    assert_eq!(get("?until=2020-01-01T00:00:00Z").await["total"], 0);
    assert_eq!(get("?since=2020-01-01T00:00:00%2B02:00").await["total"], 26);

    for bad in [
        "?per_page=101",
        "?per_page=0",
        "?page=0",
        "?page=x",
        "?correct=maybe",
        "?label=10",
        "?since=yesterday",
    ] {
        expect_error(
            app.get(&format!("/admin/feedback{bad}"), Some(&admin.token))
                .await,
            400,
            "invalid_query",
        )
        .await;
    }
    expect_error(
        app.get("/admin/feedback/999999", Some(&admin.token)).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_list_carries_the_inputs_only_when_asked() {
    use base64::Engine;
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let admin = app.user("boss", Role::Admin);
    let pid = app.predict.serve(&ana, "mnist-cnn", 1, 6);
    let linked = app
        .feedback_ok(
            &ana,
            json!({"prediction": 6, "correct": true, "prediction_id": pid}),
        )
        .await;
    let unlinked = app
        .feedback_ok(&ana, json!({"prediction": 2, "correct": true}))
        .await;

    let plain = app.get_ok("/admin/feedback", Some(&admin.token)).await;
    assert!(
        plain["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("input").is_none()),
        "{plain}"
    );

    let with = app
        .get_ok("/admin/feedback?include=input", Some(&admin.token))
        .await;
    let item = |id: &i64| {
        with["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == *id)
            .unwrap()
            .clone()
    };
    let input = base64::engine::general_purpose::STANDARD
        .decode(item(&linked)["input"].as_str().unwrap())
        .unwrap();
    assert_eq!(input, crate::helpers::input_of(&pid));
    assert_eq!(item(&unlinked)["input"], Value::Null);

    expect_error(
        app.get("/admin/feedback?include=secrets", Some(&admin.token))
            .await,
        400,
        "invalid_query",
    )
    .await;
}
