//! Request bodies: forms, broken and oversize JSON.

use super::*;

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub(super) fn enc(s: &str) -> String {
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
pub(super) fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
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

pub(super) fn file_form(filename: &str, content: &[u8]) -> Vec<u8> {
    form(&[("file", Some(filename), content)])
}

/// Broken JSON every JSON route must refuse: (case, body).
pub(super) fn broken_json() -> Vec<(&'static str, Vec<u8>)> {
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

pub(super) fn nested_value(depth: usize) -> String {
    format!("{}0{}", "[".repeat(depth), "]".repeat(depth))
}

/// A JSON object with a long string field, `size` bytes or a little more.
pub(super) fn padded_json(prefix: &str, size: usize) -> Vec<u8> {
    let mut body = format!(r#"{{{prefix}"padding": ""#).into_bytes();
    body.resize(size, b'x');
    body.extend_from_slice(b"\"}");
    body
}
