//! Signals, their receipts and correlations, workloads, maintenance windows and poller cursors.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use opsdesk_domain::signal::{Correlation, SignalState};
use opsdesk_domain::{Environment, NewWorkload, Workload};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use utoipa::ToSchema;

use crate::{on_read, on_tx, Backend, Db, Result, StoreError, Ts, Tx};

impl Db {
    pub async fn poller_cursor(&self, name: &str) -> Result<Option<String>> {
        on_read!(self, p, _b => {
            Ok(sqlx::query_scalar::<_, String>("SELECT cursor FROM poller_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(p)
                .await?)
        })
    }
}

impl Tx {
    pub async fn set_poller_cursor(
        &mut self,
        name: &str,
        cursor: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO poller_cursors (name, cursor, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(cursor)
            .bind(Ts(at))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }
}

/// A signal as stored, with what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SignalRecord {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub dedup_key: String,
    pub state: String,
    pub kind: String,
    pub category: Option<String>,
    /// The severity the rules gave.
    pub severity: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub service: Option<String>,
    pub resources: Vec<String>,
    pub title: String,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
    pub workload: Option<String>,
    pub classified: bool,
    /// Inside a maintenance window of its workload.
    pub expected: bool,
    pub savings: Option<f64>,
    /// The severity rule that decided.
    pub rule: String,
    /// `created`, `occurrence`, `acknowledged`, `resolved`, `reopened` or `recorded`.
    pub outcome: String,
    pub ticket_id: Option<i64>,
    /// The payload as received.
    #[schema(value_type = Object)]
    pub raw: RawJson,
}

/// A JSON document kept as its text: written and served as it is, never rebuilt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<serde_json::value::RawValue>);

impl RawJson {
    pub fn of(value: &Value) -> RawJson {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => RawJson(raw),
            // A Value always serialises; `null` keeps the type total.
            Err(_) => RawJson(Box::<serde_json::value::RawValue>::default()),
        }
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.get() == other.get()
    }
}

/// A planned change: announced by AWS Health, or entered by a person for a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceWindow {
    pub id: i64,
    /// `aws.health` or `user`.
    pub origin: String,
    pub workload: Option<String>,
    pub title: String,
    pub service: Option<String>,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub resources: Vec<String>,
    pub ticket_id: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A maintenance window about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMaintenanceWindow {
    pub origin: String,
    /// Health windows are kept once per event; user windows have none.
    pub dedup_key: Option<String>,
    pub workload: Option<String>,
    pub title: String,
    pub service: Option<String>,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub resources: Vec<String>,
    pub ticket_id: Option<i64>,
    pub created_by: String,
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| StoreError::Corrupt(format!("unreadable {what} {s:?}")))
}

const WORKLOAD_COLUMNS: &str =
    "id, name, environment, team, accounts, regions, resources, tags, created_at, updated_at";

macro_rules! workload_from_row {
    ($row:expr) => {{
        let row = $row;
        let env: String = row.try_get("environment")?;
        let accounts: String = row.try_get("accounts")?;
        let regions: String = row.try_get("regions")?;
        let resources: String = row.try_get("resources")?;
        let tags: String = row.try_get("tags")?;
        Workload {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            environment: Environment::parse(&env)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown environment {env:?}")))?,
            team: row.try_get("team")?,
            accounts: parse_json("accounts", &accounts)?,
            regions: parse_json("regions", &regions)?,
            resources: parse_json("resources", &resources)?,
            tags: parse_json("tags", &tags)?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
            updated_at: row.try_get::<Ts, _>("updated_at")?.0,
        }
    }};
}

const SIGNAL_COLUMNS: &str = "id, received_at, source, dedup_key, state, kind, category, \
    severity, account, region, service, resources, title, body, occurred_at, workload, \
    classified, expected, savings, rule, outcome, ticket_id, raw";

