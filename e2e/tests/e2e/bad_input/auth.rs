//! `/register`, `/login`, `/token/refresh` and `/logout`.

use super::*;

pub(super) fn auth_cases(refresh: &str) -> Vec<Case> {
    let mut cases = body_cases(refresh);
    cases.extend(credential_cases());
    cases.extend(rule_cases());
    cases.extend(refresh_cases(refresh));
    cases
}

/// Broken, mistyped, oversize and deeply nested bodies on each of the three routes.
fn body_cases(refresh: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for route in ["/register", "/login", "/token/refresh"] {
        for (name, body) in broken_json() {
            cases.push(post("broken JSON", format!("{route}: {name}"), route).json(body));
        }
        cases.push(post("broken JSON", format!("{route}: an empty body"), route).json(""));
        let valid = match route {
            "/token/refresh" => json!({"refresh_token": refresh}),
            "/login" => json!({"username": ADMIN.0, "password": ADMIN.1}),
            _ => json!({"username": "fresh-name", "password": "password-123"}),
        }
        .to_string();
        for (name, ct, body) in [
            ("JSON sent as text/plain", Some("text/plain"), valid.clone()),
            ("no Content-Type", None, valid.clone()),
            (
                "application/xml",
                Some("application/xml"),
                "<u>abc</u>".into(),
            ),
            (
                "form-urlencoded",
                Some("application/x-www-form-urlencoded"),
                "username=abc&password=password-123".into(),
            ),
            (
                "multipart",
                Some("multipart/form-data; boundary=x"),
                "--x\r\n\r\nabc\r\n--x--\r\n".into(),
            ),
        ] {
            cases
                .push(post("wrong Content-Type", format!("{route}: {name}"), route).body(ct, body));
        }
        cases.push(
            post("wrong Content-Type", format!("{route}: UTF-16 JSON"), route).body(
                Some("application/json; charset=utf-16"),
                valid
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect::<Vec<u8>>(),
            ),
        );
        cases.push(
            post("oversize", format!("{route}: JSON over 1 MiB"), route)
                .json(padded_json(r#""username": "abc", "#, MIB + 1024))
                .expect(413),
        );
        cases.push(
            post("oversize", format!("{route}: JSON of 100 KiB"), route)
                .json(padded_json(r#""username": "abc", "#, 100 * 1024))
                .expect(413),
        );
        cases.push(
            post(
                "deeply nested JSON",
                format!("{route}: a 10,000-deep field"),
                route,
            )
            .json(format!(
                r#"{{"username": {}, "password": "password-123"}}"#,
                nested_value(10_000)
            )),
        );
    }

    cases
}

/// Bad usernames and passwords, sent to `/register` and `/login`.
fn credential_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let credentials = credential_bodies();
    for route in ["/register", "/login"] {
        for (group, name, body) in &credentials {
            cases.push(post(group, format!("{route}: {name}"), route).json(body.to_string()));
        }
        for (name, raw) in [
            (
                "a lone high surrogate",
                r#"{"username": "\ud800abc", "password": "password-123"}"#,
            ),
            (
                "a lone low surrogate",
                r#"{"username": "abc\udc00", "password": "password-123"}"#,
            ),
        ] {
            cases.push(post("odd Unicode and NUL", format!("{route}: {name}"), route).json(raw));
        }
        for (name, number) in [
            ("1e400", "1e400"),
            ("2^64", "18446744073709551616"),
            ("-0", "-0"),
            ("99999999999999999999", "99999999999999999999"),
        ] {
            cases.push(
                post("huge numbers", format!("{route}: username {name}"), route).json(format!(
                    r#"{{"username": {number}, "password": "password-123"}}"#
                )),
            );
        }
    }
    cases
}

/// What only `/register` refuses (taken names, invalid values), and wrong credentials at `/login`.
fn rule_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // Register-only and login-only rules.
    for (group, name, body) in [
        (
            "taken names",
            "the admin's name",
            json!({"username": ADMIN.0, "password": "password-123"}),
        ),
        (
            "taken names",
            "a user's name",
            json!({"username": "bad-input-user", "password": "password-123"}),
        ),
        (
            "invalid values",
            "a 2-character username",
            json!({"username": "ab", "password": "password-123"}),
        ),
        (
            "invalid values",
            "a 7-byte password",
            json!({"username": "seven-pass", "password": "1234567"}),
        ),
        (
            "invalid values",
            "a 73-byte password",
            json!({"username": "long-73", "password": "p".repeat(73)}),
        ),
    ] {
        cases.push(post(group, format!("/register: {name}"), "/register").json(body.to_string()));
    }
    for (name, body) in [
        (
            "the admin with a wrong password",
            json!({"username": ADMIN.0, "password": "wrong-password"}),
        ),
        (
            "the admin's name with a NUL after it",
            json!({"username": format!("{}\u{0}", ADMIN.0), "password": ADMIN.1}),
        ),
        (
            "the admin's password with a NUL after it",
            json!({"username": ADMIN.0, "password": format!("{}\u{0}", ADMIN.1)}),
        ),
        (
            "an unknown user",
            json!({"username": "nobody-at-all", "password": "password-123"}),
        ),
    ] {
        cases.push(
            post("wrong credentials", format!("/login: {name}"), "/login").json(body.to_string()),
        );
    }

    cases
}

/// Bad bodies for `/token/refresh`.
fn refresh_cases(refresh: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let refresh_bodies: Vec<(&'static str, &str, Value)> = vec![
        ("missing fields", "an empty object", json!({})),
        (
            "missing fields",
            "refresh_token null",
            json!({"refresh_token": null}),
        ),
        (
            "missing fields",
            "refresh_token empty",
            json!({"refresh_token": ""}),
        ),
        (
            "wrong types",
            "refresh_token a number",
            json!({"refresh_token": 5}),
        ),
        (
            "wrong types",
            "refresh_token an array",
            json!({"refresh_token": [refresh]}),
        ),
        (
            "wrong types",
            "refresh_token 1e308",
            json!({"refresh_token": 1e308}),
        ),
        (
            "wrong credentials",
            "a garbage refresh token",
            json!({"refresh_token": "garbage"}),
        ),
        (
            "wrong credentials",
            "an access token as the refresh token",
            json!({"refresh_token": "eyJhbGciOiJFZERTQSJ9.e30.AAAA"}),
        ),
        (
            "SQL injection",
            "refresh_token ' OR 1=1 --",
            json!({"refresh_token": SQL_OR}),
        ),
        (
            "odd Unicode and NUL",
            "a NUL in the refresh token",
            json!({"refresh_token": format!("{refresh}\u{0}")}),
        ),
        (
            "odd Unicode and NUL",
            "a 50,000-character refresh token",
            json!({"refresh_token": "r".repeat(50_000)}),
        ),
        (
            "odd Unicode and NUL",
            "emoji as the refresh token",
            json!({"refresh_token": "🔑🔑🔑"}),
        ),
    ];
    for (group, name, body) in refresh_bodies {
        cases.push(
            post(group, format!("/token/refresh: {name}"), "/token/refresh").json(body.to_string()),
        );
    }
    cases.push(
        post(
            "odd Unicode and NUL",
            "/token/refresh: a lone surrogate",
            "/token/refresh",
        )
        .json(r#"{"refresh_token": "\ud800"}"#),
    );
    cases
}

/// `POST /logout` with bad bodies and bad credentials. No case carries a real refresh token, so
/// none could end a login even if it were wrongly accepted (a 204 fails the case all the same).
pub(super) fn logout_cases(user: &str) -> Vec<Case> {
    let route = "/logout";
    let mut cases = Vec::new();
    for (name, body) in broken_json() {
        cases.push(
            post("broken JSON", format!("{route}: {name}"), route)
                .bearer(user)
                .json(body),
        );
    }
    cases.push(
        post("broken JSON", format!("{route}: an empty body"), route)
            .bearer(user)
            .json("")
            .expect(400),
    );
    for (name, body, status) in [
        ("no refresh_token", json!({}), 400),
        ("an empty refresh_token", json!({"refresh_token": ""}), 400),
        ("a null refresh_token", json!({"refresh_token": null}), 400),
        (
            "a number as refresh_token",
            json!({"refresh_token": 5}),
            422,
        ),
    ] {
        cases.push(
            post("missing fields", format!("{route}: {name}"), route)
                .bearer(user)
                .json(body.to_string())
                .expect(status),
        );
    }
    let valid = json!({"refresh_token": "not-a-refresh-token"}).to_string();
    cases.push(
        post(
            "wrong Content-Type",
            format!("{route}: JSON sent as text/plain"),
            route,
        )
        .bearer(user)
        .body(Some("text/plain"), valid.clone())
        .expect(415),
    );
    for (name, authorization) in [
        ("no token", None),
        ("a garbage token", Some("Bearer garbage".to_owned())),
        ("a Basic credential", Some("Basic YTpi".to_owned())),
    ] {
        cases.push(
            post("bad tokens", format!("POST {route}: {name}"), route)
                .authorization(authorization)
                .json(valid.clone())
                .expect(401),
        );
    }
    cases
}

/// (group, case, body) of each bad username or password.
fn credential_bodies() -> Vec<(&'static str, &'static str, Value)> {
    let mut all = mistyped_credentials();
    all.extend(hostile_credentials());
    all
}

fn mistyped_credentials() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "wrong types",
            "username a number",
            json!({"username": 123, "password": "password-123"}),
        ),
        (
            "wrong types",
            "username an array",
            json!({"username": ["abc"], "password": "password-123"}),
        ),
        (
            "wrong types",
            "username an object",
            json!({"username": {"n": "abc"}, "password": "password-123"}),
        ),
        (
            "wrong types",
            "username true",
            json!({"username": true, "password": "password-123"}),
        ),
        (
            "wrong types",
            "password a number",
            json!({"username": "abcdef", "password": 12345678}),
        ),
        (
            "wrong types",
            "the body an array",
            json!([{"username": "abcdef", "password": "password-123"}]),
        ),
        ("wrong types", "the body a string", json!("username=abcdef")),
        ("wrong types", "the body null", json!(null)),
        ("missing fields", "an empty object", json!({})),
        (
            "missing fields",
            "no password",
            json!({"username": "abcdef"}),
        ),
        (
            "missing fields",
            "no username",
            json!({"password": "password-123"}),
        ),
        (
            "missing fields",
            "empty strings",
            json!({"username": "", "password": ""}),
        ),
        (
            "missing fields",
            "null fields",
            json!({"username": null, "password": null}),
        ),
        (
            "odd Unicode and NUL",
            "a NUL in the username",
            json!({"username": "ab\u{0}cd", "password": "password-123"}),
        ),
    ]
}

