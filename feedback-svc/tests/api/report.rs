use crate::helpers::{expect_error, spawn_app};
use common::jwt::Role;
use serde_json::{Value, json};

#[tokio::test]
async fn with_no_feedback_the_report_is_the_seed_message_and_zeros() {
    let app = spawn_app().await;
    let admin = app.user("boss", Role::Admin);
    let r = app.report(&admin).await;
    assert_eq!(r["msg"], "No hay feedback disponible");
    assert_eq!(r["total_feedback"], 0);
    assert_eq!(r["correct_feedback"], 0);
    assert_eq!(r["incorrect_feedback"], 0);
    assert_eq!(r["by_model_version"], json!([]));
    let daily = r["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 30);
    assert!(daily.iter().all(|d| d["total_feedback"] == 0));
    let matrix = r["confusion_matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 10);
    assert!(matrix.iter().all(|row| *row == json!(vec![0; 10])));
    let ana = app.user("ana", Role::User);
    expect_error(
        app.get("/admin/report", Some(&ana.token)).await,
        403,
        "forbidden",
    )
    .await;
}

fn version<'a>(r: &'a Value, model: Option<&str>, v: Option<i64>) -> &'a Value {
    r["by_model_version"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["model"].as_str() == model && e["model_version"].as_i64() == v)
        .unwrap_or_else(|| panic!("no entry for {model:?} v{v:?} in {r}"))
}

#[tokio::test]
async fn the_reports_numbers_equal_what_was_posted() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let bob = app.user("bob", Role::User);
    let admin = app.user("boss", Role::Admin);
    // mnist-mlp v1: 3 right, 1 wrong (a 3 read as 8).
    for (user, digit) in [(&ana, 1), (&ana, 2), (&bob, 7)] {
        let pid = app.predict.serve(user, "mnist-mlp", 1, digit);
        app.feedback_ok(
            user,
            json!({"prediction": digit, "correct": true, "prediction_id": pid}),
        )
        .await;
    }
    let pid = app.predict.serve(&ana, "mnist-mlp", 1, 8);
    app.feedback_ok(
        &ana,
        json!({"prediction": 8, "correct": false, "label": 3, "prediction_id": pid}),
    )
    .await;
    // mnist-cnn v2: 1 right, 2 wrong (a 3 read as 8 again, and an unlabelled miss).
    let pid = app.predict.serve(&bob, "mnist-cnn", 2, 8);
    app.feedback_ok(
        &bob,
        json!({"prediction": 8, "correct": false, "label": 3, "prediction_id": pid}),
    )
    .await;
    let pid = app.predict.serve(&bob, "mnist-cnn", 2, 4);
    app.feedback_ok(
        &bob,
        json!({"prediction": 4, "correct": false, "prediction_id": pid}),
    )
    .await;
    let pid = app.predict.serve(&ana, "mnist-cnn", 2, 9);
    app.feedback_ok(
        &ana,
        json!({"prediction": 9, "correct": true, "prediction_id": pid}),
    )
    .await;
    // The seed's unlinked feedback: 1 right, 1 wrong.
    app.feedback_ok(&ana, json!({"prediction": 5, "correct": true}))
        .await;
    app.feedback_ok(&bob, json!({"prediction": 6, "correct": false, "label": 0}))
        .await;

    let r = app.report(&admin).await;
    assert!(r.get("msg").is_none(), "{r}");
    assert_eq!(r["total_feedback"], 9);
    assert_eq!(r["correct_feedback"], 5);
    assert_eq!(r["incorrect_feedback"], 4);
    let accuracy = r["accuracy_percentage"].as_f64().unwrap();
    assert!((accuracy - 5.0 / 9.0 * 100.0).abs() < 1e-9, "{accuracy}");

    let mlp = version(&r, Some("mnist-mlp"), Some(1));
    assert_eq!(mlp["total_feedback"], 4);
    assert_eq!(mlp["correct_feedback"], 3);
    assert_eq!(mlp["incorrect_feedback"], 1);
    assert_eq!(mlp["accuracy_percentage"], 75.0);
    let cnn = version(&r, Some("mnist-cnn"), Some(2));
    assert_eq!(cnn["total_feedback"], 3);
    assert_eq!(cnn["correct_feedback"], 1);
    let unlinked = version(&r, None, None);
    assert_eq!(unlinked["total_feedback"], 2);
    assert_eq!(unlinked["accuracy_percentage"], 50.0);

    // Rows: true label; columns: prediction. The unlabelled miss is not in it.
    let m = &r["confusion_matrix"];
    assert_eq!(m[3][8], 2);
    for d in [1, 2, 7, 9, 5] {
        assert_eq!(m[d][d], 1, "diagonal {d}");
    }
    assert_eq!(m[0][6], 1);
    let cells: i64 = m
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|c| c.as_i64().unwrap()))
        .sum();
    assert_eq!(cells, 8);
    assert_eq!(r["labelled_feedback"], 8);

    let daily = r["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 30);
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let last = &daily[29];
    assert_eq!(last["date"], today.as_str());
    assert_eq!(last["total_feedback"], 9);
    assert_eq!(last["correct_feedback"], 5);
    let earlier: i64 = daily[..29]
        .iter()
        .map(|d| d["total_feedback"].as_i64().unwrap())
        .sum();
    assert_eq!(earlier, 0);
}
