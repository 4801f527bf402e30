//! What a request counts as: whose count it is (the verified token's subject, else the
//! client's address) and how many requests it is worth (an infer request, one per image).

use crate::request::ClientAddress;
use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest};
use common::jwt::Claims;
use std::net::IpAddr;

/// The client a request counts for: `user:<sub>` with a verified token, else `ip:<address>`
/// (the address the edge settled).
pub fn client(req: &HttpRequest) -> String {
    client_key(req.extensions().get::<Claims>(), ClientAddress::of(req))
}

/// `user:<sub>` for the token's subject, else `ip:<address>` (`ip:unknown` without one).
pub fn client_key(claims: Option<&Claims>, address: Option<IpAddr>) -> String {
    match claims {
        Some(claims) => format!("user:{}", claims.sub),
        None => format!(
            "ip:{}",
            address.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
        ),
    }
}

/// An Open Inference Protocol infer request, which counts once per image it carries.
pub fn is_infer(req: &HttpRequest) -> bool {
    req.method() == Method::POST && oip_infer_model(req.path()).is_some()
}

/// The model of an Open Inference Protocol infer path, `/v2/models/{name}/infer`.
pub fn oip_infer_model(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/v2/models/")?.strip_suffix("/infer")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// How many images an infer body carries: the sum of its inputs' first dimensions, read without
/// keeping the data (an unknown field is skipped, not stored). A body that shows no shape counts
/// as one; predict-svc refuses it.
pub fn oip_images(body: &[u8]) -> u32 {
    #[derive(serde::Deserialize)]
    struct Request {
        inputs: Vec<Input>,
    }
    #[derive(serde::Deserialize)]
    struct Input {
        shape: Vec<i64>,
    }
    match serde_json::from_slice::<Request>(body) {
        Ok(request) => request
            .inputs
            .iter()
            .map(|input| {
                input
                    .shape
                    .first()
                    .copied()
                    .unwrap_or(1)
                    .clamp(1, i64::from(u32::MAX)) as u32
            })
            .fold(0_u32, u32::saturating_add)
            .max(1),
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_infer_body_counts_its_images() {
        let body = |shape: &str| {
            format!(
                r#"{{"id":"x","inputs":[{{"name":"input","data":[0,0],"shape":{shape},"datatype":"FP32"}}]}}"#
            )
        };
        assert_eq!(oip_images(body("[7,784]").as_bytes()), 7);
        assert_eq!(oip_images(body("[3,1,28,28]").as_bytes()), 3);
        assert_eq!(oip_images(body("[-5,784]").as_bytes()), 1);
        assert_eq!(oip_images(body("[]").as_bytes()), 1);
        assert_eq!(oip_images(body("[99999999999,784]").as_bytes()), u32::MAX);
        assert_eq!(oip_images(b"{not json"), 1);
    }

    #[test]
    fn infer_paths_name_their_model() {
        assert_eq!(
            oip_infer_model("/v2/models/mnist-cnn/infer"),
            Some("mnist-cnn")
        );
        assert_eq!(oip_infer_model("/v2/models/mnist-cnn"), None);
        assert_eq!(oip_infer_model("/v2/models/a/b/infer"), None);
    }

    #[test]
    fn a_client_is_its_token_else_its_address() {
        let ip = "198.51.100.7".parse().ok();
        assert_eq!(client_key(None, ip), "ip:198.51.100.7");
        assert_eq!(client_key(None, None), "ip:unknown");
    }
}
