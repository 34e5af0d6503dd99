//! opsdesk-bench: drives the REST API of a running opsdesk server and prints throughput and
//! latency. Every loop is bounded by a request count and by `--max-seconds`, and every request
//! goes to the one loopback URL given.

mod create;
mod events;
mod files;
mod load;
mod mail;
mod payload;
mod query;
mod read;
mod rt;
mod run;
mod sns;
mod stats;
mod target;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::target::Target;

#[derive(Parser)]
#[command(
    name = "opsdesk-bench",
    version,
    about = "Load generator for the opsdesk REST API"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// Base URL of the server; must be a loopback address.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API token (write role for create and load, ingest role for events).
    #[arg(
        long,
        global = true,
        env = "OPSDESK_BENCH_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Stop starting new requests after this many seconds.
    #[arg(long, global = true, default_value_t = 300)]
    max_seconds: u64,
    /// Seed for the generated tickets and query choices; the same seed gives the same run.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Worker threads of the client; 1 leaves the other cores to the server.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Print the summary as one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Create tickets one request at a time (POST /api/v1/tickets).
    Create(create::CreateArgs),
    /// Fill the database through POST /api/v1/tickets/batch.
    Load(load::LoadArgs),
    /// Run a mix of list and search requests (GET /api/v1/tickets).
    Query(query::QueryArgs),
    /// Send AWS Health and CloudWatch alarm events (POST /api/v1/events; ingest token).
    Events(events::EventsArgs),
    /// Ask one read-only route again and again (GET, e.g. /api/v1/kpis).
    Read(read::ReadArgs),
    /// Upload or download files on a ticket (multipart POST, GET .../attachments/{id}).
    Files(files::FilesArgs),
    /// Send requests by email into an IMAP mailbox the server reads; messages taken per second.
    Mail(mail::MailArgs),
    /// Send requests by email as SES receipts in signed SNS notifications (POST
    /// /api/v1/ingest/sns); messages taken per second. Needs the keys `sns-keys` writes.
    Sns(sns::SnsArgs),
    /// Write a stand-in SNS signing certificate, its root and key for `sns`, and print the
    /// server configuration that trusts them (no server or token needed).
    SnsKeys(sns::SnsKeysArgs),
    /// Make tickets in a local Request Tracker, each with a reply and a comment (no opsdesk
    /// server or token needed).
    RtFill(rt::RtFillArgs),
    /// Read tickets from a local Request Tracker as `opsdesk import rt` does: RT's own rate
    /// (no opsdesk server or token needed).
    RtRead(rt::RtReadArgs),
    /// Sync lag on a ticket linked to a local Request Tracker: a reply made on one side until
    /// the other has it, both ways (write token; the server's connector named --connector).
    RtSync(rt::RtSyncArgs),
}

/// What the server said it did with what a command sent, where the command counts it.
enum Tally {
    Events(events::Tally),
    Sns(sns::Tally),
}

impl Tally {
    fn to_text(&self) -> String {
        match self {
            Tally::Events(t) => t.to_text(),
            Tally::Sns(t) => t.to_text(),
        }
    }

    fn add_to(&self, summary: &mut serde_json::Value) {
        match self {
            Tally::Events(t) => t.add_to(summary),
            Tally::Sns(t) => t.add_to(summary),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the command; Ok(false) when a request failed or the run stopped before its count.
fn run(cli: Cli) -> anyhow::Result<bool> {
    let Common {
        url,
        token,
        max_seconds,
        seed,
        threads,
        json,
    } = cli.common;
    if let Command::SnsKeys(a) = &cli.command {
        print!("{}", sns::write_keys(a)?);
        return Ok(true);
    }
    // RT alone: no opsdesk server.
    let rt_only = matches!(cli.command, Command::RtFill(_) | Command::RtRead(_));
    // SNS signs its messages instead of sending a token.
    let needs_token = !matches!(cli.command, Command::Sns(_)) && !rt_only;
    let token = match token.filter(|t| !t.trim().is_empty()) {
        Some(t) => t,
        None if needs_token => {
            anyhow::bail!("no token: pass --token or set OPSDESK_BENCH_TOKEN")
        }
        None => String::new(),
    };
    anyhow::ensure!(max_seconds > 0, "--max-seconds must be at least 1");
    anyhow::ensure!(threads > 0, "--threads must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let limit = Duration::from_secs(max_seconds);
    runtime.block_on(async move {
        let concurrency = match &cli.command {
            Command::Create(a) => a.concurrency,
            Command::Load(a) => a.concurrency,
            Command::Query(a) => a.concurrency,
            Command::Events(a) => a.concurrency,
            Command::Read(a) => a.concurrency,
            Command::Files(a) => a.concurrency,
            Command::Mail(a) => a.concurrency,
            Command::Sns(a) => a.concurrency,
            Command::SnsKeys(_) | Command::RtFill(_) | Command::RtRead(_) | Command::RtSync(_) => 1,
        };
        let target = Target::new(&url, token.trim(), concurrency)?;
        // An ingest token may not list tickets; `events` and `sns` check their own endpoint.
        if !matches!(cli.command, Command::Events(_) | Command::Sns(_)) && !rt_only {
            target.check().await?;
        }
        let (report, tally) = match cli.command {
            Command::Create(a) => (create::run(&target, &a, seed, limit).await?, None),
            Command::Load(a) => (load::run(&target, &a, seed, limit).await?, None),
            Command::Query(a) => (query::run(&target, &a, seed, limit).await?, None),
            Command::Read(a) => (read::run(&target, &a, limit).await?, None),
            Command::Files(a) => (files::run(&target, &a, seed, limit).await?, None),
            Command::Mail(a) => (mail::run(&target, &a, seed, limit).await?, None),
            Command::Events(a) => {
                let (report, tally) = events::run(&target, &a, seed, limit).await?;
                (report, Some(Tally::Events(tally)))
            }
            Command::Sns(a) => {
                let (report, tally) = sns::run(&target, &a, seed, limit).await?;
                (report, Some(Tally::Sns(tally)))
            }
            Command::SnsKeys(_) => anyhow::bail!("sns-keys runs without a server"),
            Command::RtFill(a) => (rt::fill(&a, limit).await?, None),
            Command::RtRead(a) => (rt::read(&a, limit).await?, None),
            Command::RtSync(a) => (rt::sync(&target, &a, limit).await?, None),
        };
        if json {
            let mut summary = report.to_json();
            if let Some(t) = &tally {
                t.add_to(&mut summary);
            }
            println!("{summary}");
        } else {
            print!("{}", report.to_text());
            if let Some(t) = &tally {
                print!("{}", t.to_text());
            }
        }
        if report.stopped_early {
            eprintln!(
                "stopped by --max-seconds {max_seconds} after {} of {} requests",
                report.done, report.planned
            );
        }
        for e in &report.first_errors {
            eprintln!("failed: {e}");
        }
        Ok(report.passed())
    })
}
