use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use opsdesk_core::{Actor, VerifyError};
use opsdesk_domain::Role;

use crate::config::{Config, EXAMPLE};
use crate::server;

/// opsdesk: the support desk for teams that run on AWS.
#[derive(Debug, Parser)]
#[command(name = "opsdesk", version)]
pub struct Cli {
    /// A TOML configuration file (see `opsdesk config example`).
    #[arg(long, global = true, env = "OPSDESK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (migrates the database first).
    Serve,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage API tokens (works without the server running).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check or export the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage people (works without the server running).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage teams (works without the server running).
    #[command(subcommand)]
    Team(TeamCommand),
    /// Manage workloads (works without the server running).
    #[command(subcommand)]
    Workload(WorkloadCommand),
    /// Readiness lenses: import and export (works without the server running).
    #[command(subcommand)]
    Lens(LensCommand),
    /// Readiness reviews: start one, or print its report (works without the server running).
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Notification channels (config file and API).
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Routing rules (config file and API).
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Export tickets with their history and conversation (works without the server running).
    #[command(subcommand)]
    Export(ExportCommand),
    /// Bring existing tickets in with their history, from a connector's system or a CSV file;
    /// running it again changes nothing (works without the server running).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write a consistent copy of the SQLite database to a new file, also while the server
    /// runs, and check the copy's audit trail. For PostgreSQL, use pg_dump
    /// (docs/operations.md).
    Backup {
        /// The new file; an existing one is never overwritten.
        #[arg(long)]
        output: PathBuf,
    },
    /// Copy the whole SQLite desk (tickets, conversation, links, audit trail, signals, KPI
    /// series, reviews, settings kept in the database) into an empty PostgreSQL database,
    /// and check its audit trail there. Stop the server first: what changes during the copy
    /// stays behind.
    MigrateDb {
        /// The PostgreSQL database: postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long)]
        to: String,
    },
    /// Make the configured SQLite database from a copy `opsdesk backup` wrote, and check its
    /// audit trail. The database must not exist yet: a restore never overwrites one.
    Restore {
        /// The copy to restore.
        file: PathBuf,
    },
    /// KPIs: their latest values, or an evaluation now (works without the server running).
    #[command(subcommand)]
    Kpi(KpiCommand),
    /// AWS Support: ask AWS which case severities each account has (DescribeSeverityLevels),
    /// keep the answers for escalations and plan advice, and say where an account's
    /// configured support plan does not fit them. Uses the AWS SDK's usual environment.
    SupportPlans {
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// A trend report of a period against the period before (works without the server
    /// running).
    Report {
        /// last-week, last-month, or FROM..TO (dates YYYY-MM-DD, both included, or RFC 3339
        /// times).
        #[arg(long, default_value = "last-week")]
        period: String,
        #[arg(long, value_enum, default_value = "md")]
        format: ReportFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    /// Markdown, for people and email.
    Md,
    /// The same JSON as GET /api/v1/reports/trends.
    Json,
    /// Rows of section, name, current, previous.
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum KpiCommand {
    /// Every KPI with its latest value, status, target and trend.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Show only the breakdowns by this dimension (team, workload, severity, ...); all
        /// of them when left out.
        #[arg(long, value_parser = dimension)]
        by: Option<opsdesk_domain::kpi::Dimension>,
    },
    /// Evaluate every KPI now, store the values, announce changes of status, then list them.
    Evaluate {
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for people.
    Table,
    /// The same JSON as GET /api/v1/kpis.
    Json,
}

fn dimension(s: &str) -> Result<opsdesk_domain::kpi::Dimension, String> {
    opsdesk_domain::kpi::Dimension::parse(s).ok_or_else(|| {
        format!(
            "unknown dimension {s:?}; expected one of: {}",
            opsdesk_domain::kpi::Dimension::names()
        )
    })
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Every ticket the filters keep, in id order, with its comments and audit history;
    /// written as it is read, so memory stays flat however many tickets there are.
    Tickets {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: TicketFormat,
        /// Tickets opened at or after this time (RFC 3339, or a date: midnight UTC).
        #[arg(long)]
        since: Option<String>,
        /// Tickets opened before this time (RFC 3339, or a date: midnight UTC).
        #[arg(long)]
        until: Option<String>,
        /// Tickets of this workload only.
        #[arg(long)]
        workload: Option<String>,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// The tickets a TicketSQL query finds in a Request Tracker connector's RT, with their
    /// correspondence and comments, linked so the connector keeps them in step.
    Rt {
        /// The connector's name (`[[connectors]]`, type request_tracker).
        #[arg(long)]
        connector: String,
        /// TicketSQL, e.g. "Queue = 'General' AND Created > '2026-01-01'".
        #[arg(long)]
        query: String,
        #[arg(long, value_enum, default_value = "stop")]
        on_error: OnErrorArg,
    },
    /// One ticket per row of a CSV file with a header row.
    Csv {
        file: PathBuf,
        /// Which column holds each field: title=Subject,description=Body,... Fields: id,
        /// title (required), description, kind, severity, status, requester, assignee,
        /// team, workload, tags, created, created_by, comments.
        #[arg(long)]
        map: String,
        /// The name the source is known by (the file's name when not given): the same name
        /// and ids make a second run change nothing.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value = "stop")]
        on_error: OnErrorArg,
    },
}

/// What an import does with a ticket it cannot bring in.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnErrorArg {
    /// Stop there, with the line or ticket and why (what came before stays imported).
    Stop,
    /// Say it and go on; the summary lists them.
    Skip,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TicketFormat {
    /// One JSON object per ticket and line, with `comments` and `history` arrays.
    Jsonl,
    /// One row per ticket; `comments` and `history` are JSON text in their columns.
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Explain which routing rules an event on a sample ticket hits, and why others do not.
    /// Sends nothing.
    Check {
        /// created, severity_changed, sla_warning, sla_breach, escalated, resolved, ...
        #[arg(long, default_value = "created")]
        event: String,
        #[arg(long, default_value = "SEV3")]
        severity: String,
        #[arg(long, default_value = "incident")]
        kind: String,
        #[arg(long, default_value = "manual")]
        source: String,
        #[arg(long)]
        workload: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Send a test message through a channel now and print what it answered.
    Test { name: String },
    /// List channels, secrets hidden.
    List,
}

#[derive(Debug, Subcommand)]
pub enum LensCommand {
    /// Import a lens document in the Well-Architected custom lens format: a new lens, or a new
    /// version of the lens of the same name.
    Import { file: PathBuf },
    /// Print a lens's document (its newest version unless --version says otherwise), ready to
    /// import into the Well-Architected Tool.
    Export {
        id: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// List lenses with their newest version.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Start a review of a workload on the newest version of a lens.
    Start {
        #[arg(long)]
        workload: String,
        /// A lens id (see `opsdesk lens list`); default the built-in `opsdesk-readiness`.
        #[arg(long)]
        lens: Option<String>,
    },
    /// A review's report: per pillar the questions, answers, risks and improvement plans.
    Report {
        id: i64,
        #[arg(long, value_enum, default_value = "md")]
        format: ReviewFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReviewFormat {
    /// Markdown, for people.
    Md,
    /// The same JSON as GET /api/v1/reviews/{id}.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// Create or replace the workloads of a TOML file (`[[workload]]` tables), all or none.
    Import { file: PathBuf },
    /// List workloads.
    List,
}

/// A workloads file: `[[workload]]` tables with the fields of the API.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    #[serde(default)]
    workload: Vec<opsdesk_domain::NewWorkload>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a person.
    Add {
        #[arg(long)]
        email: String,
        /// requester, agent, lead, admin, auditor or viewer.
        #[arg(long, value_parser = role)]
        role: Role,
        /// Display name; defaults to the part of the email before the @.
        #[arg(long)]
        name: Option<String>,
        /// A team to join (repeat for several); the team must exist.
        #[arg(long = "team")]
        teams: Vec<String>,
        /// Read a local password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a person's role.
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = role)]
        role: Role,
    },
    /// Stop a person from signing in; their history stays.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Let a disabled person sign in again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Set up two-factor sign-in for a person; prints the secret and otpauth URL to hand over.
    Totp {
        #[arg(long)]
        email: String,
    },
    /// Require a two-factor code from a person at sign-in (--off to stop requiring it).
    RequireTotp {
        #[arg(long)]
        email: String,
        #[arg(long)]
        off: bool,
    },
    /// Let an account with a local password or two-factor sign-in also sign in with single
    /// sign-on, as one identity-provider account (its ID tokens' `sub`). The provider's word
    /// about an email alone never binds such an account.
    LinkSso {
        #[arg(long)]
        email: String,
        /// The `sub` claim the provider gives this person.
        #[arg(long)]
        subject: String,
        /// The provider's issuer; defaults to oidc.issuer_url.
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Stop an account from answering to single sign-on (until it is linked again).
    UnlinkSso {
        #[arg(long)]
        email: String,
    },
    /// List everyone.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Add a team.
    Add {
        #[arg(long)]
        name: String,
        /// The lead's email; they become a member.
        #[arg(long)]
        lead: Option<String>,
    },
    /// Add a person to a team.
    AddMember {
        #[arg(long)]
        team: String,
        #[arg(long)]
        email: String,
    },
    /// Remove a person from a team.
    RemoveMember {
        #[arg(long)]
        team: String,
        #[arg(long)]
        email: String,
    },
    /// List teams with their leads and members.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a commented configuration with every default.
    Example,
    /// Load the configuration and print it, with secrets hidden.
    Check,
}

fn role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role {s:?}; expected one of: {}", Role::names()))
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is the last line of the output, shown only once.
    Create {
        #[arg(long)]
        name: String,
        /// requester, agent, lead, admin, auditor, viewer, or ingest (ingest endpoints only).
        #[arg(long, value_parser = role)]
        role: Role,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by name; it stops working at once.
    Revoke { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain: exit 0 when intact, 1 naming the first bad entry. Prints the head
    /// as SEQ:HASH: keep it outside the database and pass it as --anchor later.
    Verify {
        /// SEQ:HASH, a head printed earlier: also check that entry SEQ still has HASH, which
        /// finds a chain rewritten with fresh hashes. Repeat for several.
        #[arg(long = "anchor", value_name = "SEQ:HASH")]
        anchors: Vec<opsdesk_domain::audit::Anchor>,
    },
    /// Write every entry, oldest first.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config(ConfigCommand::Example) = cli.command {
        print!("{EXAMPLE}");
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    match cli.command {
        Command::Serve => {
            server::init_logging(&config);
            let listener = tokio::net::TcpListener::bind(config.server.bind)
                .await
                .with_context(|| format!("cannot listen on {}", config.server.bind))?;
            server::serve(&config, listener, server::shutdown_signal()).await?;
        }
        Command::Migrate => {
            let desk = server::open_desk(&config).await?;
            println!("database is up to date ({})", desk.db().backend().as_str());
            desk.db().close().await;
        }
        Command::Config(ConfigCommand::Check) => {
            config
                .server
                .trusted_proxies()
                .map_err(anyhow::Error::msg)?;
            println!("{config:#?}");
            let today = opsdesk_core::Clock::now(&opsdesk_core::SystemClock).date_naive();
            for notice in config.aws.plan_notices(today) {
                eprintln!("warning: {notice}");
            }
            // Accounts added through the API, and what AWS last said about each account's
            // case severities, are in the database.
            match server::open_desk(&config).await {
                Ok(desk) => {
                    let warnings = desk.plan_warnings().await;
                    desk.db().close().await;
                    // The file's accounts on ending plans are named above, by key.
                    for w in warnings?.iter().filter(|w| !(w.configured && w.ending)) {
                        eprintln!("warning: {}", w.text);
                    }
                }
                Err(e) => eprintln!(
                    "note: the database could not be opened ({e:#}), so accounts added through \
                     the API and AWS's answers about case severities were not checked"
                ),
            }
        }
        Command::Config(ConfigCommand::Example) => {}
        Command::Token(cmd) => token(&config, cmd).await?,
        Command::Audit(cmd) => return audit(&config, cmd).await,
        Command::User(cmd) => user(&config, cmd).await?,
        Command::Team(cmd) => team(&config, cmd).await?,
        Command::Workload(cmd) => workload(&config, cmd).await?,
        Command::Lens(cmd) => lens(&config, cmd).await?,
        Command::Review(cmd) => review(&config, cmd).await?,
        Command::Channel(cmd) => return channel(&config, cmd).await,
        Command::Rules(cmd) => rules(&config, cmd).await?,
        Command::Export(cmd) => export(&config, cmd).await?,
        Command::Import(cmd) => return import(&config, cmd).await,
        Command::Backup { output } => return backup(&config, &output).await,
        Command::MigrateDb { to } => return migrate_db(&config, &to).await,
        Command::Restore { file } => return restore(&config, &file).await,
        Command::Kpi(cmd) => kpi(&config, cmd).await?,
        Command::SupportPlans { format } => return support_plans(&config, format).await,
        Command::Report {
            period,
            format,
            output,
        } => report(&config, &period, format, output).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `--since` / `--until`: an RFC 3339 time, or a date taken as midnight UTC.
fn export_time(
    flag: &str,
    raw: Option<&str>,
) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(t.with_timezone(&chrono::Utc)));
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--{flag} {raw:?} is neither an RFC 3339 time (2026-11-24T09:00:00Z) nor a date (2026-11-24)"
            )
        })
}

const CSV_HEADER: [&str; 22] = [
    "id",
    "key",
    "title",
    "description",
    "kind",
    "severity",
    "status",
    "requester",
    "assignee",
    "team",
    "workload",
    "tags",
    "source",
    "dedup_key",
    "created_at",
    "updated_at",
    "acknowledged_at",
    "resolved_at",
    "closed_at",
    "comments",
    "history",
    "attachments",
];

async fn report(
    config: &Config,
    period: &str,
    format: ReportFormat,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let desk = server::open_desk(config).await?;
    let period = opsdesk_domain::report::Period::parse(period, desk.now())
        .map_err(|e| anyhow::anyhow!("--{}: {}", e.field, e.message))?;
    let report = desk.trend_report(&Actor::cli(), period).await;
    desk.db().close().await;
    let report = report?;
    let text = match format {
        ReportFormat::Md => report.markdown(),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Csv => report.csv()?,
    };
    match output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// `opsdesk support-plans`: fails (exit 1) when AWS answered for no account, or an answer
/// does not fit the configured plan.
async fn support_plans(config: &Config, format: ListFormat) -> anyhow::Result<ExitCode> {
    let desk = server::open_desk(config).await?;
    let aws = opsdesk_aws::support::SupportClient::from_env().await;
    let checks = desk.check_severity_levels(&Actor::cli(), &aws).await;
    desk.db().close().await;
    let checks = checks?;
    let mut out = std::io::stdout().lock();
    match format {
        ListFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "accounts": checks }))?
        )?,
        ListFormat::Table => {
            writeln!(
                out,
                "{:<12} {:<22} {:<22} AWS OFFERS",
                "ACCOUNT", "PLAN", "IN EFFECT"
            )?;
            for c in &checks {
                let offers = match (&c.levels, &c.error) {
                    (Some(l), _) => l.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    (None, Some(e)) => format!("(no answer: {e})"),
                    (None, None) => "-".to_owned(),
                };
                writeln!(
                    out,
                    "{:<12} {:<22} {:<22} {offers}",
                    c.account_id,
                    c.support_plan.label(),
                    c.plan_in_effect.label()
                )?;
                for line in [&c.notice, &c.mismatch].into_iter().flatten() {
                    writeln!(out, "  {line}")?;
                }
            }
        }
    }
    let answered = checks.iter().any(|c| c.levels.is_some());
    let mismatched = checks.iter().any(|c| c.mismatch.is_some());
    Ok(if checks.is_empty() || (answered && !mismatched) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn kpi(config: &Config, cmd: KpiCommand) -> anyhow::Result<()> {
    let desk = server::open_desk(config).await?;
    let actor = Actor::cli();
    let (format, by) = match cmd {
        KpiCommand::List { format, by } => (format, by),
        KpiCommand::Evaluate { format } => {
            let done = desk.evaluate_kpis(true).await?;
            eprintln!("evaluated {} KPIs", done.len());
            (format, None)
        }
    };
    let kpis = desk.kpis(&actor, by).await?;
    desk.db().close().await;
    let mut out = std::io::stdout().lock();
    match format {
        ListFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "kpis": kpis }))?
        )?,
        ListFormat::Table => {
            use opsdesk_core::kpis::show;
            let shown = |unit, v: Option<f64>| v.map_or("-".to_owned(), |v| show(unit, v));
            writeln!(
                out,
                "{:<26} {:>12} {:<8} {:>12} {:<10} {:<7}",
                "KPI", "VALUE", "STATUS", "TARGET", "TREND", "WINDOW"
            )?;
            for k in &kpis {
                let unit = k.info.unit;
                let trend = k.trend.map_or("-".to_owned(), |t| {
                    serde_json::to_value(t)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                });
                writeln!(
                    out,
                    "{:<26} {:>12} {:<8} {:>12} {:<10} {:<7}",
                    k.info.name,
                    shown(unit, k.value),
                    k.status,
                    shown(unit, k.info.thresholds.map(|t| t.target)),
                    trend,
                    k.info.window.to_string(),
                )?;
                for s in &k.scopes {
                    writeln!(
                        out,
                        "  {:<24} {:>12} {:<8}",
                        format!("{}={}", s.by, s.scope),
                        shown(unit, s.value),
                        s.status
                    )?;
                }
            }
        }
    }
    Ok(())
}

