//! Tickets brought in from another ticketing system or a CSV file, with their history.
//!
//! Each imported ticket is recorded by where it came from (`request_tracker:<connector>`,
//! `csv:<file>`)
//! and its id there, in the same transaction that makes it, so that running an import again
//! changes nothing and an interrupted one goes on where it stopped. Its conversation becomes
//! comments with their original times and authors; the audit trail says, at the time of the
//! import, what was imported from where and who wrote it first. An import sends no mail and
//! no notification, and does not push the ticket to a connector's `create_for`.

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::{AuditEntry, FieldChange};
use opsdesk_domain::channel::truncate;
use opsdesk_domain::validation::COMMENT_MAX;
use opsdesk_domain::{NewTicket, Permission, Status, Ticket, TicketPatch, Validated};
use opsdesk_store::{NewExternalLink, Tx};
use serde_json::{json, Value};

use crate::audit::whole;
use crate::{Actor, Desk, Error, Result};

/// A message of the ticket's history, as its source kept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMessage {
    pub at: DateTime<Utc>,
    /// Who wrote it there (`rt:alice`).
    pub author: String,
    pub public: bool,
    pub body: String,
}

/// The live link an import from a connector's system leaves, so the ticket stays in step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLink {
    pub connector: String,
    pub remote_url: String,
    /// The newest change of the remote ticket the import read.
    pub cursor: i64,
}

/// One ticket to bring in.
#[derive(Debug, Clone)]
pub struct ImportTicket {
    /// `request_tracker:<connector>`, `csv:<file name>`.
    pub source: String,
    /// Its id in the source.
    pub remote_id: String,
    pub ticket: NewTicket,
    /// Where it stands there.
    pub status: Status,
    /// When and by whom it was made there.
    pub created: Option<(DateTime<Utc>, String)>,
    /// When it was resolved there, for one that is resolved or closed.
    pub resolved_at: Option<DateTime<Utc>>,
    pub messages: Vec<ImportedMessage>,
    pub link: Option<ImportLink>,
}

/// What an import did with one ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported(String),
    /// Imported before (or linked by the connector already): left as it is.
    Unchanged(String),
}

/// The statuses a new ticket goes through to reach `to` by opsdesk's workflow.
fn path_to(to: Status) -> Vec<Status> {
    let mut paths: Vec<Vec<Status>> = vec![vec![Status::New]];
    let mut seen = vec![Status::New];
    while !paths.is_empty() {
        let mut next_paths = Vec::new();
        for path in paths {
            let last = *path.last().unwrap_or(&Status::New);
            if last == to {
                return path.into_iter().skip(1).collect();
            }
            for s in last.next() {
                if !seen.contains(s) {
                    seen.push(*s);
                    let mut p = path.clone();
                    p.push(*s);
                    next_paths.push(p);
                }
            }
        }
        paths = next_paths;
    }
    Vec::new()
}

impl Desk {
    /// Brings one ticket in (see the module's words).
    pub async fn import_ticket(&self, actor: &Actor, t: ImportTicket) -> Result<ImportOutcome> {
        actor.require(Permission::WriteTickets)?;
        let mut input = t.ticket.clone();
        input.source = Some(format!(
            "import.{}",
            t.source.split(':').next().unwrap_or("file")
        ));
        let input = input.validate()?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move { import_in(tx, &actor, t, input, now).await })
        })
        .await
    }
}

