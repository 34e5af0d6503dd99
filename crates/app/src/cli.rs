use std::io::Write;
use std::path::PathBuf;
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
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a commented configuration with every default.
    Example,
    /// Load the configuration and print it, with secrets hidden.
    Check,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Agent,
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Agent => Role::Agent,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is the last line of the output, shown only once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
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
    /// Walk the hash chain: exit 0 when intact, 1 naming the first bad entry.
    Verify,
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
            println!("{config:#?}");
        }
        Command::Config(ConfigCommand::Example) => {}
        Command::Token(cmd) => token(&config, cmd).await?,
        Command::Audit(cmd) => return audit(&config, cmd).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<()> {
    let desk = server::open_desk(config).await?;
    let actor = Actor::cli();
    match cmd {
        TokenCommand::Create { name, role } => {
            let (summary, secret) = desk.create_token(&actor, &name, role.into()).await?;
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
        AuditCommand::Verify => match desk.verify_audit().await {
            Ok(summary) => {
                println!(
                    "audit trail intact: {} entries verified; head hash {}",
                    summary.entries, summary.head_hash
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
