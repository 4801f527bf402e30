//! The preprocessing gate: image decoding and Open Inference Protocol parsing run on the
//! blocking pool, at most `concurrency` at once, with at most `queue` more waiting their turn.
//! Past that a request is refused at once with `503 overloaded` and `Retry-After`, so that a
//! burst costs a bounded amount of memory instead of a growing queue.

use crate::error::PredictError;
use anyhow::Context;
use digits::DecodeLimits;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a refused client is told to wait before trying again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Preprocessing {
    /// The decoding budget of one image.
    pub limits: DecodeLimits,
    /// Most requests preprocessing at once.
    pub concurrency: usize,
    /// Most requests waiting for a turn.
    pub queue: usize,
    /// One permit per request admitted (running or waiting): `concurrency + queue`.
    admitted: Arc<Semaphore>,
    /// One permit per request running.
    running: Arc<Semaphore>,
}

/// Permits held outside a request ([`Preprocessing::occupy`]); released when dropped.
#[derive(Debug)]
pub struct Occupied {
    _admitted: OwnedSemaphorePermit,
    _running: OwnedSemaphorePermit,
}

impl Preprocessing {
    pub fn new(limits: DecodeLimits, concurrency: usize, queue: usize) -> Arc<Self> {
        let concurrency = concurrency.max(1);
        Arc::new(Preprocessing {
            limits,
            concurrency,
            queue,
            admitted: Arc::new(Semaphore::new(concurrency + queue)),
            running: Arc::new(Semaphore::new(concurrency)),
        })
    }

    /// Runs `work` on the blocking pool when a turn comes, or refuses at once when the queue is
    /// full. The permits go with the work: a client that hangs up does not free its turn
    /// before its decoding has ended.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PredictError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let admitted =
            self.admitted
                .clone()
                .try_acquire_owned()
                .map_err(|_| PredictError::Overloaded {
                    retry_after: RETRY_AFTER,
                })?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .context("the preprocessing gate is closed")?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop((running, admitted));
            result
        })
        .await
        .context("a preprocessing task failed")
        .map_err(PredictError::Internal)
    }

    /// Takes every turn and every place in the queue, as many requests would: tests step the
    /// gate with it instead of racing requests against each other.
    pub async fn occupy(&self) -> Vec<Occupied> {
        let mut held = Vec::new();
        for _ in 0..self.concurrency {
            let admitted = self.admitted.clone().acquire_owned().await;
            let running = self.running.clone().acquire_owned().await;
            if let (Ok(admitted), Ok(running)) = (admitted, running) {
                held.push(Occupied {
                    _admitted: admitted,
                    _running: running,
                });
            }
        }
        held
    }

    /// Requests admitted now, running or waiting.
    pub fn admitted(&self) -> usize {
        self.concurrency + self.queue - self.admitted.available_permits()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_freed_turn_serves_the_waiting() {
        let gate = Preprocessing::new(DecodeLimits::default(), 1, 1);
        let held = gate.occupy().await;
        assert_eq!(gate.admitted(), 1);
        // The one place in the queue is taken by the first request...
        let gate2 = gate.clone();
        let waiting = tokio::spawn(async move { gate2.run(|| 7).await });
        while gate.admitted() < 2 {
            tokio::task::yield_now().await;
        }
        // ...so the next one is refused, without waiting.
        let refused = gate.run(|| 8).await.unwrap_err();
        assert!(
            matches!(refused, PredictError::Overloaded { retry_after } if retry_after == RETRY_AFTER),
            "{refused:?}"
        );
        drop(held);
        assert_eq!(waiting.await.unwrap().unwrap(), 7);
        assert_eq!(gate.run(|| 9).await.unwrap(), 9);
        assert_eq!(gate.admitted(), 0);
    }
}
