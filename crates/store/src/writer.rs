//! Group commit for SQLite: one task owns the single write connection and runs the changes
//! waiting for it in one transaction, then commits once. Why, and what a change may rely on:
//! docs/storage.md, "Write path on SQLite".

use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError, Tx};

/// How many changes one transaction takes at most, bounding the wait of the last one.
const MAX_BATCH: usize = 64;

/// What a job reports after running: whether its work stands, and how to tell its caller the
/// outcome once the transaction has committed (or failed to).
pub(crate) type Finish = Box<dyn FnOnce(std::result::Result<(), Failed>) + Send>;

/// Why a group's commit failed, as each of its changes hears it: the message, and whether the
/// database could not take it for now (a full disk) rather than refused it.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    message: String,
    unavailable: bool,
}

impl Failed {
    fn error(self) -> StoreError {
        if self.unavailable {
            StoreError::Unavailable(self.message)
        } else {
            StoreError::Commit(self.message)
        }
    }
}

pub(crate) type Job = Box<dyn for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, (bool, Finish)> + Send>;

/// Starts the writer on a thread of its own (why: docs/storage.md, "Write path on SQLite");
/// it ends when every sender is gone.
pub(crate) fn spawn(
    pool: sqlx::SqlitePool,
    wal_full: Arc<AtomicBool>,
) -> Result<(mpsc::Sender<Job>, tokio::runtime::Handle)> {
    let (tx, rx) = mpsc::channel::<Job>(4096);
    // Timers but no I/O driver: a change that used a socket would panic here. See
    // docs/storage.md, "Write path on SQLite".
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(StoreError::Writer)?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("opsdesk-writer".into())
        .spawn(move || runtime.block_on(run(pool, rx, wal_full)))
        .map_err(StoreError::Writer)?;
    Ok((tx, handle))
}

async fn run(pool: sqlx::SqlitePool, mut rx: mpsc::Receiver<Job>, wal_full: Arc<AtomicBool>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        let take = waiting.len().min(MAX_BATCH);
        let batch: Vec<Job> = waiting.drain(..take).collect();
        let mut finishes: Vec<Finish> = Vec::with_capacity(batch.len());
        let (outcome, unrun, broken) = run_batch(&pool, batch, &mut finishes).await;
        // Changes that never ran go first in the next transaction.
        for job in unrun.into_iter().rev() {
            waiting.push_front(job);
        }
        let outcome = outcome.map_err(|e| Failed {
            message: e.to_string(),
            unavailable: e.is_unavailable(),
        });
        for finish in finishes.drain(..) {
            finish(outcome.clone());
        }
        if broken {
            reset(&pool).await;
        }
        if wal_full.swap(false, Ordering::Relaxed) {
            // Between two groups nobody waits on this connection's transaction.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "WAL reset failed");
            }
        }
    }
}

/// Runs a group of changes in one transaction, without savepoints between them. Returns the
/// outcome of the commit, the changes that did not get to run, and whether the connection must
/// be replaced (its BEGIN or COMMIT failed: see [`reset`]). What a failed change costs,
/// and why: docs/storage.md, "Write path on SQLite".
async fn run_batch(
    pool: &sqlx::SqlitePool,
    batch: Vec<Job>,
    finishes: &mut Vec<Finish>,
) -> (Result<()>, Vec<Job>, bool) {
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(t) => Tx::Sqlite(t, Box::default()),
        Err(e) => {
            // The jobs are dropped unrun; each caller hears that its change was not made.
            tracing::error!(error = %e, "cannot start a write transaction");
            return (Err(e.into()), Vec::new(), true);
        }
    };
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        let mark = tx.mark();
        let (keep, finish) = job(&mut tx).await;
        finishes.push(finish);
        if !keep {
            if tx.wrote_since(&mark) {
                tracing::warn!("a change failed after writing; its group is rolled back");
                return (
                    Err(StoreError::Commit(
                        "another change in the same transaction failed; retry".into(),
                    )),
                    jobs.collect(),
                    false,
                );
            }
            tx.rollback_to(mark);
        }
    }
    let committed = tx.commit_boxed().await;
    let broken = committed.is_err();
    (committed, Vec::new(), broken)
}

/// Replaces the write connection after a group failed. When a COMMIT fails (a full disk),
/// SQLite may already have rolled the transaction back, so the ROLLBACK sent when it is dropped
/// fails, and the connection would believe it is still inside a transaction and refuse every
/// later one. A new connection starts clean.
async fn reset(pool: &sqlx::SqlitePool) {
    match pool.acquire().await {
        Ok(conn) => {
            if let Err(e) = sqlx::Connection::close(conn.detach()).await {
                tracing::debug!(error = %e, "closing the failed write connection");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot reach the write connection to replace it"),
    }
}

/// Runs `f` through `sender` and waits for the commit.
pub(crate) async fn submit<T, E, F>(sender: &mpsc::Sender<Job>, f: F) -> std::result::Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, std::result::Result<T, E>> + Send + 'static,
{
    let (done_tx, done_rx) = oneshot::channel::<std::result::Result<T, E>>();
    let job: Job = Box::new(move |tx: &mut Tx| {
        Box::pin(async move {
            // A bug that panics in one change fails that change; the writer, which every
            // other change waits on, carries on. What the change wrote is undone as for any
            // failed change.
            let result = match AssertUnwindSafe(async move { f(tx).await })
                .catch_unwind()
                .await
            {
                Ok(result) => result,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(panic = %what, "a change panicked; it was not made");
                    Err(E::from(StoreError::Commit(
                        "it failed unexpectedly (the error is logged)".into(),
                    )))
                }
            };
            let keep = result.is_ok();
            let finish: Finish = Box::new(move |committed| {
                let outcome = match committed {
                    Ok(()) => result,
                    Err(e) if keep => Err(E::from(e.error())),
                    Err(_) => result,
                };
                let _ = done_tx.send(outcome);
            });
            (keep, finish)
        })
    });
    sender
        .send(job)
        .await
        .map_err(|_| E::from(StoreError::Commit("the writer has stopped".into())))?;
    done_rx
        .await
        .map_err(|_| E::from(StoreError::Commit("the writer dropped the change".into())))?
}