async fn export(config: &Config, cmd: ExportCommand) -> anyhow::Result<()> {
    let ExportCommand::Tickets {
        format,
        since,
        until,
        workload,
        output,
    } = cmd;
    let filter = opsdesk_core::export::ExportFilter {
        created_from: export_time("since", since.as_deref())?,
        created_until: export_time("until", until.as_deref())?,
        workload,
    };
    let desk = server::open_desk(config).await?;
    let out: Box<dyn Write> = match &output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let out = std::io::BufWriter::new(out);
    // Both write through fixed buffers: memory stays flat however many tickets there are.
    let mut sink = match format {
        TicketFormat::Jsonl => Sink::Jsonl(out),
        TicketFormat::Csv => {
            let mut w = opsdesk_core::csv_writer::CsvWriter::from_writer(out);
            w.write_record(CSV_HEADER)?;
            Sink::Csv(Box::new(w))
        }
    };
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(opsdesk_domain::audit::format_time)
            .unwrap_or_default()
    };
    // The next page is read while this one is written.
    let fetch = |after: i64| {
        let (desk, filter) = (desk.clone(), filter.clone());
        tokio::spawn(async move { desk.export_page(&Actor::cli(), &filter, after).await })
    };
    let mut next = fetch(0);
    loop {
        let page = next.await??;
        let Some(last) = page.last() else { break };
        next = fetch(last.ticket.id);
        for e in &page {
            match &mut sink {
                Sink::Jsonl(out) => {
                    serde_json::to_writer(&mut *out, e)?;
                    out.write_all(b"\n")?;
                }
                Sink::Csv(w) => {
                    let t = &e.ticket;
                    w.write_record([
                        t.id.to_string(),
                        t.key.clone(),
                        t.title.clone(),
                        t.description.clone(),
                        t.kind.to_string(),
                        t.severity.to_string(),
                        t.status.to_string(),
                        t.requester.clone().unwrap_or_default(),
                        t.assignee.clone().unwrap_or_default(),
                        t.team.clone().unwrap_or_default(),
                        t.workload.clone().unwrap_or_default(),
                        t.tags.join(";"),
                        t.source.clone(),
                        t.dedup_key.clone().unwrap_or_default(),
                        time(Some(t.created_at)),
                        time(Some(t.updated_at)),
                        time(t.acknowledged_at),
                        time(t.resolved_at),
                        time(t.closed_at),
                        serde_json::to_string(&e.comments)?,
                        serde_json::to_string(&e.history)?,
                        serde_json::to_string(&e.attachments)?,
                    ])?;
                }
            }
        }
    }
    match &mut sink {
        Sink::Jsonl(out) => out.flush()?,
        Sink::Csv(w) => w.flush()?,
    }
    desk.db().close().await;
    Ok(())
}

