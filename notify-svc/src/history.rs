//! The bounded history of recent events, a Redis Stream that publishers append to before they
//! publish (`events:history`, field `event` = the envelope JSON, trimmed to about 10,000), or
//! in the all-in-one mode the in-process bus's history.
//!
//! A client that reconnects names the last event it received; the entries after that one are
//! what it missed. Envelope ids are not stream ids, so the stream is read backwards from its
//! newest entry until that id turns up, never further than the replay limit.

use common::bus::Envelope;
use common::infra::Infra;
use common::kv::{Redis, StoreError};
use common::memory::MemoryBus;
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
    source: Source,
}

#[derive(Clone)]
enum Source {
    Redis {
        redis: Redis,
        key: String,
    },
    /// The all-in-one mode's in-process bus, whose history has stream-style ids.
    Memory(MemoryBus),
}

/// An entry as read, before its envelope is checked.
struct RawEntry {
    stream_id: String,
    envelope: Option<Envelope>,
}

impl History {
    pub fn new(redis: Redis) -> Self {
        let key = redis.key(HISTORY_STREAM);
        History {
            source: Source::Redis { redis, key },
        }
    }

    /// The history the services of `infra` record to.
    pub fn of(infra: &Infra) -> Self {
        match infra {
            Infra::Redis(redis) => History::new(redis.clone()),
            Infra::Memory(m) => History {
                source: Source::Memory(m.bus.clone()),
            },
        }
    }

    /// The events appended after the event `after`, oldest first; `found` is false when
    /// `after` is not among the newest `limit + 1` entries (trimmed away, or too much missed).
    pub async fn after(&self, after: Uuid, limit: usize) -> Result<Scan, StoreError> {
        self.scan_back(limit, |entry| entry.envelope.id == after)
            .await
    }

    /// The newest entry's stream id, `None` when the stream is empty.
    pub async fn tip(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_back(None, 1)
            .await?
            .into_iter()
            .next()
            .map(|e| e.stream_id))
    }

    /// Up to `count` entries, newest first, older than the entry `before` (from the newest
    /// when `None`).
    async fn read_back(
        &self,
        before: Option<&str>,
        count: usize,
    ) -> Result<Vec<RawEntry>, StoreError> {
        match &self.source {
            Source::Redis { redis, key } => {
                let from = before.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
                let reply: StreamRangeReply = redis::cmd("XREVRANGE")
                    .arg(key)
                    .arg(from)
                    .arg("-")
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut redis.conn())
                    .await?;
                Ok(reply
                    .ids
                    .into_iter()
                    .map(|raw| RawEntry {
                        envelope: raw
                            .get::<String>(HISTORY_FIELD)
                            .and_then(|json| serde_json::from_str::<Envelope>(&json).ok()),
                        stream_id: raw.id,
                    })
                    .collect())
            }
            Source::Memory(bus) => Ok(bus
                .history_before(before, count)
                .into_iter()
                .map(|(stream_id, envelope)| RawEntry {
                    stream_id,
                    envelope: Some(envelope),
                })
                .collect()),
        }
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
        let mut cursor: Option<String> = None;
        loop {
            let chunk = self.read_back(cursor.as_deref(), CHUNK).await?;
            let exhausted = chunk.len() < CHUNK;
            for raw in chunk {
                cursor = Some(raw.stream_id.clone());
                let Some(envelope) = raw.envelope else {
                    tracing::warn!(stream_id = %raw.stream_id, "skipping a history entry that is not an envelope");
                    continue;
                };
                let entry = Entry {
                    stream_id: raw.stream_id,
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