macro_rules! signal_from_row {
    ($row:expr) => {{
        let row = $row;
        let resources: String = row.try_get("resources")?;
        let raw: String = row.try_get("raw")?;
        SignalRecord {
            id: row.try_get("id")?,
            received_at: row.try_get::<Ts, _>("received_at")?.0,
            source: row.try_get("source")?,
            dedup_key: row.try_get("dedup_key")?,
            state: row.try_get("state")?,
            kind: row.try_get("kind")?,
            category: row.try_get("category")?,
            severity: row.try_get("severity")?,
            account: row.try_get("account")?,
            region: row.try_get("region")?,
            service: row.try_get("service")?,
            resources: parse_json("resources", &resources)?,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            occurred_at: row.try_get::<Ts, _>("occurred_at")?.0,
            workload: row.try_get("workload")?,
            classified: row.try_get("classified")?,
            expected: row.try_get("expected")?,
            savings: row.try_get("savings")?,
            rule: row.try_get("rule")?,
            outcome: row.try_get("outcome")?,
            ticket_id: row.try_get("ticket_id")?,
            raw: RawJson(parse_json("raw", &raw)?),
        }
    }};
}

const WINDOW_COLUMNS: &str = "id, origin, workload, title, service, start_at, end_at, resources, \
    ticket_id, created_by, created_at";

macro_rules! window_from_row {
    ($row:expr) => {{
        let row = $row;
        let resources: String = row.try_get("resources")?;
        MaintenanceWindow {
            id: row.try_get("id")?,
            origin: row.try_get("origin")?,
            workload: row.try_get("workload")?,
            title: row.try_get("title")?,
            service: row.try_get("service")?,
            start: row.try_get::<Ts, _>("start_at")?.0,
            end: row.try_get::<Option<Ts>, _>("end_at")?.map(|t| t.0),
            resources: parse_json("resources", &resources)?,
            ticket_id: row.try_get("ticket_id")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
        }
    }};
}

/// Which signals to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct SignalFilter {
    pub ticket_id: Option<i64>,
    pub source: Option<String>,
    pub dedup_key: Option<String>,
    pub classified: Option<bool>,
    /// Only signals with an id below this one.
    pub before: Option<i64>,
    pub limit: i64,
}

impl Db {
    pub async fn workloads(&self) -> Result<Vec<Workload>> {
        on_read!(self, p, _b => {
            let sql = format!("SELECT {WORKLOAD_COLUMNS} FROM workloads ORDER BY name");
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter().map(|row| Ok(workload_from_row!(row))).collect()
        })
    }

