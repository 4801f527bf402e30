//! `POST /feedback`.

use super::*;

pub(super) fn feedback_cases(user: &str) -> Vec<Case> {
    let mut cases = body_cases(user);
    cases.extend(value_cases(user));
    cases.extend(number_and_nesting_cases(user));
    cases.extend(header_and_size_cases(user));
    cases
}

/// Broken JSON and wrong content types.
fn body_cases(user: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, body) in broken_json() {
        cases.push(fb(user, "broken JSON", name, body));
    }
    cases.push(fb(user, "broken JSON", "an empty body", Vec::new()));
    let valid = json!({"prediction": 1, "correct": true, "comment": "ok"}).to_string();
    for (name, ct, body) in [
        ("JSON sent as text/plain", Some("text/plain"), valid.clone()),
        ("no Content-Type", None, valid.clone()),
        (
            "form-urlencoded",
            Some("application/x-www-form-urlencoded"),
            "prediction=1&correct=true".to_owned(),
        ),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            "--x\r\n\r\n1\r\n--x--\r\n".to_owned(),
        ),
    ] {
        cases.push(
            post(
                "wrong Content-Type",
                format!("/feedback: {name}"),
                "/feedback",
            )
            .bearer(user)
            .body(ct, body),
        );
    }
    cases
}

/// Missing, mistyped and hostile field values.
fn value_cases(user: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let bodies = feedback_bodies();
    for (group, name, body) in bodies {
        cases.push(fb(user, group, name, body.to_string().into_bytes()));
    }
    cases
}

/// Numbers no type holds, broken Unicode and deep nesting, written as raw JSON.
fn number_and_nesting_cases(user: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, raw) in [
        (
            "prediction 1e400",
            r#"{"prediction": 1e400, "correct": true}"#,
        ),
        (
            "prediction 2^64+1",
            r#"{"prediction": 18446744073709551617, "correct": true}"#,
        ),
        (
            "prediction 99999999999999999999",
            r#"{"prediction": 99999999999999999999, "correct": true}"#,
        ),
        (
            "label 1e400",
            r#"{"prediction": 1, "correct": false, "label": 1e400}"#,
        ),
    ] {
        cases.push(fb(user, "huge numbers", name, raw.into()));
    }
    for (name, raw) in [
        (
            "a lone high surrogate in the comment",
            r#"{"prediction": 1, "correct": true, "comment": "\ud800"}"#,
        ),
        (
            "reversed surrogates in the comment",
            r#"{"prediction": 1, "correct": true, "comment": "\udc00\ud800"}"#,
        ),
    ] {
        cases.push(fb(user, "odd Unicode and NUL", name, raw.into()));
    }
    cases.push(fb(
        user,
        "deeply nested JSON",
        "a 10,000-deep comment",
        format!(
            r#"{{"prediction": 1, "correct": true, "comment": {}}}"#,
            nested_value(10_000)
        )
        .into_bytes(),
    ));
    cases.push(fb(
        user,
        "deeply nested JSON",
        "a 100-deep prediction",
        format!(
            r#"{{"prediction": {}, "correct": true}}"#,
            nested_value(100)
        )
        .into_bytes(),
    ));
    cases
}

/// Bad idempotency keys and oversize bodies.
fn header_and_size_cases(user: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let valid = json!({"prediction": 1, "correct": true, "comment": "ok"}).to_string();
    for (name, key) in [
        ("an empty Idempotency-Key", Vec::new()),
        ("a 300-character Idempotency-Key", vec![b'k'; 300]),
        ("an Idempotency-Key with a space", b"a b".to_vec()),
        ("a non-ASCII Idempotency-Key", "clé".as_bytes().to_vec()),
    ] {
        cases.push(
            fb(user, "bad headers", name, valid.clone().into_bytes())
                .header("idempotency-key", key),
        );
    }
    cases.push(
        post("oversize", "/feedback: JSON over 1 MiB", "/feedback")
            .bearer(user)
            .json(padded_json(
                r#""prediction": 1, "correct": true, "#,
                MIB + 1024,
            ))
            .expect(413),
    );
    cases.push(
        post("oversize", "/feedback: JSON of 100 KiB", "/feedback")
            .bearer(user)
            .json(padded_json(
                r#""prediction": 1, "correct": true, "#,
                100 * 1024,
            ))
            .expect(413),
    );
    cases.push(
        post("oversize", "/feedback: 2 MiB of JSON, chunked", "/feedback")
            .bearer(user)
            .chunked(
                "application/json",
                padded_json(r#""prediction": 1, "#, 2 * MIB),
            )
            .expect(413),
    );
    cases
}

fn fb(user: &str, group: &'static str, name: &str, body: Vec<u8>) -> Case {
    post(group, format!("/feedback: {name}"), "/feedback")
        .bearer(user)
        .json(body)
}

/// (group, case, body) of each bad feedback body.
fn feedback_bodies() -> Vec<(&'static str, &'static str, Value)> {
    let mut all = missing_or_mistyped_feedback();
    all.extend(mistyped_or_huge_feedback());
    all.extend(hostile_feedback());
    all
}

fn missing_or_mistyped_feedback() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("missing fields", "an empty object", json!({})),
        ("missing fields", "no correct", json!({"prediction": 1})),
        ("missing fields", "no prediction", json!({"correct": true})),
        (
            "missing fields",
            "prediction null",
            json!({"prediction": null, "correct": true}),
        ),
        (
            "wrong types",
            "the body an array",
            json!([{"prediction": 1, "correct": true}]),
        ),
        ("wrong types", "the body a number", json!(7)),
        (
            "wrong types",
            "prediction a string",
            json!({"prediction": "1", "correct": true}),
        ),
        (
            "wrong types",
            "prediction 1.5",
            json!({"prediction": 1.5, "correct": true}),
        ),
        (
            "wrong types",
            "prediction true",
            json!({"prediction": true, "correct": true}),
        ),
        (
            "wrong types",
            "prediction an array",
            json!({"prediction": [1], "correct": true}),
        ),
        (
            "wrong types",
            "prediction an object",
            json!({"prediction": {"v": 1}, "correct": true}),
        ),
        (
            "wrong types",
            "prediction 10",
            json!({"prediction": 10, "correct": true}),
        ),
        (
            "wrong types",
            "prediction -1",
            json!({"prediction": -1, "correct": true}),
        ),
        (
            "wrong types",
            "correct a string",
            json!({"prediction": 1, "correct": "yes"}),
        ),
        (
            "wrong types",
            "correct 1",
            json!({"prediction": 1, "correct": 1}),
        ),
    ]
}

