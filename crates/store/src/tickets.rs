use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use opsdesk_domain::{Comment, Kind, LinkKind, Severity, Status, Ticket, TicketLink};
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Row};

use crate::db::SearchUpdate;
use crate::{on_read, on_tx, Backend, Db, Result, StoreError, Ts, Tx};

const TICKET_COLUMNS: &str = "t.id, t.title, t.description, t.kind, t.severity, t.status, \
    t.requester, t.assignee, t.team, t.workload, t.tags, t.source, t.dedup_key, t.created_at, \
    t.updated_at, t.acknowledged_at, t.resolved_at, t.closed_at, t.version";

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unknown {what} {value:?}"))
}

/// A ticket's columns as stored, in `TICKET_COLUMNS` order (which is also the order of the
/// JSON array SQLite builds for a batch of them).
#[derive(Deserialize)]
struct TicketParts {
    id: i64,
    title: String,
    description: String,
    kind: String,
    severity: String,
    status: String,
    requester: Option<String>,
    assignee: Option<String>,
    team: Option<String>,
    workload: Option<String>,
    tags: String,
    source: String,
    dedup_key: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    acknowledged_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    version: i64,
}

impl TicketParts {
    fn into_ticket(self) -> Result<Ticket> {
        let p = self;
        Ok(Ticket {
            id: p.id,
            key: Ticket::key_for(p.id),
            title: p.title,
            description: p.description,
            kind: Kind::parse(&p.kind).ok_or_else(|| corrupt("kind", &p.kind))?,
            severity: Severity::parse(&p.severity)
                .ok_or_else(|| corrupt("severity", &p.severity))?,
            status: Status::parse(&p.status).ok_or_else(|| corrupt("status", &p.status))?,
            requester: p.requester,
            assignee: p.assignee,
            team: p.team,
            workload: p.workload,
            tags: serde_json::from_str(&p.tags).map_err(|_| corrupt("tags", &p.tags))?,
            source: p.source,
            dedup_key: p.dedup_key,
            created_at: p.created_at,
            updated_at: p.updated_at,
            acknowledged_at: p.acknowledged_at,
            resolved_at: p.resolved_at,
            closed_at: p.closed_at,
            version: p.version,
        })
    }
}

macro_rules! ticket_from_row {
    ($row:expr) => {{
        let row = $row;
        TicketParts {
            id: row.try_get("id")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            kind: row.try_get("kind")?,
            severity: row.try_get("severity")?,
            status: row.try_get("status")?,
            requester: row.try_get("requester")?,
            assignee: row.try_get("assignee")?,
            team: row.try_get("team")?,
            workload: row.try_get("workload")?,
            tags: row.try_get("tags")?,
            source: row.try_get("source")?,
            dedup_key: row.try_get("dedup_key")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
            updated_at: row.try_get::<Ts, _>("updated_at")?.0,
            acknowledged_at: row
                .try_get::<Option<Ts>, _>("acknowledged_at")?
                .map(|t| t.0),
            resolved_at: row.try_get::<Option<Ts>, _>("resolved_at")?.map(|t| t.0),
            closed_at: row.try_get::<Option<Ts>, _>("closed_at")?.map(|t| t.0),
            version: row.try_get("version")?,
        }
        .into_ticket()?
    }};
}

/// A comment's columns, in the order `comments_of` folds them on SQLite.
#[derive(Deserialize)]
struct CommentParts {
    id: i64,
    ticket_id: i64,
    body: String,
    author: String,
    #[serde(deserialize_with = "crate::rows::flag")]
    public: bool,
    created_at: DateTime<Utc>,
}

impl CommentParts {
    fn into_comment(self) -> Comment {
        Comment {
            id: self.id,
            ticket_id: self.ticket_id,
            body: self.body,
            author: self.author,
            public: self.public,
            created_at: self.created_at,
        }
    }
}

macro_rules! comment_from_row {
    ($row:expr) => {{
        let row = $row;
        Comment {
            id: row.try_get("id")?,
            ticket_id: row.try_get("ticket_id")?,
            body: row.try_get("body")?,
            author: row.try_get("author")?,
            public: row.try_get("public")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
        }
    }};
}

