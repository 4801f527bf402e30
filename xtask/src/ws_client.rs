//! Many admin WebSockets at once for `cargo xtask bench notify`, without an async runtime: one
//! thread per socket, each with a small stack and small buffers, blocking on its socket with a
//! short read timeout so it can notice when to stop. Each socket records when each
//! `new_feedback` event reached it.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{HandshakeError, Message, WebSocket};

/// Enough for a blocking read loop, a frame and a small JSON parse.
const STACK_SIZE: usize = 256 * 1024;
/// The first read chunk; events are a few hundred bytes (tungstenite's default is 128 KiB).
const READ_BUFFER: usize = 4 * 1024;
/// How long connecting, the upgrade and the answer to `join_admin` may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a waiting socket looks at the stop flag.
const POLL: Duration = Duration::from_millis(250);

/// A `new_feedback` event as one socket received it.
pub struct Delivery {
    /// The feedback's id (`data.id`).
    pub feedback_id: i64,
    pub at: Instant,
}

/// What one socket saw, once stopped.
pub struct Outcome {
    /// Whether it got as far as the answer to `join_admin`.
    pub joined: bool,
    pub deliveries: Vec<Delivery>,
    /// Why it failed or ended before being told to stop.
    pub error: Option<String>,
}

/// The sockets' threads and the counters they update.
pub struct Sockets {
    stop: Arc<AtomicBool>,
    /// Sockets that have joined the admins' room (answered `join_admin`).
    joined: Arc<AtomicUsize>,
    /// Sockets that failed before joining.
    failed: Arc<AtomicUsize>,
    /// `new_feedback` events received, over all sockets.
    received: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<Outcome>>,
}

impl Sockets {
    pub fn new() -> Self {
        Sockets {
            stop: Arc::new(AtomicBool::new(false)),
            joined: Arc::new(AtomicUsize::new(0)),
            failed: Arc::new(AtomicUsize::new(0)),
            received: Arc::new(AtomicUsize::new(0)),
            threads: Vec::new(),
        }
    }

    /// Starts one more socket to `ws://{gateway}/ws?access_token={token}`.
    pub fn open(&mut self, gateway: SocketAddr, token: &str) -> Result<()> {
        let url = format!("ws://{gateway}/ws?access_token={token}");
        let (stop, joined, failed, received) = (
            Arc::clone(&self.stop),
            Arc::clone(&self.joined),
            Arc::clone(&self.failed),
            Arc::clone(&self.received),
        );
        let thread = thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let mut socket = match join(gateway, &url) {
                    Ok(socket) => socket,
                    Err(error) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        return Outcome {
                            joined: false,
                            deliveries: Vec::new(),
                            error: Some(error),
                        };
                    }
                };
                joined.fetch_add(1, Ordering::SeqCst);
                let outcome = listen(&mut socket, &stop, &received);
                let _ = socket.close(None);
                let _ = socket.flush();
                outcome
            })
            .with_context(|| {
                format!(
                    "starting the thread of WebSocket {} (too many threads?)",
                    self.threads.len() + 1
                )
            })?;
        self.threads.push(thread);
        Ok(())
    }

    pub fn opened(&self) -> usize {
        self.threads.len()
    }

    pub fn joined(&self) -> usize {
        self.joined.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// Tells every socket to close, and collects what each saw.
    pub fn stop(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|thread| {
                thread.join().unwrap_or_else(|_| Outcome {
                    joined: false,
                    deliveries: Vec::new(),
                    error: Some("the socket's thread panicked".into()),
                })
            })
            .collect()
    }
}

impl Drop for Sockets {
    /// Sockets left behind (an early return) close within one poll.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Connects, upgrades, sends `{"event":"join_admin"}` and waits for the `message` answer.
fn join(gateway: SocketAddr, url: &str) -> Result<WebSocket<TcpStream>, String> {
    let stream = TcpStream::connect_timeout(&gateway, HANDSHAKE_TIMEOUT)
        .map_err(|e| format!("connecting to {gateway}: {e}"))?;
    let setup = |stream: &TcpStream| -> io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))
    };
    setup(&stream).map_err(|e| format!("setting up the socket: {e}"))?;
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (mut socket, _) = tungstenite::client::client_with_config(url, stream, Some(config))
        .map_err(|e| match e {
            HandshakeError::Failure(tungstenite::Error::Http(answer)) => format!(
                "GET /ws answered {}: {}",
                answer.status(),
                String::from_utf8_lossy(answer.body().as_deref().unwrap_or_default())
            ),
            other => format!("WebSocket upgrade: {other}"),
        })?;
    socket
        .send(Message::text(r#"{"event":"join_admin"}"#))
        .map_err(|e| format!("sending join_admin: {e}"))?;
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                match frame.get("event").and_then(Value::as_str) {
                    Some("message") => break,
                    Some("error") => return Err(format!("join_admin was refused: {text}")),
                    _ => {}
                }
            }
            Ok(Message::Close(frame)) => return Err(format!("closed while joining: {frame:?}")),
            Ok(_) => {}
            Err(e) => return Err(format!("waiting for the answer to join_admin: {e}")),
        }
    }
    socket
        .get_ref()
        .set_read_timeout(Some(POLL))
        .map_err(|e| format!("setting the read timeout: {e}"))?;
    Ok(socket)
}

/// Reads until told to stop, recording every `new_feedback`.
fn listen(socket: &mut WebSocket<TcpStream>, stop: &AtomicBool, received: &AtomicUsize) -> Outcome {
    let mut deliveries = Vec::new();
    let mut error = None;
    while !stop.load(Ordering::SeqCst) {
        match socket.read() {
            Ok(Message::Text(text)) => {
                let at = Instant::now();
                if let Some(feedback_id) = new_feedback_id(text.as_str()) {
                    deliveries.push(Delivery { feedback_id, at });
                    received.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(Message::Close(frame)) => {
                error = Some(format!("closed by the server: {frame:?}"));
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                error = Some(format!("reading: {e}"));
                break;
            }
        }
    }
    Outcome {
        joined: true,
        deliveries,
        error,
    }
}

/// `data.id` of a `{"event":"new_feedback","data":{"id":…}}` frame.
fn new_feedback_id(text: &str) -> Option<i64> {
    let frame: Value = serde_json::from_str(text).ok()?;
    if frame.get("event")?.as_str()? != "new_feedback" {
        return None;
    }
    frame.get("data")?.get("id")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::new_feedback_id;

    #[test]
    fn the_feedback_id_is_read_from_new_feedback_frames_only() {
        let event = r#"{"data":{"comment":"bench","id":42,"prediction_id":null},"event":"new_feedback","id":"0198c0de-0000-7000-8000-000000000000"}"#;
        assert_eq!(new_feedback_id(event), Some(42));
        let message = r#"{"event":"message","data":{"data":"hola"}}"#;
        assert_eq!(new_feedback_id(message), None);
        assert_eq!(new_feedback_id("not json"), None);
    }
}
