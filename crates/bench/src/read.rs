//! `read`: one read-only API route asked again and again, e.g. the KPI list or a trend report.

use std::time::Duration;

use clap::Args;

use crate::run::{workers, Budget};
use crate::stats::{Report, Samples};
use crate::target::Target;

#[derive(Args)]
pub struct ReadArgs {
    /// The route, with its query string: `/api/v1/kpis`,
    /// `/api/v1/reports/trends?period=last-month`.
    #[arg(long)]
    pub path: String,
    /// Requests to make.
    #[arg(long, default_value_t = 1_000)]
    pub requests: u64,
    /// Clients asking at the same time.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

pub async fn run(target: &Target, args: &ReadArgs, limit: Duration) -> anyhow::Result<Report> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.path.starts_with('/'), "--path must start with /");
    let url = target.url(&args.path)?;
    let budget = Budget::new(args.requests, limit);
    let (results, elapsed) = workers(args.concurrency, |_| {
        let target = target.clone();
        let url = url.clone();
        let budget = budget.clone();
        async move {
            let mut samples = Samples::default();
            while budget.take().is_some() {
                let reply = target.get(url.clone(), &[]).await;
                match reply.body.and_then(|b| {
                    serde_json::from_slice::<serde_json::Value>(&b)
                        .map(|_| ())
                        .or_else(|e| {
                            // Markdown and CSV answers are text, not JSON.
                            std::str::from_utf8(&b)
                                .map(|_| ())
                                .map_err(|_| format!("unreadable answer: {e}"))
                        })
                }) {
                    Ok(()) => samples.ok(reply.latency),
                    Err(e) => samples.failed(e),
                }
            }
            samples
        }
    })
    .await?;
    let all = Samples::merged(results);
    Ok(Report::new(
        "read",
        args.concurrency,
        args.requests,
        elapsed,
        vec![("read", all)],
    ))
}
