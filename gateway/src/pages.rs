//! The web pages (the "Try it" page and the admin dashboard) and their assets: a fixed table of
//! URL path → file, read into memory once at start. Nothing else on disk is ever served.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, guard, web};
use bytes::Bytes;
use common::config::Env;
use common::{ApiError, ErrorCode};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

/// Where the page files and the npm-installed libraries are.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// The repository's `web/` folder (pages under it, scripts and styles in `static/`).
    pub dir: PathBuf,
    /// `node_modules` as installed by `cargo xtask setup` (`npm ci` in `web/`).
    pub vendor_dir: PathBuf,
}

impl WebConfig {
    pub const DEFAULT_DIR: &'static str = "web";

    pub fn read(env: &mut Env) -> Self {
        let dir = PathBuf::from(env.or("WEB_DIR", Self::DEFAULT_DIR.to_owned()));
        let vendor_dir = env
            .optional::<String>("WEB_VENDOR_DIR")
            .map_or_else(|| dir.join("node_modules"), PathBuf::from);
        WebConfig { dir, vendor_dir }
    }

    /// The pages of `dir`, with its own `node_modules`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        WebConfig {
            vendor_dir: dir.join("node_modules"),
            dir,
        }
    }
}

/// Which folder an asset's file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Web,
    Vendor,
}

#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub url: &'static str,
    pub root: Root,
    /// Relative to its root.
    pub file: &'static str,
    pub content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

const fn asset(url: &'static str, root: Root, file: &'static str, ct: &'static str) -> Asset {
    Asset {
        url,
        root,
        file,
        content_type: ct,
    }
}

/// Every URL the web pages use. `/admin/...` is the API's, so the dashboard is `/dashboard`.
pub const ASSETS: [Asset; 12] = [
    asset("/", Root::Web, "index.html", HTML),
    asset("/dashboard", Root::Web, "dashboard.html", HTML),
    asset("/static/app.css", Root::Web, "static/app.css", CSS),
    asset("/static/icon.svg", Root::Web, "static/icon.svg", SVG),
    asset("/static/api.js", Root::Web, "static/api.js", JS),
    asset("/static/digit.js", Root::Web, "static/digit.js", JS),
    asset("/static/charts.js", Root::Web, "static/charts.js", JS),
    asset("/static/try.js", Root::Web, "static/try.js", JS),
    asset("/static/dashboard.js", Root::Web, "static/dashboard.js", JS),
    asset("/static/live.js", Root::Web, "static/live.js", JS),
    asset("/static/rollouts.js", Root::Web, "static/rollouts.js", JS),
    asset(
        "/vendor/chart.umd.min.js",
        Root::Vendor,
        "chart.js/dist/chart.umd.min.js",
        JS,
    ),
];

/// Served from the binary itself: URL, body, content type.
pub const BUILT_IN: [(&str, &str, &str); 1] = [(
    crate::openapi::PATH,
    crate::openapi::DOCUMENT,
    "application/json",
)];

/// Every URL answered here: the pages' files, then what the binary holds.
pub fn urls() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.url).chain(BUILT_IN.map(|b| b.0))
}

/// Path prefixes of the web pages, for the rate limiter's default exempt list (`/` itself is
/// answered here, never by the rate-limited proxy).
pub const EXEMPT_PREFIXES: [&str; 3] = ["/dashboard", "/static", "/vendor"];

/// URLs are not fingerprinted, so browsers keep a copy but ask each time (answered 304).
const CACHE_POLICY: &str = "no-cache";

struct Loaded {
    body: Bytes,
    content_type: &'static str,
    etag: String,
    page: bool,
}

/// The table's files, read once; a file that was missing at start stays unavailable.
pub struct WebAssets {
    files: HashMap<&'static str, Option<Loaded>>,
}

impl WebAssets {
    pub fn load(config: &WebConfig) -> Self {
        let mut files = HashMap::new();
        let mut missing = Vec::new();
        for asset in ASSETS {
            let path = match asset.root {
                Root::Web => config.dir.join(asset.file),
                Root::Vendor => config.vendor_dir.join(asset.file),
            };
            let loaded = match std::fs::read(&path) {
                Ok(body) => Some(Loaded {
                    etag: etag(&body),
                    body: Bytes::from(body),
                    content_type: asset.content_type,
                    page: asset.content_type == HTML,
                }),
                Err(e) => {
                    missing.push(format!("{} ({e})", path.display()));
                    None
                }
            };
            files.insert(asset.url, loaded);
        }
        for (url, body, content_type) in BUILT_IN {
            files.insert(
                url,
                Some(Loaded {
                    etag: etag(body.as_bytes()),
                    body: Bytes::from_static(body.as_bytes()),
                    content_type,
                    page: false,
                }),
            );
        }
        if !missing.is_empty() {
            tracing::warn!(
                missing = %missing.join(", "),
                "web pages incomplete: these files are answered with 503 (set WEB_DIR, run `cargo xtask setup`)"
            );
        }
        WebAssets { files }
    }
}