macro_rules! link_from_row {
    ($row:expr) => {{
        let row = $row;
        let kind: String = row.try_get("kind")?;
        TicketLink {
            id: row.try_get("id")?,
            source_id: row.try_get("source_id")?,
            target_id: row.try_get("target_id")?,
            kind: LinkKind::parse(&kind).ok_or_else(|| corrupt("link kind", &kind))?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
        }
    }};
}

fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_owned())
}

impl Tx {
    /// Stores a new ticket (its `id` and `key` are ignored) and returns the id it was given.
    pub async fn insert_ticket(&mut self, t: &Ticket) -> Result<i64> {
        let id = self.insert_ticket_row(t).await?;
        self.queue_search(SearchUpdate::Ticket {
            id,
            title: t.title.clone(),
            description: t.description.clone(),
            new: true,
        });
        Ok(id)
    }

    async fn insert_ticket_row(&mut self, t: &Ticket) -> Result<i64> {
        self.note_write();
        on_tx!(self, c, _b => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO tickets (title, description, kind, severity, status, requester, \
                 assignee, team, workload, tags, source, dedup_key, created_at, updated_at, \
                 acknowledged_at, resolved_at, closed_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                 RETURNING id",
            )
            .bind(&t.title)
            .bind(&t.description)
            .bind(t.kind.as_str())
            .bind(t.severity.as_str())
            .bind(t.status.as_str())
            .bind(&t.requester)
            .bind(&t.assignee)
            .bind(&t.team)
            .bind(&t.workload)
            .bind(tags_json(&t.tags))
            .bind(&t.source)
            .bind(&t.dedup_key)
            .bind(Ts(t.created_at))
            .bind(Ts(t.updated_at))
            .bind(t.acknowledged_at.map(Ts))
            .bind(t.resolved_at.map(Ts))
            .bind(t.closed_at.map(Ts))
            .bind(t.version)
            .fetch_one(&mut *c)
            .await?;
            if !t.tags.is_empty() {
                let mut qb = QueryBuilder::new("INSERT INTO ticket_tags (tag, ticket_id) ");
                qb.push_values(&t.tags, |mut b, tag| {
                    b.push_bind(tag.clone()).push_bind(id);
                });
                qb.build().persistent(false).execute(&mut *c).await?;
            }
            Ok(id)
        })
    }

    /// Reads a ticket and locks it until the transaction ends.
    pub async fn ticket_for_update(&mut self, id: i64) -> Result<Option<Ticket>> {
        on_tx!(self, c, backend => {
            let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = $1{}", backend.for_update());
            match sqlx::query(&sql).bind(id).fetch_optional(&mut *c).await? {
                Some(row) => Ok(Some(ticket_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Several tickets by id, locked for this transaction; missing ids are left out.
    pub async fn tickets_for_update(&mut self, ids: &[i64]) -> Result<Vec<Ticket>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            on_tx!(self, c, backend => {
                let mut qb = QueryBuilder::new(match backend {
                    Backend::Sqlite => format!(
                        "SELECT json_group_array(json_array({TICKET_COLUMNS})) FROM tickets t WHERE t.id IN ("
                    ),
                    Backend::Postgres => format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id IN ("),
                });
                let mut list = qb.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                match backend {
                    // A folded read: see docs/storage.md, "Folded reads (SQLite)".
                    Backend::Sqlite => {
                        qb.push(")");
                        let all: String = qb.build_query_scalar().persistent(false).fetch_one(&mut *c).await?;
                        for p in crate::rows::decode::<TicketParts>("tickets", &all)? {
                            out.push(p.into_ticket()?);
                        }
                    }
                    Backend::Postgres => {
                        qb.push(")").push(backend.for_update());
                        for row in qb.build().persistent(false).fetch_all(&mut *c).await? {
                            out.push(ticket_from_row!(&row));
                        }
                    }
                }
            });
        }
        Ok(out)
    }

    /// Writes the state of many tickets, each given as it is now and as it was read: severity,
    /// status, its timestamps and the version, in one statement per few hundred. For changes
    /// that touch no other field (signals do this); each ticket must still be as read.
    pub async fn update_ticket_states(&mut self, tickets: &[(&Ticket, &Ticket)]) -> Result<()> {
        let backend = self.backend();
        let mut moved = Vec::new();
        let mut touched = Vec::new();
        for (now, before) in tickets {
            let row = (*now, before.version);
            let state_moved = now.status != before.status || now.severity != before.severity;
            match backend {
                // Tickets whose status and severity stay put are written without them: see
                // docs/storage.md, "Statements shaped for speed".
                Backend::Sqlite if !state_moved => touched.push(row),
                Backend::Sqlite => moved.push(row),
                // PostgreSQL compares the values itself.
                Backend::Postgres => moved.push(row),
            }
        }
        self.write_ticket_states(&moved, true).await?;
        self.write_ticket_states(&touched, false).await
    }

    async fn write_ticket_states(&mut self, tickets: &[(&Ticket, i64)], moved: bool) -> Result<()> {
        if tickets.is_empty() {
            return Ok(());
        }
        self.note_write();
        for chunk in tickets.chunks(300) {
            let done = on_tx!(self, c, backend => {
                let (moves, rest, tail) = match backend {
                    Backend::Sqlite => (
                        "severity = v.column2, status = v.column3, ",
                        "updated_at = v.column4, acknowledged_at = v.column5, resolved_at = v.column6, \
                         closed_at = v.column7, version = v.column8 FROM (",
                        ") AS v WHERE tickets.id = v.column1 AND tickets.version = v.column9",
                    ),
                    Backend::Postgres => (
                        "severity = v.severity, status = v.status, ",
                        "updated_at = v.updated_at, acknowledged_at = v.acknowledged_at, \
                         resolved_at = v.resolved_at, closed_at = v.closed_at, version = v.version FROM (",
                        ") AS v (id, severity, status, updated_at, acknowledged_at, resolved_at, closed_at, \
                         version, before_version) WHERE tickets.id = v.id AND tickets.version = v.before_version",
                    ),
                };
                let mut qb = QueryBuilder::new("UPDATE tickets SET ");
                if moved {
                    qb.push(moves);
                }
                qb.push(rest);
                qb.push("VALUES ");
                let mut first = true;
                for (t, before) in chunk {
                    if !first {
                        qb.push(", ");
                    }
                    first = false;
                    qb.push("(");
                    qb.push_bind(t.id);
                    qb.push(", ").push_bind(t.severity.as_str());
                    qb.push(", ").push_bind(t.status.as_str());
                    qb.push(", ").push_bind(Ts(t.updated_at));
                    qb.push(", ").push_bind(t.acknowledged_at.map(Ts));
                    qb.push(", ").push_bind(t.resolved_at.map(Ts));
                    qb.push(", ").push_bind(t.closed_at.map(Ts));
                    qb.push(", ").push_bind(t.version);
                    qb.push(", ").push_bind(*before);
                    qb.push(")");
                }
                qb.push(tail);
                qb.build().persistent(false).execute(&mut *c).await?.rows_affected()
            });
            if done != chunk.len() as u64 {
                return Err(StoreError::Corrupt(format!(
                    "{} of {} tickets changed underneath a locked update",
                    chunk.len() as u64 - done.min(chunk.len() as u64),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }

    pub async fn ticket_exists(&mut self, id: i64) -> Result<bool> {
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM tickets WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *c)
                .await? > 0)
        })
    }

    /// Writes every field of `t`, which was read as `before` in this transaction.
    pub async fn update_ticket(&mut self, t: &Ticket, before: &Ticket) -> Result<()> {
        self.update_ticket_row(t, before).await?;
        if t.title != before.title || t.description != before.description {
            self.queue_search(SearchUpdate::Ticket {
                id: t.id,
                title: t.title.clone(),
                description: t.description.clone(),
                new: false,
            });
        }
        Ok(())
    }

    async fn update_ticket_row(&mut self, t: &Ticket, before: &Ticket) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            let done = sqlx::query(
                "UPDATE tickets SET title = $1, description = $2, kind = $3, severity = $4, \
                 status = $5, requester = $6, assignee = $7, team = $8, workload = $9, tags = $10, \
                 updated_at = $11, acknowledged_at = $12, resolved_at = $13, closed_at = $14, \
                 version = $15 WHERE id = $16 AND version = $17",
            )
            .bind(&t.title)
            .bind(&t.description)
            .bind(t.kind.as_str())
            .bind(t.severity.as_str())
            .bind(t.status.as_str())
            .bind(&t.requester)
            .bind(&t.assignee)
            .bind(&t.team)
            .bind(&t.workload)
            .bind(tags_json(&t.tags))
            .bind(Ts(t.updated_at))
            .bind(t.acknowledged_at.map(Ts))
            .bind(t.resolved_at.map(Ts))
            .bind(t.closed_at.map(Ts))
            .bind(t.version)
            .bind(t.id)
            .bind(before.version)
            .execute(&mut *c)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Corrupt(format!(
                    "ticket {} changed underneath a locked update", t.id
                )));
            }
            // Only the tags that changed, by tag and ticket: see docs/storage.md, "Statements
            // shaped for speed".
            let gone: Vec<&String> = before.tags.iter().filter(|g| !t.tags.contains(g)).collect();
            let added: Vec<&String> = t.tags.iter().filter(|g| !before.tags.contains(g)).collect();
            if !gone.is_empty() {
                let mut qb = QueryBuilder::new("DELETE FROM ticket_tags WHERE tag IN (");
                let mut list = qb.separated(", ");
                for tag in gone {
                    list.push_bind(tag.clone());
                }
                qb.push(") AND ticket_id = ").push_bind(t.id);
                qb.build().persistent(false).execute(&mut *c).await?;
            }
            if !added.is_empty() {
                let mut qb = QueryBuilder::new("INSERT INTO ticket_tags (tag, ticket_id) ");
                qb.push_values(added, |mut b, tag| {
                    b.push_bind(tag.clone()).push_bind(t.id);
                });
                qb.push(" ON CONFLICT (tag, ticket_id) DO NOTHING");
                qb.build().persistent(false).execute(&mut *c).await?;
            }
            Ok(())
        })
    }

    pub async fn insert_comment(
        &mut self,
        ticket_id: i64,
        body: &str,
        author: &str,
        public: bool,
        at: DateTime<Utc>,
    ) -> Result<Comment> {
        let comment = self
            .insert_comment_row(ticket_id, body, author, public, at)
            .await?;
        self.queue_search(SearchUpdate::Comment {
            ticket_id,
            body: body.to_owned(),
        });
        Ok(comment)
    }

    async fn insert_comment_row(
        &mut self,
        ticket_id: i64,
        body: &str,
        author: &str,
        public: bool,
        at: DateTime<Utc>,
    ) -> Result<Comment> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(
                "INSERT INTO comments (ticket_id, body, author, public, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id, ticket_id, body, author, public, created_at",
            )
            .bind(ticket_id)
            .bind(body)
            .bind(author)
            .bind(public)
            .bind(Ts(at))
            .fetch_one(&mut *c)
            .await?;
            Ok(comment_from_row!(&row))
        })
    }

    pub async fn insert_link(
        &mut self,
        source_id: i64,
        target_id: i64,
        kind: LinkKind,
        created_by: &str,
        at: DateTime<Utc>,
    ) -> Result<TicketLink> {
        self.note_write();
        on_tx!(self, c, _b => {
            let exists: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM ticket_links WHERE source_id = $1 AND target_id = $2 AND kind = $3",
            )
            .bind(source_id)
            .bind(target_id)
            .bind(kind.as_str())
            .fetch_one(&mut *c)
            .await?;
            if exists > 0 {
                return Err(StoreError::Unique(format!(
                    "{} already {} {}", Ticket::key_for(source_id), kind, Ticket::key_for(target_id)
                )));
            }
            let row = sqlx::query(
                "INSERT INTO ticket_links (source_id, target_id, kind, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id, source_id, target_id, kind, created_by, created_at",
            )
            .bind(source_id)
            .bind(target_id)
            .bind(kind.as_str())
            .bind(created_by)
            .bind(Ts(at))
            .fetch_one(&mut *c)
            .await?;
            Ok(link_from_row!(&row))
        })
    }

    /// Removes a link that starts or ends at `ticket_id`.
    pub async fn delete_link(
        &mut self,
        ticket_id: i64,
        link_id: i64,
    ) -> Result<Option<TicketLink>> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(
                "DELETE FROM ticket_links WHERE id = $1 AND (source_id = $2 OR target_id = $2) \
                 RETURNING id, source_id, target_id, kind, created_by, created_at",
            )
            .bind(link_id)
            .bind(ticket_id)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some(row) => Ok(Some(link_from_row!(&row))),
                None => Ok(None),
            }
        })
    }
}

