//! SLA clocks of tickets: the policy that applies, its business-hours calendar, and the time
//! the ticket spent waiting on someone else (`pending`), which does not count.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::AuditRecord;
use opsdesk_domain::sla::{
    check_reading_time, default_policies, measure, policy_calendar, select_policy, Calendar, Pause,
    SlaClock, SlaPolicy, TicketTimes,
};
use opsdesk_domain::{FieldError, Status, Ticket};

use crate::{Actor, Desk, Error, Result};

/// The calendars and policies of `[sla]`; the built-in policies apply where none matches.
#[derive(Debug, Clone, Default)]
pub struct SlaSettings {
    pub calendars: Vec<Calendar>,
    pub policies: Vec<SlaPolicy>,
}

impl SlaSettings {
    /// Checks that every policy's calendar exists and names are unique.
    pub fn new(
        calendars: Vec<Calendar>,
        policies: Vec<SlaPolicy>,
    ) -> Result<SlaSettings, FieldError> {
        opsdesk_domain::sla::check_setup(&calendars, &policies)?;
        Ok(SlaSettings {
            calendars,
            policies,
        })
    }
}

/// When the ticket was `pending`, from its status changes in the audit trail, oldest first.
fn pauses(history: &[AuditRecord]) -> Vec<Pause> {
    let pending = Status::Pending.as_str();
    let mut out: Vec<Pause> = Vec::new();
    for entry in history {
        let Some(change) = entry.changes.get("status") else {
            continue;
        };
        if change.after.as_str() == Some(pending) {
            out.push(Pause {
                from: entry.at,
                until: None,
            });
        } else if change.before.as_str() == Some(pending) {
            if let Some(open) = out.last_mut().filter(|p| p.until.is_none()) {
                open.until = Some(entry.at);
            }
        }
    }
    out
}

/// The ticket's times as its SLA clocks read them: the first response is the
/// acknowledgement (leaving `new`), the resolution is `resolved_at` while resolved or closed.
pub(crate) fn ticket_times(t: &Ticket, history: &[AuditRecord]) -> TicketTimes {
    let resolved = matches!(t.status, Status::Resolved | Status::Closed);
    TicketTimes {
        created_at: t.created_at,
        responded_at: t.acknowledged_at,
        resolved_at: if resolved { t.resolved_at } else { None },
        pauses: pauses(history),
    }
}

impl Desk {
    /// Uses these calendars and policies instead of the built-in policies alone.
    pub fn with_sla_settings(mut self, settings: SlaSettings) -> Desk {
        self.settings.sla = Arc::new(settings);
        self
    }

    /// The policy for a ticket and the calendar it runs on.
    pub(crate) fn sla_policy(&self, t: &Ticket) -> Option<(SlaPolicy, Calendar)> {
        // Work done elsewhere and imported was never under opsdesk's clocks.
        if t.source.starts_with("import.") && !t.status.is_open() {
            return None;
        }
        let defaults = default_policies();
        let policy = select_policy(
            &self.settings.sla.policies,
            t.severity,
            t.kind,
            t.workload.as_deref(),
        )
        .or_else(|| select_policy(&defaults, t.severity, t.kind, t.workload.as_deref()))?
        .clone();
        let calendar = policy_calendar(&policy, &self.settings.sla.calendars)?.clone();
        Some((policy, calendar))
    }

    /// The first-response and resolution clocks of a ticket as of `at` (now when `None`),
    /// which must lie between the ticket's creation and a year after now (422 on `at`).
    pub async fn ticket_sla(
        &self,
        actor: &Actor,
        id: i64,
        at: Option<DateTime<Utc>>,
    ) -> Result<SlaClock> {
        let ticket = self.ticket(actor, id).await?;
        let (policy, calendar) = self
            .sla_policy(&ticket)
            .ok_or_else(|| Error::NotFound(format!("an SLA policy for {}", ticket.key)))?;
        let now = self.now();
        let at = match at {
            Some(at) => check_reading_time(at, ticket.created_at, now)?,
            None => now,
        };
        let history = self.db().audit_for_ticket(id).await?;
        let times = ticket_times(&ticket, &history);
        // Walking a calendar is CPU work: it runs beside the workers that serve requests.
        tokio::task::spawn_blocking(move || measure(&policy, &calendar, &times, at))
            .await
            .map_err(|e| Error::Internal(format!("measuring the SLA clocks failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsdesk_domain::audit::FieldChange;
    use serde_json::json;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339(&format!("2026-11-24T{h:02}:{m:02}:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn status_change(when: DateTime<Utc>, before: &str, after: &str) -> AuditRecord {
        AuditRecord {
            seq: 1,
            at: when,
            actor: "cli".into(),
            action: "ticket.updated".into(),
            ticket_id: Some(1),
            changes: [(
                "status".to_owned(),
                FieldChange {
                    before: json!(before),
                    after: json!(after),
                },
            )]
            .into(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn pending_spans_come_from_status_changes() {
        let history = vec![
            status_change(at(9, 0), "new", "in_progress"),
            status_change(at(10, 0), "in_progress", "pending"),
            status_change(at(11, 30), "pending", "in_progress"),
            status_change(at(12, 0), "in_progress", "pending"),
        ];
        assert_eq!(
            pauses(&history),
            vec![
                Pause {
                    from: at(10, 0),
                    until: Some(at(11, 30))
                },
                Pause {
                    from: at(12, 0),
                    until: None
                },
            ]
        );
    }
}
