//! The bad-input suite: hundreds of malformed, hostile or unauthorised requests to every public
//! route, through the gateway. Each must be answered with a 4xx JSON error (`{"error", "msg"}`),
//! never a 5xx: a bad token is a 401, a user on an admin route a 403, an oversize body a 413
//! (a 429 is always acceptable: the gateway rate-limits). Afterwards every service is still
//! ready and a normal predict → feedback → report flow works.
//!
//! Failures are collected and reported together, one line per case: the group and case, the
//! request, the answer (status, body, and whether the gateway itself or an upstream answered).

use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::jwt::{Role, SigningKeyPair};
use ed25519_dalek::Signer;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const MIB: usize = 1024 * 1024;
const BOUNDARY: &str = "bad-input-boundary-7d1f";
const SQL_OR: &str = "' OR 1=1 --";
const SQL_DROP: &str = "\"; DROP TABLE feedback; --";
/// A well-formed prediction id that was never served.
const UNKNOWN_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

// ---------------------------------------------------------------------------------------------
// Cases and how they are sent

enum Payload {
    None,
    /// A body with a Content-Length, and its Content-Type if any.
    Bytes(Option<String>, Vec<u8>),
    /// A body sent in chunks, without a Content-Length.
    Chunked(String, Vec<u8>),
    /// Only a Content-Length header claiming this many bytes, and no body (sent raw).
    Declared(String, u64),
}

struct Case {
    group: &'static str,
    name: String,
    method: Method,
    path: String,
    authorization: Option<String>,
    headers: Vec<(&'static str, Vec<u8>)>,
    payload: Payload,
    /// Sent over a plain TCP socket, so that the path reaches the gateway byte for byte (an
    /// HTTP client resolves `..` and `%2e%2e` before sending).
    raw: bool,
    /// The one status this case must get; otherwise any 4xx.
    expect: Option<u16>,
}

fn case(
    group: &'static str,
    name: impl Into<String>,
    method: Method,
    path: impl Into<String>,
) -> Case {
    Case {
        group,
        name: name.into(),
        method,
        path: path.into(),
        authorization: None,
        headers: Vec::new(),
        payload: Payload::None,
        raw: false,
        expect: None,
    }
}

fn get(group: &'static str, name: impl Into<String>, path: impl Into<String>) -> Case {
    case(group, name, Method::GET, path)
}

fn post(group: &'static str, name: impl Into<String>, path: impl Into<String>) -> Case {
    case(group, name, Method::POST, path)
}

impl Case {
    fn bearer(self, token: &str) -> Self {
        self.authorization(Some(format!("Bearer {token}")))
    }

    fn authorization(mut self, value: Option<String>) -> Self {
        self.authorization = value;
        self
    }

    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.body(Some("application/json"), body)
    }

    fn body(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        self.payload = Payload::Bytes(content_type.map(str::to_owned), body.into());
        self
    }

    fn multipart(self, body: Vec<u8>) -> Self {
        self.body(
            Some(format!("multipart/form-data; boundary={BOUNDARY}").as_str()),
            body,
        )
    }

    fn chunked(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.payload = Payload::Chunked(content_type.to_owned(), body);
        self
    }

    fn declared(mut self, content_type: &str, length: u64) -> Self {
        self.payload = Payload::Declared(content_type.to_owned(), length);
        self.raw = true;
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn raw(mut self) -> Self {
        self.raw = true;
        self
    }

    fn expect(mut self, status: u16) -> Self {
        self.expect = Some(status);
        self
    }
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

async fn send(system: &System, case: &Case) -> Result<Answer, String> {
    if case.raw {
        return send_raw(system, case).await;
    }
    let mut request = system
        .client
        .request(case.method.clone(), system.at(&case.path))
        .timeout(Duration::from_secs(60));
    if let Some(value) = &case.authorization {
        request = request.header("authorization", value.as_str());
    }
    for (name, value) in &case.headers {
        let value = reqwest::header::HeaderValue::from_bytes(value).map_err(|e| e.to_string())?;
        request = request.header(*name, value);
    }
    match &case.payload {
        Payload::None => {}
        Payload::Bytes(content_type, bytes) => {
            if let Some(ct) = content_type {
                request = request.header("content-type", ct.as_str());
            }
            request = request.body(bytes.clone());
        }
        Payload::Chunked(content_type, bytes) => {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
            request = request.header("content-type", content_type.as_str()).body(
                reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
            );
        }
        Payload::Declared(..) => return Err("a declared length is only sent raw".into()),
    }
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?.to_vec();
    Ok(Answer { status, body })
}

/// One HTTP/1.1 exchange over a fresh TCP connection, the request written exactly as given.
async fn send_raw(system: &System, case: &Case) -> Result<Answer, String> {
    let addr = system.gateway.trim_start_matches("http://").to_owned();
    let (content_type, body, length): (Option<&str>, &[u8], Option<u64>) = match &case.payload {
        Payload::None => (None, &[], None),
        Payload::Bytes(ct, bytes) => (ct.as_deref(), bytes, Some(bytes.len() as u64)),
        Payload::Declared(ct, n) => (Some(ct), &[], Some(*n)),
        Payload::Chunked(..) => return Err("chunked bodies go through reqwest".into()),
    };
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n",
        case.method, case.path
    )
    .into_bytes();
    let mut put = |name: &str, value: &[u8]| {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    };
    if let Some(value) = &case.authorization {
        put("Authorization", value.as_bytes());
    }
    for (name, value) in &case.headers {
        put(name, value);
    }
    if let Some(ct) = content_type {
        put("Content-Type", ct.as_bytes());
    }
    if let Some(n) = length {
        put("Content-Length", n.to_string().as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(&head).await.map_err(|e| e.to_string())?;
        // A refused body may be answered (413) and the connection closed before it is read.
        let _ = stream.write_all(body).await;
        let mut received = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while !response_complete(&received) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        Ok::<_, String>(received)
    };
    let received = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| "no answer within 60 s".to_owned())??;
    parse_response(&received)
}

type Head = (u16, Vec<(String, String)>, usize);

/// The status, headers and where the body starts, once the head has fully arrived.
fn split_head(bytes: &[u8]) -> Option<Head> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some((status, headers, end + 4))
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    header_value(headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"))
}

fn content_length(headers: &[(String, String)]) -> Option<usize> {
    header_value(headers, "content-length").and_then(|v| v.parse().ok())
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if rest.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn response_complete(bytes: &[u8]) -> bool {
    let Some((_, headers, start)) = split_head(bytes) else {
        return false;
    };
    if is_chunked(&headers) {
        dechunk(&bytes[start..]).is_some()
    } else {
        content_length(&headers).is_some_and(|n| bytes.len() - start >= n)
    }
}

fn parse_response(bytes: &[u8]) -> Result<Answer, String> {
    let (status, headers, start) = split_head(bytes).ok_or_else(|| {
        format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    })?;
    let rest = &bytes[start..];
    let body = if is_chunked(&headers) {
        dechunk(rest).ok_or("a truncated chunked body")?
    } else if let Some(n) = content_length(&headers) {
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Answer { status, body })
}

/// A WebSocket upgrade that must be refused: the refusal as an answer.
async fn ws_attempt(url: &str) -> Result<Answer, String> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => Err("the WebSocket was opened".into()),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Ok(Answer {
            status: r.status().as_u16(),
            body: r.body().clone().unwrap_or_default(),
        }),
        Err(e) => Err(format!("no HTTP refusal: {e}")),
    }
}

fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(160).collect();
    if short.len() < text.len() {
        short.push_str(&format!("… ({} bytes)", text.len()));
    }
    short
}

/// What is wrong with an answer to a bad request, if anything.
fn verdict(
    expect: Option<u16>,
    answer: &Result<Answer, String>,
    rate_limited: &mut usize,
) -> Option<String> {
    let a = match answer {
        Ok(a) => a,
        Err(e) => return Some(format!("no HTTP answer ({e})")),
    };
    let body: Option<Value> = serde_json::from_slice(&a.body).ok();
    let text = |key: &str| {
        body.as_ref()
            .and_then(|b| b.get(key))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    let json_error = text("error") && text("msg");
    if a.status >= 500 {
        return Some("a 5xx for bad input".into());
    }
    if !(400..=499).contains(&a.status) {
        return Some("not a 4xx".into());
    }
    if !json_error {
        return Some("not a JSON error {\"error\", \"msg\"}".into());
    }
    if a.status == 429 {
        *rate_limited += 1;
        return None;
    }
    match expect {
        Some(s) if s != a.status => Some(format!("expected {s}")),
        _ => None,
    }
}

#[derive(Default)]
struct Run {
    sent: usize,
    rate_limited: usize,
    statuses: BTreeMap<u16, usize>,
    by_group: BTreeMap<&'static str, usize>,
    names: HashSet<(&'static str, String)>,
    failures: Vec<String>,
    /// Every case and its answer, printed when `BAD_INPUT_LOG` is set.
    log: Vec<String>,
}

impl Run {
    async fn check(&mut self, system: &System, case: Case) {
        let answer = send(system, &case).await;
        let request = format!(
            "{} {}{}",
            case.method,
            shorten(&case.path),
            if case.raw { " (raw)" } else { "" }
        );
        self.record(case.group, case.name, &request, case.expect, answer);
    }

    async fn check_all(&mut self, system: &System, cases: Vec<Case>) {
        for case in cases {
            self.check(system, case).await;
        }
    }

    fn record(
        &mut self,
        group: &'static str,
        name: String,
        request: &str,
        expect: Option<u16>,
        answer: Result<Answer, String>,
    ) {
        self.sent += 1;
        if let Ok(a) = &answer {
            *self.statuses.entry(a.status).or_default() += 1;
        }
        *self.by_group.entry(group).or_default() += 1;
        let shown = match &answer {
            Ok(a) => format!(
                "{} {:?}",
                a.status,
                shorten(&String::from_utf8_lossy(&a.body))
            ),
            Err(e) => e.clone(),
        };
        let line = format!("[{group}] {name}: {request} → {shown}");
        if let Some(problem) = verdict(expect, &answer, &mut self.rate_limited) {
            self.failures.push(format!("{line}: {problem}"));
        }
        self.log.push(line);
        assert!(
            self.names.insert((group, name.clone())),
            "two cases are named [{group}] {name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A multipart/form-data body with [`BOUNDARY`]: (field name, file name, content).
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn file_form(filename: &str, content: &[u8]) -> Vec<u8> {
    form(&[("file", Some(filename), content)])
}

/// Broken JSON every JSON route must refuse: (case, body).
fn broken_json() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("truncated JSON", br#"{"username": "abc", "pass"#.to_vec()),
        ("trailing garbage", br#"{"a": 1} trailing"#.to_vec()),
        ("a key without a value", br#"{"a":}"#.to_vec()),
        ("a lone brace", b"{".to_vec()),
        ("a trailing comma", br#"{"a": 1,}"#.to_vec()),
        ("single quotes", br#"{'a': 1}"#.to_vec()),
        ("a NaN literal", br#"{"a": NaN}"#.to_vec()),
        ("a byte-order mark", b"\xef\xbb\xbf{\"a\": 1}".to_vec()),
        ("invalid UTF-8", b"{\"a\": \"\xff\xfe\"}".to_vec()),
        ("a raw NUL byte", b"{\"a\": \"x\x00y\"}".to_vec()),
        ("10,000 open brackets", "[".repeat(10_000).into_bytes()),
        (
            "10,000 nested arrays",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
        (
            "10,000 nested objects",
            format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000)).into_bytes(),
        ),
    ]
}

fn nested_value(depth: usize) -> String {
    format!("{}0{}", "[".repeat(depth), "]".repeat(depth))
}

/// A JSON object with a long string field, `size` bytes or a little more.
fn padded_json(prefix: &str, size: usize) -> Vec<u8> {
    let mut body = format!(r#"{{{prefix}"padding": ""#).into_bytes();
    body.resize(size, b'x');
    body.extend_from_slice(b"\"}");
    body
}

// ---------------------------------------------------------------------------------------------
// Tokens

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn segment(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", segment(header), segment(claims));
    let mac = hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", b64(&mac))
}

/// Signs any header and claims with auth-svc's own Ed25519 key (its seed read back from PEM).
struct Forger {
    seed: [u8; 32],
}

impl Forger {
    fn new(key: &SigningKeyPair) -> Self {
        let body: String = key
            .to_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(body).unwrap();
        Forger {
            seed: der[der.len() - 32..].try_into().unwrap(),
        }
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", segment(header), segment(claims));
        let signature = ed25519_dalek::SigningKey::from_bytes(&self.seed).sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }
}

/// Every kind of bad credential: (case, `Authorization` header value).
fn bad_credentials(
    system: &System,
    user_access: &str,
    refresh: &str,
) -> Vec<(&'static str, Option<String>)> {
    let key = &system.signing_key;
    let kid = key.kid().to_owned();
    let forger = Forger::new(key);
    let admin = common::testing::claims(ADMIN.0, Role::Admin);
    let now = admin.iat;
    let claims = serde_json::to_value(&admin).unwrap();
    let with = |changes: &[(&str, Value)]| {
        let mut c = claims.clone();
        for (k, v) in changes {
            c[*k] = v.clone();
        }
        c
    };
    let without = |field: &str| {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(field);
        c
    };
    let eddsa = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let x = key.jwk().x;
    let hs = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let none = |alg: &str| {
        format!(
            "{}.{}.",
            segment(&json!({"alg": alg, "typ": "JWT", "kid": kid})),
            segment(&claims)
        )
    };

    let mut expired = admin.clone();
    expired.iat = now - 7200;
    expired.nbf = now - 7200;
    expired.exp = now - 3600;
    let mut early = admin.clone();
    early.nbf = now + 3600;
    early.exp = now + 7200;
    let mut wrong_aud = admin.clone();
    wrong_aud.aud = "someone-else".into();
    let mut wrong_iss = admin.clone();
    wrong_iss.iss = "https://evil.example".into();
    let other_key = SigningKeyPair::generate().unwrap();
    let other = Forger::new(&other_key);

    // A user's real token with `role` swapped to admin, the signature kept.
    let tampered = {
        let parts: Vec<&str> = user_access.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["role"] = json!("admin");
        format!("{}.{}.{}", parts[0], segment(&payload), parts[2])
    };
    let stripped = {
        let token = key.sign(&admin).unwrap();
        let (unsigned, _) = token.rsplit_once('.').unwrap();
        format!("{unsigned}.")
    };
    let bearer = |t: String| Some(format!("Bearer {t}"));
    vec![
        ("no Authorization header", None),
        ("Bearer and nothing", Some("Bearer".into())),
        ("Bearer and spaces", Some("Bearer    ".into())),
        (
            "Basic with the admin's password",
            Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1))
            )),
        ),
        (
            "a valid token without the Bearer scheme",
            Some(key.sign(&admin).unwrap()),
        ),
        ("garbage", bearer("garbage".into())),
        ("three empty segments", bearer("..".into())),
        ("segments that are not base64", bearer("!!!.@@@.###".into())),
        ("five segments (JWE-like)", bearer("a.b.c.d.e".into())),
        ("8 KiB of junk", bearer("A".repeat(8 * 1024))),
        ("the refresh token", bearer(refresh.to_owned())),
        ("alg none, no signature", bearer(none("none"))),
        ("alg NONE, no signature", bearer(none("NONE"))),
        ("alg EdDSA, signature stripped", bearer(stripped)),
        (
            "HS256 keyed with the public key bytes",
            bearer(hs256(&URL_SAFE_NO_PAD.decode(&x).unwrap(), &hs, &claims)),
        ),
        (
            "HS256 keyed with the public key's base64",
            bearer(hs256(x.as_bytes(), &hs, &claims)),
        ),
        ("expired", bearer(key.sign(&expired).unwrap())),
        (
            "not valid before an hour from now",
            bearer(key.sign(&early).unwrap()),
        ),
        (
            "an unknown kid (another key)",
            bearer(other_key.sign(&admin).unwrap()),
        ),
        (
            "the right kid, another key's signature",
            bearer(other.sign(&eddsa, &claims)),
        ),
        ("role tampered from user to admin", bearer(tampered)),
        ("wrong aud", bearer(key.sign(&wrong_aud).unwrap())),
        ("wrong iss", bearer(key.sign(&wrong_iss).unwrap())),
        (
            "no kid",
            bearer(forger.sign(&json!({"alg": "EdDSA", "typ": "JWT"}), &claims)),
        ),
        (
            "an SQL-injection kid",
            bearer(forger.sign(&json!({"alg": "EdDSA", "kid": SQL_OR}), &claims)),
        ),
        (
            "a path-traversal kid",
            bearer(forger.sign(
                &json!({"alg": "EdDSA", "kid": "../../../../etc/passwd"}),
                &claims,
            )),
        ),
        (
            "role superadmin, validly signed",
            bearer(forger.sign(&eddsa, &with(&[("role", json!("superadmin"))]))),
        ),
        (
            "exp as a string, validly signed",
            bearer(forger.sign(&eddsa, &with(&[("exp", json!((now + 900).to_string()))]))),
        ),
        (
            "no exp, validly signed",
            bearer(forger.sign(&eddsa, &without("exp"))),
        ),
        (
            "exp beyond i64, validly signed",
            bearer(forger.sign(&eddsa, &with(&[("exp", json!(1e300))]))),
        ),
        (
            "aud as a list of strangers, validly signed",
            bearer(forger.sign(&eddsa, &with(&[("aud", json!(["x", "y"]))]))),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The cases, route by route

fn auth_cases(refresh: &str) -> Vec<Case> {
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

    let long_name = "a".repeat(50_000);
    let long_password = "p".repeat(60_000);
    let credentials: Vec<(&'static str, &str, Value)> = vec![
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
    ];
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
fn logout_cases(user: &str) -> Vec<Case> {
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

fn feedback_cases(user: &str) -> Vec<Case> {
    let fb = |group: &'static str, name: &str, body: Vec<u8>| {
        post(group, format!("/feedback: {name}"), "/feedback")
            .bearer(user)
            .json(body)
    };
    let mut cases = Vec::new();
    for (name, body) in broken_json() {
        cases.push(fb("broken JSON", name, body));
    }
    cases.push(fb("broken JSON", "an empty body", Vec::new()));
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
    let bodies: Vec<(&'static str, &str, Value)> = vec![
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
    ];
    for (group, name, body) in bodies {
        cases.push(fb(group, name, body.to_string().into_bytes()));
    }
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
        cases.push(fb("huge numbers", name, raw.into()));
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
        cases.push(fb("odd Unicode and NUL", name, raw.into()));
    }
    cases.push(fb(
        "deeply nested JSON",
        "a 10,000-deep comment",
        format!(
            r#"{{"prediction": 1, "correct": true, "comment": {}}}"#,
            nested_value(10_000)
        )
        .into_bytes(),
    ));
    cases.push(fb(
        "deeply nested JSON",
        "a 100-deep prediction",
        format!(
            r#"{{"prediction": {}, "correct": true}}"#,
            nested_value(100)
        )
        .into_bytes(),
    ));
    for (name, key) in [
        ("an empty Idempotency-Key", Vec::new()),
        ("a 300-character Idempotency-Key", vec![b'k'; 300]),
        ("an Idempotency-Key with a space", b"a b".to_vec()),
        ("a non-ASCII Idempotency-Key", "clé".as_bytes().to_vec()),
    ] {
        cases.push(
            fb("bad headers", name, valid.clone().into_bytes()).header("idempotency-key", key),
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

fn predict_cases(user: &str, png: &[u8]) -> Vec<Case> {
    let mut cases = Vec::new();
    let text = b"just some text, not an image at all".to_vec();
    let mut truncated_png = png.to_vec();
    truncated_png.truncate(60);
    let blank = digits::grid_to_png(&[0u8; digits::PIXELS]).unwrap();
    // A BMP header claiming 100,000 × 100,000 pixels: a decompression bomb, cheaply.
    let mut bomb = b"BM".to_vec();
    bomb.extend_from_slice(&(54u32 + 64).to_le_bytes());
    bomb.extend_from_slice(&0u32.to_le_bytes());
    bomb.extend_from_slice(&54u32.to_le_bytes());
    bomb.extend_from_slice(&40u32.to_le_bytes());
    bomb.extend_from_slice(&100_000i32.to_le_bytes());
    bomb.extend_from_slice(&100_000i32.to_le_bytes());
    bomb.extend_from_slice(&1u16.to_le_bytes());
    bomb.extend_from_slice(&24u16.to_le_bytes());
    bomb.extend_from_slice(&[0u8; 24]);
    bomb.extend_from_slice(&[0u8; 64]);
    let valid = file_form("d.png", png);
    let mut cut = valid.clone();
    cut.truncate(valid.len() / 2);
    for version in ["v1", "v2"] {
        let route = format!("/api/{version}/predict");
        let up = |name: &str| {
            post(
                "broken multipart",
                format!("{route}: {name}"),
                route.clone(),
            )
            .bearer(user)
        };
        let form_data = |params: &str| format!("multipart/form-data{params}");
        let no_closing = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"d.png\"\r\n\r\nabc"
        );
        let sql_name = "x'; DROP TABLE feedback; --.png";
        cases.extend([
            up("multipart without a boundary").body(Some(form_data("").as_str()), valid.clone()),
            up("the wrong boundary")
                .body(Some(form_data("; boundary=other").as_str()), valid.clone()),
            up("a truncated body").multipart(cut.clone()),
            up("truncated part headers")
                .multipart(format!("--{BOUNDARY}\r\nContent-Disposition: form-da").into()),
            up("no closing boundary").multipart(no_closing.into()),
            up("no parts at all").multipart(format!("--{BOUNDARY}--\r\n").into()),
            up("no file field").multipart(form(&[("image", Some("d.png"), png)])),
            up("file as a plain field").multipart(form(&[("file", None, png)])),
            up("an empty file name").multipart(file_form("", png)),
            up("an empty file").multipart(file_form("d.png", b"")),
            up("random bytes").multipart(file_form("d.bin", &[0x13, 0x37, 0xde, 0xad])),
            up("a text file named .png").multipart(file_form("digit.png", &text)),
            up("a truncated PNG").multipart(file_form("d.png", &truncated_png)),
            up("only the PNG signature").multipart(file_form("d.png", b"\x89PNG\r\n\x1a\n")),
            up("a blank image").multipart(file_form("blank.png", &blank)),
            up("a 100,000-pixel-wide BMP header").multipart(file_form("bomb.bmp", &bomb)),
            up("a path-traversal file name on text")
                .multipart(file_form("../../etc/passwd", &text)),
            up("an SQL-injection file name on text").multipart(file_form(sql_name, &text)),
            up("JSON instead of multipart").json(r#"{"file": "iVBORw0KGgo="}"#),
            up("form-urlencoded instead of multipart")
                .body(Some("application/x-www-form-urlencoded"), "file=abc"),
            up("no body at all"),
        ]);
    }
    // Decompression bombs (issue 15): refused from their header, 400 image_too_large.
    let bombs = [
        (
            "a 35-byte GIF with an 8192² canvas",
            "bomb.gif",
            digits::bombs::gif_canvas(8192),
        ),
        (
            "a 16-bit 8192² PNG",
            "bomb16.png",
            digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Grey16).unwrap(),
        ),
        (
            "an RGBA 8192² PNG",
            "bomba.png",
            digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Rgba8).unwrap(),
        ),
    ];
    for version in ["v1", "v2"] {
        let route = format!("/api/{version}/predict");
        for (name, file, bytes) in &bombs {
            cases.push(
                post(
                    "decompression bombs",
                    format!("{route}: {name}"),
                    route.clone(),
                )
                .bearer(user)
                .multipart(file_form(file, bytes))
                .expect(400),
            );
        }
    }
    let mut six_mib = png.to_vec();
    six_mib.resize(6 * MIB, 0);
    cases.push(
        post(
            "oversize",
            "/api/v2/predict: a 6 MiB file",
            "/api/v2/predict",
        )
        .bearer(user)
        .multipart(file_form("big.png", &six_mib))
        .expect(413),
    );
    let mut eleven_mib = png.to_vec();
    eleven_mib.resize(11 * MIB, 0);
    cases.push(
        post(
            "oversize",
            "/api/v1/predict: an 11 MiB file",
            "/api/v1/predict",
        )
        .bearer(user)
        .multipart(file_form("big.png", &eleven_mib))
        .expect(413),
    );
    cases.push(
        post(
            "oversize",
            "/api/v1/predict: 50 MiB declared, nothing sent",
            "/api/v1/predict",
        )
        .bearer(user)
        .declared(
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            50 * MIB as u64,
        )
        .expect(413),
    );
    cases
}

fn tensor(name: Value, shape: Value, datatype: Value, data: Value) -> String {
    let input = json!({"name": name, "shape": shape, "datatype": datatype, "data": data});
    json!({"id": "bad", "inputs": [input]}).to_string()
}

fn inference_cases(user: &str) -> Vec<Case> {
    let infer = "/v2/models/mnist-cnn/infer";
    let zeros = |n: usize| json!(vec![0.0; n]);
    // An FP32 tensor named `input` with this shape and data.
    let fp32 = |shape: Value, data: Value| tensor(json!("input"), shape, json!("FP32"), data);
    // A [1, 784] tensor of zeros with this name and datatype.
    let named = |name: Value, datatype: Value| tensor(name, json!([1, 784]), datatype, zeros(784));
    let ok = fp32(json!([1, 784]), zeros(784));
    let one = json!({"name": "input", "shape": [1, 784], "datatype": "FP32", "data": zeros(784)});
    let without = |field: &str| {
        let mut input = one.clone();
        input.as_object_mut().unwrap().remove(field);
        json!({"inputs": [input]}).to_string()
    };
    let mut cases = Vec::new();
    for (name, body) in broken_json() {
        cases.push(
            post("broken JSON", format!("{infer}: {name}"), infer)
                .bearer(user)
                .json(body),
        );
    }
    let bodies: Vec<(&'static str, &str, String)> = vec![
        (
            "missing fields",
            "no inputs",
            json!({"id": "x"}).to_string(),
        ),
        (
            "missing fields",
            "inputs empty",
            json!({"inputs": []}).to_string(),
        ),
        ("missing fields", "no data", without("data")),
        ("missing fields", "no name", without("name")),
        ("missing fields", "no shape", without("shape")),
        (
            "wrong types",
            "inputs a string",
            json!({"inputs": "input"}).to_string(),
        ),
        (
            "wrong types",
            "an input a number",
            json!({"inputs": [5]}).to_string(),
        ),
        (
            "wrong types",
            "two inputs",
            json!({"inputs": [one, one]}).to_string(),
        ),
        (
            "wrong types",
            "name a number",
            named(json!(5), json!("FP32")),
        ),
        (
            "wrong types",
            "an unknown input name",
            named(json!("pixels"), json!("FP32")),
        ),
        (
            "wrong types",
            "datatype INT8",
            named(json!("input"), json!("INT8")),
        ),
        (
            "wrong types",
            "datatype fp32 in lower case",
            named(json!("input"), json!("fp32")),
        ),
        (
            "wrong types",
            "datatype a number",
            named(json!("input"), json!(32)),
        ),
        (
            "wrong types",
            "shape [1, 783]",
            fp32(json!([1, 783]), zeros(783)),
        ),
        (
            "wrong types",
            "shape [0, 784]",
            fp32(json!([0, 784]), json!([])),
        ),
        (
            "wrong types",
            "shape [-1, 784]",
            fp32(json!([-1, 784]), zeros(784)),
        ),
        (
            "wrong types",
            "shape [257, 784]",
            fp32(json!([257, 784]), zeros(784)),
        ),
        (
            "wrong types",
            "shape a string",
            fp32(json!("1,784"), zeros(784)),
        ),
        (
            "wrong types",
            "shape of floats",
            fp32(json!([1.0, 784.0]), zeros(784)),
        ),
        (
            "wrong types",
            "data strings",
            fp32(json!([1, 784]), json!(vec!["0"; 784])),
        ),
        (
            "wrong types",
            "data too short",
            fp32(json!([1, 784]), zeros(783)),
        ),
        (
            "wrong types",
            "data too long",
            fp32(json!([1, 784]), zeros(785)),
        ),
        (
            "wrong types",
            "data for 1, shape for 2",
            fp32(json!([2, 784]), zeros(784)),
        ),
        (
            "wrong types",
            "data null",
            fp32(json!([1, 784]), json!(null)),
        ),
        (
            "wrong types",
            "data an object",
            fp32(json!([1, 784]), json!({"a": 1})),
        ),
        (
            "wrong types",
            "data true",
            fp32(json!([1, 784]), json!(true)),
        ),
        (
            "wrong types",
            "id a number",
            ok.replace(r#""id":"bad""#, r#""id":5"#),
        ),
        (
            "wrong types",
            "id an object",
            ok.replace(r#""id":"bad""#, r#""id":{"a":1}"#),
        ),
        (
            "huge numbers",
            "shape [i64::MAX, 784]",
            fp32(json!([i64::MAX, 784]), zeros(784)),
        ),
        (
            "huge numbers",
            "shape [i64::MIN, 784]",
            fp32(json!([i64::MIN, 784]), zeros(784)),
        ),
        (
            "huge numbers",
            "shape [2^64-1, 784]",
            fp32(json!([u64::MAX, 784]), zeros(784)),
        ),
        (
            "huge numbers",
            "data 1e39, beyond FP32",
            fp32(json!([1, 784]), json!(vec![1e39; 784])),
        ),
        (
            "odd Unicode and NUL",
            "a NUL in the input name",
            named(json!("input\u{0}"), json!("FP32")),
        ),
        (
            "odd Unicode and NUL",
            "an RTL mark in the datatype",
            named(json!("input"), json!("\u{200f}FP32")),
        ),
        (
            "SQL injection",
            "input name ' OR 1=1 --",
            named(json!(SQL_OR), json!("FP32")),
        ),
    ];
    for (group, name, body) in bodies {
        cases.push(
            post(group, format!("{infer}: {name}"), infer)
                .bearer(user)
                .json(body),
        );
    }
    let one_e400 = ok.replacen("0.0", "1e400", 1);
    cases.push(
        post("huge numbers", format!("{infer}: data 1e400"), infer)
            .bearer(user)
            .json(one_e400),
    );
    let big_shape = ok.replace("[1,784]", "[18446744073709551616,784]");
    cases.push(
        post("huge numbers", format!("{infer}: shape [2^64, 784]"), infer)
            .bearer(user)
            .json(big_shape),
    );
    cases.push(
        post(
            "deeply nested JSON",
            format!("{infer}: data 200 levels deep"),
            infer,
        )
        .bearer(user)
        .json(fp32(json!([1, 784]), json!("@")).replace(r#""@""#, &nested_value(200))),
    );
    cases.push(
        post(
            "odd Unicode and NUL",
            format!("{infer}: a lone surrogate in the id"),
            infer,
        )
        .bearer(user)
        .json(ok.replace(r#""id":"bad""#, r#""id":"\ud800""#)),
    );
    for (name, ct) in [
        ("JSON sent as text/plain", Some("text/plain")),
        ("no Content-Type", None),
    ] {
        cases.push(
            post("wrong Content-Type", format!("{infer}: {name}"), infer)
                .bearer(user)
                .body(ct, ok.clone()),
        );
    }
    cases.push(
        post(
            "oversize",
            format!("{infer}: 5 million zeros, 10 MB"),
            infer,
        )
        .bearer(user)
        .json(fp32(json!([1, 784]), json!(vec![0; 5_000_000])))
        .expect(413),
    );
    cases.push(
        post(
            "oversize",
            format!("{infer}: 11 MiB declared, nothing sent"),
            infer,
        )
        .bearer(user)
        .declared("application/json", 11 * MIB as u64)
        .expect(413),
    );
    for (name, model) in [
        ("an unknown model", "nope".to_owned()),
        ("an SQL-injection model name", enc(SQL_OR)),
        ("an emoji model name", enc("😀")),
        ("an invalid UTF-8 model name", "%FF%FE".to_owned()),
        ("a 1,000-character model name", "m".repeat(1000)),
    ] {
        cases.push(
            post(
                "unknown ids",
                format!("POST /v2/models/…/infer: {name}"),
                format!("/v2/models/{model}/infer"),
            )
            .bearer(user)
            .json(ok.clone()),
        );
        cases.push(
            get(
                "unknown ids",
                format!("GET /v2/models/…: {name}"),
                format!("/v2/models/{model}"),
            )
            .bearer(user),
        );
    }
    cases.push(
        get(
            "unknown ids",
            "GET /v2/models/mnist-cnn/nope",
            "/v2/models/mnist-cnn/nope",
        )
        .bearer(user),
    );
    cases.push(get("unknown ids", "GET /v2/health/nope", "/v2/health/nope"));
    cases.push(get("unknown ids", "GET /nope", "/nope"));
    cases.push(
        get(
            "unknown ids",
            "GET /internal/predictions/1",
            "/internal/predictions/1",
        )
        .bearer(user),
    );
    cases
}

fn admin_cases(admin: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let list = |group: &'static str, name: &str, query: &str| {
        get(
            group,
            format!("/admin/feedback: {name}"),
            format!("/admin/feedback?{query}"),
        )
        .bearer(admin)
    };
    let queries: Vec<(&'static str, &str, String)> = vec![
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
    ];
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

    let retrain = |group: &'static str, name: &str, body: Vec<u8>| {
        post(group, format!("/admin/retrain: {name}"), "/admin/retrain")
            .bearer(admin)
            .json(body)
    };
    for (name, body) in broken_json() {
        cases.push(retrain("broken JSON", name, body));
    }
    let bodies: Vec<(&'static str, &str, &str)> = vec![
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
    ];
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

fn path_traversal_cases(user: &str, admin: &str) -> Vec<Case> {
    let raw = |name: &str, path: &str| get("path traversal", name.to_owned(), path).raw();
    vec![
        raw("/api/v1/../../admin/report", "/api/v1/../../admin/report").bearer(user),
        raw(
            "%2e%2e segments to /admin/report",
            "/api/v1/%2e%2e/%2e%2e/admin/report",
        )
        .bearer(user),
        raw(
            "%2E%2E segments to /internal",
            "/v2/models/%2E%2E/%2E%2E/internal/predictions/1",
        )
        .bearer(user),
        raw("/feedback/../admin/report", "/feedback/../admin/report").bearer(user),
        raw(
            "/.well-known/../admin/report, no token",
            "/.well-known/../admin/report",
        ),
        raw(
            "/admin/retrain/..%2f..%2fetc%2fpasswd",
            "/admin/retrain/..%2f..%2fetc%2fpasswd",
        )
        .bearer(admin),
        raw(
            "/admin/feedback/..%2F..%2Fetc%2Fpasswd",
            "/admin/feedback/..%2F..%2Fetc%2Fpasswd",
        )
        .bearer(admin),
        raw(
            "/v2/models/..%2f..%2finternal",
            "/v2/models/..%2f..%2finternal%2fpredictions",
        )
        .bearer(user),
        raw("//admin/report", "//admin/report").bearer(user),
        raw("/admin/report/.", "/admin/report/.").bearer(admin),
        raw("/admin%5creport", "/admin%5creport").bearer(admin),
        raw("/api/v1/predict%00", "/api/v1/predict%00").bearer(user),
        raw("/admin/retrain/%00", "/admin/retrain/%00").bearer(admin),
        raw("/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/%2e%2e/etc/passwd"),
        raw(
            "overlong UTF-8 dots",
            "/%c0%ae%c0%ae/%c0%ae%c0%ae/admin/report",
        )
        .bearer(user),
        raw(
            "/api/v1/predict/..;/admin/report",
            "/api/v1/predict/..;/admin/report",
        )
        .bearer(user),
        raw(
            "/v2/models/mnist-cnn/../../../admin/models",
            "/v2/models/mnist-cnn/../../../admin/models",
        )
        .bearer(user),
    ]
}

fn forbidden_cases(user: &str) -> Vec<Case> {
    let forbid = |method: Method, path: &str| {
        case(
            "a user on admin routes",
            format!("{method} {path}"),
            method,
            path,
        )
        .bearer(user)
        .expect(403)
    };
    vec![
        forbid(Method::GET, "/admin/report"),
        forbid(Method::GET, "/admin/feedback"),
        forbid(Method::GET, "/admin/feedback/1"),
        forbid(Method::POST, "/admin/retrain").json(r#"{"epochs": 1}"#),
        forbid(Method::GET, "/admin/retrain"),
        forbid(Method::GET, "/admin/retrain/some-job"),
        forbid(Method::GET, "/admin/models"),
        forbid(Method::GET, "/admin/models/mnist-cnn"),
        forbid(Method::POST, "/admin/models/mnist-cnn/versions/1/promote"),
    ]
}

fn wrong_method_cases(user: &str, admin: &str) -> Vec<Case> {
    // A route that exists, asked with another method: 405, whether the gateway's table or the
    // service behind a prefix route refuses it.
    let m = |method: &str, path: &str| {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        case("wrong methods", format!("{method} {path}"), method, path).expect(405)
    };
    vec![
        m("GET", "/register"),
        m("PUT", "/login").json(r#"{"username": "x", "password": "y"}"#),
        m("GET", "/token/refresh"),
        m("GET", "/logout").bearer(user),
        m("POST", "/.well-known/jwks.json"),
        m("DELETE", "/me").bearer(user),
        m("POST", "/me").bearer(user),
        m("GET", "/api/v1/predict").bearer(user),
        m("PATCH", "/api/v2/predict").bearer(user),
        m("GET", "/feedback").bearer(user),
        m("DELETE", "/feedback").bearer(user),
        m("FOO", "/feedback").bearer(user),
        m("POST", "/v2/health/live"),
        m("POST", "/v2/models/mnist-cnn").bearer(user),
        m("GET", "/v2/models/mnist-cnn/infer").bearer(user),
        m("POST", "/admin/report").bearer(admin),
        m("DELETE", "/admin/feedback").bearer(admin),
        m("PUT", "/admin/retrain").bearer(admin),
        m("POST", "/admin/retrain/some-job").bearer(admin),
        m("DELETE", "/admin/retrain/some-job").bearer(admin),
        m("POST", "/admin/models").bearer(admin),
        m("GET", "/admin/models/mnist-cnn/versions/1/promote").bearer(admin),
        m("POST", "/health"),
        m("POST", "/ready"),
        m("POST", "/ws").bearer(admin),
        get("wrong methods", "GET /ws without an upgrade", "/ws").bearer(admin),
    ]
}

// ---------------------------------------------------------------------------------------------

async fn log_in(system: &System, username: &str, password: &str) -> Value {
    let r = system
        .client
        .post(system.at("/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn status_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_input_gets_a_4xx_json_error_everywhere_and_the_system_stays_healthy() {
    let system = System::start().await;
    let user = system.user("bad-input-user").await;
    let refresh = log_in(&system, "bad-input-user", "password-123").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = system.admin().await;
    let test = mnist_test();
    let png = digits::grid_to_png(&test.images[0]).unwrap();

    // Controls: a token signed by this suite's forger is accepted, so the tokens it forges
    // below are refused for what they change, not for how they are made.
    let claims = common::testing::claims(ADMIN.0, Role::Admin);
    let forged = Forger::new(&system.signing_key).sign(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": system.signing_key.kid()}),
        &serde_json::to_value(&claims).unwrap(),
    );
    for token in [forged, system.signing_key.sign(&claims).unwrap()] {
        let (status, body) = status_of(
            system
                .client
                .get(system.at("/admin/report"))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, 200, "a well-formed admin token is accepted: {body}");
    }

    let mut run = Run::default();

    // Every kind of bad token on user routes and admin routes.
    let credentials = bad_credentials(&system, &user, &refresh);
    let multipart = file_form("d.png", &png);
    for (kind, authorization) in &credentials {
        let routes = [
            get("bad tokens", format!("GET /me: {kind}"), "/me"),
            post("bad tokens", format!("POST /feedback: {kind}"), "/feedback")
                .json(r#"{"prediction": 1, "correct": true}"#),
            post(
                "bad tokens",
                format!("POST /api/v1/predict: {kind}"),
                "/api/v1/predict",
            )
            .multipart(multipart.clone()),
            post(
                "bad tokens",
                format!("POST /v2/models/mnist-cnn/infer: {kind}"),
                "/v2/models/mnist-cnn/infer",
            )
            .json(tensor(
                json!("input"),
                json!([1, 784]),
                json!("FP32"),
                json!(vec![0.0; 784]),
            )),
            get(
                "bad tokens",
                format!("GET /admin/report: {kind}"),
                "/admin/report",
            ),
            post(
                "bad tokens",
                format!("POST /admin/retrain: {kind}"),
                "/admin/retrain",
            )
            .json(r#"{"epochs": 0}"#),
            get("bad tokens", format!("GET /ws: {kind}"), "/ws"),
        ];
        for c in routes {
            run.check(&system, c.authorization(authorization.clone()).expect(401))
                .await;
        }
    }
    // The same refusals for a WebSocket upgrade, with the token in the query as browsers send it.
    let ws_base = system.ws_url("");
    let expired = {
        let mut c = common::testing::claims(ADMIN.0, Role::Admin);
        c.exp = c.iat - 3600;
        c.nbf = c.iat - 7200;
        system.signing_key.sign(&c).unwrap()
    };
    for (name, url, expect) in [
        ("no token", ws_base.replace("?access_token=", ""), Some(401)),
        ("an empty token", ws_base.clone(), Some(401)),
        ("a garbage token", format!("{ws_base}garbage"), Some(401)),
        ("an expired token", format!("{ws_base}{expired}"), Some(401)),
        ("a user's token", system.ws_url(&user), Some(403)),
        (
            "the refresh token",
            format!("{ws_base}{}", enc(&refresh)),
            Some(401),
        ),
        (
            "last_event_id not a UUID",
            format!("{}&last_event_id=not-a-uuid", system.ws_url(&admin)),
            None,
        ),
        (
            "last_event_id ' OR 1=1 --",
            format!("{}&last_event_id={}", system.ws_url(&admin), enc(SQL_OR)),
            None,
        ),
        (
            "last_event_id NUL",
            format!("{}&last_event_id=%00", system.ws_url(&admin)),
            None,
        ),
    ] {
        let answer = ws_attempt(&url).await;
        run.record(
            "WebSocket upgrades",
            name.to_owned(),
            "GET /ws (upgrade)",
            expect,
            answer,
        );
    }

    run.check_all(&system, forbidden_cases(&user)).await;
    run.check_all(&system, auth_cases(&refresh)).await;
    run.check_all(&system, logout_cases(&user)).await;
    run.check_all(&system, feedback_cases(&user)).await;
    run.check_all(&system, predict_cases(&user, &png)).await;
    run.check_all(&system, inference_cases(&user)).await;
    run.check_all(&system, admin_cases(&admin)).await;
    run.check_all(&system, path_traversal_cases(&user, &admin))
        .await;
    run.check_all(&system, wrong_method_cases(&user, &admin))
        .await;

    // Every service is still up, and a normal flow still works.
    for path in ["/health", "/ready", "/v2/health/live", "/v2/health/ready"] {
        let (status, body) = status_of(system.client.get(system.at(path))).await;
        assert_eq!(status, 200, "GET {path} after the bad requests: {body}");
    }
    let after = system.user("after-the-storm").await;
    let served: Value = system
        .upload(&after, "v2", "d.png", png.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(served["prediccion"], u64::from(test.labels[0]), "{served}");
    let feedback = json!({
        "prediction": served["prediccion"],
        "correct": true,
        "comment": SQL_DROP,
        "prediction_id": served["prediction_id"],
    });
    let post_feedback = |key: &'static str, body: &Value| {
        system
            .client
            .post(system.at("/feedback"))
            .bearer_auth(&after)
            .header("Idempotency-Key", key)
            .json(body)
    };
    let (status, created) = status_of(post_feedback("after-1", &feedback)).await;
    assert_eq!(status, 201, "{created}");
    // The same key for another request is refused, and counted among the bad requests.
    let mut other = feedback.clone();
    other["comment"] = json!("another comment");
    let answer = send_builder(post_feedback("after-1", &other)).await;
    run.record(
        "bad headers",
        "/feedback: an Idempotency-Key reused for another body".into(),
        "POST /feedback",
        Some(422),
        answer,
    );

    // Nothing the bad requests sent was stored: one feedback, its SQL kept as text, no job.
    let (status, listed) = status_of(
        system
            .client
            .get(system.at("/admin/feedback"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["comment"], SQL_DROP, "{listed}");
    assert_eq!(listed["items"][0]["id"], created["id"]);
    let (status, injected) = status_of(
        system
            .client
            .get(system.at(&format!("/admin/feedback?username={}", enc("' OR '1'='1"))))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{injected}");
    assert_eq!(
        injected["total"], 0,
        "an SQL filter value matches no one: {injected}"
    );
    let (status, report) = status_of(
        system
            .client
            .get(system.at("/admin/report"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["total_feedback"], 1, "{report}");
    let (status, jobs) = status_of(
        system
            .client
            .get(system.at("/admin/retrain"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{jobs}");
    assert_eq!(
        jobs["jobs"],
        json!([]),
        "no bad request started a retrain: {jobs}"
    );
    let (status, models) = status_of(
        system
            .client
            .get(system.at("/admin/models"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{models}");
    // An admin holds at most five sockets: the sixth is 429 JSON while the five keep working,
    // and a flood of messages on one of them closes it with 1008.
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let (socket, welcome) = crate::feedback::joined(&system, &admin).await;
        assert_eq!(
            welcome["event"], "message",
            "notify-svc still serves admins: {welcome}"
        );
        sockets.push(socket);
    }
    let sixth = ws_attempt(&system.ws_url(&admin)).await.unwrap();
    let body: Value = serde_json::from_slice(&sixth.body).unwrap_or(Value::Null);
    assert_eq!(
        (sixth.status, body["error"].as_str()),
        (429, Some("too_many_sockets")),
        "{body}"
    );
    for socket in sockets.iter_mut() {
        socket
            .send(Message::text(r#"{"event":"join_admin"}"#))
            .await
            .unwrap();
        let answer = crate::feedback::next_event(socket, Duration::from_secs(5)).await;
        assert_eq!(answer.map(|a| a["event"].clone()), Some(json!("message")));
    }
    let mut flooded = sockets.pop().unwrap();
    // Twice the default burst (20), at once.
    for _ in 0..40 {
        if flooded
            .feed(Message::text(r#"{"event":"join_admin"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = flooded.flush().await;
    let mut close = None;
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_secs(5), flooded.next()).await
    {
        if let Message::Close(frame) = frame {
            close = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(close, Some(1008), "a flood of messages closes the socket");
    log_in(&system, ADMIN.0, ADMIN.1).await;

    eprintln!(
        "bad-input suite: {} bad requests ({} answered 429)",
        run.sent, run.rate_limited
    );
    for (group, n) in &run.by_group {
        eprintln!("  {n:>4}  {group}");
    }
    if std::env::var_os("BAD_INPUT_LOG").is_some() {
        eprintln!("{}", run.log.join("\n"));
    }
    let statuses: Vec<String> = run
        .statuses
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect();
    eprintln!("  answers: {}", statuses.join(", "));
    assert!(run.sent >= 150, "only {} bad requests were sent", run.sent);
    assert!(
        run.failures.is_empty(),
        "{} of {} bad requests were not answered with the right 4xx JSON error:\n{}",
        run.failures.len(),
        run.sent,
        run.failures.join("\n")
    );
}

async fn send_builder(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?.to_vec();
    Ok(Answer { status, body })
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    // A key longer than the block is hashed first (RFC 4231 test case 6).
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}