/// The orders a ticket list can come in. Ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Newest first.
    #[default]
    CreatedDesc,
    CreatedAsc,
    /// Most recently changed first.
    UpdatedDesc,
    UpdatedAsc,
    /// Most severe first, oldest first within a severity: the order a queue is worked in.
    SeverityAsc,
    SeverityDesc,
}

impl SortKey {
    pub const NAMES: &'static str = "-created, created, -updated, updated, severity, -severity";

    pub fn parse(s: &str) -> Option<SortKey> {
        Some(match s {
            "-created" | "-created_at" => SortKey::CreatedDesc,
            "created" | "created_at" => SortKey::CreatedAsc,
            "-updated" | "-updated_at" => SortKey::UpdatedDesc,
            "updated" | "updated_at" => SortKey::UpdatedAsc,
            "severity" => SortKey::SeverityAsc,
            "-severity" => SortKey::SeverityDesc,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            SortKey::CreatedDesc => "-created",
            SortKey::CreatedAsc => "created",
            SortKey::UpdatedDesc => "-updated",
            SortKey::UpdatedAsc => "updated",
            SortKey::SeverityAsc => "severity",
            SortKey::SeverityDesc => "-severity",
        }
    }

    fn descending(self) -> bool {
        matches!(
            self,
            SortKey::CreatedDesc | SortKey::UpdatedDesc | SortKey::SeverityDesc
        )
    }

    fn column(self) -> Option<&'static str> {
        match self {
            SortKey::CreatedDesc | SortKey::CreatedAsc => None,
            SortKey::UpdatedDesc | SortKey::UpdatedAsc => Some("t.updated_at"),
            SortKey::SeverityAsc | SortKey::SeverityDesc => Some("t.severity"),
        }
    }