async fn import(config: &Config, cmd: ImportCommand) -> anyhow::Result<ExitCode> {
    use opsdesk_core::import::{CsvMap, OnError};
    let on_error = |a: OnErrorArg| match a {
        OnErrorArg::Stop => OnError::Stop,
        OnErrorArg::Skip => OnError::Skip,
    };
    let mut progress = |line: &str| eprintln!("{line}");
    let actor = Actor::cli();
    let desk = server::open_desk(config).await?;
    let outcome = match cmd {
        ImportCommand::Rt {
            connector,
            query,
            on_error: e,
        } => {
            let kind = desk.connector_remote(&connector)?.spec().kind;
            if kind != opsdesk_domain::connector::ConnectorType::RequestTracker {
                anyhow::bail!(
                    "connector {connector:?} is a {} connector, not Request Tracker",
                    kind.label()
                );
            }
            desk.import_from_connector(&actor, &connector, &query, on_error(e), &mut progress)
                .await?
        }
        ImportCommand::Csv {
            file,
            map,
            name,
            on_error: e,
        } => {
            let map: CsvMap = map.parse().map_err(|e| anyhow::anyhow!("--map: {e}"))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "file".into()),
            };
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            desk.import_csv(
                &actor,
                std::io::BufReader::new(reader),
                &name,
                &map,
                on_error(e),
                &mut progress,
            )
            .await?
        }
    };
    desk.db().close().await;
    let (summary, stopped) = match outcome {
        Ok(summary) => (summary, None),
        Err((summary, problem)) => (summary, Some(problem)),
    };
    println!(
        "imported {}, unchanged {}, skipped {}",
        summary.imported,
        summary.unchanged,
        summary.skipped.len()
    );
    for p in &summary.skipped {
        println!("skipped {p}");
    }
    if let Some(problem) = stopped {
        eprintln!("error: stopped at {problem}; run again to go on (--on-error skip passes over such tickets)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if summary.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Where an export goes.
enum Sink {
    Jsonl(std::io::BufWriter<Box<dyn Write>>),
    Csv(Box<opsdesk_core::csv_writer::CsvWriter<std::io::BufWriter<Box<dyn Write>>>>),
}

async fn channel(config: &Config, cmd: ChannelCommand) -> anyhow::Result<ExitCode> {
    let desk = server::open_desk(config).await?;
    let actor = Actor::cli();
    match cmd {
        ChannelCommand::List => {
            for c in desk.channels(&actor).await? {
                println!("{:<24} {:<10} {}", c.name, c.kind_name(), c.summary());
            }
        }
        ChannelCommand::Test { name } => {
            let spec = desk.channel_spec(&name).await?;
            let channels = server::channels(config)?;
            let at = desk.now();
            let n = opsdesk_domain::channel::Notification::test(
                &name,
                "opsdesk channel test",
                config.notify.base_url.clone(),
                at,
            );
            let key = format!("test-{name}-{}", at.timestamp_micros());
            match channels.send(&spec, &n, &key).await {
                Ok(receipt) => println!("delivered through {name}: {}", receipt.detail),
                Err(e) => {
                    eprintln!(
                        "not delivered through {name}: {e} ({})",
                        if e.retryable {
                            "may work if retried"
                        } else {
                            "permanent"
                        }
                    );
                    desk.db().close().await;
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    desk.db().close().await;
    Ok(ExitCode::SUCCESS)
}

async fn rules(config: &Config, cmd: RulesCommand) -> anyhow::Result<()> {
    use opsdesk_domain::channel::NotificationEvent;
    use opsdesk_domain::{Kind, Severity};
    let RulesCommand::Check {
        event,
        severity,
        kind,
        source,
        workload,
        team,
        tags,
    } = cmd;
    let event = NotificationEvent::parse(&event)
        .with_context(|| format!("--event {event:?}: one of {}", NotificationEvent::names()))?;
    let severity = Severity::parse(&severity.to_ascii_uppercase())
        .with_context(|| format!("--severity {severity:?}: one of {}", Severity::names()))?;
    let kind =
        Kind::parse(&kind).with_context(|| format!("--kind {kind:?}: one of {}", Kind::names()))?;
    let desk = server::open_desk(config).await?;
    let mut ticket = opsdesk_domain::Ticket::open(
        opsdesk_domain::NewTicket {
            title: "Sample ticket".into(),
            description: String::new(),
            kind,
            severity,
            requester: None,
            assignee: None,
            team,
            workload,
            tags,
            source: Some(source),
            dedup_key: None,
        },
        desk.now(),
    );
    ticket.key = "OPS-0".into();
    let (checks, channels) = desk.check_routing(&Actor::cli(), event, &ticket).await?;
    for c in &checks {
        let verdict = match (c.matched, c.reached, &c.reason) {
            (true, _, _) => "matches".to_owned(),
            (false, false, _) => "not reached (an earlier rule stops the list)".to_owned(),
            (false, true, Some(reason)) => format!("no: {reason}"),
            (false, true, None) => "no".to_owned(),
        };
        println!("{:<32} {verdict}", c.rule);
    }
    if channels.is_empty() {
        println!("=> sent nowhere");
    } else {
        println!("=> sent to {}", channels.join(", "));
    }
    desk.db().close().await;
    Ok(())
}

async fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<()> {
    let desk = server::open_desk(config).await?;
    let actor = Actor::cli();
    match cmd {
        TokenCommand::Create { name, role } => {
            let (summary, secret) = desk.create_token(&actor, &name, role).await?;
            println!(
                "created token {:?} (id {}) with role {}; the secret below is shown only once:",
                summary.name, summary.id, summary.role
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            let tokens = desk.list_tokens(&actor).await?;
            println!(
                "{:<6} {:<24} {:<8} {:<28} STATUS",
                "ID", "NAME", "ROLE", "CREATED"
            );
            for t in tokens {
                let status = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".to_owned(),
                };
                println!(
                    "{:<6} {:<24} {:<8} {:<28} {status}",
                    t.id,
                    t.name,
                    t.role,
                    t.created_at.to_rfc3339()
                );
            }
        }
        TokenCommand::Revoke { name } => {
            let t = desk.revoke_token(&actor, &name).await?;
            println!("revoked token {:?} (id {})", t.name, t.id);
        }
    }
    desk.db().close().await;
    Ok(())
}

async fn audit(config: &Config, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let desk = server::open_desk(config).await?;
    let code = match cmd {
        AuditCommand::Verify { anchors } => match desk.verify_audit_anchored(&anchors).await {
            Ok(summary) => {
                println!(
                    "audit trail intact: {} entries verified; head hash {}",
                    summary.entries, summary.head_hash
                );
                match summary.anchors {
                    0 => {}
                    1 => println!("1 anchor matches"),
                    n => println!("{n} anchors match"),
                }
                println!(
                    "keep the head outside the database and check against it later with: \
                     opsdesk audit verify --anchor {}",
                    summary.head_anchor()
                );
                ExitCode::SUCCESS
            }
            Err(VerifyError::Broken(e)) => {
                println!("audit trail BROKEN at seq {}: {e}", e.seq());
                ExitCode::from(1)
            }
            Err(VerifyError::Failed(e)) => return Err(e.into()),
        },
        AuditCommand::Export {
            format: ExportFormat::Jsonl,
            output,
        } => {
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut records = desk.audit_records();
            while let Some(record) = records.next().await {
                serde_json::to_writer(&mut out, &record?)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            ExitCode::SUCCESS
        }
    };
    desk.db().close().await;
    Ok(code)
}

async fn user(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    let desk = server::open_desk(config).await?;
    let actor = Actor::cli();
    let shown = |u: &opsdesk_domain::User| {
        format!(
            "{:<32} {:<10} {:<8} {:<8} {}",
            u.email,
            u.role,
            if u.active { "active" } else { "disabled" },
            if u.has_password { "yes" } else { "no" },
            u.teams.join(",")
        )
    };
    match cmd {
        UserCommand::Add {
            email,
            role,
            name,
            teams,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("cannot read the password")?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            let u = desk
                .add_user(
                    &actor,
                    opsdesk_domain::NewUser {
                        email,
                        display_name: name,
                        role,
                        teams,
                        password,
                    },
                )
                .await?;
            println!(
                "added {} ({}) with role {}",
                u.email, u.display_name, u.role
            );
        }
        UserCommand::SetRole { email, role } => {
            let u = desk.set_user_role(&actor, &email, role).await?;
            println!("{} now has role {}", u.email, u.role);
        }
        UserCommand::Disable { email } => {
            let u = desk.set_user_active(&actor, &email, false).await?;
            println!("disabled {}", u.email);
        }
        UserCommand::Enable { email } => {
            let u = desk.set_user_active(&actor, &email, true).await?;
            println!("enabled {}", u.email);
        }
        UserCommand::Totp { email } => {
            let e = desk.enroll_totp(&actor, &email).await?;
            println!("two-factor sign-in is on for {email}; give them this (once, privately):");
            println!("secret: {}", e.secret);
            println!("{}", e.url);
        }
        UserCommand::RequireTotp { email, off } => {
            let u = desk.set_totp_required(&actor, &email, !off).await?;
            println!(
                "{} {} a two-factor code",
                u.email,
                if u.totp_required {
                    "now needs"
                } else {
                    "no longer needs"
                }
            );
        }
        UserCommand::LinkSso {
            email,
            subject,
            issuer,
        } => {
            let issuer = issuer
                .or_else(|| Some(config.oidc.issuer_url.trim().to_owned()))
                .filter(|i| !i.is_empty())
                .context("give --issuer, or set oidc.issuer_url")?;
            let u = desk
                .link_sso(&actor, &email, Some((&issuer, &subject)))
                .await?;
            println!(
                "{} now also signs in with single sign-on as {subject} at {issuer}",
                u.email
            );
        }
        UserCommand::UnlinkSso { email } => {
            let u = desk.link_sso(&actor, &email, None).await?;
            println!("{} no longer signs in with single sign-on", u.email);
        }
        UserCommand::List => {
            println!(
                "{:<32} {:<10} {:<8} {:<8} TEAMS",
                "EMAIL", "ROLE", "STATUS", "PASSWORD"
            );
            for u in desk.users(&actor).await? {
                println!("{}", shown(&u));
            }
        }
    }
    desk.db().close().await;
    Ok(())
}

async fn team(config: &Config, cmd: TeamCommand) -> anyhow::Result<()> {
    let desk = server::open_desk(config).await?;
    let actor = Actor::cli();
    match cmd {
        TeamCommand::Add { name, lead } => {
            let t = desk.add_team(&actor, &name, lead.as_deref()).await?;
            println!("added team {:?}", t.name);
        }
        TeamCommand::AddMember { team, email } => {
            let t = desk.set_team_member(&actor, &team, &email, true).await?;
            println!("{:?} members: {}", t.name, t.members.join(", "));
        }
        TeamCommand::RemoveMember { team, email } => {
            let t = desk.set_team_member(&actor, &team, &email, false).await?;
            println!("{:?} members: {}", t.name, t.members.join(", "));
        }
        TeamCommand::List => {
            println!("{:<24} {:<32} MEMBERS", "NAME", "LEAD");
            for t in desk.teams(&actor).await? {
                println!(
                    "{:<24} {:<32} {}",
                    t.name,
                    t.lead.as_deref().unwrap_or("-"),
                    t.members.join(", ")
                );
            }
        }
    }
    desk.db().close().await;
    Ok(())
}

async fn lens(config: &Config, cmd: LensCommand) -> anyhow::Result<()> {
    let desk = server::open_desk(config).await?;
    let actor = Actor::cli();
    let result = async {
        match cmd {
            LensCommand::Import { file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let imported = desk.import_lens(&actor, &text).await.map_err(|e| match e {
                    opsdesk_core::Error::Invalid(f) => {
                        anyhow::anyhow!("{}: {}", file.display(), f.message)
                    }
                    other => anyhow::anyhow!(other),
                })?;
                if imported.new_version {
                    println!(
                        "imported lens {} ({}) version {} digest {}",
                        imported.id, imported.name, imported.version, imported.digest
                    );
                } else {
                    println!(
                        "lens {} ({}) already has this document as version {}",
                        imported.id, imported.name, imported.version
                    );
                }
            }
            LensCommand::Export { id, version } => {
                let doc = desk.export_lens(&actor, &id, version).await?;
                println!("{doc}");
            }
            LensCommand::List => {
                println!("{:<32} {:>7} {:>9} NAME", "ID", "VERSION", "QUESTIONS");
                for l in desk.list_lenses(&actor).await? {
                    println!(
                        "{:<32} {:>7} {:>9} {}",
                        l.id, l.latest.version, l.questions, l.name
                    );
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    desk.db().close().await;
    result
}

async fn review(config: &Config, cmd: ReviewCommand) -> anyhow::Result<()> {
    let desk = server::open_desk(config).await?;
    let actor = Actor::cli();
    let result = async {
        match cmd {
            ReviewCommand::Start { workload, lens } => {
                let r = desk
                    .start_review(
                        &actor,
                        opsdesk_core::readiness::NewReview { workload, lens },
                    )
                    .await
                    .map_err(|e| match e {
                        opsdesk_core::Error::Invalid(f) => {
                            anyhow::anyhow!("--{}: {}", f.field, f.message)
                        }
                        other => anyhow::anyhow!(other),
                    })?;
                println!(
                    "started review {} of {} on lens {} version {} ({} questions)",
                    r.id,
                    r.workload,
                    r.lens,
                    r.lens_version,
                    r.pillars.iter().map(|p| p.questions.len()).sum::<usize>()
                );
            }
            ReviewCommand::Report { id, format, output } => {
                let r = desk.review(&actor, id).await?;
                let text = match format {
                    ReviewFormat::Md => opsdesk_core::readiness::review_markdown(&r),
                    ReviewFormat::Json => serde_json::to_string_pretty(&r)? + "\n",
                };
                match output {
                    Some(path) => std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?,
                    None => std::io::stdout().lock().write_all(text.as_bytes())?,
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    desk.db().close().await;
    result
}

async fn workload(config: &Config, cmd: WorkloadCommand) -> anyhow::Result<()> {
    let desk = server::open_desk(config).await?;
    let actor = Actor::cli();
    match cmd {
        WorkloadCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let parsed: WorkloadFile = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message()))?;
            let saved = desk
                .import_workloads(&actor, parsed.workload)
                .await
                .map_err(|e| match e {
                    opsdesk_core::Error::Invalid(f) => {
                        anyhow::anyhow!("{}: workload{}", file.display(), f)
                    }
                    other => anyhow::anyhow!(other),
                })?;
            for w in &saved {
                println!("saved workload {} ({})", w.name, w.environment);
            }
        }
        WorkloadCommand::List => {
            println!(
                "{:<24} {:<12} {:<20} ACCOUNTS",
                "NAME", "ENVIRONMENT", "TEAM"
            );
            for w in desk.workloads(&actor).await? {
                println!(
                    "{:<24} {:<12} {:<20} {}",
                    w.name,
                    w.environment,
                    w.team.as_deref().unwrap_or("-"),
                    w.accounts.join(", ")
                );
            }
        }
    }
    desk.db().close().await;
    Ok(())
}

/// Creates `path` empty, readable and writable by its owner only; false when it exists.
fn create_private(path: &Path) -> anyhow::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(anyhow::anyhow!(e).context(format!("cannot create {}", path.display()))),
    }
}

/// The SQLite file the configuration names, or why a backup or restore does not apply.
fn sqlite_database(config: &Config, verb: &str) -> anyhow::Result<Option<PathBuf>> {
    match opsdesk_store::Backend::from_url(&config.database.url)? {
        opsdesk_store::Backend::Sqlite => Ok(Some(opsdesk_store::backup::sqlite_file(
            &config.database.url,
        )?)),
        opsdesk_store::Backend::Postgres => {
            eprintln!(
                "opsdesk {verb} works on a SQLite database; this desk is on PostgreSQL: use \
                 pg_dump and pg_restore (docs/operations.md, \"Backup and restore\")"
            );
            Ok(None)
        }
    }
}

/// Checks the audit trail of a copy: the number of entries and the head as an anchor
/// (`SEQ:HASH`). A restored database is opened as a desk (migrated, if the copy is older); a
/// backup is only read, so that it stays as it was taken.
async fn check_copy(config: &Config, file: &Path, restored: bool) -> anyhow::Result<(i64, String)> {
    let mut copy = config.clone();
    copy.database.url = format!("sqlite://{}", file.display());
    let desk = if restored {
        server::open_desk(&copy).await?
    } else {
        let db =
            opsdesk_store::Db::connect(&copy.database.url, &opsdesk_store::DbOptions::default())
                .await?;
        opsdesk_core::Desk::new(db, std::sync::Arc::new(opsdesk_core::SystemClock))
    };
    let verified = desk.verify_audit().await;
    desk.db().close().await;
    match verified {
        Ok(summary) => Ok((summary.entries, summary.head_anchor().to_string())),
        Err(VerifyError::Broken(e)) => {
            anyhow::bail!(
                "the audit trail of {} is broken at seq {}: {e}",
                file.display(),
                e.seq()
            )
        }
        Err(VerifyError::Failed(e)) => Err(e.into()),
    }
}

async fn backup(config: &Config, output: &Path) -> anyhow::Result<ExitCode> {
    let Some(source) = sqlite_database(config, "backup")? else {
        return Ok(ExitCode::from(2));
    };
    if !source.exists() {
        anyhow::bail!("there is no database at {}", source.display());
    }
    // Made here, empty, readable by its owner only (the copy holds password hashes and
    // two-factor secrets); one that exists is never overwritten.
    if !create_private(output)? {
        anyhow::bail!(
            "{} exists: name a new file (a backup never overwrites one)",
            output.display()
        );
    }
    let started = std::time::Instant::now();
    if let Err(e) = opsdesk_store::backup::sqlite_copy(&source, output).await {
        let _ = std::fs::remove_file(output);
        return Err(anyhow::anyhow!(e).context(format!("cannot copy {}", source.display())));
    }
    let (entries, anchor) = match check_copy(config, output, false).await {
        Ok(checked) => checked,
        Err(e) => {
            let _ = std::fs::remove_file(output);
            return Err(e.context("the copy did not check out; nothing was kept"));
        }
    };
    let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({} bytes in {:.1} s): audit trail intact, {entries} entries; \
         anchor {anchor} (keep it elsewhere: opsdesk audit verify --anchor {anchor})",
        source.display(),
        output.display(),
        size,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

async fn restore(config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    let Some(target) = sqlite_database(config, "restore")? else {
        return Ok(ExitCode::from(2));
    };
    let wal = PathBuf::from(format!("{}-wal", target.display()));
    if target.exists() || wal.exists() {
        anyhow::bail!(
            "{} exists: a restore never overwrites a database. Stop opsdesk, move the database \
             (and its -wal and -shm files) away, and restore again",
            target.display()
        );
    }
    if !file.is_file() {
        anyhow::bail!("there is no file {}", file.display());
    }
    opsdesk_store::backup::sqlite_check(file)
        .await
        .with_context(|| format!("{} is not a usable opsdesk backup", file.display()))?;
    if !create_private(&target)? {
        anyhow::bail!(
            "{} exists: a restore never overwrites a database",
            target.display()
        );
    }
    let remove_target = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
        }
    };
    if let Err(e) = opsdesk_store::backup::sqlite_copy(file, &target).await {
        remove_target();
        return Err(anyhow::anyhow!(e).context(format!("cannot write {}", target.display())));
    }
    match check_copy(config, &target, true).await {
        Ok((entries, anchor)) => {
            println!(
                "restored {} into {}: audit trail intact, {entries} entries; head {anchor}",
                file.display(),
                target.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            remove_target();
            Err(e.context("the restored database did not check out; it was removed"))
        }
    }
}

async fn migrate_db(config: &Config, to: &str) -> anyhow::Result<ExitCode> {
    use opsdesk_store::Backend;
    if Backend::from_url(&config.database.url)? != Backend::Sqlite {
        anyhow::bail!(
            "opsdesk migrate-db copies a SQLite desk; database.url already names PostgreSQL"
        );
    }
    if Backend::from_url(to)? != Backend::Postgres {
        anyhow::bail!(
            "--to must name a PostgreSQL database (postgres://USER:PASSWORD@HOST:PORT/DB)"
        );
    }
    let shown = opsdesk_store::db::redact_url(to);
    let source = server::open_desk(config).await?;
    let before = match source.verify_audit().await {
        Ok(summary) => summary,
        Err(VerifyError::Broken(e)) => anyhow::bail!(
            "the audit trail of this desk is broken at seq {}: {e}; nothing was copied",
            e.seq()
        ),
        Err(VerifyError::Failed(e)) => return Err(e.into()),
    };
    // Looked at before anything is written there: a database that holds a desk is neither
    // migrated nor touched.
    let probe = opsdesk_store::Db::connect(to, &opsdesk_store::DbOptions::default())
        .await
        .with_context(|| format!("cannot open {shown}"))?;
    let refused = opsdesk_store::copy::refusal(&probe).await;
    probe.close().await;
    if let Some(why) = refused? {
        source.db().close().await;
        eprintln!("opsdesk migrate-db: refused: {why}");
        return Ok(ExitCode::from(1));
    }
    let mut target_config = config.clone();
    target_config.database.url = to.to_owned();
    let target = server::open_desk(&target_config).await?;
    println!(
        "copying {} to {shown}",
        opsdesk_store::db::redact_url(&config.database.url)
    );
    let started = std::time::Instant::now();
    let copied =
        opsdesk_store::copy::sqlite_to_postgres(source.db(), target.db(), |table, rows, done| {
            if done {
                eprintln!("\r  {table}: {rows} rows");
            } else {
                eprint!("\r  {table}: {rows} rows ...");
            }
        })
        .await;
    source.db().close().await;
    let copied = match copied {
        Ok(copied) => copied,
        Err(e) => {
            target.db().close().await;
            if e.is_unique_violation() {
                eprintln!("opsdesk migrate-db: refused: {e}");
                return Ok(ExitCode::from(1));
            }
            return Err(anyhow::anyhow!(e).context(format!(
                "the copy to {shown} failed; nothing of it was kept there"
            )));
        }
    };
    let after = target.verify_audit().await;
    target.db().close().await;
    let rows: u64 = copied.tables.iter().map(|(_, n)| n).sum();
    if copied.head != (before.head_seq, before.head_hash.clone()) {
        eprintln!(
            "warning: this desk changed while it was copied (its head moved from {} to {}:{}); \
             the copy has it as it was at {}:{}",
            before.head_anchor(),
            copied.head.0,
            copied.head.1,
            copied.head.0,
            copied.head.1
        );
    }
    match after {
        Ok(after) if (after.head_seq, after.head_hash.clone()) == copied.head => {
            println!(
                "copied {rows} rows of {} tables in {:.1} s; audit trail verified on arrival: \
                 {} entries, head {} (the same as here)",
                copied.tables.len(),
                started.elapsed().as_secs_f64(),
                after.entries,
                after.head_anchor()
            );
            println!("point database.url at {shown} and start opsdesk there");
            Ok(ExitCode::SUCCESS)
        }
        Ok(after) => anyhow::bail!(
            "the copy's audit trail ends at {}, not at {}:{}: do not use it",
            after.head_anchor(),
            copied.head.0,
            copied.head.1
        ),
        Err(VerifyError::Broken(e)) => anyhow::bail!(
            "the copy's audit trail is broken at seq {}: {e}; do not use it",
            e.seq()
        ),
        Err(VerifyError::Failed(e)) => Err(e.into()),
    }
}
