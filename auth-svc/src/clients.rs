//! The services that may obtain service tokens (`SERVICE_CLIENTS`): each one's client id, the
//! SHA-256 of its secret (never the secret itself) and the scopes it may be given.
//!
//! `SERVICE_CLIENTS` lists them separated by `;`, each as `ID:SECRET=SCOPE,SCOPE`, e.g.
//! `feedback-svc:3q…Zs=predictions:read`. `SECRET` is the secret itself (URL-safe characters,
//! at least 32 outside development mode) or `sha256:` and the 64 hex digits of its SHA-256, so
//! that auth-svc's configuration need not hold the secrets.

use common::config::{Env, Mode, WELL_KNOWN_SECRETS};
use common::service_auth::scopes;
use sha2::Digest;

/// One service allowed the client-credentials grant.
#[derive(Clone)]
pub struct ServiceClient {
    pub id: String,
    secret_sha256: [u8; 32],
    pub scopes: Vec<&'static str>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The configured clients.
#[derive(Debug, Clone, Default)]
pub struct ServiceClients(Vec<ServiceClient>);

/// Shortest plain secret accepted outside development mode.
pub const MIN_SECRET_LEN: usize = 32;

fn digest(secret: &str) -> [u8; 32] {
    sha2::Sha256::digest(secret.as_bytes()).into()
}

/// Equal in a time that does not depend on where the two differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl ServiceClients {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client with this id and secret. Unknown ids cost the same digest and comparison as
    /// known ones.
    pub fn authenticate(&self, id: &str, secret: &str) -> Option<&ServiceClient> {
        let given = digest(secret);
        let mut found = None;
        for client in &self.0 {
            let matches = same(&given, &client.secret_sha256);
            if client.id == id && matches {
                found = Some(client);
            }
        }
        found
    }

    /// Reads `SERVICE_CLIENTS`; a problem for each invalid entry (never quoting a secret).
    pub fn read(env: &mut Env, mode: Mode) -> Self {
        let Some(raw) = env.raw("SERVICE_CLIENTS").map(str::to_owned) else {
            if mode.is_development() {
                tracing::warn!(
                    "no SERVICE_CLIENTS: no service can obtain a token for the /internal/ routes \
                     (the all-in-one process and `cargo xtask up` generate them)"
                );
            } else {
                env.problem(
                    "SERVICE_CLIENTS is required outside development mode: the services that \
                     call /internal/ routes (`ID:SECRET=SCOPE,SCOPE;…`, see docs/internal-plane.md)",
                );
            }
            return ServiceClients::default();
        };
        let mut clients: Vec<ServiceClient> = Vec::new();
        for (n, entry) in raw.split(';').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            match parse_entry(n + 1, entry, mode, &clients) {
                Ok((client, problems)) => {
                    for problem in problems {
                        env.problem(problem);
                    }
                    clients.push(client);
                }
                Err(problem) => env.problem(problem),
            }
        }
        ServiceClients(clients)
    }
}

/// One `ID:SECRET=SCOPE,SCOPE` entry (the `n`th): the client and the problems that do not
/// refuse it (unknown scopes), or the problem that does.
fn parse_entry(
    n: usize,
    entry: &str,
    mode: Mode,
    earlier: &[ServiceClient],
) -> Result<(ServiceClient, Vec<String>), String> {
    let malformed = || format!("SERVICE_CLIENTS entry {n}: expected `ID:SECRET=SCOPE,SCOPE`");
    let (credentials, scope_list) = entry.split_once('=').ok_or_else(malformed)?;
    let (id, secret) = credentials.split_once(':').ok_or_else(malformed)?;
    let (id, secret) = (id.trim(), secret.trim());
    if !valid_id(id) {
        return Err(format!(
            "SERVICE_CLIENTS entry {n}: the client id must be 1 to 64 letters, digits, \
             `-`, `_` or `.`"
        ));
    }
    if earlier.iter().any(|c| c.id == id) {
        return Err(format!("SERVICE_CLIENTS: client `{id}` is listed twice"));
    }
    let secret_sha256 = secret_digest(id, secret, mode)?;
    let (scopes, problems) = parse_scopes(id, scope_list);
    let client = ServiceClient {
        id: id.to_owned(),
        secret_sha256,
        scopes,
    };
    Ok((client, problems))
}

