//! The plain HTTP client of the xtask commands (logging in, the benchmarks' requests and load),
//! on `ureq`: blocking, so no async runtime in xtask, and built without TLS since it only talks
//! to services on this machine.

use std::net::SocketAddr;
use std::time::Duration;

/// A client of one service; its connections are kept alive between requests, so a client per
/// thread is a keep-alive connection per thread.
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        let agent = ureq::Agent::config_builder()
            // A 4xx or 5xx is an answer the caller reads, not a transport error.
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        Client {
            agent,
            base: format!("http://{addr}"),
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response, ureq::Error> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.call()?)
    }

    pub fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ureq::Error> {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send(body)?)
    }
}

fn read(mut answer: ureq::http::Response<ureq::Body>) -> Result<Response, ureq::Error> {
    Ok(Response {
        status: answer.status().as_u16(),
        body: answer.body_mut().read_to_vec()?,
    })
}

/// The string value of a top-level field of a JSON object, e.g. a token.
pub fn json_string_field(body: &[u8], name: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get(name)?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::{Client, json_string_field};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A server that accepts one connection and answers `answers` on it, in order; the
    /// requests' heads and bodies as it read them.
    fn one_connection(
        answers: Vec<&'static str>,
    ) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut seen = Vec::new();
            for answer in answers {
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                seen.push(format!("{head}{}", String::from_utf8(body).unwrap()));
                writer.write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        (addr, server)
    }

    #[test]
    fn requests_share_one_connection_and_an_error_status_is_an_answer() {
        let (addr, server) = one_connection(vec![
            "HTTP/1.1 401 Unauthorized\r\ncontent-length: 16\r\n\r\n{\"error\":\"nope\"}",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3\r\n42}\r\n0\r\n\r\n",
        ]);
        let client = Client::new(addr);
        let refused = client
            .post("/login", &[("Content-Type", "application/json")], b"{}")
            .unwrap();
        assert_eq!(refused.status, 401);
        assert_eq!(
            json_string_field(&refused.body, "error").as_deref(),
            Some("nope")
        );
        let answer = client
            .get("/admin/retrain/1", &[("Authorization", "Bearer t")])
            .unwrap();
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (200, &b"{\"a\":42}"[..])
        );
        let seen = server.join().unwrap();
        assert!(
            seen[0].starts_with("POST /login HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        assert!(
            seen[0]
                .to_ascii_lowercase()
                .contains("content-type: application/json")
        );
        assert!(seen[0].ends_with("{}"));
        assert!(
            seen[1].starts_with("GET /admin/retrain/1 HTTP/1.1\r\n"),
            "{}",
            seen[1]
        );
        assert!(
            seen[1]
                .to_ascii_lowercase()
                .contains("authorization: bearer t")
        );
    }

    #[test]
    fn a_top_level_string_field_is_read() {
        let body = br#"{"access_token":"a.b.c","nested":{"error":"x"},"n":1}"#;
        assert_eq!(
            json_string_field(body, "access_token").as_deref(),
            Some("a.b.c")
        );
        assert_eq!(json_string_field(body, "error"), None);
        assert_eq!(json_string_field(body, "n"), None);
        assert_eq!(json_string_field(b"not json", "error"), None);
    }
}
