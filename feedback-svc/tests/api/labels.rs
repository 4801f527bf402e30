//! Labels you can trust: who labelled what, admins' exclusions, and the snapshot a training job
//! reads.

use crate::helpers::{
    Options, Store, TestApp, TestUser, expect_error, spawn_app, spawn_app_with,
    spawn_app_without_relay,
};
use common::bus::Envelope;
use common::jwt::Role;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::{Value, json};

/// Posts a labelled feedback on a served prediction (so it has an input); returns its id.
async fn labelled(app: &TestApp, user: &TestUser, digit: u8) -> i64 {
    let pid = app.predict.serve(user, "mnist-mlp", 1, digit);
    app.feedback_ok(
        user,
        json!({"prediction": digit, "correct": true, "prediction_id": pid}),
    )
    .await
}

/// A reader of `GET /internal/feedback/labelled` as a training job reads it: one item a page,
/// the cursor and the first page's snapshot passed back.
struct Job<'a> {
    app: &'a TestApp,
    after: i64,
    as_of: Option<String>,
    items: Vec<Value>,
    done: bool,
}

impl<'a> Job<'a> {
    fn new(app: &'a TestApp) -> Self {
        Job {
            app,
            after: 0,
            as_of: None,
            items: Vec::new(),
            done: false,
        }
    }

    /// Reads one page.
    async fn page(&mut self) {
        assert!(!self.done, "the job has read everything");
        let mut query = vec![("after", self.after.to_string()), ("limit", "1".to_owned())];
        if let Some(as_of) = &self.as_of {
            query.push(("as_of", as_of.clone()));
        }
        let resp = self
            .app
            .client
            .get(self.app.url("/internal/feedback/labelled"))
            .bearer_auth(&self.app.service)
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        let as_of = page["as_of"].as_str().unwrap().to_owned();
        assert!(!as_of.is_empty());
        if let Some(taken) = &self.as_of {
            assert_eq!(*taken, as_of, "a page answers the snapshot it was given");
        }
        self.as_of = Some(as_of);
        self.items
            .extend(page["items"].as_array().unwrap().iter().cloned());
        self.after = page["next_cursor"].as_i64().unwrap();
        self.done = page["has_more"] == false;
    }

    /// Reads the remaining pages; returns the ids read, in order.
    async fn finish(mut self) -> Vec<i64> {
        while !self.done {
            self.page().await;
        }
        self.ids()
    }

    fn ids(&self) -> Vec<i64> {
        self.items
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    }
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// A transaction that inserted a labelled feedback and is not committed yet.
struct OpenTransaction {
    conn: PgConnection,
    id: i64,
}

impl OpenTransaction {
    async fn insert(url: String, user: &TestUser) -> Self {
        let sub = user.sub.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = common::db::establish_postgres(&url).unwrap();
            conn.batch_execute("BEGIN").unwrap();
            let row: Inserted = diesel::sql_query(
                "INSERT INTO feedback.feedback
                     (user_id, username, prediction, correct, label, input, request_hash, created_at)
                 VALUES ($1, 'late', 4, true, 4, decode(repeat('07', 784), 'hex'), 'h', now())
                 RETURNING id",
            )
            .bind::<Text, _>(sub)
            .get_result(&mut conn)
            .unwrap();
            OpenTransaction { conn, id: row.id }
        })
        .await
        .unwrap()
    }

    async fn commit(self) {
        let mut conn = self.conn;
        tokio::task::spawn_blocking(move || conn.batch_execute("COMMIT").unwrap())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_job_reads_what_was_committed_before_it_started_once_whatever_the_commit_order() {
    let app = spawn_app().await;
    let ana = app.user("ana", Role::User);
    let first = labelled(&app, &ana, 1).await;
    // A transaction draws the next id and stays open while a higher id commits.
    let late = OpenTransaction::insert(app.database_url(), &ana).await;
    let early = labelled(&app, &ana, 2).await;
    let (low, high) = (late.id, early);
    assert!(first < low && low < high, "{first} < {low} < {high}");

    // A job starts between the two commits: it reads the early row, not the late one, even
    // once the late one commits while it reads, nor what commits after it with a higher id.
    let mut between = Job::new(&app);
    between.page().await;
    assert_eq!(between.ids(), vec![first]);
    late.commit().await;
    let after_both = labelled(&app, &ana, 3).await;
    assert_eq!(between.finish().await, vec![first, high]);

    // A job that starts after both commits reads each row once, the late one included.
    let next = Job::new(&app).finish().await;
    assert_eq!(next, vec![first, low, high, after_both]);

    // Without a snapshot, paging by id alone would have skipped the late row: a reader past
    // `high` never comes back to `low`.
    let page = app
        .get_ok(
            &format!("/internal/feedback/labelled?after={high}"),
            Some(&app.service),
        )
        .await;
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![after_both]);

    for bad in ["x", "5:4:", "1:9:9", "12"] {
        expect_error(
            app.get(
                &format!("/internal/feedback/labelled?as_of={bad}"),
                Some(&app.service),
            )
            .await,
            400,
            "invalid_query",
        )
        .await;
    }
}