/// The SHA-256 of a client's secret: given as `sha256:HEX`, or a plain secret that must be
/// URL-safe and, outside development mode, long and not a well-known one.
fn secret_digest(id: &str, secret: &str, mode: Mode) -> Result<[u8; 32], String> {
    if let Some(hex) = secret.strip_prefix("sha256:") {
        return decode_hex(hex).ok_or_else(|| {
            format!("SERVICE_CLIENTS `{id}`: `sha256:` must be followed by 64 hex digits")
        });
    }
    let url_safe = !secret.is_empty()
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'));
    if !url_safe {
        return Err(format!(
            "SERVICE_CLIENTS `{id}`: the secret must be URL-safe characters \
             (letters, digits, `-`, `_`, `.`, `~`), e.g. `openssl rand -hex 32`"
        ));
    }
    let weak = secret.len() < MIN_SECRET_LEN
        || WELL_KNOWN_SECRETS
            .iter()
            .any(|w| w.eq_ignore_ascii_case(secret));
    if !mode.is_development() && weak {
        return Err(format!(
            "SERVICE_CLIENTS `{id}`: the secret must have at least {MIN_SECRET_LEN} \
             characters and not be a well-known one, e.g. `openssl rand -hex 32`"
        ));
    }
    Ok(digest(secret))
}

/// The known scopes of a comma- or space-separated list, each once; a problem for each
/// unknown one.
fn parse_scopes(id: &str, list: &str) -> (Vec<&'static str>, Vec<String>) {
    let mut granted = Vec::new();
    let mut problems = Vec::new();
    for scope in list
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match scopes::ALL.iter().find(|s| **s == scope) {
            Some(s) if !granted.contains(s) => granted.push(*s),
            Some(_) => {}
            None => problems.push(format!(
                "SERVICE_CLIENTS `{id}`: unknown scope `{scope}` (known: {})",
                scopes::ALL.join(", ")
            )),
        }
    }
    (granted, problems)
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str, mode: Mode) -> Result<ServiceClients, String> {
        let mut env = Env::from_map([("SERVICE_CLIENTS".to_owned(), value.to_owned())].into());
        let clients = ServiceClients::read(&mut env, mode);
        env.finish().map(|()| clients).map_err(|e| e.to_string())
    }

    #[test]
    fn clients_authenticate_by_secret_or_its_digest() {
        let secret = "a".repeat(40);
        let hashed = common::digest::sha256_hex(b"the-other-secret-of-forty-characters-xx");
        let clients = read(
            &format!(
                "retrain-worker:{secret}=models:read,models:promote; feedback-svc:sha256:{hashed}=predictions:read"
            ),
            Mode::Production,
        )
        .unwrap();
        let c = clients.authenticate("retrain-worker", &secret).unwrap();
        assert_eq!(c.scopes, ["models:read", "models:promote"]);
        assert!(clients.authenticate("retrain-worker", "wrong").is_none());
        assert!(clients.authenticate("feedback-svc", &secret).is_none());
        assert!(
            clients
                .authenticate("feedback-svc", "the-other-secret-of-forty-characters-xx")
                .is_some()
        );
        assert!(format!("{clients:?}").contains("retrain-worker"));
        assert!(!format!("{clients:?}").contains(&secret));
    }

    #[test]
    fn bad_entries_are_refused_without_quoting_secrets() {
        let err = read("x:short=models:read", Mode::Production).unwrap_err();
        assert!(err.contains("at least 32"), "{err}");
        assert!(!err.contains("short"), "{err}");
        assert!(read("x:short=models:read", Mode::Development).is_ok());
        let err = read(
            &format!("x:{}=models:fly", "b".repeat(40)),
            Mode::Production,
        )
        .unwrap_err();
        assert!(err.contains("unknown scope `models:fly`"), "{err}");
        assert!(read("nonsense", Mode::Development).is_err());
        let mut env = Env::from_map(Default::default());
        let _ = ServiceClients::read(&mut env, Mode::Production);
        assert!(
            env.finish()
                .unwrap_err()
                .to_string()
                .contains("SERVICE_CLIENTS is required")
        );
    }
}