fn etag(body: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}-{:x}\"", hasher.finish(), body.len())
}

/// The routes of [`ASSETS`] and [`BUILT_IN`]: GET and HEAD; any other method is 405.
pub fn configure(assets: web::Data<WebAssets>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        for url in urls() {
            cfg.service(
                web::resource(url)
                    .app_data(assets.clone())
                    .route(
                        web::route()
                            .guard(guard::Any(guard::Get()).or(guard::Head()))
                            .to(serve),
                    )
                    .default_service(web::to(method_not_allowed)),
            );
        }
    }
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    common::http::method_not_allowed(&req)
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
        .error_response()
}

async fn serve(req: HttpRequest, assets: web::Data<WebAssets>) -> HttpResponse {
    let Some(Some(file)) = assets.files.get(req.path()) else {
        return ApiError::from(ErrorCode::WebUnavailable).error_response();
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == file.etag)
        });
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, file.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, CACHE_POLICY));
    if file.page {
        response.insert_header((header::CONTENT_SECURITY_POLICY, page_csp(&req)));
    }
    if fresh {
        return response.finish();
    }
    // For HEAD, actix sends the headers of this answer without its body.
    response
        .content_type(file.content_type)
        .body(file.body.clone())
}

/// The pages' policy, with the WebSocket of the host the page was asked from named explicitly for
/// browsers whose `'self'` does not cover `ws:`/`wss:`.
fn page_csp(req: &HttpRequest) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| plausible_host(h));
    match host {
        Some(host) => crate::edge::PAGE_CONTENT_SECURITY_POLICY.replacen(
            "connect-src 'self'",
            &format!("connect-src 'self' ws://{host} wss://{host}"),
            1,
        ),
        None => crate::edge::PAGE_CONTENT_SECURITY_POLICY.to_owned(),
    }
}

/// A host[:port] made of characters that cannot end or extend a CSP directive.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::path::Path;

    fn repo_web_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
    }

    #[test]
    fn every_page_file_in_the_table_is_in_the_repository() {
        for asset in ASSETS.iter().filter(|a| a.root == Root::Web) {
            let path = repo_web_dir().join(asset.file);
            assert!(path.is_file(), "{} is missing", path.display());
        }
    }

    #[test]
    fn web_urls_are_not_api_routes() {
        let table = crate::routes::RouteTable::defaults();
        for url in urls() {
            assert!(table.lookup(url).is_none(), "{url} clashes");
        }
    }

    #[test]
    fn the_pages_are_exempt_from_rate_limits_by_default() {
        let mut env = Env::from_map(Default::default());
        let limits = crate::ratelimit::RateLimitConfig::read(&mut env);
        for prefix in EXEMPT_PREFIXES {
            assert!(limits.exempt.iter().any(|e| e == prefix), "{prefix}");
        }
        for asset in ASSETS.iter().filter(|a| a.url != "/") {
            assert!(
                EXEMPT_PREFIXES
                    .iter()
                    .any(|p| asset.url == *p || asset.url.starts_with(&format!("{p}/"))),
                "{} is not under an exempt prefix",
                asset.url
            );
        }
    }

    #[test]
    fn hosts_that_could_inject_into_the_policy_are_left_out() {
        assert!(plausible_host("127.0.0.1:8080"));
        assert!(plausible_host("[::1]:8080"));
        assert!(plausible_host("digits.example.com"));
        assert!(!plausible_host("evil.com; script-src *"));
        assert!(!plausible_host("a b"));
        assert!(!plausible_host(""));
    }

    #[test]
    fn the_vendor_dir_follows_the_web_dir_unless_set() {
        let read = |pairs: &[(&str, &str)]| {
            let mut env = Env::from_map(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
            let config = WebConfig::read(&mut env);
            env.finish().unwrap();
            config
        };
        assert_eq!(read(&[]), WebConfig::at("web"));
        assert_eq!(
            read(&[("WEB_DIR", "/srv/pages")]),
            WebConfig::at("/srv/pages")
        );
        let split = read(&[("WEB_DIR", "/srv/pages"), ("WEB_VENDOR_DIR", "/opt/npm")]);
        assert_eq!(split.dir, PathBuf::from("/srv/pages"));
        assert_eq!(split.vendor_dir, PathBuf::from("/opt/npm"));
    }

    #[test]
    fn a_missing_web_dir_leaves_every_file_unavailable() {
        let assets = WebAssets::load(&WebConfig::at("/nonexistent/predictloop-web"));
        assert!(ASSETS.iter().all(|a| assets.files[a.url].is_none()));
        assert_eq!(assets.files.len(), ASSETS.len() + BUILT_IN.len());
        // What the binary holds is served regardless.
        assert!(assets.files[crate::openapi::PATH].is_some());
    }
}
