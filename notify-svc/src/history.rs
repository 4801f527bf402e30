//! The bounded history of recent events, a Redis Stream that publishers append to before they
//! publish (`events:history`, field `event` = the envelope JSON, trimmed to about 10,000).
//!
//! A client that reconnects names the last event it received; the entries after that one are
//! what it missed. Envelope ids are not stream ids, so the stream is read backwards from its
//! newest entry until that id turns up, never further than the replay limit.

use common::bus::Envelope;
use common::kv::{Redis, StoreError};
use redis::streams::StreamRangeReply;
use std::collections::HashSet;
use uuid::Uuid;

pub use common::bus::{HISTORY_FIELD, HISTORY_STREAM};

/// Entries read per round trip.
const CHUNK: usize = 200;

/// One history entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The stream id (`<ms>-<seq>`), ordered as the entries were appended.
    pub stream_id: String,
    pub envelope: Envelope,
}

/// What a backwards scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The entries newer than where the scan stopped, oldest first, each id once.
    pub entries: Vec<Entry>,
    /// Whether the scan reached its stop condition (rather than the limit or the stream's start).
    pub found: bool,
}

#[derive(Clone)]
pub struct History {
    redis: Redis,
    key: String,
}

impl History {
    pub fn new(redis: Redis) -> Self {
        let key = redis.key(HISTORY_STREAM);
        History { redis, key }
    }

    /// The events appended after the event `after`, oldest first; `found` is false when
    /// `after` is not among the newest `limit + 1` entries (trimmed away, or too much missed).
    pub async fn after(&self, after: Uuid, limit: usize) -> Result<Scan, StoreError> {
        self.scan_back(limit, |entry| entry.envelope.id == after)
            .await
    }

    /// The newest entry's stream id, `None` when the stream is empty.
    pub async fn tip(&self) -> Result<Option<String>, StoreError> {
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(reply.ids.into_iter().next().map(|e| e.id))
    }

    /// Reads backwards from the newest entry until `stop` holds for an entry (which is not
    /// returned), at most `limit` entries are collected, or the stream has no more.
    pub async fn scan_back(
        &self,
        limit: usize,
        mut stop: impl FnMut(&Entry) -> bool,
    ) -> Result<Scan, StoreError> {
        let mut newest_first: Vec<Entry> = Vec::new();
        let mut ids = HashSet::new();
        let mut cursor = "+".to_owned();
        loop {
            let reply: StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(&self.key)
                .arg(&cursor)
                .arg("-")
                .arg("COUNT")
                .arg(CHUNK)
                .query_async(&mut self.redis.conn())
                .await?;
            let exhausted = reply.ids.len() < CHUNK;
            for raw in reply.ids {
                cursor = format!("({}", raw.id);
                let Some(envelope) = raw
                    .get::<String>(HISTORY_FIELD)
                    .and_then(|json| serde_json::from_str::<Envelope>(&json).ok())
                else {
                    tracing::warn!(stream_id = %raw.id, "skipping a history entry that is not an envelope");
                    continue;
                };
                let entry = Entry {
                    stream_id: raw.id,
                    envelope,
                };
                if stop(&entry) {
                    newest_first.reverse();
                    return Ok(Scan {
                        entries: newest_first,
                        found: true,
                    });
                }
                // A publisher retrying appends the same event again: keep its newest copy.
                if !ids.insert(entry.envelope.id) {
                    continue;
                }
                if newest_first.len() == limit {
                    newest_first.reverse();
                    return Ok(Scan {
                        entries: newest_first,
                        found: false,
                    });
                }
                newest_first.push(entry);
            }
            if exhausted {
                newest_first.reverse();
                return Ok(Scan {
                    entries: newest_first,
                    found: false,
                });
            }
        }
    }
}

/// Orders stream ids (`<ms>-<seq>`) numerically; `None` when either is malformed.
pub fn stream_id_le(a: &str, b: &str) -> Option<bool> {
    fn parse(id: &str) -> Option<(u64, u64)> {
        let (ms, seq) = id.split_once('-')?;
        Some((ms.parse().ok()?, seq.parse().ok()?))
    }
    Some(parse(a)? <= parse(b)?)
}

#[cfg(test)]
mod tests {
    use super::stream_id_le;

    #[test]
    fn stream_ids_compare_numerically() {
        assert_eq!(stream_id_le("9-0", "10-0"), Some(true));
        assert_eq!(stream_id_le("10-2", "10-10"), Some(true));
        assert_eq!(stream_id_le("10-10", "10-2"), Some(false));
        assert_eq!(stream_id_le("10-2", "10-2"), Some(true));
        assert_eq!(stream_id_le("x", "10-2"), None);
    }
}
