//! Ingest: signals from AWS and monitors open, update, resolve and reopen tickets, one ticket
//! per real problem, each delivery taking effect once.

use opsdesk_domain::{Permission, Signal};
use serde::Serialize;

use crate::{Actor, Desk, Error, Result};

/// What one signal did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The stored signal; none for a repeated delivery.
    pub signal_id: Option<i64>,
    pub ticket_id: Option<i64>,
    pub effect: Effect,
}

/// The effect of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// A new ticket.
    Created,
    /// Counted on the open ticket for the same problem.
    Occurrence,
    Acknowledged,
    Resolved,
    Reopened,
    /// Stored, with no ticket change (no rule asked for a ticket, expected during maintenance,
    /// damped while flapping, or nothing open to resolve).
    Recorded,
    /// The same news arrived before; nothing changed.
    Duplicate,
}

impl Desk {
    /// Applies signals in one transaction, in order; returns once committed.
    pub async fn ingest(&self, actor: &Actor, signals: Vec<Signal>) -> Result<Vec<Outcome>> {
        actor.require(Permission::Ingest)?;
        let _ = signals;
        Err(Error::Conflict("ingest is not wired yet".into()))
    }

    /// Where a poller left off, as it stored it.
    pub async fn poller_cursor(&self, name: &str) -> Result<Option<String>> {
        Ok(self.db().poller_cursor(name).await?)
    }

    /// Stores where a poller is, once what it read is committed.
    pub async fn set_poller_cursor(&self, name: &str, cursor: &str) -> Result<()> {
        let (name, cursor) = (name.to_owned(), cursor.to_owned());
        self.change(move |tx, now| {
            Box::pin(async move { Ok(tx.set_poller_cursor(&name, &cursor, now).await?) })
        })
        .await
    }
}