    pub async fn workload(&self, name: &str) -> Result<Option<Workload>> {
        on_read!(self, p, _b => {
            let sql = format!("SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE name = $1");
            match sqlx::query(&sql).bind(name).fetch_optional(p).await? {
                Some(row) => Ok(Some(workload_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Maintenance windows that overlap `from..to` (open-ended windows overlap any later time).
    pub async fn maintenance_windows(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MaintenanceWindow>> {
        on_read!(self, p, _b => {
            let sql = format!(
                "SELECT {WINDOW_COLUMNS} FROM maintenance_windows \
                 WHERE start_at < $2 AND (end_at IS NULL OR end_at > $1) ORDER BY start_at, id"
            );
            let rows = sqlx::query(&sql).bind(Ts(from)).bind(Ts(to)).fetch_all(p).await?;
            rows.iter().map(|row| Ok(window_from_row!(row))).collect()
        })
    }

    pub async fn signals(&self, f: &SignalFilter) -> Result<Vec<SignalRecord>> {
        on_read!(self, p, _b => {
            let mut q = sqlx::QueryBuilder::new(format!("SELECT {SIGNAL_COLUMNS} FROM signals WHERE 1=1"));
            if let Some(t) = f.ticket_id {
                q.push(" AND ticket_id = ").push_bind(t);
            }
            if let Some(s) = &f.source {
                q.push(" AND source = ").push_bind(s.clone());
            }
            if let Some(k) = &f.dedup_key {
                q.push(" AND dedup_key = ").push_bind(k.clone());
            }
            if let Some(c) = f.classified {
                q.push(" AND classified = ").push_bind(c);
            }
            if let Some(b) = f.before {
                q.push(" AND id < ").push_bind(b);
            }
            q.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
            let rows = q.build().persistent(false).fetch_all(p).await?;
            rows.iter().map(|row| Ok(signal_from_row!(row))).collect()
        })
    }

    /// The correlations that point at a ticket.
    pub async fn ticket_correlations(&self, ticket_id: i64) -> Result<Vec<Correlation>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {CORRELATION_COLUMNS} FROM correlations WHERE ticket_id = $1 ORDER BY source, dedup_key"
            ))
            .bind(ticket_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(correlation_from_row).collect()
        })
    }
}

const CORRELATION_COLUMNS: &str = "source, dedup_key, ticket_id, occurrences, first_seen_at, \
    last_seen_at, last_state, state_changes, flapping, pages";

/// A correlation's columns as stored, in `CORRELATION_COLUMNS` order (also the order of the
/// JSON array SQLite builds for a batch of them).
#[derive(Deserialize)]
struct CorrelationParts {
    source: String,
    dedup_key: String,
    ticket_id: i64,
    occurrences: i64,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    last_state: String,
    state_changes: String,
    /// SQLite keeps booleans as 0 and 1.
    #[serde(deserialize_with = "crate::rows::flag")]
    flapping: bool,
    pages: Option<String>,
}

impl CorrelationParts {
    fn into_correlation(self) -> Result<Correlation> {
        Ok(Correlation {
            state_changes: parse_json("state_changes", &self.state_changes)?,
            source: self.source,
            dedup_key: self.dedup_key,
            ticket_id: self.ticket_id,
            occurrences: self.occurrences,
            first_seen_at: self.first_seen_at,
            last_seen_at: self.last_seen_at,
            last_state: SignalState::parse(&self.last_state).ok_or_else(|| {
                StoreError::Corrupt(format!("unreadable last_state {:?}", self.last_state))
            })?,
            flapping: self.flapping,
            pages: match self.pages {
                Some(p) => Some(parse_json("pages", &p)?),
                None => None,
            },
        })
    }
}

fn correlation_from_row<R>(row: &R) -> Result<Correlation>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Ts: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    CorrelationParts {
        source: row.try_get("source")?,
        dedup_key: row.try_get("dedup_key")?,
        ticket_id: row.try_get("ticket_id")?,
        occurrences: row.try_get("occurrences")?,
        first_seen_at: row.try_get::<Ts, _>("first_seen_at")?.0,
        last_seen_at: row.try_get::<Ts, _>("last_seen_at")?.0,
        last_state: row.try_get("last_state")?,
        state_changes: row.try_get("state_changes")?,
        flapping: row.try_get("flapping")?,
        pages: row.try_get("pages")?,
    }
    .into_correlation()
}

/// Signals of a SQLite transaction waiting for its commit, with what is needed to answer
/// questions about them before then.
#[derive(Debug, Default)]
pub(crate) struct DeferredSignals {
    signals: Vec<SignalRecord>,
    receipts: Vec<(String, DateTime<Utc>)>,
    receipt_keys: HashSet<String>,
    correlations: Vec<Correlation>,
    /// Where each problem's latest correlation is in `correlations`.
    latest: HashMap<(String, String), usize>,
    /// The ticket each problem read from the database had. Right as long as correlations are
    /// written only at commit, from `correlations` (a statement that wrote them earlier in the
    /// transaction would have to update this too).
    stored_tickets: HashMap<(String, String), i64>,
    next_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct SignalsMark {
    signals: usize,
    receipts: usize,
    correlations: usize,
    next_id: Option<i64>,
}

impl DeferredSignals {
    pub(crate) fn mark(&self) -> SignalsMark {
        SignalsMark {
            signals: self.signals.len(),
            receipts: self.receipts.len(),
            correlations: self.correlations.len(),
            next_id: self.next_id,
        }
    }

    pub(crate) fn rollback_to(&mut self, m: SignalsMark) {
        self.signals.truncate(m.signals);
        self.receipts.truncate(m.receipts);
        self.correlations.truncate(m.correlations);
        self.next_id = m.next_id;
        self.receipt_keys = self.receipts.iter().map(|(k, _)| k.clone()).collect();
        self.latest = self
            .correlations
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.source.clone(), c.dedup_key.clone()), i))
            .collect();
    }
}

/// Rows a statement may carry, under both databases' limits on bound values.
const ROWS: usize = 400;