/// The `labels.excluded` events of the outbox.
async fn exclusion_events(app: &TestApp) -> Vec<Envelope> {
    app.outbox()
        .await
        .iter()
        .map(|row| serde_json::from_str::<Envelope>(&row.payload).unwrap())
        .filter(|e| e.kind == contracts::events::kinds::LABELS_EXCLUDED)
        .collect()
}

async fn exclude(app: &TestApp, id: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/admin/users/{id}/labels/exclude")));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn an_excluded_users_labels_leave_training_and_the_exclusion_is_announced_once() {
    let app = spawn_app_without_relay().await;
    let ana = app.user("ana", Role::User);
    let bo = app.user("bo", Role::User);
    let boss = app.user("boss", Role::Admin);
    let ana_ids = [labelled(&app, &ana, 1).await, labelled(&app, &ana, 2).await];
    // Labelled without an input: not for training, but one of ana's labels.
    app.feedback_ok(&ana, json!({"prediction": 5, "correct": true}))
        .await;
    let bo_id = labelled(&app, &bo, 3).await;
    let boss_id = labelled(&app, &boss, 4).await;

    // Each item says who labelled it and whether an admin did.
    let job = Job::new(&app).finish().await;
    assert_eq!(job, vec![ana_ids[0], ana_ids[1], bo_id, boss_id]);
    let page = app
        .get_ok("/internal/feedback/labelled", Some(&app.service))
        .await;
    let who: Vec<(String, bool)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["user_id"].as_str().unwrap().to_owned(),
                i["trusted"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected = [(&ana, false), (&ana, false), (&bo, false), (&boss, true)];
    assert_eq!(who, expected.map(|(u, t)| (u.sub.clone(), t)).to_vec());

    let resp = exclude(&app, &ana.sub, Some(&boss.token)).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["user_id"], ana.sub.as_str());
    assert_eq!(answer["labels"], 3);
    assert_eq!(answer["already_excluded"], false);
    assert_eq!(answer["excluded_by"], "boss");
    assert!(answer["excluded_at"].is_string());

    assert_eq!(Job::new(&app).finish().await, vec![bo_id, boss_id]);
    let events = exclusion_events(&app).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].data,
        json!({"user_id": ana.sub, "excluded_by": "boss", "labels": 3})
    );

    // Again: nothing changes, nothing more is announced.
    let resp = exclude(&app, &ana.sub, Some(&boss.token)).await;
    assert_eq!(resp.status(), 200);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["already_excluded"], true);
    assert_eq!(again["excluded_at"], answer["excluded_at"]);
    assert_eq!(exclusion_events(&app).await.len(), 1);

    // What ana labels later is stored (and reported) but trains nothing either.
    labelled(&app, &ana, 6).await;
    assert_eq!(Job::new(&app).finish().await, vec![bo_id, boss_id]);
    assert_eq!(app.report(&boss).await["total_feedback"], 6);

    // feedback-svc keeps no users: an id nobody used has no labels to exclude.
    let resp = exclude(&app, "nobody", Some(&boss.token)).await;
    assert_eq!(resp.status(), 200);
    let nobody: Value = resp.json().await.unwrap();
    assert_eq!(nobody["labels"], 0);
    assert_eq!(nobody["already_excluded"], false);
}

#[tokio::test]
async fn only_an_admin_excludes_labels() {
    let app = spawn_app_without_relay().await;
    let ana = app.user("ana", Role::User);
    let boss = app.user("boss", Role::Admin);
    labelled(&app, &ana, 1).await;
    expect_error(exclude(&app, &ana.sub, None).await, 401, "missing_token").await;
    expect_error(
        exclude(&app, &ana.sub, Some(&ana.token)).await,
        403,
        "forbidden",
    )
    .await;
    let long = "u".repeat(129);
    for bad in [long.as_str(), "a%01b"] {
        expect_error(
            exclude(&app, bad, Some(&boss.token)).await,
            400,
            "invalid_path",
        )
        .await;
    }
    let resp = app
        .client
        .get(app.url(&format!("/admin/users/{}/labels/exclude", ana.sub)))
        .bearer_auth(&boss.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    // Nothing was excluded.
    assert_eq!(Job::new(&app).finish().await.len(), 1);
    assert!(exclusion_events(&app).await.is_empty());
}

#[tokio::test]
async fn on_sqlite_a_job_reads_its_snapshot_and_exclusions_hold() {
    let mut options = Options::new(Store::sqlite());
    options.relay_enabled = false;
    let app = spawn_app_with(options).await;
    let ana = app.user("ana", Role::User);
    let boss = app.user("boss", Role::Admin);
    let first = labelled(&app, &ana, 1).await;
    let second = labelled(&app, &boss, 2).await;
    let mut job = Job::new(&app);
    job.page().await;
    let later = labelled(&app, &ana, 3).await;
    assert_eq!(job.finish().await, vec![first, second]);
    assert_eq!(Job::new(&app).finish().await, vec![first, second, later]);

    let resp = exclude(&app, &ana.sub, Some(&boss.token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["labels"], 2);
    assert_eq!(Job::new(&app).finish().await, vec![second]);
    assert_eq!(exclusion_events(&app).await.len(), 1);
}