async fn import_in(
    tx: &mut Tx,
    actor: &Actor,
    t: ImportTicket,
    input: NewTicket,
    now: DateTime<Utc>,
) -> Result<ImportOutcome> {
    if let Some(id) = tx.imported_ticket(&t.source, &t.remote_id).await? {
        return Ok(ImportOutcome::Unchanged(Ticket::key_for(id)));
    }
    if let Some(link) = &t.link {
        if let Some(l) = tx
            .external_link_by_remote(&link.connector, &t.remote_id)
            .await?
        {
            // Linked by the connector already (made by opsdesk, or brought in by import_new).
            tx.record_import(&t.source, &t.remote_id, l.ticket_id, now)
                .await?;
            return Ok(ImportOutcome::Unchanged(Ticket::key_for(l.ticket_id)));
        }
    }
    // Work done elsewhere keeps its times, so that reports put it in the periods it
    // happened in; open work starts its clocks (and SLA) now, as new work here.
    let done = !t.status.is_open();
    let made_at = t
        .created
        .as_ref()
        .map(|(at, _)| (*at).min(now))
        .filter(|_| done);
    let mut ticket = Ticket::open(input, made_at.unwrap_or(now));
    let finished_at = t
        .resolved_at
        .filter(|_| done)
        .or(made_at)
        .map(|at| at.max(ticket.created_at).min(now))
        .unwrap_or(now);
    ticket.id = tx.insert_ticket(&ticket).await?;
    ticket.key = Ticket::key_for(ticket.id);
    let mut changes = ticket.creation_changes();
    let (created_at, created_by) = match &t.created {
        Some((at, by)) => (Some(*at), Some(by.clone())),
        None => (None, None),
    };
    changes.insert(
        "imported_from".into(),
        FieldChange {
            before: Value::Null,
            after: json!({
                "source": t.source,
                "id": t.remote_id,
                "created_at": created_at,
                "created_by": created_by,
            }),
        },
    );
    tx.append_audit(AuditEntry {
        at: now,
        actor: actor.name.clone(),
        action: "ticket.imported".into(),
        ticket_id: Some(ticket.id),
        changes,
    })
    .await?;
    for to in path_to(t.status) {
        let patch = TicketPatch {
            status: Some(to),
            ..TicketPatch::default()
        }
        .validate()?;
        let (next, changes) = ticket.patched(patch, finished_at)?;
        tx.update_ticket(&next, &ticket).await?;
        tx.append_audit(AuditEntry {
            at: now,
            actor: actor.name.clone(),
            action: "ticket.updated".into(),
            ticket_id: Some(ticket.id),
            changes,
        })
        .await?;
        ticket = next;
    }
    let mut last_comment = 0;
    for m in &t.messages {
        if m.body.trim().is_empty() {
            continue;
        }
        let body = truncate(&m.body, COMMENT_MAX);
        let c = tx
            .insert_comment(ticket.id, &body, &m.author, m.public, m.at)
            .await?;
        last_comment = c.id;
        tx.append_audit(AuditEntry {
            at: now,
            actor: actor.name.clone(),
            action: "ticket.comment_imported".into(),
            ticket_id: Some(ticket.id),
            changes: whole(
                "comment",
                Value::Null,
                json!({
                    "id": c.id, "public": c.public, "body": c.body,
                    "written_at": m.at, "written_by": m.author,
                }),
            ),
        })
        .await?;
    }
    if let Some(link) = &t.link {
        let (l, _) = tx
            .insert_external_link(&NewExternalLink {
                connector: &link.connector,
                ticket_id: ticket.id,
                remote: Some((&t.remote_id, &link.remote_url)),
                synced_title: &ticket.title,
                synced_status: ticket.status.as_str(),
                synced_severity: ticket.severity.as_str(),
                remote_cursor: link.cursor,
                sent_comment_id: last_comment,
                created_by: &actor.name,
                at: now,
            })
            .await?;
        crate::connectors::audit_link(
            tx,
            &actor.name,
            &ticket,
            &l,
            "ticket.external_imported",
            now,
        )
        .await?;
    }
    tx.record_import(&t.source, &t.remote_id, ticket.id, now)
        .await?;
    Ok(ImportOutcome::Imported(ticket.key))
}

/// Why one ticket of an import was not brought in, said with where it is in the source.
#[derive(Debug)]
pub struct ImportProblem {
    /// `line 12`, `RT #45`.
    pub at: String,
    pub error: Error,
}