    fn value_of(self, t: &Ticket) -> Option<String> {
        match self {
            SortKey::CreatedDesc | SortKey::CreatedAsc => None,
            SortKey::UpdatedDesc | SortKey::UpdatedAsc => {
                Some(opsdesk_domain::audit::format_time(t.updated_at))
            }
            SortKey::SeverityAsc | SortKey::SeverityDesc => Some(t.severity.as_str().to_owned()),
        }
    }
}

/// Where the next page starts: after the last ticket of the previous page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    sort: String,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(rename = "i")]
    id: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a cursor given back by a client, for the sort it is used with.
    pub fn decode(s: &str, sort: SortKey) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        let c: Cursor = serde_json::from_slice(&bytes).ok()?;
        if c.sort != sort.name() || c.value.is_some() != sort.column().is_some() {
            return None;
        }
        match sort {
            SortKey::UpdatedAsc | SortKey::UpdatedDesc => {
                DateTime::parse_from_rfc3339(c.value.as_deref()?).ok()?;
            }
            SortKey::SeverityAsc | SortKey::SeverityDesc => {
                Severity::parse(c.value.as_deref()?)?;
            }
            _ => {}
        }
        Some(c)
    }
}

/// What to list. Empty vectors and None mean "any".
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub statuses: Vec<Status>,
    pub severities: Vec<Severity>,
    pub kinds: Vec<Kind>,
    pub source: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub requester: Option<String>,
    pub workload: Option<String>,
    pub tag: Option<String>,
    pub dedup_key: Option<String>,
    /// Full-text words over title, description and comments; all must match.
    pub q: Option<String>,
    /// Leave comments out of the search (for people who may not read every comment).
    pub q_without_comments: bool,
    pub sort: SortKey,
    pub cursor: Option<Cursor>,
    pub limit: u32,
}

