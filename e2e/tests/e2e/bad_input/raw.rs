//! Requests written byte for byte on a TCP socket, and their answers read back.

use super::*;

/// One HTTP/1.1 exchange over a fresh TCP connection, the request written exactly as given.
pub(super) async fn send_raw(system: &System, case: &Case) -> Result<Answer, String> {
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

pub(super) type Head = (u16, Vec<(String, String)>, usize);

/// The status, headers and where the body starts, once the head has fully arrived.
pub(super) fn split_head(bytes: &[u8]) -> Option<Head> {
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

pub(super) fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn is_chunked(headers: &[(String, String)]) -> bool {
    header_value(headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"))
}

pub(super) fn content_length(headers: &[(String, String)]) -> Option<usize> {
    header_value(headers, "content-length").and_then(|v| v.parse().ok())
}

pub(super) fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
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

pub(super) fn response_complete(bytes: &[u8]) -> bool {
    let Some((_, headers, start)) = split_head(bytes) else {
        return false;
    };
    if is_chunked(&headers) {
        dechunk(&bytes[start..]).is_some()
    } else {
        content_length(&headers).is_some_and(|n| bytes.len() - start >= n)
    }
}

pub(super) fn parse_response(bytes: &[u8]) -> Result<Answer, String> {
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