impl std::fmt::Display for ImportProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_other_systems_are_read() {
        assert_eq!(status_word("closed"), Some(Status::Closed));
        assert_eq!(status_word("On Hold"), Some(Status::Pending));
        assert_eq!(status_word("in-progress"), Some(Status::InProgress));
        assert_eq!(status_word("sort of"), None);
        assert_eq!(severity_word("SEV2"), Some(opsdesk_domain::Severity::Sev2));
        assert_eq!(severity_word("High"), Some(opsdesk_domain::Severity::Sev2));
        assert_eq!(severity_word("p5"), Some(opsdesk_domain::Severity::Sev5));
        assert_eq!(severity_word("sort of bad"), None);
        assert!(time_word("2025-03-04").is_some());
        assert!(time_word("2025-03-04 09:15:00").is_some());
        assert!(time_word("04/03/2025").is_none());
        assert!("title=Subject,title=X".parse::<CsvMap>().is_err());
        assert!("description=Body".parse::<CsvMap>().is_err());
    }

    #[test]
    fn every_status_is_reached_by_the_workflow() {
        assert!(path_to(Status::New).is_empty());
        assert_eq!(path_to(Status::Resolved), vec![Status::Resolved]);
        assert_eq!(
            path_to(Status::Closed),
            vec![Status::Resolved, Status::Closed]
        );
        assert_eq!(
            path_to(Status::Pending),
            vec![Status::Acknowledged, Status::Pending]
        );
        for s in Status::ALL {
            let mut at = Status::New;
            for step in path_to(*s) {
                assert!(at.transition_to(step).is_ok(), "{at} -> {step}");
                at = step;
            }
            assert_eq!(at, *s);
        }
    }
}

/// What an import run did.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub imported: usize,
    pub unchanged: usize,
    /// Tickets not brought in, each with why (the run went on past them).
    pub skipped: Vec<ImportProblem>,
}

/// What a run does when one ticket cannot be brought in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop the run there (what was imported before stays).
    Stop,
    /// Report it and go on.
    Skip,
}