/// One page of a ticket list.
#[derive(Debug, Clone)]
pub struct TicketPage {
    pub items: Vec<Ticket>,
    pub next_cursor: Option<String>,
}

/// The words of a search, each with whether it ends in `*` (a prefix search). Only characters
/// that can be part of a word are kept, so no input can inject search operators.
fn search_words(q: &str) -> Vec<(String, bool)> {
    q.split_whitespace()
        .filter_map(|w| {
            let word: String = w
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':' | '/'))
                .collect();
            (!word.is_empty()).then(|| (word, w.ends_with('*')))
        })
        .collect()
}

/// An FTS5 query (SQLite) that matches every word.
fn fts5_query(q: &str) -> Option<String> {
    quoted_words(q, '"', "*", " ")
}

/// A `to_tsquery` text (PostgreSQL) that matches every word.
fn pg_tsquery(q: &str) -> Option<String> {
    quoted_words(q, '\'', ":*", " & ")
}

/// Every word quoted, with the prefix marker after prefix words, joined by `and`.
fn quoted_words(q: &str, quote: char, prefix_mark: &str, and: &str) -> Option<String> {
    let terms: Vec<String> = search_words(q)
        .into_iter()
        .map(|(w, prefix)| {
            let mark = if prefix { prefix_mark } else { "" };
            format!("{quote}{w}{quote}{mark}")
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(and))
}

/// ` AND column IN (values...)`, or nothing when there are no values.
pub(crate) fn push_in<'a, DB, T>(
    qb: &mut QueryBuilder<'a, DB>,
    column: &str,
    values: impl IntoIterator<Item = T>,
) where
    DB: sqlx::Database,
    T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut values = values.into_iter().peekable();
    if values.peek().is_none() {
        return;
    }
    qb.push(format!(" AND {column} IN ("));
    let mut sep = qb.separated(", ");
    for v in values {
        sep.push_bind(v);
    }
    sep.push_unseparated(")");
}

