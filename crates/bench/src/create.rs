//! `create`: one ticket per request, as people and integrations create them.

use std::time::Duration;

use clap::Args;

use crate::payload::Dice;
use crate::run::{workers, Budget};
use crate::stats::{Report, Samples};
use crate::target::Target;

#[derive(Args)]
pub struct CreateArgs {
    /// Tickets to create.
    #[arg(long, default_value_t = 10_000)]
    pub requests: u64,
    /// Clients sending at the same time, each on its own keep-alive connection.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

pub async fn run(
    target: &Target,
    args: &CreateArgs,
    seed: u64,
    limit: Duration,
) -> anyhow::Result<Report> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let url = target.url("/api/v1/tickets")?;
    let budget = Budget::new(args.requests, limit);
    let (results, elapsed) = workers(args.concurrency, |i| {
        let target = target.clone();
        let url = url.clone();
        let budget = budget.clone();
        async move {
            let mut dice = Dice::new(seed, i as u64);
            let mut samples = Samples::default();
            while budget.take().is_some() {
                let body = match serde_json::to_vec(&dice.ticket()) {
                    Ok(b) => b,
                    Err(e) => {
                        samples.failed(format!("cannot encode a ticket: {e}"));
                        continue;
                    }
                };
                let reply = target.post_json(url.clone(), body).await;
                match reply.body {
                    Ok(_) => samples.ok(reply.latency),
                    Err(e) => samples.failed(e),
                }
            }
            samples
        }
    })
    .await?;
    let all = Samples::merged(results);
    let created = all.ok_count();
    let mut report = Report::new(
        "create",
        args.concurrency,
        args.requests,
        elapsed,
        vec![("create", all)],
    );
    report.tickets = Some(created);
    Ok(report)
}