fn push_signal_rows<DB>(qb: &mut sqlx::QueryBuilder<'_, DB>, rows: &[SignalRecord])
where
    DB: sqlx::Database,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<f64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Ts: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push(
        "INSERT INTO signals (id, received_at, source, dedup_key, state, kind, category, severity, \
         account, region, service, resources, title, body, occurred_at, workload, classified, \
         expected, savings, rule, outcome, ticket_id, raw) ",
    );
    qb.push_values(rows, |mut b, s| {
        b.push_bind(s.id)
            .push_bind(Ts(s.received_at))
            .push_bind(s.source.clone())
            .push_bind(s.dedup_key.clone())
            .push_bind(s.state.clone())
            .push_bind(s.kind.clone())
            .push_bind(s.category.clone())
            .push_bind(s.severity.clone())
            .push_bind(s.account.clone())
            .push_bind(s.region.clone())
            .push_bind(s.service.clone())
            .push_bind(json_list(&s.resources))
            .push_bind(s.title.clone())
            .push_bind(s.body.clone())
            .push_bind(Ts(s.occurred_at))
            .push_bind(s.workload.clone())
            .push_bind(s.classified)
            .push_bind(s.expected)
            .push_bind(s.savings)
            .push_bind(s.rule.clone())
            .push_bind(s.outcome.clone())
            .push_bind(s.ticket_id)
            .push_bind(s.raw.get().to_owned());
    });
}

fn push_receipt_rows<DB>(qb: &mut sqlx::QueryBuilder<'_, DB>, rows: &[(String, DateTime<Utc>)])
where
    DB: sqlx::Database,
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Ts: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push("INSERT INTO signal_receipts (receipt_key, received_at) ");
    qb.push_values(rows, |mut b, (k, at)| {
        b.push_bind(k.clone()).push_bind(Ts(*at));
    });
    qb.push(" ON CONFLICT (receipt_key) DO NOTHING");
}

/// Upserts correlations; `with_ticket` false leaves the ticket of a stored row as it is, for
/// problems that stay with their ticket (why: docs/storage.md, "Statements shaped for
/// speed").
fn push_correlation_rows<DB>(
    qb: &mut sqlx::QueryBuilder<'_, DB>,
    rows: &[&Correlation],
    with_ticket: bool,
) where
    DB: sqlx::Database,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<String>: sqlx::Encode<'a, DB>,
    for<'a> bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Ts: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push(
        "INSERT INTO correlations (source, dedup_key, ticket_id, occurrences, first_seen_at, \
         last_seen_at, last_state, state_changes, flapping, pages) ",
    );
    qb.push_values(rows, |mut b, k| {
        b.push_bind(k.source.clone())
            .push_bind(k.dedup_key.clone())
            .push_bind(k.ticket_id)
            .push_bind(k.occurrences)
            .push_bind(Ts(k.first_seen_at))
            .push_bind(Ts(k.last_seen_at))
            .push_bind(k.last_state.as_str().to_owned())
            .push_bind(serde_json::to_string(&k.state_changes).unwrap_or_else(|_| "[]".to_owned()))
            .push_bind(k.flapping)
            .push_bind(k.pages.as_ref().and_then(|p| serde_json::to_string(p).ok()));
    });
    qb.push(" ON CONFLICT (source, dedup_key) DO UPDATE SET ");
    if with_ticket {
        qb.push("ticket_id = excluded.ticket_id, ");
    }
    qb.push(
        "occurrences = excluded.occurrences, first_seen_at = excluded.first_seen_at, \
         last_seen_at = excluded.last_seen_at, last_state = excluded.last_state, \
         state_changes = excluded.state_changes, flapping = excluded.flapping, \
         pages = excluded.pages",
    );
}

/// The latest version of each problem's correlation, in first-seen order: one statement may
/// not update a row twice.
fn latest_only(all: &[Correlation]) -> Vec<&Correlation> {
    let mut at: HashMap<(&str, &str), usize> = HashMap::new();
    let mut out: Vec<&Correlation> = Vec::new();
    for c in all {
        match at.get(&(c.source.as_str(), c.dedup_key.as_str())) {
            Some(i) => out[*i] = c,
            None => {
                at.insert((c.source.as_str(), c.dedup_key.as_str()), out.len());
                out.push(c);
            }
        }
    }
    out
}

