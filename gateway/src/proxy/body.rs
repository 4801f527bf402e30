//! The client's body on its way upstream: within the route's size limit, and cut off when the
//! client stops sending it.

use crate::error::GatewayError;
use actix_web::web;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub bytes: usize,
    /// The longest pause allowed between two pieces of the body.
    pub idle: std::time::Duration,
}

/// A request's body, as the proxy forwards it.
pub enum Body {
    /// The request has none.
    Empty,
    /// Not read yet: streamed upstream as it arrives.
    Pending(web::Payload, BodyLimits),
    /// Read whole already (a step had to see it before it is forwarded).
    Whole(Bytes),
}

impl Body {
    /// The whole body, read now, within its limits.
    pub async fn read_whole(self) -> Result<Body, GatewayError> {
        match self {
            Body::Pending(payload, limits) => Ok(Body::Whole(read(payload, limits).await?)),
            other => Ok(other),
        }
    }

    /// The body, when it has been read whole.
    pub fn whole(&self) -> Option<&Bytes> {
        match self {
            Body::Whole(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The request to send with this body, and what watches a streamed body on its way.
    pub fn attach(self, outgoing: reqwest::RequestBuilder) -> (reqwest::RequestBuilder, Watch) {
        match self {
            Body::Empty => (outgoing, Watch::default()),
            Body::Whole(bytes) => (outgoing.body(bytes), Watch::default()),
            Body::Pending(payload, limits) => {
                let watch = Watch {
                    limits: Some(limits),
                    ..Watch::default()
                };
                let chunks = stream(payload, limits, watch.clone());
                (outgoing.body(reqwest::Body::wrap_stream(chunks)), watch)
            }
        }
    }
}

/// Whether a streamed body went over its limit or stalled: then a failed send is the client's
/// doing (413, 408), not the upstream's.
#[derive(Clone, Default)]
pub struct Watch {
    limits: Option<BodyLimits>,
    exceeded: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
}

impl Watch {
    /// The client's fault that made the send fail, if it was one.
    pub fn failure(&self) -> Option<GatewayError> {
        let limits = self.limits?;
        if self.exceeded.load(Ordering::SeqCst) {
            Some(GatewayError::PayloadTooLarge {
                limit: limits.bytes,
            })
        } else if self.stalled.load(Ordering::SeqCst) {
            Some(GatewayError::BodyTimeout(limits.idle))
        } else {
            None
        }
    }
}

/// The whole body, within the route's limit and the idle timeout.
async fn read(mut payload: web::Payload, limits: BodyLimits) -> Result<Bytes, GatewayError> {
    let mut body = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(limits.idle, payload.next()).await {
            Err(_) => return Err(GatewayError::BodyTimeout(limits.idle)),
            Ok(None) => return Ok(body.freeze()),
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "client body failed");
                return Err(GatewayError::PayloadTooLarge {
                    limit: limits.bytes,
                });
            }
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > limits.bytes {
                    return Err(GatewayError::PayloadTooLarge {
                        limit: limits.bytes,
                    });
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// Moves the client's body (an actix stream, tied to its worker thread) into a channel that
/// the HTTP client can read from any thread, counting bytes against the route's limit and
/// cutting off a client that stops sending.
fn stream(
    mut payload: web::Payload,
    limits: BodyLimits,
    watch: Watch,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    actix_web::rt::spawn(async move {
        let mut seen = 0usize;
        loop {
            let chunk = match tokio::time::timeout(limits.idle, payload.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => {
                    watch.stalled.store(true, Ordering::SeqCst);
                    let _ = tx
                        .send(Err(std::io::Error::other(
                            "the client stopped sending its body",
                        )))
                        .await;
                    break;
                }
            };
            let item = match chunk {
                Ok(bytes) => {
                    seen += bytes.len();
                    if seen > limits.bytes {
                        watch.exceeded.store(true, Ordering::SeqCst);
                        Err(std::io::Error::other("body over the limit"))
                    } else {
                        Ok(bytes)
                    }
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