impl ImportSummary {
    /// Counts one ticket's outcome, and says it on `progress`; a problem either stops the run
    /// (`Err`) or is kept for the summary.
    pub fn count(
        &mut self,
        at: String,
        outcome: Result<ImportOutcome>,
        on_error: OnError,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> std::result::Result<(), ImportProblem> {
        match outcome {
            Ok(ImportOutcome::Imported(key)) => {
                self.imported += 1;
                progress(&format!("{at}: imported as {key}"));
            }
            Ok(ImportOutcome::Unchanged(key)) => {
                self.unchanged += 1;
                progress(&format!("{at}: imported before as {key}, unchanged"));
            }
            Err(error) => {
                let problem = ImportProblem { at, error };
                if on_error == OnError::Stop {
                    return Err(problem);
                }
                progress(&format!("{problem} (skipped)"));
                self.skipped.push(problem);
            }
        }
        Ok(())
    }
}

impl Desk {
    /// Brings in the tickets `query` finds in the connector's system (RT: TicketSQL), each
    /// with its conversation, linked so the connector keeps it in step. Tickets linked or
    /// imported before are left as they are.
    pub async fn import_from_connector(
        &self,
        actor: &Actor,
        connector: &str,
        query: &str,
        on_error: OnError,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<std::result::Result<ImportSummary, (ImportSummary, ImportProblem)>> {
        actor.require(Permission::WriteTickets)?;
        let remote = self.connector_remote(connector)?;
        let spec = remote.spec().clone();
        let label = spec.kind.label();
        let mut summary = ImportSummary::default();
        let mut page = 1;
        loop {
            let (tickets, more) = match remote.search(query, page).await {
                Ok(found) => found,
                // Said with what was done before it: a run again goes on from there.
                Err(e) if page > 1 => {
                    let problem = ImportProblem {
                        at: format!("{label}'s search, page {page}"),
                        error: Error::Internal(e.to_string()),
                    };
                    return Ok(Err((summary, problem)));
                }
                Err(e) => return Err(Error::Internal(format!("{label}: {e}"))),
            };
            for t in tickets {
                let at = format!("{label} ticket {}", t.id);
                let outcome = self.import_one(actor, &remote, &t).await;
                if let Err(problem) = summary.count(at, outcome, on_error, progress) {
                    return Ok(Err((summary, problem)));
                }
            }
            if !more {
                return Ok(Ok(summary));
            }
            page += 1;
        }
    }

    async fn import_one(
        &self,
        actor: &Actor,
        remote: &std::sync::Arc<dyn crate::connectors::RemoteSystem>,
        t: &crate::connectors::RemoteTicket,
    ) -> Result<ImportOutcome> {
        let spec = remote.spec();
        let source = format!("{}:{}", spec.kind.as_str(), spec.name);
        // Imported before: its history is not read again.
        let id = t.id.clone();
        let src = source.clone();
        let before = self
            .change(move |tx, _| Box::pin(async move { Ok(tx.imported_ticket(&src, &id).await?) }))
            .await?;
        if let Some(ticket) = before {
            return Ok(ImportOutcome::Unchanged(Ticket::key_for(ticket)));
        }
        let label = spec.kind.label();
        let history = remote
            .history(&t.id)
            .await
            .map_err(|e| Error::Internal(format!("{label}: {e}")))?;
        let title = crate::connectors::remote_title(&t.subject);
        let ticket = NewTicket {
            title: if title.trim().is_empty() {
                format!("{label} ticket {}", t.id)
            } else {
                title
            },
            description: truncate(
                &crate::connectors::plain(&history.description),
                opsdesk_domain::validation::DESCRIPTION_MAX,
            ),
            kind: spec.kind_for(&t.category),
            severity: spec.severity(t.priority),
            requester: None,
            assignee: None,
            team: spec.team_for(&t.place),
            workload: None,
            tags: vec![spec.name.clone()],
            source: None,
            dedup_key: None,
        };
        let messages = history
            .messages
            .into_iter()
            .map(|m| ImportedMessage {
                author: format!("{}:{}", spec.name, m.author),
                body: crate::connectors::plain(&m.body),
                ..m
            })
            .collect();
        self.import_ticket(
            actor,
            ImportTicket {
                source,
                remote_id: t.id.clone(),
                ticket,
                status: spec.status_from_remote(&t.status).unwrap_or(Status::New),
                created: history
                    .created_at
                    .map(|at| (at, format!("{}:{}", spec.name, history.created_by))),
                resolved_at: history.status_changed_at,
                messages,
                link: Some(ImportLink {
                    connector: spec.name.clone(),
                    remote_url: t.url.clone(),
                    cursor: history.cursor,
                }),
            },
        )
        .await
    }
}

/// Which CSV column holds each ticket field: `title=Subject,description=Body,...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvMap {
    columns: Vec<(CsvField, String)>,
}

/// The ticket fields a CSV column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvField {
    /// The ticket's id in the source: what makes a second run change nothing (without it,
    /// a digest of the row's mapped values).
    Id,
    Title,
    Description,
    Kind,
    Severity,
    Status,
    Requester,
    Assignee,
    Team,
    Workload,
    Tags,
    /// When it was made there (RFC 3339, `YYYY-MM-DD HH:MM:SS` in UTC, or a date).
    Created,
    /// When it was resolved there (same forms), for a resolved or closed one.
    Resolved,
    CreatedBy,
    /// Its conversation as JSON: `[{"author", "body", "public", "created_at"}]` (what
    /// `opsdesk export tickets --format csv` writes).
    Comments,
}

impl CsvField {
    const ALL: &'static [(&'static str, CsvField)] = &[
        ("id", CsvField::Id),
        ("title", CsvField::Title),
        ("description", CsvField::Description),
        ("kind", CsvField::Kind),
        ("severity", CsvField::Severity),
        ("status", CsvField::Status),
        ("requester", CsvField::Requester),
        ("assignee", CsvField::Assignee),
        ("team", CsvField::Team),
        ("workload", CsvField::Workload),
        ("tags", CsvField::Tags),
        ("created", CsvField::Created),
        ("resolved", CsvField::Resolved),
        ("created_by", CsvField::CreatedBy),
        ("comments", CsvField::Comments),
    ];
}

impl std::str::FromStr for CsvMap {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<CsvMap, String> {
        let mut columns: Vec<(CsvField, String)> = Vec::new();
        for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((field, column)) = pair.split_once('=') else {
                return Err(format!("{pair:?}: write field=Column"));
            };
            let field = field.trim();
            let Some((_, f)) = CsvField::ALL.iter().find(|(name, _)| *name == field) else {
                let names: Vec<&str> = CsvField::ALL.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "{field:?} is not a ticket field; these are: {}",
                    names.join(", ")
                ));
            };
            if columns.iter().any(|(g, _)| g == f) {
                return Err(format!("{field} is mapped twice"));
            }
            columns.push((*f, column.trim().to_owned()));
        }
        if !columns.iter().any(|(f, _)| *f == CsvField::Title) {
            return Err("title=<column> is required".into());
        }
        Ok(CsvMap { columns })
    }
}

