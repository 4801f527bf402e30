//! The admin routes: feedback listing, retrain jobs, models.

use super::*;

pub(super) fn admin_cases(admin: &str) -> Vec<Case> {
    let mut cases = feedback_listing_cases(admin);
    cases.extend(retrain_cases(admin));
    cases.extend(job_cases(admin));
    cases.extend(promote_cases(admin));
    cases
}

/// `/admin/feedback` with bad queries and ids.
fn feedback_listing_cases(admin: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let list = |group: &'static str, name: &str, query: &str| {
        get(
            group,
            format!("/admin/feedback: {name}"),
            format!("/admin/feedback?{query}"),
        )
        .bearer(admin)
    };
    let queries = listing_queries();
    for (group, name, query) in queries {
        cases.push(list(group, name, &query));
    }
    for (name, id) in [
        ("a word", "abc".to_owned()),
        ("an SQL injection", enc("1 OR 1=1")),
        ("2^64", "18446744073709551616".to_owned()),
        ("-1", "-1".to_owned()),
        ("1e400", "1e400".to_owned()),
        ("emoji", enc("😀")),
        ("invalid UTF-8", "%FF".to_owned()),
        ("an extra segment", "1/extra".to_owned()),
    ] {
        cases.push(
            get(
                "unknown ids",
                format!("/admin/feedback/{{id}}: {name}"),
                format!("/admin/feedback/{id}"),
            )
            .bearer(admin),
        );
    }

    cases
}

/// `POST /admin/retrain` with bad bodies.
fn retrain_cases(admin: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let retrain = |group: &'static str, name: &str, body: Vec<u8>| {
        post(group, format!("/admin/retrain: {name}"), "/admin/retrain")
            .bearer(admin)
            .json(body)
    };
    for (name, body) in broken_json() {
        cases.push(retrain("broken JSON", name, body));
    }
    let bodies = retrain_bodies();
    for (group, name, body) in bodies {
        cases.push(retrain(group, name, body.into()));
    }
    cases.push(retrain(
        "deeply nested JSON",
        "a 10,000-deep model",
        format!(r#"{{"model": {}}}"#, nested_value(10_000)).into_bytes(),
    ));
    for (name, ct, body) in [
        (
            "form-urlencoded",
            Some("application/x-www-form-urlencoded"),
            "epochs=3",
        ),
        ("text/plain prose", Some("text/plain"), "please retrain"),
        ("no Content-Type, not JSON", None, "epochs=3"),
    ] {
        cases.push(
            post(
                "wrong Content-Type",
                format!("/admin/retrain: {name}"),
                "/admin/retrain",
            )
            .bearer(admin)
            .body(ct, body),
        );
    }
    cases.push(retrain("oversize", "a 5 KiB body", padded_json("", 5 * 1024)).expect(413));
    cases.push(retrain("oversize", "a body over 1 MiB", padded_json("", MIB + 1024)).expect(413));

    cases
}

/// `GET /admin/retrain` with bad queries and ids.
fn job_cases(admin: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let jobs = |group: &'static str, name: &str, query: &str| {
        get(
            group,
            format!("GET /admin/retrain: {name}"),
            format!("/admin/retrain?{query}"),
        )
        .bearer(admin)
    };
    cases.extend([
        jobs("bad query parameters", "state=bogus", "state=bogus"),
        jobs("bad query parameters", "limit=0", "limit=0"),
        jobs("bad query parameters", "limit=201", "limit=201"),
        jobs("bad query parameters", "limit=abc", "limit=abc"),
        jobs("huge numbers", "limit=1e400", "limit=1e400"),
        jobs("huge numbers", "limit=-0", "limit=-0"),
        jobs("huge numbers", "limit=2^64", "limit=18446744073709551616"),
        jobs(
            "SQL injection",
            "state=' OR 1=1 --",
            &format!("state={}", enc(SQL_OR)),
        ),
        jobs(
            "SQL injection",
            "limit with DROP TABLE",
            &format!("limit={}", enc("1; DROP TABLE jobs")),
        ),
        jobs("odd Unicode and NUL", "state=NUL", "state=%00"),
        jobs("odd Unicode and NUL", "before=NUL", "before=%00"),
    ]);
    for (name, id) in [
        ("an unknown id", "nope".to_owned()),
        ("an SQL injection", enc(SQL_OR)),
        ("a DROP TABLE", enc(SQL_DROP)),
        ("emoji", enc("😀")),
        ("an RTL override", enc("\u{202e}job")),
        ("invalid UTF-8", "%FF%FE".to_owned()),
        ("a 2,000-character id", "j".repeat(2000)),
    ] {
        cases.push(
            get(
                "unknown ids",
                format!("/admin/retrain/{{id}}: {name}"),
                format!("/admin/retrain/{id}"),
            )
            .bearer(admin),
        );
    }

    cases
}

