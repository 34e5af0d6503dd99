//! `load`: fills the database through the batch endpoint, a thousand tickets a request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::payload::Dice;
use crate::run::{workers, Budget};
use crate::stats::{Report, Samples};
use crate::target::Target;

/// The most tickets the server takes in one batch.
const BATCH_MAX: u64 = 1000;
/// Progress is printed each time this many more tickets exist.
const PROGRESS_EVERY: u64 = 100_000;

#[derive(Args)]
pub struct LoadArgs {
    /// Tickets to create.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Tickets per request, 1 to 1000.
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Batches sent at the same time.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
}

pub async fn run(
    target: &Target,
    args: &LoadArgs,
    seed: u64,
    limit: Duration,
) -> anyhow::Result<Report> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        (1..=BATCH_MAX).contains(&args.batch),
        "--batch must be between 1 and {BATCH_MAX}"
    );
    let url = target.url("/api/v1/tickets/batch")?;
    let (count, batch) = (args.count, args.batch);
    let batches = count.div_ceil(batch);
    let budget = Budget::new(batches, limit);
    let created = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (results, elapsed) = workers(args.concurrency, |i| {
        let target = target.clone();
        let url = url.clone();
        let budget = budget.clone();
        let created = created.clone();
        async move {
            let mut dice = Dice::new(seed, (1 << 32) + i as u64);
            let mut samples = Samples::default();
            let mut tickets = 0u64;
            while let Some(n) = budget.take() {
                let size = batch.min(count.saturating_sub(n.saturating_mul(batch)));
                let body: Vec<_> = (0..size).map(|_| dice.ticket()).collect();
                let body = match serde_json::to_vec(&body) {
                    Ok(b) => b,
                    Err(e) => {
                        samples.failed(format!("cannot encode a batch: {e}"));
                        continue;
                    }
                };
                let reply = target.post_json(url.clone(), body).await;
                match reply.body {
                    Ok(_) => {
                        samples.ok(reply.latency);
                        tickets += size;
                        let before = created.fetch_add(size, Ordering::Relaxed);
                        if (before + size) / PROGRESS_EVERY > before / PROGRESS_EVERY {
                            let secs = start.elapsed().as_secs_f64();
                            eprintln!(
                                "load: {} tickets in {secs:.1} s ({:.0} tickets/s)",
                                before + size,
                                (before + size) as f64 / secs.max(0.001)
                            );
                        }
                    }
                    Err(e) => samples.failed(e),
                }
            }
            (samples, tickets)
        }
    })
    .await?;
    let mut all = Samples::default();
    let mut tickets = 0;
    for (s, t) in results {
        all.merge(s);
        tickets += t;
    }
    let mut report = Report::new(
        "load",
        args.concurrency,
        batches,
        elapsed,
        vec![("batch", all)],
    );
    report.tickets = Some(tickets);
    Ok(report)
}
