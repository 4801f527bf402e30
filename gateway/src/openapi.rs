//! The OpenAPI 3.1 document of the public API, `gateway/openapi.json`: written by hand beside
//! the route table it describes, compiled into the binary and served at [`PATH`] by
//! [`crate::pages`] (with its ETag, like the pages). The tests below hold it to the table.

/// Where the document is served.
pub const PATH: &str = "/openapi.json";

/// The document itself.
pub const DOCUMENT: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::routes::{Access, Match, RouteTable};
    use common::ErrorCode;
    use serde_json::Value;
    use std::collections::BTreeSet;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// Paths the gateway answers itself on its public port, outside the route table and the
    /// pages (`/metrics` is on the management port, outside this document).
    const GATEWAY_PATHS: [&str; 3] = ["/health", "/ready", "/ws"];

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    /// Every (path, method, operation) of the document.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    ops.push((path.clone(), method.to_owned(), op.clone()));
                }
            }
        }
        ops
    }

    /// A concrete path for a template: `{name}` becomes `name`.
    fn concrete(template: &str) -> String {
        template.replace(['{', '}'], "")
    }

    fn needs_token(doc: &Value, op: &Value) -> bool {
        let security = op.get("security").unwrap_or(&doc["security"]);
        security.as_array().is_some_and(|s| !s.is_empty())
    }

    #[test]
    fn the_document_is_openapi_3_1_for_this_version() {
        let doc = document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(doc["components"]["schemas"]["Error"].is_object());
    }

    #[test]
    fn every_route_of_the_table_is_described_with_each_of_its_methods() {
        let doc = document();
        let ops = operations(&doc);
        for route in RouteTable::defaults().routes() {
            for method in &route.methods {
                let method = method.to_ascii_lowercase();
                let described = ops.iter().any(|(path, m, _)| {
                    *m == method
                        && match route.matching {
                            Match::Exact => *path == route.path,
                            Match::Prefix => {
                                *path == route.path || path.starts_with(&format!("{}/", route.path))
                            }
                        }
                });
                assert!(described, "{method} {} is not described", route.path);
            }
        }
    }

    #[test]
    fn every_described_operation_is_routed_with_the_access_it_states() {
        let doc = document();
        let table = RouteTable::defaults();
        let pages: Vec<&str> = crate::pages::ASSETS.iter().map(|a| a.url).collect();
        for (path, method, op) in operations(&doc) {
            assert!(!path.starts_with("/internal"), "{path} is internal");
            let served_here = GATEWAY_PATHS.contains(&path.as_str())
                || path == PATH
                || pages.contains(&path.as_str());
            if served_here {
                assert_eq!(method, "get", "{method} {path}");
                continue;
            }
            let route = table
                .lookup(&concrete(&path))
                .unwrap_or_else(|| panic!("{method} {path} is not in the route table"));
            assert!(
                route.allows(&method),
                "{method} {path}: the table does not allow it"
            );
            assert_eq!(
                needs_token(&doc, &op),
                route.access != Access::Public,
                "{method} {path}: security does not match the table's access"
            );
            let responses = &op["responses"];
            if route.access != Access::Public {
                assert!(responses["401"].is_object(), "{method} {path}: no 401");
            }
            if route.access == Access::Admin {
                assert!(responses["403"].is_object(), "{method} {path}: no 403");
            }
        }
    }

    #[test]
    fn the_websocket_states_its_refusals() {
        let doc = document();
        let op = &doc["paths"]["/ws"]["get"];
        assert!(needs_token(&doc, op));
        // 401 without a valid token, 403 for a non-admin, 429 over the rate limits or the
        // per-user socket cap: all before the upgrade.
        for status in ["101", "400", "401", "403", "429", "503"] {
            assert!(op["responses"][status].is_object(), "/ws: no {status}");
        }
        let described = op["responses"]["429"]["description"].as_str().unwrap();
        assert!(described.contains("rate_limited") && described.contains("too_many_sockets"));
    }

    /// The description of a response, with that of the shared response it refers to.
    fn description(doc: &Value, response: &Value) -> String {
        let own = response["description"].as_str().unwrap_or_default();
        let shared = response["$ref"]
            .as_str()
            .and_then(|r| doc.pointer(r.trim_start_matches('#')))
            .and_then(|r| r["description"].as_str())
            .unwrap_or_default();
        format!("{own} {shared}")
    }

    /// Every (status, description) of the documented error answers; `default` as `None`.
    fn error_responses(doc: &Value) -> Vec<(Option<u16>, String)> {
        let mut answers = Vec::new();
        for (_, _, op) in operations(doc) {
            for (key, response) in op["responses"].as_object().expect("responses") {
                let status = key.parse::<u16>().ok();
                if status.is_none_or(|s| s >= 400) {
                    answers.push((status, description(doc, response)));
                }
            }
        }
        answers
    }

    /// Whether a response description names `code`; the shared `default` one, which covers
    /// several statuses, must say which: "STATUS `code`".
    fn names(status: Option<u16>, text: &str, code: ErrorCode) -> bool {
        match status {
            Some(_) => text.contains(&format!("`{code}`")),
            None => text.contains(&format!("{} `{code}`", code.status().as_u16())),
        }
    }

    #[test]
    fn the_error_schema_lists_exactly_the_public_codes() {
        let doc = document();
        let listed: BTreeSet<&str> =
            doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
                .as_array()
                .expect("Error.error has an enum")
                .iter()
                .map(|v| v.as_str().expect("a string"))
                .collect();
        let public: BTreeSet<&str> = ErrorCode::ALL
            .iter()
            .filter(|c| c.is_public())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(listed, public);
    }

    #[test]
    fn every_public_code_is_documented_with_its_status() {
        let doc = document();
        let answers = error_responses(&doc);
        let socket = doc["paths"]["/ws"]["get"]["description"].as_str().unwrap();
        for &code in ErrorCode::ALL.iter().filter(|c| c.is_public()) {
            let status = code.status().as_u16();
            let documented = if code.is_event_only() {
                socket.contains(&format!("`{code}`"))
            } else {
                answers
                    .iter()
                    .any(|(s, text)| s.is_none_or(|s| s == status) && names(*s, text, code))
            };
            assert!(documented, "no answer documents {status} `{code}`");
        }
    }

    /// The statuses a text puts right before `code`: "400 `code`".
    fn statuses_before(text: &str, code: ErrorCode) -> Vec<u16> {
        text.match_indices(&format!("`{code}`"))
            .filter_map(|(at, _)| {
                let before = text[..at].trim_end();
                before.get(before.len().saturating_sub(3)..)?.parse().ok()
            })
            .collect()
    }

    #[test]
    fn no_error_answer_names_a_code_of_another_status() {
        let doc = document();
        for (status, text) in error_responses(&doc) {
            for &code in ErrorCode::ALL {
                let own = code.status().as_u16();
                let elsewhere = match status {
                    Some(s) => s != own && names(status, &text, code),
                    None => statuses_before(&text, code).iter().any(|s| *s != own),
                };
                assert!(
                    !elsewhere,
                    "`{code}` ({own}) documented under {status:?}: {text}"
                );
            }
        }
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document();
        fn walk(v: &Value, doc: &Value, refs: &mut usize) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        let pointer = r.strip_prefix('#').expect("a local reference");
                        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
                        *refs += 1;
                    }
                    map.values().for_each(|v| walk(v, doc, refs));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, refs)),
                _ => {}
            }
        }
        let mut refs = 0;
        walk(&doc, &doc, &mut refs);
        assert!(refs > 0);
    }
}