/// Promoting models and versions that do not exist.
fn promote_cases(admin: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, model, version) in [
        ("an unknown model", "nope".to_owned(), "1".to_owned()),
        ("an SQL-injection model", enc(SQL_OR), "1".to_owned()),
        ("version abc", "mnist-cnn".to_owned(), "abc".to_owned()),
        ("version 999", "mnist-cnn".to_owned(), "999".to_owned()),
        ("version -1", "mnist-cnn".to_owned(), "-1".to_owned()),
        ("version 0", "mnist-mlp".to_owned(), "0".to_owned()),
        (
            "version 2^64",
            "mnist-cnn".to_owned(),
            "18446744073709551616".to_owned(),
        ),
        ("version 1e400", "mnist-cnn".to_owned(), "1e400".to_owned()),
        (
            "version with DROP TABLE",
            "mnist-cnn".to_owned(),
            enc("1; DROP TABLE versions"),
        ),
        ("an invalid UTF-8 model", "%FF".to_owned(), "1".to_owned()),
    ] {
        cases.push(
            post(
                "unknown ids",
                format!("promote: {name}"),
                format!("/admin/models/{model}/versions/{version}/promote"),
            )
            .bearer(admin),
        );
    }
    cases.push(
        post(
            "unknown ids",
            "promote: an extra segment",
            "/admin/models/mnist-cnn/versions/1/promote/now",
        )
        .bearer(admin),
    );
    cases
}

/// (group, case, query) of each bad `/admin/feedback` query.
fn listing_queries() -> Vec<(&'static str, &'static str, String)> {
    let mut all = malformed_listing_queries();
    all.extend(hostile_listing_queries());
    all
}

fn malformed_listing_queries() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("bad query parameters", "page=abc", "page=abc".into()),
        ("bad query parameters", "page=0", "page=0".into()),
        ("bad query parameters", "page=1.5", "page=1.5".into()),
        ("bad query parameters", "page twice", "page=1&page=2".into()),
        ("bad query parameters", "per_page=0", "per_page=0".into()),
        (
            "bad query parameters",
            "per_page=101",
            "per_page=101".into(),
        ),
        (
            "bad query parameters",
            "correct=maybe",
            "correct=maybe".into(),
        ),
        (
            "bad query parameters",
            "correct=TRUE",
            "correct=TRUE".into(),
        ),
        ("bad query parameters", "label=10", "label=10".into()),
        ("bad query parameters", "label=-1", "label=-1".into()),
        (
            "bad query parameters",
            "since=yesterday",
            "since=yesterday".into(),
        ),
        (
            "bad query parameters",
            "until=2024-13-45",
            "until=2024-13-45".into(),
        ),
        (
            "bad query parameters",
            "since=0000-00-00",
            "since=0000-00-00".into(),
        ),
        (
            "bad query parameters",
            "page invalid UTF-8",
            "page=%FF%FE".into(),
        ),
        ("huge numbers", "page=-0", "page=-0".into()),
        ("huge numbers", "page=1e400", "page=1e400".into()),
        (
            "huge numbers",
            "page=99999999999999999999",
            "page=99999999999999999999".into(),
        ),
        (
            "huge numbers",
            "page=2^64",
            "page=18446744073709551616".into(),
        ),
        ("huge numbers", "per_page=1e3", "per_page=1e3".into()),
        (
            "SQL injection",
            "page=' OR 1=1 --",
            format!("page={}", enc(SQL_OR)),
        ),
    ]
}