/// Writes signal rows, receipts and correlations on one backend's connection.
macro_rules! write_rows {
    ($db:ty, $c:expr, $signals:expr, $receipts:expr, $correlations:expr, $keeps_ticket:expr) => {{
        for chunk in $receipts.chunks(ROWS) {
            let mut qb = sqlx::QueryBuilder::<$db>::new("");
            push_receipt_rows(&mut qb, chunk);
            qb.build().persistent(false).execute(&mut *$c).await?;
        }
        let (kept, moved): (Vec<&Correlation>, Vec<&Correlation>) = latest_only($correlations)
            .into_iter()
            .partition($keeps_ticket);
        for (rows, with_ticket) in [(moved, true), (kept, false)] {
            for chunk in rows.chunks(ROWS) {
                let mut qb = sqlx::QueryBuilder::<$db>::new("");
                push_correlation_rows(&mut qb, chunk, with_ticket);
                qb.build().persistent(false).execute(&mut *$c).await?;
            }
        }
        for chunk in $signals.chunks(ROWS) {
            let mut qb = sqlx::QueryBuilder::<$db>::new("");
            push_signal_rows(&mut qb, chunk);
            qb.build().persistent(false).execute(&mut *$c).await?;
        }
        Ok(())
    }};
}

/// Writes a SQLite transaction's signals at its commit.
pub(crate) async fn write_deferred(
    t: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    d: DeferredSignals,
) -> Result<()> {
    let c: &mut sqlx::SqliteConnection = t;
    let stored = &d.stored_tickets;
    write_rows!(
        sqlx::Sqlite,
        c,
        &d.signals,
        &d.receipts,
        &d.correlations,
        |k: &&Correlation| {
            stored.get(&(k.source.clone(), k.dedup_key.clone())) == Some(&k.ticket_id)
        }
    )
}

impl Tx {
    /// Which of these receipts were recorded before (deliveries seen already).
    pub async fn known_receipts(&mut self, keys: &[String]) -> Result<HashSet<String>> {
        let mut known = HashSet::new();
        let mut ask: Vec<&String> = Vec::with_capacity(keys.len());
        for k in keys {
            match self {
                Tx::Sqlite(_, d) if d.signals.receipt_keys.contains(k) => {
                    known.insert(k.clone());
                }
                _ => ask.push(k),
            }
        }
        for chunk in ask.chunks(ROWS) {
            on_tx!(self, c, _b => {
                let mut qb = sqlx::QueryBuilder::new("SELECT receipt_key FROM signal_receipts WHERE receipt_key IN (");
                let mut list = qb.separated(", ");
                for k in chunk {
                    list.push_bind((*k).clone());
                }
                qb.push(")");
                let found: Vec<String> = qb.build_query_scalar().persistent(false).fetch_all(&mut *c).await?;
                known.extend(found);
            });
        }
        Ok(known)
    }

