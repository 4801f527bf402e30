//! The gateway's explicit route table: which public paths go to which service, and who may
//! call them. Anything not in the table is 404; `/internal/` paths can never be in it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Upstream {
    Auth,
    Predict,
    Feedback,
    Notify,
    Retrain,
}

impl Upstream {
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Auth => "auth-svc",
            Upstream::Predict => "predict-svc",
            Upstream::Feedback => "feedback-svc",
            Upstream::Notify => "notify-svc",
            Upstream::Retrain => "retrain-worker",
        }
    }

    pub const ALL: [Upstream; 5] = [
        Upstream::Auth,
        Upstream::Predict,
        Upstream::Feedback,
        Upstream::Notify,
        Upstream::Retrain,
    ];
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Public,
    User,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    /// The path itself only.
    #[default]
    Exact,
    /// The path and everything below it (segment-wise: `/a` covers `/a/b`, not `/ab`).
    Prefix,
}

/// What kind of body a route takes, which picks its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    #[default]
    Json,
    Upload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    pub path: String,
    #[serde(default, rename = "match")]
    pub matching: Match,
    pub upstream: Upstream,
    pub access: Access,
    /// Allowed methods; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub body: BodyKind,
}

impl Route {
    fn new(
        path: &str,
        matching: Match,
        upstream: Upstream,
        access: Access,
        methods: &[&str],
    ) -> Self {
        Route {
            path: path.to_owned(),
            matching,
            upstream,
            access,
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            body: BodyKind::Json,
        }
    }

    fn upload(mut self) -> Self {
        self.body = BodyKind::Upload;
        self
    }

    fn matches(&self, path: &str) -> bool {
        match self.matching {
            Match::Exact => path == self.path,
            Match::Prefix => {
                path == self.path
                    || (path.starts_with(&self.path)
                        && path.as_bytes().get(self.path.len()) == Some(&b'/'))
            }
        }
    }

    pub fn allows(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// The public API of the design, seed-compatible paths first.
    pub fn defaults() -> Self {
        use Access::*;
        use Match::*;
        use Upstream::*;
        let routes = vec![
            Route::new("/register", Exact, Auth, Public, &["POST"]),
            Route::new("/login", Exact, Auth, Public, &["POST"]),
            Route::new("/token/refresh", Exact, Auth, Public, &["POST"]),
            Route::new("/logout", Exact, Auth, User, &["POST"]),
            Route::new("/.well-known/jwks.json", Exact, Auth, Public, &["GET"]),
            Route::new("/me", Exact, Auth, User, &["GET"]),
            Route::new("/api/v1/predict", Exact, Predict, User, &["POST"]).upload(),
            Route::new("/api/v2/predict", Exact, Predict, User, &["POST"]).upload(),
            Route::new("/v2/health", Prefix, Predict, Public, &["GET"]),
            Route::new("/v2/models", Prefix, Predict, User, &["GET", "POST"]).upload(),
            Route::new("/admin/models", Prefix, Predict, Admin, &["GET", "POST"]),
            Route::new("/feedback", Exact, Feedback, User, &["POST"]),
            Route::new("/admin/report", Exact, Feedback, Admin, &["GET"]),
            Route::new("/admin/feedback", Prefix, Feedback, Admin, &["GET"]),
            // `/admin/users/{id}/labels/exclude`: which labels train is feedback-svc's business.
            Route::new("/admin/users", Prefix, Feedback, Admin, &["POST"]),
            Route::new("/admin/retrain", Prefix, Retrain, Admin, &["GET", "POST"]),
        ];
        RouteTable { routes }
    }

    pub fn new(routes: Vec<Route>) -> Result<Self, String> {
        for r in &routes {
            if !r.path.starts_with('/') {
                return Err(format!("route `{}` must start with `/`", r.path));
            }
            if r.path == "/internal" || r.path.starts_with("/internal/") {
                return Err(format!(
                    "route `{}`: /internal/ paths are never public",
                    r.path
                ));
            }
            if matches!(r.path.as_str(), "/health" | "/ready") {
                return Err(format!(
                    "route `{}` is served by the gateway itself",
                    r.path
                ));
            }
        }
        Ok(RouteTable { routes })
    }

    pub fn from_file(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let routes: Vec<Route> =
            serde_json::from_str(&text).map_err(|e| format!("{path} is not a route list: {e}"))?;
        Self::new(routes)
    }

    /// The most specific route for a path.
    pub fn lookup(&self, path: &str) -> Option<&Route> {
        if path == "/internal" || path.starts_with("/internal/") {
            return None;
        }
        self.routes
            .iter()
            .filter(|r| r.matches(path))
            .max_by_key(|r| (r.matching == Match::Exact, r.path.len()))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_routes_the_public_api() {
        let t = RouteTable::defaults();
        let up = |p: &str| t.lookup(p).map(|r| (r.upstream, r.access));
        assert_eq!(up("/login"), Some((Upstream::Auth, Access::Public)));
        assert_eq!(up("/logout"), Some((Upstream::Auth, Access::User)));
        assert_eq!(
            up("/api/v1/predict"),
            Some((Upstream::Predict, Access::User))
        );
        assert_eq!(
            up("/admin/report"),
            Some((Upstream::Feedback, Access::Admin))
        );
        assert_eq!(
            up("/admin/retrain/0190-abc"),
            Some((Upstream::Retrain, Access::Admin))
        );
        assert_eq!(
            up("/admin/models/mnist-cnn/versions/2/promote"),
            Some((Upstream::Predict, Access::Admin))
        );
        assert_eq!(
            up("/admin/users/u-1/labels/exclude"),
            Some((Upstream::Feedback, Access::Admin))
        );
        assert_eq!(up("/admin/modelsx"), None);
        assert_eq!(up("/internal/predictions/1"), None);
        assert_eq!(up("/nope"), None);
        assert_eq!(up("/login/extra"), None);
    }

    #[test]
    fn internal_routes_are_refused_in_configuration() {
        let r = Route::new(
            "/internal/x",
            Match::Prefix,
            Upstream::Predict,
            Access::Public,
            &[],
        );
        assert!(RouteTable::new(vec![r]).is_err());
    }
}