fn hostile_listing_queries() -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "SQL injection",
            "correct=' OR '1'='1",
            format!("correct={}", enc("' OR '1'='1")),
        ),
        (
            "SQL injection",
            "label with DROP TABLE",
            format!("label={}", enc("1; DROP TABLE feedback; --")),
        ),
        (
            "SQL injection",
            "since=' OR 1=1 --",
            format!("since={}", enc(SQL_OR)),
        ),
        (
            "SQL injection",
            "per_page with DROP TABLE",
            format!("per_page={}", enc(SQL_DROP)),
        ),
        ("odd Unicode and NUL", "username=NUL", "username=%00".into()),
        (
            "odd Unicode and NUL",
            "model with a NUL",
            "model=mnist-cnn%00".into(),
        ),
        ("odd Unicode and NUL", "until=NUL", "until=%00".into()),
        (
            "odd Unicode and NUL",
            "page=emoji",
            format!("page={}", enc("😀")),
        ),
        (
            "path traversal",
            "since=../../etc/passwd",
            format!("since={}", enc("../../etc/passwd")),
        ),
    ]
}

/// (group, case, body) of each bad retrain request.
fn retrain_bodies() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut all = malformed_retrain_bodies();
    all.extend(hostile_retrain_bodies());
    all
}

fn malformed_retrain_bodies() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("wrong types", "the body null", "null"),
        ("wrong types", "the body an array", "[]"),
        ("wrong types", "the body a string", r#""mnist-cnn""#),
        ("wrong types", "the body a number", "5"),
        ("wrong types", "model unknown", r#"{"model": "nope"}"#),
        ("wrong types", "model a number", r#"{"model": 5}"#),
        ("wrong types", "model empty", r#"{"model": ""}"#),
        ("wrong types", "epochs a string", r#"{"epochs": "3"}"#),
        ("wrong types", "epochs 0", r#"{"epochs": 0}"#),
        ("wrong types", "epochs -1", r#"{"epochs": -1}"#),
        ("wrong types", "epochs 1.5", r#"{"epochs": 1.5}"#),
        ("wrong types", "epochs 31", r#"{"epochs": 31}"#),
        (
            "wrong types",
            "from_scratch a string",
            r#"{"from_scratch": "yes"}"#,
        ),
        ("wrong types", "from_scratch 1", r#"{"from_scratch": 1}"#),
        ("wrong types", "mnist_sample -1", r#"{"mnist_sample": -1}"#),
        (
            "wrong types",
            "mnist_sample 60001",
            r#"{"mnist_sample": 60001}"#,
        ),
        (
            "wrong types",
            "an unknown field",
            r#"{"learning_rate": 0.1}"#,
        ),
        ("huge numbers", "epochs -0", r#"{"epochs": -0}"#),
        ("huge numbers", "epochs 1e400", r#"{"epochs": 1e400}"#),
        (
            "huge numbers",
            "epochs 2^64",
            r#"{"epochs": 18446744073709551616}"#,
        ),
        (
            "huge numbers",
            "epochs 99999999999999999999",
            r#"{"epochs": 99999999999999999999}"#,
        ),
        (
            "huge numbers",
            "mnist_sample 1e10",
            r#"{"mnist_sample": 1e10}"#,
        ),
        (
            "odd Unicode and NUL",
            "a NUL in the model",
            r#"{"model": "mnist-cnn\u0000"}"#,
        ),
        (
            "odd Unicode and NUL",
            "a lone surrogate in the model",
            r#"{"model": "\ud800"}"#,
        ),
    ]
}

fn hostile_retrain_bodies() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "odd Unicode and NUL",
            "an RTL mark in the model",
            r#"{"model": "\u200fmnist-cnn"}"#,
        ),
        (
            "SQL injection",
            "model ' OR 1=1 --",
            r#"{"model": "' OR 1=1 --"}"#,
        ),
        (
            "SQL injection",
            "model with DROP TABLE",
            r#"{"model": "\"; DROP TABLE jobs; --"}"#,
        ),
        (
            "path traversal",
            "model ../../etc/passwd",
            r#"{"model": "../../etc/passwd"}"#,
        ),
    ]
}
