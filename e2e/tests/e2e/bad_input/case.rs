//! A bad request (`Case`), how it is sent, and what its answer must be (`Run`).

use super::*;

pub(super) enum Payload {
    None,
    /// A body with a Content-Length, and its Content-Type if any.
    Bytes(Option<String>, Vec<u8>),
    /// A body sent in chunks, without a Content-Length.
    Chunked(String, Vec<u8>),
    /// Only a Content-Length header claiming this many bytes, and no body (sent raw).
    Declared(String, u64),
}

pub(super) struct Case {
    pub(super) group: &'static str,
    pub(super) name: String,
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) authorization: Option<String>,
    pub(super) headers: Vec<(&'static str, Vec<u8>)>,
    pub(super) payload: Payload,
    /// Sent over a plain TCP socket, so that the path reaches the gateway byte for byte (an
    /// HTTP client resolves `..` and `%2e%2e` before sending).
    pub(super) raw: bool,
    /// The one status this case must get; otherwise any 4xx.
    pub(super) expect: Option<u16>,
}

pub(super) fn case(
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

pub(super) fn get(group: &'static str, name: impl Into<String>, path: impl Into<String>) -> Case {
    case(group, name, Method::GET, path)
}

pub(super) fn post(group: &'static str, name: impl Into<String>, path: impl Into<String>) -> Case {
    case(group, name, Method::POST, path)
}

impl Case {
    pub(super) fn bearer(self, token: &str) -> Self {
        self.authorization(Some(format!("Bearer {token}")))
    }

    pub(super) fn authorization(mut self, value: Option<String>) -> Self {
        self.authorization = value;
        self
    }

    pub(super) fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.body(Some("application/json"), body)
    }

    pub(super) fn body(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        self.payload = Payload::Bytes(content_type.map(str::to_owned), body.into());
        self
    }

    pub(super) fn multipart(self, body: Vec<u8>) -> Self {
        self.body(
            Some(format!("multipart/form-data; boundary={BOUNDARY}").as_str()),
            body,
        )
    }

    pub(super) fn chunked(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.payload = Payload::Chunked(content_type.to_owned(), body);
        self
    }

    pub(super) fn declared(mut self, content_type: &str, length: u64) -> Self {
        self.payload = Payload::Declared(content_type.to_owned(), length);
        self.raw = true;
        self
    }

    pub(super) fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(super) fn raw(mut self) -> Self {
        self.raw = true;
        self
    }

    pub(super) fn expect(mut self, status: u16) -> Self {
        self.expect = Some(status);
        self
    }
}

pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
}

pub(super) async fn send(system: &System, case: &Case) -> Result<Answer, String> {
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

/// A WebSocket upgrade that must be refused: the refusal as an answer.
pub(super) async fn ws_attempt(url: &str) -> Result<Answer, String> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => Err("the WebSocket was opened".into()),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Ok(Answer {
            status: r.status().as_u16(),
            body: r.body().clone().unwrap_or_default(),
        }),
        Err(e) => Err(format!("no HTTP refusal: {e}")),
    }
}

pub(super) fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(160).collect();
    if short.len() < text.len() {
        short.push_str(&format!("… ({} bytes)", text.len()));
    }
    short
}

/// What is wrong with an answer to a bad request, if anything.
pub(super) fn verdict(
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
pub(super) struct Run {
    pub(super) sent: usize,
    pub(super) rate_limited: usize,
    pub(super) statuses: BTreeMap<u16, usize>,
    pub(super) by_group: BTreeMap<&'static str, usize>,
    pub(super) names: HashSet<(&'static str, String)>,
    pub(super) failures: Vec<String>,
    /// Every case and its answer, printed when `BAD_INPUT_LOG` is set.
    pub(super) log: Vec<String>,
}

impl Run {
    pub(super) async fn check(&mut self, system: &System, case: Case) {
        let answer = send(system, &case).await;
        let request = format!(
            "{} {}{}",
            case.method,
            shorten(&case.path),
            if case.raw { " (raw)" } else { "" }
        );
        self.record(case.group, case.name, &request, case.expect, answer);
    }

    pub(super) async fn check_all(&mut self, system: &System, cases: Vec<Case>) {
        for case in cases {
            self.check(system, case).await;
        }
    }

    pub(super) fn record(
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

    /// Prints the counts, then fails listing every case answered wrongly.
    pub(super) fn report(&self) {
        eprintln!(
            "bad-input suite: {} bad requests ({} answered 429)",
            self.sent, self.rate_limited
        );
        for (group, n) in &self.by_group {
            eprintln!("  {n:>4}  {group}");
        }
        if std::env::var_os("BAD_INPUT_LOG").is_some() {
            eprintln!("{}", self.log.join("\n"));
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}×{n}"))
            .collect();
        eprintln!("  answers: {}", statuses.join(", "));
        assert!(
            self.sent >= 150,
            "only {} bad requests were sent",
            self.sent
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} bad requests were not answered with the right 4xx JSON error:\n{}",
            self.failures.len(),
            self.sent,
            self.failures.join("\n")
        );
    }
}