    /// The correlations of these problems. Writes wait for the audit chain head first on
    /// PostgreSQL, so no other writer can change them before this transaction ends.
    pub async fn correlations(
        &mut self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), Correlation>> {
        let mut found = HashMap::new();
        let mut ask: Vec<&(String, String)> = Vec::with_capacity(keys.len());
        for k in keys {
            match self {
                Tx::Sqlite(_, d) => match d.signals.latest.get(k) {
                    Some(i) => {
                        if let Some(c) = d.signals.correlations.get(*i) {
                            found.insert(k.clone(), c.clone());
                        }
                    }
                    None => ask.push(k),
                },
                Tx::Postgres(_) => ask.push(k),
            }
        }
        for chunk in ask.chunks(ROWS) {
            on_tx!(self, c, backend => {
                let mut qb = sqlx::QueryBuilder::new(match backend {
                    Backend::Sqlite => format!(
                        "SELECT json_group_array(json_array({CORRELATION_COLUMNS})) FROM correlations \
                         WHERE (source, dedup_key) IN (VALUES "
                    ),
                    Backend::Postgres => format!(
                        "SELECT {CORRELATION_COLUMNS} FROM correlations WHERE (source, dedup_key) IN (VALUES "
                    ),
                });
                let mut list = qb.separated(", ");
                for (source, key) in chunk {
                    list.push("(");
                    list.push_bind_unseparated(source.clone());
                    list.push_unseparated(", ");
                    list.push_bind_unseparated(key.clone());
                    list.push_unseparated(")");
                }
                qb.push(")");
                match backend {
                    // A folded read (docs/storage.md, "Folded reads (SQLite)"); the tickets
                    // read are kept for the write at commit.
                    Backend::Sqlite => {
                        let all: String = qb.build_query_scalar().persistent(false).fetch_one(&mut *c).await?;
                        let mut stored = Vec::new();
                        for p in crate::rows::decode::<CorrelationParts>("correlations", &all)? {
                            let k = p.into_correlation()?;
                            let key = (k.source.clone(), k.dedup_key.clone());
                            stored.push((key.clone(), k.ticket_id));
                            found.insert(key, k);
                        }
                        if let Tx::Sqlite(_, d) = &mut *self {
                            d.signals.stored_tickets.extend(stored);
                        }
                    }
                    Backend::Postgres => {
                        let rows = qb.build().persistent(false).fetch_all(&mut *c).await?;
                        for row in &rows {
                            let k = correlation_from_row(row)?;
                            found.insert((k.source.clone(), k.dedup_key.clone()), k);
                        }
                    }
                }
            });
        }
        Ok(found)
    }