/// The filters of a ticket list other than full-text search, as ` AND ...` conditions.
macro_rules! push_filters {
    ($qb:expr, $f:expr, $tag_driven:expr) => {{
        let qb = $qb;
        let f = $f;
        push_in(qb, "t.status", f.statuses.iter().map(|s| s.as_str()));
        push_in(qb, "t.severity", f.severities.iter().map(|s| s.as_str()));
        push_in(qb, "t.kind", f.kinds.iter().map(|s| s.as_str()));
        for (column, value) in [
            ("t.source", &f.source),
            ("t.team", &f.team),
            ("t.assignee", &f.assignee),
            ("t.requester", &f.requester),
            ("t.workload", &f.workload),
            ("t.dedup_key", &f.dedup_key),
        ] {
            if let Some(v) = value {
                qb.push(format!(" AND {column} = ")).push_bind(v.clone());
            }
        }
        if let Some(tag) = f.tag.as_ref().filter(|_| !$tag_driven) {
            qb.push(
                " AND EXISTS (SELECT 1 FROM ticket_tags g WHERE g.ticket_id = t.id AND g.tag = ",
            )
            .push_bind(tag.trim().to_lowercase())
            .push(")");
        }
    }};
}

/// A ticket list's cursor condition, order and limit (one more than the page, to tell
/// whether another page follows).
macro_rules! push_page {
    ($qb:expr, $f:expr, $id_col:expr) => {{
        let qb = $qb;
        let f = $f;
        let sort = f.sort;
        let cmp = if sort.descending() { "<" } else { ">" };
        if let Some(c) = &f.cursor {
            match (sort.column(), &c.value) {
                (Some(col), Some(v)) => {
                    qb.push(format!(" AND ({col}, {}) {cmp} (", $id_col));
                    if col == "t.updated_at" {
                        let at = DateTime::parse_from_rfc3339(v)
                            .map_err(|_| StoreError::Corrupt("cursor".into()))?
                            .with_timezone(&Utc);
                        qb.push_bind(Ts(at));
                    } else {
                        qb.push_bind(v.clone());
                    }
                    qb.push(", ").push_bind(c.id).push(")");
                }
                _ => {
                    qb.push(format!(" AND {} {cmp} ", $id_col)).push_bind(c.id);
                }
            }
        }
        let dir = if sort.descending() { "DESC" } else { "ASC" };
        match sort.column() {
            Some(col) => qb.push(format!(" ORDER BY {col} {dir}, {} {dir}", $id_col)),
            None => qb.push(format!(" ORDER BY {} {dir}", $id_col)),
        };
        qb.push(" LIMIT ").push_bind(i64::from(f.limit) + 1);
    }};
}

