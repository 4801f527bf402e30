//! `cargo xtask watch`: the admin WebSocket of a running `cargo xtask up`, printed one event per
//! line. Logs in as its admin; reconnects by itself after a drop, asking for what it missed
//! (`last_event_id`).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tungstenite::{Message, WebSocket};

use crate::http::{Client, json_string_field};
use crate::up;

/// The first pause before reconnecting, doubled after each failure up to [`MAX_RETRY`]: `/login`
/// is rate-limited per address, and a browser on the same machine shares it.
const RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Why a connection ended.
enum Ended {
    /// The server closed it (a restart, the token's expiry): connect again.
    Closed,
    /// These credentials will never do (a wrong password, not an admin): give up.
    Refused(String),
}

pub fn run(root: &Path) -> Result<()> {
    let port = up::gateway_port()?;
    let gateway = SocketAddr::from(([127, 0, 0, 1], port));
    let (username, password) = up::admin_login(root)?;
    let mut last_event_id: Option<String> = None;
    let mut pause = RETRY;
    loop {
        match watch_once(gateway, &username, &password, &mut last_event_id) {
            Ok(Ended::Refused(why)) => bail!("{why}"),
            Ok(Ended::Closed) => {
                eprintln!("the server closed the socket; reconnecting");
                pause = RETRY;
            }
            Err(e) => {
                eprintln!("{e:#}; reconnecting in {} s", pause.as_secs());
                thread::sleep(pause);
                pause = (pause * 2).min(MAX_RETRY);
            }
        }
    }
}

/// One connection: logs in, joins the admins' room and prints events until the socket ends.
fn watch_once(
    gateway: SocketAddr,
    username: &str,
    password: &str,
    last_event_id: &mut Option<String>,
) -> Result<Ended> {
    let creds = serde_json::json!({"username": username, "password": password}).to_string();
    let login = Client::new(gateway)
        .post(
            "/login",
            &[("Content-Type", "application/json")],
            creds.as_bytes(),
        )
        .with_context(|| format!("is `cargo xtask up` running? logging in at {gateway}"))?;
    if matches!(login.status, 400 | 401 | 403) {
        return Ok(Ended::Refused(format!(
            "logging in as {username} answered {}: {}",
            login.status,
            String::from_utf8_lossy(&login.body)
        )));
    }
    let Some(token) = json_string_field(&login.body, "access_token") else {
        bail!(
            "logging in as {username} answered {}: {}",
            login.status,
            String::from_utf8_lossy(&login.body)
        );
    };
    let mut url = format!("ws://{gateway}/ws?access_token={token}");
    if let Some(id) = last_event_id.as_deref() {
        url.push_str(&format!("&last_event_id={id}"));
    }
    let stream = TcpStream::connect(gateway).with_context(|| format!("connecting to {gateway}"))?;
    let (mut socket, _) = match tungstenite::client::client(url.as_str(), stream) {
        Ok(connected) => connected,
        // Only admins get a socket: anyone else is refused before the upgrade.
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(answer)))
            if answer.status() == 403 =>
        {
            return Ok(Ended::Refused(format!("{username} is not an admin")));
        }
        Err(e) => return Err(e).context("the WebSocket upgrade"),
    };
    socket.send(Message::text(r#"{"event":"join_admin"}"#))?;
    eprintln!("watching the admin events at ws://{gateway}/ws (Ctrl-C to stop)");
    print_events(&mut socket, last_event_id)
}

fn print_events(
    socket: &mut WebSocket<TcpStream>,
    last_event_id: &mut Option<String>,
) -> Result<Ended> {
    loop {
        let text = match socket.read().context("reading the socket")? {
            Message::Text(text) => text,
            Message::Close(_) => return Ok(Ended::Closed),
            _ => continue,
        };
        let Ok(event) = serde_json::from_str::<Value>(&text) else {
            println!("{text}");
            continue;
        };
        if let Some(id) = event["id"].as_str() {
            *last_event_id = Some(id.to_owned());
        }
        let name = event["event"].as_str().unwrap_or("?");
        println!("{name:<17} {}", event["data"]);
    }
}