/// A severity as other systems write it.
fn severity_word(v: &str) -> Option<opsdesk_domain::Severity> {
    use opsdesk_domain::Severity;
    let v = v.trim().to_ascii_lowercase();
    if let Some(s) = Severity::parse(&v.to_ascii_uppercase()) {
        return Some(s);
    }
    Some(match v.as_str() {
        "1" | "p1" | "critical" | "blocker" | "highest" | "urgent" => Severity::Sev1,
        "2" | "p2" | "high" | "major" => Severity::Sev2,
        "3" | "p3" | "medium" | "normal" | "moderate" => Severity::Sev3,
        "4" | "p4" | "low" | "minor" => Severity::Sev4,
        "5" | "p5" | "lowest" | "trivial" | "planning" => Severity::Sev5,
        _ => return None,
    })
}

/// A status as other systems write it.
fn status_word(v: &str) -> Option<Status> {
    let v = v.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    if let Some(s) = Status::parse(&v) {
        return Some(s);
    }
    Some(match v.as_str() {
        "open" | "in_work" | "work_in_progress" | "assigned" => Status::InProgress,
        "stalled" | "on_hold" | "waiting" | "waiting_for_customer" => Status::Pending,
        "done" | "solved" | "fixed" => Status::Resolved,
        "rejected" | "cancelled" | "canceled" => Status::Closed,
        "to_do" | "todo" => Status::New,
        _ => return None,
    })
}