impl Db {
    /// Up to `limit` tickets with ids above `after`, in id order, opened in
    /// `[created_from, created_until)` and of `workload` where given: one page of an export.
    pub async fn tickets_after(
        &self,
        after: i64,
        limit: i64,
        created_from: Option<DateTime<Utc>>,
        created_until: Option<DateTime<Utc>>,
        workload: Option<&str>,
    ) -> Result<Vec<Ticket>> {
        on_read!(self, p, backend => {
            let mut qb = QueryBuilder::new(match backend {
                Backend::Sqlite => format!(
                    "SELECT json_group_array(json_array({TICKET_COLUMNS}) ORDER BY t.id) \
                     FROM (SELECT * FROM tickets t WHERE t.id > "
                ),
                Backend::Postgres => format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id > "),
            });
            qb.push_bind(after);
            if let Some(from) = created_from {
                qb.push(" AND t.created_at >= ").push_bind(Ts(from));
            }
            if let Some(until) = created_until {
                qb.push(" AND t.created_at < ").push_bind(Ts(until));
            }
            if let Some(w) = workload {
                qb.push(" AND t.workload = ").push_bind(w.to_owned());
            }
            qb.push(" ORDER BY t.id LIMIT ").push_bind(limit);
            match backend {
                // A folded read: see docs/storage.md, "Folded reads (SQLite)".
                Backend::Sqlite => {
                    qb.push(") t");
                    let all: String = qb.build_query_scalar().persistent(false).fetch_one(p).await?;
                    crate::rows::decode::<TicketParts>("tickets", &all)?
                        .into_iter()
                        .map(TicketParts::into_ticket)
                        .collect()
                }
                Backend::Postgres => {
                    let rows = qb.build().persistent(false).fetch_all(p).await?;
                    rows.iter().map(|row| Ok(ticket_from_row!(row))).collect()
                }
            }
        })
    }

    /// The comments of these tickets, oldest first.
    pub async fn comments_of(&self, ticket_ids: &[i64]) -> Result<Vec<Comment>> {
        if ticket_ids.is_empty() {
            return Ok(Vec::new());
        }
        on_read!(self, p, backend => {
            let mut qb = QueryBuilder::new(match backend {
                Backend::Sqlite => {
                    "SELECT json_group_array(json_array(id, ticket_id, body, author, public, created_at) ORDER BY id) \
                     FROM comments WHERE ticket_id IN ("
                }
                Backend::Postgres => {
                    "SELECT id, ticket_id, body, author, public, created_at FROM comments WHERE ticket_id IN ("
                }
            });
            let mut list = qb.separated(", ");
            for id in ticket_ids {
                list.push_bind(*id);
            }
            match backend {
                // A folded read: see docs/storage.md, "Folded reads (SQLite)".
                Backend::Sqlite => {
                    qb.push(")");
                    let all: String = qb.build_query_scalar().persistent(false).fetch_one(p).await?;
                    Ok(crate::rows::decode::<CommentParts>("comments", &all)?
                        .into_iter()
                        .map(CommentParts::into_comment)
                        .collect())
                }
                Backend::Postgres => {
                    qb.push(") ORDER BY id");
                    let rows = qb.build().persistent(false).fetch_all(p).await?;
                    rows.iter().map(|row| Ok(comment_from_row!(row))).collect()
                }
            }
        })
    }

