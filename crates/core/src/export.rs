//! Tickets with their whole history and conversation, for audits and for learning from past
//! work, read page by page so that memory stays the same however many tickets there are.

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::AuditRecord;
use opsdesk_domain::{Comment, Permission, Ticket};
use serde::Serialize;

use crate::{Actor, Desk, Result};

/// Tickets read per page.
pub const EXPORT_PAGE: i64 = 1000;

/// Which tickets to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Opened at or after this instant.
    pub created_from: Option<DateTime<Utc>>,
    /// Opened before this instant.
    pub created_until: Option<DateTime<Utc>>,
    pub workload: Option<String>,
}

/// One ticket as exported: its fields, its conversation and its history.
#[derive(Debug, Clone, Serialize)]
pub struct TicketExport {
    #[serde(flatten)]
    pub ticket: Ticket,
    /// Public replies and internal notes, oldest first.
    pub comments: Vec<Comment>,
    /// Its audit entries, oldest first: who changed what, when, from what to what.
    pub history: Vec<AuditRecord>,
    /// Its files (name, type, size, SHA-256, who added them), oldest first.
    pub attachments: Vec<opsdesk_domain::attachment::Attachment>,
}

impl Desk {
    /// The page of tickets after ticket id `after` (0 for the first page), in id order; an
    /// empty page ends the export. Admins and auditors only: the history holds internal notes.
    pub async fn export_page(
        &self,
        actor: &Actor,
        filter: &ExportFilter,
        after: i64,
    ) -> Result<Vec<TicketExport>> {
        actor.require(Permission::ReadAudit)?;
        let tickets = self
            .db()
            .tickets_after(
                after,
                EXPORT_PAGE,
                filter.created_from,
                filter.created_until,
                filter.workload.as_deref(),
            )
            .await?;
        let ids: Vec<i64> = tickets.iter().map(|t| t.id).collect();
        let comments = self.db().comments_of(&ids).await?;
        let history = self.db().audit_of(&ids).await?;
        let files = self.db().attachments_of(&ids).await?;
        let mut out: Vec<TicketExport> = tickets
            .into_iter()
            .map(|ticket| TicketExport {
                ticket,
                comments: Vec::new(),
                history: Vec::new(),
                attachments: Vec::new(),
            })
            .collect();
        let index =
            |id: i64, out: &[TicketExport]| out.binary_search_by_key(&id, |e| e.ticket.id).ok();
        for c in comments {
            if let Some(i) = index(c.ticket_id, &out) {
                out[i].comments.push(c);
            }
        }
        for f in files {
            if let Some(i) = index(f.ticket_id, &out) {
                out[i].attachments.push(f);
            }
        }
        for entry in history {
            if let Some(i) = entry.ticket_id.and_then(|id| index(id, &out)) {
                out[i].history.push(entry);
            }
        }
        Ok(out)
    }
}
