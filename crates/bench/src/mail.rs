//! `mail`: requests by email, end to end. Messages are appended to an IMAP mailbox that the
//! server reads (`[[email.inboxes]]` with `move_to`), each from its own sender; the run ends
//! when the server has moved every one of them out of the folder. The figure is messages
//! taken per second, from the first append to the last message moved.

use std::time::{Duration, Instant};

use clap::Args;

use crate::run::{workers, Budget};
use crate::stats::{Report, Samples};
use crate::target::Target;

#[derive(Args)]
pub struct MailArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 2000)]
    pub messages: u64,
    /// IMAP connections appending at the same time.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The IMAP server the opsdesk inbox reads (plain IMAP on this machine).
    #[arg(long, default_value = "127.0.0.1")]
    pub imap_host: String,
    #[arg(long, default_value_t = 1143)]
    pub imap_port: u16,
    #[arg(long, default_value = "support")]
    pub imap_user: String,
    #[arg(long, default_value = "secret", hide_default_value = true)]
    pub imap_password: String,
    /// The inbox's folder.
    #[arg(long, default_value = "INBOX")]
    pub folder: String,
}

type Session = async_imap::Session<tokio::net::TcpStream>;

async fn session(args: &MailArgs) -> Result<Session, String> {
    let host = args.imap_host.as_str();
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| format!("--imap-host {host:?} must be an IP address"))?;
    if !ip.is_loopback() {
        return Err("--imap-host must be a loopback address".into());
    }
    let tcp = tokio::net::TcpStream::connect((ip, args.imap_port))
        .await
        .map_err(|e| format!("IMAP {host}:{}: {e}", args.imap_port))?;
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the IMAP server closed the connection")?;
    client
        .login(&args.imap_user, &args.imap_password)
        .await
        .map_err(|(e, _)| format!("IMAP login: {e}"))
}

/// A new request from sender `n` of run `seed`.
fn message(seed: u64, n: u64) -> String {
    format!(
        "From: Person {n} <person{n}.{seed}@bench.example.com>\r\n\
         To: support@desk.example.com\r\n\
         Subject: Printer {n} on floor {} is jammed\r\n\
         Message-ID: <bench-{seed}-{n}@bench.example.com>\r\n\
         Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         The printer shows error E{n} and will not print.\r\n\r\n-- \r\nPerson {n}\r\n",
        n % 12
    )
}

/// The id of the newest message in the mail log, 0 when there is none.
async fn newest(target: &Target) -> anyhow::Result<i64> {
    let reply = target
        .get(
            target.url("/api/v1/mail")?,
            &[("direction", "in"), ("limit", "1")],
        )
        .await;
    let body = reply
        .body
        .map_err(|e| anyhow::anyhow!("GET /api/v1/mail: {e}"))?;
    let log: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(log[0]["id"].as_i64().unwrap_or(0))
}

pub async fn run(
    target: &Target,
    args: &MailArgs,
    seed: u64,
    limit: Duration,
) -> anyhow::Result<Report> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let before = newest(target).await?;
    let budget = Budget::new(args.messages, limit);
    let started = Instant::now();
    let args_ref = std::sync::Arc::new(MailArgs {
        imap_host: args.imap_host.clone(),
        imap_user: args.imap_user.clone(),
        imap_password: args.imap_password.clone(),
        folder: args.folder.clone(),
        ..*args
    });
    let (results, _) = workers(args.concurrency, |_| {
        let budget = budget.clone();
        let args = args_ref.clone();
        async move {
            let mut samples = Samples::default();
            let mut imap = match session(&args).await {
                Ok(s) => s,
                Err(e) => {
                    samples.failed(e);
                    return samples;
                }
            };
            while let Some(n) = budget.take() {
                let sent = Instant::now();
                match imap
                    .append(&args.folder, None, None, message(seed, n).as_bytes())
                    .await
                {
                    Ok(()) => samples.ok(sent.elapsed()),
                    Err(e) => samples.failed(format!("APPEND: {e}")),
                }
            }
            let _ = imap.logout().await;
            samples
        }
    })
    .await?;
    let appended = Samples::merged(results);
    // The inbox moves every message it took out of the folder (`move_to`): the run is over
    // when the folder is empty.
    let deadline = started + limit;
    let mut watcher = session(&args_ref)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut left = u64::MAX;
    while left > 0 && Instant::now() < deadline {
        left = u64::from(watcher.examine(&args_ref.folder).await?.exists);
        // Once a second: a mailbox looked at often slows the server's own session (a maildir
        // is locked while it is looked at).
        if left > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let elapsed = started.elapsed();
    let _ = watcher.logout().await;
    let sent = appended.ok_count();
    let taken = sent.saturating_sub(left.min(sent));
    // Each one is in the mail log, as a request or with the reason it was not.
    let logged = newest(target).await? - before;
    let mut report = Report::new(
        "mail",
        args.concurrency,
        args.messages,
        elapsed,
        vec![("append", appended)],
    );
    report.tickets = Some(taken);
    if taken < args.messages {
        report.stopped_early = true;
        report.first_errors.push(format!(
            "{taken} of {sent} messages were taken before the time limit"
        ));
    }
    if logged < i64::try_from(taken).unwrap_or(i64::MAX) {
        report.first_errors.push(format!(
            "the mail log grew by {logged}, fewer than the {taken} messages taken"
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_has_its_own_id_and_sender() {
        let a = message(1, 1);
        let b = message(1, 2);
        assert!(a.contains("<bench-1-1@bench.example.com>"));
        assert!(b.contains("person2.1@bench.example.com"));
        assert_ne!(a, b);
    }
}