/// A time as CSV exports write it.
fn time_word(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

fn bad(field: &str, message: String) -> Error {
    Error::Invalid(opsdesk_domain::FieldError::new(field, message))
}

/// The ticket one CSV row stands for.
fn ticket_of_row(
    map: &CsvMap,
    headers: &csv::StringRecord,
    row: &csv::StringRecord,
    source: &str,
) -> Result<ImportTicket> {
    let mut values: Vec<(CsvField, &str)> = Vec::new();
    for (field, column) in &map.columns {
        let i = headers
            .iter()
            .position(|h| h.trim() == column)
            .ok_or_else(|| bad("map", format!("the file has no column {column:?}")))?;
        values.push((*field, row.get(i).unwrap_or_default()));
    }
    let get = |f: CsvField| {
        values
            .iter()
            .find(|(g, _)| *g == f)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let remote_id = match get(CsvField::Id) {
        Some(id) => id.to_owned(),
        None => {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            for (_, v) in &values {
                h.update(v.as_bytes());
                h.update([0x1f]);
            }
            format!("row-{}", &hex::encode(h.finalize())[..24])
        }
    };
    let opt = |f: CsvField| get(f).map(str::to_owned);
    let kind = match get(CsvField::Kind) {
        Some(k) => opsdesk_domain::Kind::parse(&k.to_ascii_lowercase().replace(' ', "_"))
            .ok_or_else(|| {
                bad(
                    "kind",
                    format!("{k:?} is not incident, service_request, question or task"),
                )
            })?,
        None => opsdesk_domain::Kind::Incident,
    };
    let severity = match get(CsvField::Severity) {
        Some(s) => severity_word(s).ok_or_else(|| {
            bad("severity", format!("{s:?} is not a severity (SEV1..SEV5, 1..5, critical, high, medium, low, lowest)"))
        })?,
        None => opsdesk_domain::Severity::Sev3,
    };
    let status = match get(CsvField::Status) {
        Some(s) => status_word(s)
            .ok_or_else(|| bad("status", format!("{s:?} is not a status opsdesk knows")))?,
        None => Status::New,
    };
    let created_at = match get(CsvField::Created) {
        Some(t) => Some(time_word(t).ok_or_else(|| {
            bad(
                "created",
                format!("{t:?} is not a time (RFC 3339, YYYY-MM-DD HH:MM:SS, or YYYY-MM-DD)"),
            )
        })?),
        None => None,
    };
    let resolved_at = match get(CsvField::Resolved) {
        Some(t) => Some(time_word(t).ok_or_else(|| {
            bad(
                "resolved",
                format!("{t:?} is not a time (RFC 3339, YYYY-MM-DD HH:MM:SS, or YYYY-MM-DD)"),
            )
        })?),
        None => None,
    };
    let created_by = opt(CsvField::CreatedBy).unwrap_or_else(|| "(unknown)".into());
    let tags: Vec<String> = get(CsvField::Tags)
        .map(|t| {
            t.split([',', ';', ' '])
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let messages = match get(CsvField::Comments) {
        Some(json) => {
            let list: Vec<Value> = serde_json::from_str(json)
                .map_err(|e| bad("comments", format!("must be a JSON array of comments: {e}")))?;
            list.iter()
                .map(|c| {
                    let at = c["created_at"]
                        .as_str()
                        .or(c["at"].as_str())
                        .and_then(time_word)
                        .or(created_at)
                        .ok_or_else(|| {
                            bad("comments", "a comment has no created_at time".into())
                        })?;
                    Ok(ImportedMessage {
                        at,
                        author: format!("csv:{}", c["author"].as_str().unwrap_or("(unknown)")),
                        public: c["public"].as_bool().unwrap_or(true),
                        body: c["body"].as_str().unwrap_or_default().to_owned(),
                    })
                })
                .collect::<Result<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    Ok(ImportTicket {
        source: source.to_owned(),
        remote_id,
        ticket: NewTicket {
            title: get(CsvField::Title).unwrap_or_default().to_owned(),
            description: opt(CsvField::Description).unwrap_or_default(),
            kind,
            severity,
            requester: opt(CsvField::Requester),
            assignee: opt(CsvField::Assignee),
            team: opt(CsvField::Team),
            workload: opt(CsvField::Workload),
            tags,
            source: None,
            dedup_key: None,
        },
        status,
        created: created_at.map(|at| (at, format!("csv:{created_by}"))),
        resolved_at,
        messages,
        link: None,
    })
}

impl Desk {
    /// Brings in the tickets of a CSV file (a header row, then one ticket per row), its
    /// columns mapped to ticket fields by `map`. `name` names the file in the source
    /// (`csv:<name>`): running the same file again changes nothing.
    pub async fn import_csv(
        &self,
        actor: &Actor,
        file: impl std::io::Read + Send,
        name: &str,
        map: &CsvMap,
        on_error: OnError,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<std::result::Result<ImportSummary, (ImportSummary, ImportProblem)>> {
        actor.require(Permission::WriteTickets)?;
        let source = format!("csv:{name}");
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
        let headers = reader
            .headers()
            .map_err(|e| bad("file", format!("the header row cannot be read: {e}")))?
            .clone();
        // Every mapped column is there before any row is taken.
        for (_, column) in &map.columns {
            if !headers.iter().any(|h| h.trim() == column) {
                let have: Vec<&str> = headers.iter().collect();
                return Err(bad(
                    "map",
                    format!(
                        "the file has no column {column:?}; it has: {}",
                        have.join(", ")
                    ),
                ));
            }
        }
        let mut summary = ImportSummary::default();
        // The id of each row taken in this run, and its line: a second row with the same id
        // is a mistake in the file, not a ticket imported before.
        let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for row in reader.records() {
            let (at, outcome) = match row {
                Ok(row) => {
                    let line = row.position().map_or(0, |p| p.line());
                    let outcome = match ticket_of_row(map, &headers, &row, &source) {
                        Ok(t) => match seen.get(&t.remote_id) {
                            Some(first) => Err(bad(
                                "id",
                                format!("{:?} is the id of line {first} too", t.remote_id),
                            )),
                            None => {
                                seen.insert(t.remote_id.clone(), line);
                                self.import_ticket(actor, t).await
                            }
                        },
                        Err(e) => Err(e),
                    };
                    (format!("line {line}"), outcome)
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    (
                        format!("line {line}"),
                        Err(bad("file", format!("the row cannot be read: {e}"))),
                    )
                }
            };
            if let Err(problem) = summary.count(at, outcome, on_error, progress) {
                return Ok(Err((summary, problem)));
            }
        }
        Ok(Ok(summary))
    }
}
