//! The outbox dispatcher: claims due deliveries, sends each through its channel and records
//! the attempt. Claims are leases, so a dispatcher that dies mid-send leaves its deliveries
//! to be claimed again once the lease ends, with the same idempotency key; several nodes on
//! one PostgreSQL claim disjoint sets (`FOR UPDATE SKIP LOCKED`).

use std::time::Duration;

use opsdesk_core::outbox::AttemptReport;
use opsdesk_core::Desk;
use opsdesk_domain::channel::{ChannelSpec, Notification};
use opsdesk_domain::mail::{Letter, REQUESTER_MAIL};
use opsdesk_store::OutboxItem;
use tokio_util::sync::CancellationToken;

use crate::Channels;

/// How many deliveries one claim takes.
const CLAIM: i64 = 20;
/// How long to wait when nothing was due.
const IDLE: Duration = Duration::from_millis(500);
/// A send that takes longer than this counts as failed (and is retried).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one claimed delivery through the channel `specs` (read once per claim) name;
/// returns what to record.
async fn attempt(
    specs: &Result<Vec<ChannelSpec>, String>,
    channels: &Channels,
    item: &OutboxItem,
) -> AttemptReport {
    if item.channel == REQUESTER_MAIL {
        return letter(channels, item).await;
    }
    let spec = match specs {
        Ok(specs) => match specs.iter().find(|c| c.name == item.channel) {
            Some(spec) => spec,
            None => {
                return AttemptReport {
                    ok: false,
                    retryable: false,
                    detail: format!("there is no channel named {}", item.channel),
                }
            }
        },
        Err(e) => {
            return AttemptReport {
                ok: false,
                retryable: true,
                detail: format!("cannot read channel {}: {e}", item.channel),
            }
        }
    };
    let n: Notification = match serde_json::from_value(item.notification.clone()) {
        Ok(n) => n,
        Err(e) => {
            return AttemptReport {
                ok: false,
                retryable: false,
                detail: format!("unreadable notification: {e}"),
            }
        }
    };
    report(tokio::time::timeout(SEND_TIMEOUT, channels.send(spec, &n, &item.idempotency_key)).await)
}

/// Sends a letter to a ticket's requester.
async fn letter(channels: &Channels, item: &OutboxItem) -> AttemptReport {
    let letter: Letter = match serde_json::from_value(item.notification.clone()) {
        Ok(l) => l,
        Err(e) => {
            return AttemptReport {
                ok: false,
                retryable: false,
                detail: format!("unreadable letter: {e}"),
            }
        }
    };
    report(tokio::time::timeout(SEND_TIMEOUT, channels.send_letter(&letter)).await)
}

fn report(
    sent: Result<Result<crate::Receipt, crate::SendError>, tokio::time::error::Elapsed>,
) -> AttemptReport {
    match sent {
        Ok(Ok(receipt)) => AttemptReport {
            ok: true,
            retryable: false,
            detail: receipt.detail,
        },
        Ok(Err(e)) => AttemptReport {
            ok: false,
            retryable: e.retryable,
            detail: e.message,
        },
        Err(_) => AttemptReport {
            ok: false,
            retryable: true,
            detail: format!("no answer within {} s", SEND_TIMEOUT.as_secs()),
        },
    }
}

/// Claims and sends what is due once; returns how many deliveries were attempted.
pub async fn dispatch_once(desk: &Desk, channels: &Channels) -> opsdesk_core::Result<usize> {
    let items = desk.claim_deliveries(CLAIM).await?;
    let attempted = items.len();
    if items.is_empty() {
        return Ok(0);
    }
    let specs = desk.channel_specs().await.map_err(|e| e.to_string());
    // Channels are independent: one slow or failing channel does not hold up the others.
    let reports =
        futures::future::join_all(items.iter().map(|item| attempt(&specs, channels, item))).await;
    for (item, report) in items.iter().zip(reports) {
        let result = if report.ok { "delivered" } else { "failed" };
        metrics::counter!("opsdesk_notifications_total", "result" => result).increment(1);
        if !report.ok {
            tracing::warn!(
                delivery = item.id,
                channel = %item.channel,
                attempt = item.attempts,
                retryable = report.retryable,
                error = %report.detail,
                "notification not delivered"
            );
        }
        desk.record_delivery(item, report).await?;
    }
    Ok(attempted)
}

/// Runs until `stop` is cancelled.
pub async fn run(desk: Desk, channels: Channels, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let busy = match dispatch_once(&desk, &channels).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::error!(error = %e, "notification dispatch failed");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(IDLE) => {}
        }
    }
}
