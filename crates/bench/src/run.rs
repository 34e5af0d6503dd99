//! Concurrent workers sharing one bounded budget of requests.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Hands out request numbers until the count is spent or the time limit has passed.
pub struct Budget {
    next: AtomicU64,
    total: u64,
    deadline: Instant,
}

impl Budget {
    pub fn new(total: u64, limit: Duration) -> Arc<Budget> {
        Arc::new(Budget {
            next: AtomicU64::new(0),
            total,
            deadline: Instant::now() + limit,
        })
    }

    /// The number of the next request to make, or None when the run is over.
    pub fn take(&self) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < self.total).then_some(n)
    }
}

/// Starts `concurrency` workers, each given its number, waits for all and returns their results
/// with the time they took together.
pub async fn workers<F, Fut, T>(concurrency: usize, worker: F) -> anyhow::Result<(Vec<T>, Duration)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let start = Instant::now();
    let handles: Vec<_> = (0..concurrency).map(|i| tokio::spawn(worker(i))).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.context("a worker stopped")?);
    }
    Ok((out, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_stops_at_its_count() {
        let b = Budget::new(3, Duration::from_secs(60));
        let taken: Vec<_> = std::iter::from_fn(|| b.take()).collect();
        assert_eq!(taken, [0, 1, 2]);
        assert_eq!(b.take(), None);
    }

    #[test]
    fn budget_stops_at_its_deadline() {
        let b = Budget::new(1_000, Duration::ZERO);
        assert_eq!(b.take(), None);
    }
}
