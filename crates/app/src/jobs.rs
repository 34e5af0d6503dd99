//! Jobs that run on one node at a time: the clock watcher, the AWS Support case worker, KPI
//! evaluation with scheduled reports, the readiness pass, the purge of ended sign-in state, the
//! retention of signals and receipts, and the AWS Health and Trusted Advisor pollers. Each
//! runs under a lease held in the database (`job_leases`): the node holding it renews it every
//! third of `server.job_lease_secs`; when the holder dies another node takes the job within a
//! lease and a third, and when it stops cleanly, at once. HTTP intake, SQS
//! consumers, mailboxes, connectors and the notification dispatcher run on every node (each
//! claims its work in the database).
//!
//! A lease makes a job's work happen once rather than once per node; it is not what keeps the
//! data right. Every job was already safe to run on several nodes at once (its steps are
//! claimed or locked in the database), which covers a holder that is slow to notice it lost
//! its lease.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsdesk_core::Desk;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The node's name and how long its leases last.
#[derive(Clone)]
pub struct Leases {
    desk: Desk,
    node: String,
    ttl: Duration,
    running: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

/// Why a lease could not be asked for.
#[derive(Debug)]
enum Unasked {
    Failed(opsdesk_store::StoreError),
    /// No answer within a renewal period: the job may not go on counting on it.
    Slow,
}

impl std::fmt::Display for Unasked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unasked::Failed(e) => e.fmt(f),
            Unasked::Slow => f.write_str("the database did not answer in time"),
        }
    }
}

impl Leases {
    pub fn new(desk: Desk, node: String, ttl: Duration) -> Leases {
        Leases {
            desk,
            node,
            ttl,
            running: Arc::default(),
        }
    }

    /// Takes or renews the lease on `job`, waiting at most a renewal period for the answer.
    async fn hold(&self, job: &str) -> Result<bool, Unasked> {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::seconds(15));
        let asked = self
            .desk
            .db()
            .hold_lease(job, &self.node, self.desk.now(), ttl);
        match tokio::time::timeout(self.ttl / 3, asked).await {
            Ok(answer) => answer.map_err(Unasked::Failed),
            Err(_) => Err(Unasked::Slow),
        }
    }

    /// Waits, at most `within`, for the jobs to stop and give their leases up (after the
    /// token given to [`Leases::spawn`] is cancelled), so that another node takes them at once.
    pub async fn stopped(&self, within: Duration) {
        let handles: Vec<_> = match self.running.lock() {
            Ok(mut running) => running.drain(..).collect(),
            Err(_) => return,
        };
        let all = futures::future::join_all(handles);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("jobs did not stop in time; their leases end by themselves");
        }
    }

    /// Runs `job` (made by `start` with a token that stops it) while this node holds its
    /// lease, until `stop`.
    pub fn spawn<F, Fut>(&self, job: &'static str, stop: CancellationToken, start: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let leases = self.clone();
        let handle = tokio::spawn(async move { leases.run(job, stop, start).await });
        if let Ok(mut running) = self.running.lock() {
            running.push(handle);
        }
    }

    async fn run<F, Fut>(self, job: &'static str, stop: CancellationToken, start: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let renew = self.ttl / 3;
        loop {
            let held = match self.hold(job).await {
                Ok(held) => held,
                Err(e) => {
                    if self.desk.db().is_closed() {
                        return;
                    }
                    tracing::debug!(job, error = %e, "could not ask for the job's lease");
                    false
                }
            };
            if !held {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(renew) => continue,
                }
            }
            tracing::info!(job, node = %self.node, "this node runs the job");
            let job_stop = stop.child_token();
            let mut running = tokio::spawn(start(job_stop.clone()));
            let mut renewed = Instant::now();
            let ended_by_itself = loop {
                tokio::select! {
                    () = stop.cancelled() => break false,
                    _ = &mut running => break true,
                    () = tokio::time::sleep(renew) => {}
                }
                // Counted from the asking: the database sets the lease's end when it answers.
                let asked = Instant::now();
                match self.hold(job).await {
                    Ok(true) => renewed = asked,
                    Ok(false) => {
                        tracing::warn!(job, node = %self.node, "another node took the job's lease; stopping it here");
                        break false;
                    }
                    Err(e) => {
                        // Kept while the lease may still be ours; given up before it ends.
                        if renewed.elapsed() + renew >= self.ttl {
                            tracing::warn!(job, node = %self.node, error = %e, "cannot renew the job's lease; stopping it here");
                            break false;
                        }
                    }
                }
            };
            job_stop.cancel();
            if !ended_by_itself {
                let _ = running.await;
            }
            if let Err(e) = self.desk.db().release_lease(job, &self.node).await {
                tracing::debug!(job, error = %e, "could not give the job's lease up");
            }
            if stop.is_cancelled() {
                return;
            }
            // A job that ended by itself (a poller turned off) is not started again at once.
            if ended_by_itself {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(self.ttl) => {}
                }
            }
        }
    }
}