    /// The id the next stored signal gets; ids are handed out in order by the caller.
    pub async fn next_signal_id(&mut self) -> Result<i64> {
        if let Tx::Sqlite(_, d) = self {
            if let Some(id) = d.signals.next_id {
                return Ok(id);
            }
        }
        let id = on_tx!(self, c, _b => {
            sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) + 1 FROM signals")
                .fetch_one(&mut *c)
                .await?
        });
        Ok(id)
    }

    /// Stores signals (ids from [`Tx::next_signal_id`] on), their receipts and the problems'
    /// new correlations; on SQLite at commit, in a few statements for the whole group.
    pub async fn record_signals(
        &mut self,
        signals: Vec<SignalRecord>,
        receipts: Vec<(String, DateTime<Utc>)>,
        correlations: Vec<Correlation>,
    ) -> Result<()> {
        self.note_write();
        match self {
            Tx::Sqlite(_, d) => {
                let d = &mut d.signals;
                if let Some(last) = signals.iter().map(|s| s.id).max() {
                    d.next_id = Some(last + 1);
                }
                d.signals.extend(signals);
                for (k, at) in receipts {
                    d.receipt_keys.insert(k.clone());
                    d.receipts.push((k, at));
                }
                for c in correlations {
                    d.latest.insert(
                        (c.source.clone(), c.dedup_key.clone()),
                        d.correlations.len(),
                    );
                    d.correlations.push(c);
                }
                Ok(())
            }
            Tx::Postgres(t) => {
                let c: &mut sqlx::PgConnection = t;
                write_rows!(
                    sqlx::Postgres,
                    c,
                    &signals,
                    &receipts,
                    &correlations,
                    |_: &&Correlation| false
                )
            }
        }
    }

    /// Stores a maintenance window; a Health window seen before is updated in place.
    pub async fn save_maintenance_window(
        &mut self,
        w: &NewMaintenanceWindow,
        at: DateTime<Utc>,
    ) -> Result<MaintenanceWindow> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "INSERT INTO maintenance_windows (origin, dedup_key, workload, title, service, start_at, \
                 end_at, resources, ticket_id, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                 ON CONFLICT (dedup_key) DO UPDATE SET workload = excluded.workload, title = excluded.title, \
                 service = excluded.service, start_at = excluded.start_at, end_at = excluded.end_at, \
                 resources = excluded.resources, ticket_id = COALESCE(excluded.ticket_id, maintenance_windows.ticket_id), \
                 updated_at = excluded.updated_at \
                 RETURNING {WINDOW_COLUMNS}"
            ))
            .bind(&w.origin)
            .bind(&w.dedup_key)
            .bind(&w.workload)
            .bind(&w.title)
            .bind(&w.service)
            .bind(Ts(w.start))
            .bind(w.end.map(Ts))
            .bind(json_list(&w.resources))
            .bind(w.ticket_id)
            .bind(&w.created_by)
            .bind(Ts(at))
            .fetch_one(&mut *c)
            .await?;
            Ok(window_from_row!(&row))
        })
    }

    pub async fn delete_maintenance_window(
        &mut self,
        id: i64,
    ) -> Result<Option<MaintenanceWindow>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "DELETE FROM maintenance_windows WHERE id = $1 AND origin = 'user' RETURNING {WINDOW_COLUMNS}"
            ))
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some(row) => {
                    self.note_write();
                    Ok(Some(window_from_row!(&row)))
                }
                None => Ok(None),
            }
        })
    }

    /// Creates or replaces the workload with this name; the previous version, if any.
    pub async fn save_workload(
        &mut self,
        w: &NewWorkload,
        at: DateTime<Utc>,
    ) -> Result<(Workload, Option<Workload>)> {
        self.note_write();
        let tags = serde_json::to_string(&w.tags).unwrap_or_else(|_| "{}".to_owned());
        on_tx!(self, c, backend => {
            let before = sqlx::query(&format!(
                "SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE name = $1{}", backend.for_update()
            ))
            .bind(&w.name)
            .fetch_optional(&mut *c)
            .await?;
            let before = match before {
                Some(row) => Some(workload_from_row!(&row)),
                None => None,
            };
            let row = sqlx::query(&format!(
                "INSERT INTO workloads (name, environment, team, accounts, regions, resources, tags, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (name) DO UPDATE SET environment = excluded.environment, team = excluded.team, \
                 accounts = excluded.accounts, regions = excluded.regions, resources = excluded.resources, \
                 tags = excluded.tags, updated_at = excluded.updated_at RETURNING {WORKLOAD_COLUMNS}"
            ))
            .bind(&w.name)
            .bind(w.environment.as_str())
            .bind(&w.team)
            .bind(json_list(&w.accounts))
            .bind(json_list(&w.regions))
            .bind(json_list(&w.resources))
            .bind(tags)
            .bind(Ts(at))
            .fetch_one(&mut *c)
            .await?;
            Ok((workload_from_row!(&row), before))
        })
    }

    pub async fn delete_workload(&mut self, name: &str) -> Result<Option<Workload>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!("DELETE FROM workloads WHERE name = $1 RETURNING {WORKLOAD_COLUMNS}"))
                .bind(name)
                .fetch_optional(&mut *c)
                .await?;
            match row {
                Some(row) => {
                    self.note_write();
                    Ok(Some(workload_from_row!(&row)))
                }
                None => Ok(None),
            }
        })
    }
}

impl Db {
    /// Deletes up to `limit` signals received before `before` whose ticket is resolved or
    /// closed (or that have none), oldest first; how many went. The audit trail keeps what
    /// each did.
    pub async fn purge_signals(&self, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        self.purge(
            "DELETE FROM signals WHERE id IN (\
               SELECT s.id FROM signals s LEFT JOIN tickets t ON t.id = s.ticket_id \
               WHERE s.received_at < $1 \
                 AND (t.id IS NULL OR t.status IN ('resolved', 'closed')) \
               ORDER BY s.received_at LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Deletes up to `limit` delivery receipts taken before `before`, oldest first; how many
    /// went. A delivery repeated after its receipt is gone counts as a new occurrence.
    pub async fn purge_receipts(&self, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        self.purge(
            "DELETE FROM signal_receipts WHERE receipt_key IN (\
               SELECT receipt_key FROM signal_receipts WHERE received_at < $1 \
               ORDER BY received_at LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Runs a retention DELETE bound to (`before`, `limit`) in a write; how many rows went.
    async fn purge(&self, sql: &'static str, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        self.write(move |tx| {
            Box::pin(async move {
                crate::on_tx!(tx, c, _b => {
                    let done = sqlx::query(sql)
                        .bind(Ts(before))
                        .bind(limit)
                        .execute(&mut *c)
                        .await?;
                    Ok(done.rows_affected())
                })
            })
        })
        .await
    }
}
