//! `files`: files on a ticket, uploaded (`POST /api/v1/tickets/{id}/attachments`,
//! `multipart/form-data`) or downloaded (`GET .../attachments/{attachment_id}`), each a
//! distinct log file of `--size` bytes.

use std::time::Duration;

use clap::{Args, ValueEnum};
use reqwest::header::AUTHORIZATION;

use crate::run::{workers, Budget};
use crate::stats::{Report, Samples};
use crate::target::Target;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Time the uploads.
    Upload,
    /// Upload the files first (untimed), then time their downloads.
    Download,
}

#[derive(Args)]
pub struct FilesArgs {
    /// Upload or download.
    #[arg(long, value_enum, default_value_t = Mode::Upload)]
    pub mode: Mode,
    /// Files to upload or download, one per request.
    #[arg(long, default_value_t = 500)]
    pub files: u64,
    /// Bytes per file (at most the server's attachments.max_bytes).
    #[arg(long, default_value_t = 1024 * 1024)]
    pub size: usize,
    /// Requests sent at the same time, each on its own keep-alive connection.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

/// A log file of `size` bytes, distinct for each `(seed, n)`.
fn log_file(seed: u64, n: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 80);
    let mut line = 0u64;
    while out.len() < size {
        out.extend_from_slice(
            format!("2026-12-07T10:00:00Z run {seed} file {n} line {line}: request served\n")
                .as_bytes(),
        );
        line += 1;
    }
    out.truncate(size);
    out
}

async fn upload(
    target: &Target,
    url: &reqwest::Url,
    bytes: Vec<u8>,
    n: u64,
) -> (Duration, Result<i64, String>) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(format!("bench-{n}.log")),
    );
    let req = target
        .client()
        .post(url.clone())
        .header(AUTHORIZATION, target.bearer())
        .multipart(form);
    let start = std::time::Instant::now();
    let result = async {
        let res = req.send().await.map_err(|e| e.to_string())?;
        let status = res.status();
        let body = res.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        let files: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        files[0]["id"]
            .as_i64()
            .ok_or_else(|| "the answer names no file".to_owned())
    }
    .await;
    (start.elapsed(), result)
}

pub async fn run(
    target: &Target,
    args: &FilesArgs,
    seed: u64,
    limit: Duration,
) -> anyhow::Result<Report> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.size > 0, "--size must be at least 1");
    let ticket = target
        .post_json(
            target.url("/api/v1/tickets")?,
            serde_json::to_vec(&serde_json::json!({
                "title": "files benchmark", "kind": "task", "severity": "SEV5"
            }))?,
        )
        .await
        .body
        .map_err(|e| anyhow::anyhow!("POST /api/v1/tickets: {e}"))?;
    let ticket: serde_json::Value = serde_json::from_slice(&ticket)?;
    let key = ticket["key"].as_str().unwrap_or_default().to_owned();
    let files_url = target.url(&format!("/api/v1/tickets/{key}/attachments"))?;
    let size = args.size;

    // For downloads, the files are uploaded first, untimed.
    let mut ids = Vec::new();
    if args.mode == Mode::Download {
        for n in 0..args.files {
            let (_, id) = upload(target, &files_url, log_file(seed, n, size), n).await;
            ids.push(id.map_err(|e| anyhow::anyhow!("uploading file {n}: {e}"))?);
        }
    }
    let ids = std::sync::Arc::new(ids);
    let budget = Budget::new(args.files, limit);
    let mode = args.mode;
    let (results, elapsed) = workers(args.concurrency, |_| {
        let target = target.clone();
        let files_url = files_url.clone();
        let budget = budget.clone();
        let ids = ids.clone();
        let key = key.clone();
        async move {
            let mut samples = Samples::default();
            while let Some(n) = budget.take() {
                match mode {
                    Mode::Upload => {
                        let bytes = log_file(seed, n, size);
                        match upload(&target, &files_url, bytes, n).await {
                            (latency, Ok(_)) => samples.ok(latency),
                            (_, Err(e)) => samples.failed(e),
                        }
                    }
                    Mode::Download => {
                        let id = ids[n as usize % ids.len().max(1)];
                        let url =
                            match target.url(&format!("/api/v1/tickets/{key}/attachments/{id}")) {
                                Ok(u) => u,
                                Err(e) => {
                                    samples.failed(e.to_string());
                                    continue;
                                }
                            };
                        let reply = target.get(url, &[]).await;
                        match reply.body {
                            Ok(b) if b.len() == size => samples.ok(reply.latency),
                            Ok(b) => samples.failed(format!("{} bytes, not {size}", b.len())),
                            Err(e) => samples.failed(e),
                        }
                    }
                }
            }
            samples
        }
    })
    .await?;
    let all = Samples::merged(results);
    let moved = all.ok_count() * size as u64;
    let name = match mode {
        Mode::Upload => "upload",
        Mode::Download => "download",
    };
    let mut report = Report::new(
        "files",
        args.concurrency,
        args.files,
        elapsed,
        vec![(name, all)],
    );
    report.bytes = Some(moved);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_have_their_size_and_differ() {
        let a = log_file(1, 0, 5000);
        let b = log_file(1, 1, 5000);
        assert_eq!(a.len(), 5000);
        assert_ne!(a, b);
        assert!(std::str::from_utf8(&a).is_ok());
    }
}