fn hostile_credentials() -> Vec<(&'static str, &'static str, Value)> {
    let long_name = "a".repeat(50_000);
    let long_password = "p".repeat(60_000);
    vec![
        (
            "odd Unicode and NUL",
            "a NUL in the password",
            json!({"username": "nul-pass", "password": "pass\u{0}word-123"}),
        ),
        (
            "odd Unicode and NUL",
            "an RTL override in the username",
            json!({"username": "\u{202e}nimda", "password": "password-123"}),
        ),
        (
            "odd Unicode and NUL",
            "emoji as the username",
            json!({"username": "😀😀😀", "password": "password-123"}),
        ),
        (
            "odd Unicode and NUL",
            "a zero-width space in the username",
            json!({"username": "e2e-ad\u{200b}min", "password": "password-123"}),
        ),
        (
            "odd Unicode and NUL",
            "a Cyrillic look-alike username",
            json!({"username": "е2е-аdmin", "password": ADMIN.1}),
        ),
        (
            "odd Unicode and NUL",
            "a 50,000-character username",
            json!({"username": long_name, "password": "password-123"}),
        ),
        (
            "odd Unicode and NUL",
            "a 60,000-byte password",
            json!({"username": "long-pass", "password": long_password}),
        ),
        (
            "SQL injection",
            "username ' OR 1=1 --",
            json!({"username": SQL_OR, "password": "password-123"}),
        ),
        (
            "SQL injection",
            "username admin' --",
            json!({"username": format!("{}' --", ADMIN.0), "password": "x-password"}),
        ),
        (
            "SQL injection",
            "username with DROP TABLE",
            json!({"username": "\"; DROP TABLE users; --", "password": "password-123"}),
        ),
        (
            "SQL injection",
            "password ' OR '1'='1",
            json!({"username": ADMIN.0, "password": "' OR '1'='1"}),
        ),
        (
            "path traversal",
            "username ../../etc/passwd",
            json!({"username": "../../etc/passwd", "password": "password-123"}),
        ),
    ]
}