    /// The tickets with these ids that exist, in no particular order.
    pub async fn get_tickets(&self, ids: &[i64]) -> Result<Vec<Ticket>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_read!(self, p, _b => {
            let mut qb = QueryBuilder::new(format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id IN ("));
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            qb.push(")");
            let rows = qb.build().persistent(false).fetch_all(p).await?;
            rows.iter().map(|row| Ok(ticket_from_row!(row))).collect()
        })
    }

    pub async fn get_ticket(&self, id: i64) -> Result<Option<Ticket>> {
        let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = $1");
        on_read!(self, p, _b => {
            match sqlx::query(&sql).bind(id).fetch_optional(p).await? {
                Some(row) => Ok(Some(ticket_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn list_tickets(&self, f: &TicketFilter) -> Result<TicketPage> {
        on_read!(self, p, backend => {
            // The FTS5 query a search on SQLite starts from; PostgreSQL searches in a condition.
            let fts = match backend {
                Backend::Sqlite => f.q.as_deref().and_then(fts5_query).map(|m| {
                    if f.q_without_comments {
                        format!("{{title description}} : ({m})")
                    } else {
                        m
                    }
                }),
                Backend::Postgres => None,
            };
            let mut qb = QueryBuilder::new(format!("SELECT {TICKET_COLUMNS} FROM "));
            // Start from the full-text index for a search on SQLite, from the tag index for a
            // tag alone: see docs/storage.md, "Statements shaped for speed".
            let (id_col, tag_driven) = match (&fts, &f.tag) {
                (Some(m), _) => {
                    qb.push("ticket_search JOIN tickets t ON t.id = ticket_search.rowid WHERE ticket_search MATCH ")
                        .push_bind(m.clone());
                    ("ticket_search.rowid", false)
                }
                (None, Some(tag))
                    if f.assignee.is_none()
                        && f.team.is_none()
                        && f.requester.is_none()
                        && f.workload.is_none()
                        && f.dedup_key.is_none() =>
                {
                    qb.push("ticket_tags g JOIN tickets t ON t.id = g.ticket_id WHERE g.tag = ")
                        .push_bind(tag.trim().to_lowercase());
                    ("g.ticket_id", true)
                }
                (None, _) => {
                    qb.push("tickets t WHERE 1 = 1");
                    ("t.id", false)
                }
            };
            push_filters!(&mut qb, f, tag_driven);
            match backend {
                // Searched through the FTS5 index the query starts from.
                Backend::Sqlite => {}
                Backend::Postgres => {
                    if let Some(q) = f.q.as_deref().and_then(pg_tsquery) {
                        if f.q_without_comments {
                            qb.push(" AND t.search @@ to_tsquery('english', ")
                                .push_bind(q)
                                .push(")");
                        } else {
                            qb.push(" AND (t.search @@ to_tsquery('english', ")
                                .push_bind(q.clone())
                                .push(") OR t.id IN (SELECT c.ticket_id FROM comments c WHERE c.search @@ to_tsquery('english', ")
                                .push_bind(q)
                                .push(")))");
                        }
                    }
                }
            }
            push_page!(&mut qb, f, id_col);
            let rows = qb.build().persistent(false).fetch_all(p).await?;
            let mut items = rows
                .iter()
                .map(|row| Ok(ticket_from_row!(row)))
                .collect::<Result<Vec<_>>>()?;
            let next_cursor = if items.len() > f.limit as usize {
                items.truncate(f.limit as usize);
                items.last().map(|t| {
                    Cursor { sort: f.sort.name().to_owned(), value: f.sort.value_of(t), id: t.id }.encode()
                })
            } else {
                None
            };
            Ok(TicketPage { items, next_cursor })
        })
    }

    pub async fn comments(&self, ticket_id: i64) -> Result<Vec<Comment>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT id, ticket_id, body, author, public, created_at FROM comments \
                 WHERE ticket_id = $1 ORDER BY id",
            )
            .bind(ticket_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(comment_from_row!(row))).collect()
        })
    }

    /// Links that start or end at the ticket.
    pub async fn links(&self, ticket_id: i64) -> Result<Vec<TicketLink>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT id, source_id, target_id, kind, created_by, created_at FROM ticket_links \
                 WHERE source_id = $1 OR target_id = $1 ORDER BY id",
            )
            .bind(ticket_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(link_from_row!(row))).collect()
        })
    }

    /// How many tickets are in each status.
    pub async fn count_by_status(&self) -> Result<Vec<(Status, i64)>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM tickets GROUP BY status")
                .fetch_all(p)
                .await?;
            let mut out = Vec::new();
            for row in &rows {
                let status: String = row.try_get("status")?;
                let n: i64 = row.try_get("n")?;
                out.push((Status::parse(&status).ok_or_else(|| corrupt("status", &status))?, n));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts5_query_quotes_every_word() {
        assert_eq!(
            fts5_query("disk full").as_deref(),
            Some("\"disk\" \"full\"")
        );
        assert_eq!(
            fts5_query("dat* \"x\" OR").as_deref(),
            Some("\"dat\"* \"x\" \"OR\"")
        );
        assert_eq!(fts5_query("  \" ( ) ").as_deref(), None);
    }

    #[test]
    fn pg_tsquery_quotes_every_word() {
        assert_eq!(
            pg_tsquery("it's dat* & x").as_deref(),
            Some("'its' & 'dat':* & 'x'")
        );
        assert_eq!(pg_tsquery("' & |").as_deref(), None);
    }

    #[test]
    fn cursor_round_trips_for_its_sort_only() {
        let c = Cursor {
            sort: "severity".into(),
            value: Some("SEV2".into()),
            id: 9,
        };
        let s = c.encode();
        assert_eq!(Cursor::decode(&s, SortKey::SeverityAsc), Some(c));
        assert_eq!(Cursor::decode(&s, SortKey::CreatedDesc), None);
        assert_eq!(Cursor::decode("not base64!", SortKey::CreatedDesc), None);
    }
}
