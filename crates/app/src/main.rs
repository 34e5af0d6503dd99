use std::process::ExitCode;

use clap::Parser;

/// Many small, short-lived allocations per request and per signal; glibc's allocator spent a
/// quarter of ingest time consolidating and unlinking chunks (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = opsdesk::cli::Cli::parse();
    match opsdesk::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