fn mistyped_or_huge_feedback() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "wrong types",
            "comment a number",
            json!({"prediction": 1, "correct": true, "comment": 5}),
        ),
        (
            "wrong types",
            "comment an array",
            json!({"prediction": 1, "correct": true, "comment": ["a"]}),
        ),
        (
            "wrong types",
            "comment an object",
            json!({"prediction": 1, "correct": true, "comment": {"a": 1}}),
        ),
        (
            "wrong types",
            "label a string",
            json!({"prediction": 1, "correct": false, "label": "2"}),
        ),
        (
            "wrong types",
            "label 12",
            json!({"prediction": 1, "correct": false, "label": 12}),
        ),
        (
            "wrong types",
            "label equal to a wrong prediction",
            json!({"prediction": 1, "correct": false, "label": 1}),
        ),
        (
            "wrong types",
            "label differing from a right prediction",
            json!({"prediction": 1, "correct": true, "label": 2}),
        ),
        (
            "wrong types",
            "prediction_id a number",
            json!({"prediction": 1, "correct": true, "prediction_id": 5}),
        ),
        (
            "wrong types",
            "an unknown prediction_id",
            json!({"prediction": 1, "correct": true, "prediction_id": UNKNOWN_ID}),
        ),
        (
            "huge numbers",
            "prediction 2^64-1",
            json!({"prediction": u64::MAX, "correct": true}),
        ),
        (
            "huge numbers",
            "prediction -0.0",
            json!({"prediction": -0.0, "correct": true}),
        ),
        (
            "huge numbers",
            "prediction 1e308",
            json!({"prediction": 1e308, "correct": true}),
        ),
    ]
}

fn hostile_feedback() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "huge numbers",
            "prediction i64::MIN",
            json!({"prediction": i64::MIN, "correct": true}),
        ),
        (
            "odd Unicode and NUL",
            "a NUL in the comment",
            json!({"prediction": 1, "correct": true, "comment": "before\u{0}after"}),
        ),
        (
            "odd Unicode and NUL",
            "a 2,001-character RTL and emoji comment",
            json!({"prediction": 1, "correct": true, "comment": "\u{202e}😀".repeat(1001)}),
        ),
        (
            "odd Unicode and NUL",
            "a NUL in the prediction_id",
            json!({"prediction": 1, "correct": true, "prediction_id": "abc\u{0}"}),
        ),
        (
            "odd Unicode and NUL",
            "emoji as the prediction_id",
            json!({"prediction": 1, "correct": true, "prediction_id": "😀"}),
        ),
        (
            "odd Unicode and NUL",
            "a 10,000-character prediction_id",
            json!({"prediction": 1, "correct": true, "prediction_id": "a".repeat(10_000)}),
        ),
        (
            "SQL injection",
            "prediction_id ' OR 1=1 --",
            json!({"prediction": 1, "correct": true, "prediction_id": SQL_OR}),
        ),
        (
            "SQL injection",
            "prediction_id with DROP TABLE",
            json!({"prediction": 1, "correct": true, "prediction_id": SQL_DROP}),
        ),
        (
            "SQL injection",
            "prediction with DROP TABLE",
            json!({"prediction": SQL_DROP, "correct": true}),
        ),
        (
            "SQL injection",
            "correct ' OR 1=1 --",
            json!({"prediction": 1, "correct": SQL_OR}),
        ),
        (
            "path traversal",
            "prediction_id ../../etc/passwd",
            json!({"prediction": 1, "correct": true, "prediction_id": "../../etc/passwd"}),
        ),
    ]
}
