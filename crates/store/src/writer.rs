//! Group commit for SQLite: one task owns the single write connection and runs the changes
//! waiting for it in one transaction, each inside a savepoint, then commits once.
//!
//! SQLite writes every page a transaction touches to the WAL at commit; a ticket touches about
//! twenty (table, indexes, full-text index, audit). Committing many changes together writes
//! shared pages once, which is what lets one writer keep up with thousands of changes a second.

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError, Tx};

/// How many changes one transaction takes at most, bounding the wait of the last one.
const MAX_BATCH: usize = 64;

/// What a job reports after running: whether its work stands, and how to tell its caller the
/// outcome once the transaction has committed (or failed to).
pub(crate) type Finish = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

pub(crate) type Job = Box<dyn for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, (bool, Finish)> + Send>;

/// Starts the writer task; it ends when every sender is gone.
pub(crate) fn spawn(pool: sqlx::SqlitePool) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>(4096);
    tokio::spawn(run(pool, rx));
    tx
}

async fn run(pool: sqlx::SqlitePool, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut finishes: Vec<Finish> = Vec::with_capacity(batch.len());
        let outcome = run_batch(&pool, std::mem::take(&mut batch), &mut finishes).await;
        let outcome = outcome.map_err(|e| e.to_string());
        for finish in finishes.drain(..) {
            finish(outcome.clone());
        }
    }
}

async fn run_batch(
    pool: &sqlx::SqlitePool,
    batch: Vec<Job>,
    finishes: &mut Vec<Finish>,
) -> Result<()> {
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(t) => Tx::Sqlite(t, Vec::new()),
        Err(e) => {
            // The jobs are dropped unrun; each caller hears that its change was not made.
            tracing::error!(error = %e, "cannot start a write transaction");
            drop(batch);
            return Err(e.into());
        }
    };
    for job in batch {
        tx.raw("SAVEPOINT job").await?;
        let mark = tx.search_mark();
        let (keep, finish) = job(&mut tx).await;
        finishes.push(finish);
        if keep {
            tx.raw("RELEASE job").await?;
        } else {
            tx.raw("ROLLBACK TO job").await?;
            tx.search_rollback(mark);
            tx.raw("RELEASE job").await?;
        }
    }
    tx.commit_boxed().await
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
            let result = f(tx).await;
            let keep = result.is_ok();
            let finish: Finish = Box::new(move |committed| {
                let outcome = match committed {
                    Ok(()) => result,
                    Err(e) if keep => Err(E::from(StoreError::Commit(e))),
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
