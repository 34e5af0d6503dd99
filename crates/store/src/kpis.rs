//! What KPIs read (grouped facts about tickets, signals, AWS cases and maintenance) and what
//! they keep (their definitions, latest values and series).

use chrono::{DateTime, Utc};
use opsdesk_domain::kpi::{Dimension, KpiFilter, Over, TicketTime};
use opsdesk_domain::signal::TRUSTED_ADVISOR;
use serde::Serialize;
use sqlx::{QueryBuilder, Row};
use utoipa::ToSchema;

use crate::tickets::push_in;
use crate::{on_read, on_tx, Db, Result, Ts, Tx};

const OPEN: &str = "('new', 'acknowledged', 'in_progress', 'pending')";

/// Tickets of one (team, workload, severity, source, kind, age) group and what happened to
/// them in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFacts {
    pub team: Option<String>,
    pub workload: Option<String>,
    pub severity: String,
    pub source: String,
    pub kind: String,
    /// The age bucket of the group's open tickets; empty for tickets no longer open.
    pub age: Option<String>,
    /// Open now.
    pub open: i64,
    /// Created in the window.
    pub created: i64,
    /// First responses in the window, and their business seconds.
    pub responded: i64,
    pub response_seconds: i64,
    /// Resolved in the window (and still resolved or closed), and their business seconds.
    pub resolved: i64,
    pub resolution_seconds: i64,
    /// Of those resolved, how many had been reopened.
    pub reopened: i64,
    /// First-response clocks met (at the response) and missed (at the due time) in the window.
    pub response_met: i64,
    pub response_missed: i64,
    /// Resolution clocks met and missed in the window.
    pub resolution_met: i64,
    pub resolution_missed: i64,
    /// Of those resolved, the seconds spent in `new`, `acknowledged`, `in_progress` and
    /// `pending`.
    pub status_seconds: [i64; 4],
}

/// An AWS Support case as the KPIs see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFact {
    pub account_id: String,
    /// The severity of the ticket behind it.
    pub ticket_severity: String,
    /// The case severity granted, when the plan allowed one.
    pub severity: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub first_reply_at: Option<DateTime<Utc>>,
}

/// A Trusted Advisor item flagged now.
#[derive(Debug, Clone, PartialEq)]
pub struct FlaggedItem {
    pub category: Option<String>,
    /// `ERROR` or `WARN`.
    pub status: String,
    pub savings: Option<f64>,
}

/// A KPI's latest value for one scope.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KpiStateRecord {
    pub name: String,
    /// `""` overall, else `dimension=value`.
    pub scope: String,
    pub value: Option<f64>,
    pub status: String,
    /// Since when the status holds.
    pub since: DateTime<Utc>,
    pub evaluated_at: DateTime<Utc>,
    /// When the last point of its series was stored.
    pub point_at: DateTime<Utc>,
}

/// One point of a KPI's series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KpiPoint {
    pub name: String,
    pub scope: String,
    pub at: DateTime<Utc>,
    pub value: Option<f64>,
    pub status: String,
}

/// A custom KPI's question to the database: how many tickets or signals matching `filter`
/// fell in `[from, to)`, grouped by `dims`.
#[derive(Debug, Clone, Copy)]
pub struct KpiQuery<'a> {
    pub over: Over,
    pub filter: &'a KpiFilter,
    /// For tickets, the timestamp that must fall in the window; signals use `received_at`.
    pub window_on: TicketTime,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub dims: &'a [Dimension],
}

/// A KPI definition kept in the database, as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiDefinitionRecord {
    pub name: String,
    pub spec: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn ticket_column(d: Dimension) -> Option<&'static str> {
    Some(match d {
        Dimension::Team => "t.team",
        Dimension::Workload => "t.workload",
        Dimension::Severity => "t.severity",
        Dimension::Source => "t.source",
        Dimension::Kind => "t.kind",
        _ => return None,
    })
}

fn signal_column(d: Dimension) -> Option<&'static str> {
    Some(match d {
        Dimension::Workload => "s.workload",
        Dimension::Severity => "s.severity",
        Dimension::Source => "s.source",
        Dimension::Kind => "s.kind",
        Dimension::Category => "s.category",
        Dimension::Account => "s.account",
        _ => return None,
    })
}

fn time_column(t: TicketTime) -> &'static str {
    match t {
        TicketTime::CreatedAt => "t.created_at",
        TicketTime::AcknowledgedAt => "t.acknowledged_at",
        TicketTime::ResolvedAt => "t.resolved_at",
        TicketTime::ClosedAt => "t.closed_at",
        TicketTime::UpdatedAt => "t.updated_at",
    }
}

/// `FROM ... WHERE ...` of a custom KPI query, and the columns its groups are selected as.
fn push_from<'a, DB: sqlx::Database>(qb: &mut QueryBuilder<'a, DB>, q: &KpiQuery<'_>)
where
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Ts: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let f = q.filter;
    let strs = |v: &[String]| v.to_vec();
    match q.over {
        Over::Tickets => {
            let at = time_column(q.window_on);
            qb.push(format!(" FROM tickets t WHERE {at} >= "))
                .push_bind(Ts(q.from))
                .push(format!(" AND {at} < "))
                .push_bind(Ts(q.to));
            push_in(
                qb,
                "t.severity",
                f.severities.iter().map(|s| s.as_str().to_owned()),
            );
            push_in(qb, "t.kind", strs(&f.kinds));
            push_in(
                qb,
                "t.status",
                f.statuses.iter().map(|s| s.as_str().to_owned()),
            );
            push_in(qb, "t.source", strs(&f.sources));
            push_in(qb, "t.team", strs(&f.teams));
            push_in(qb, "t.workload", strs(&f.workloads));
            if !f.tags.is_empty() {
                qb.push(" AND EXISTS (SELECT 1 FROM ticket_tags g WHERE g.ticket_id = t.id");
                push_in(qb, "g.tag", strs(&f.tags));
                qb.push(")");
            }
        }
        Over::Signals => {
            qb.push(" FROM signals s WHERE s.received_at >= ")
                .push_bind(Ts(q.from))
                .push(" AND s.received_at < ")
                .push_bind(Ts(q.to));
            push_in(qb, "s.source", strs(&f.sources));
            push_in(qb, "s.kind", strs(&f.kinds));
            push_in(qb, "s.category", strs(&f.categories));
            push_in(
                qb,
                "s.state",
                f.states.iter().map(|s| s.as_str().to_owned()),
            );
            push_in(qb, "s.workload", strs(&f.workloads));
            push_in(qb, "s.account", strs(&f.accounts));
        }
    }
}

fn group_columns(q: &KpiQuery<'_>) -> Vec<&'static str> {
    q.dims
        .iter()
        .filter_map(|d| match q.over {
            Over::Tickets => ticket_column(*d),
            Over::Signals => signal_column(*d),
        })
        .collect()
}

fn select_groups(cols: &[&str]) -> String {
    cols.iter()
        .enumerate()
        .map(|(i, c)| format!("{c} AS d{i}, "))
        .collect()
}

/// The group values of a row whose first `n` columns are the groups.
macro_rules! dims_of {
    ($row:expr, $n:expr) => {{
        let row = $row;
        (0..$n)
            .map(|i| row.try_get::<Option<String>, _>(i))
            .collect::<std::result::Result<Vec<Option<String>>, sqlx::Error>>()?
    }};
}

/// The facts of window `$w` in a row of [`facts_sql`]: `None` when the window counts none of
/// the group's tickets (it would not have read them alone).
macro_rules! facts_from_row {
    ($row:expr, $w:expr) => {{
        let row = $row;
        let w: usize = $w;
        let n = |name: &str| format!("{name}_{w}");
        let rows: i64 = row.try_get(n("rows").as_str())?;
        if rows == 0 {
            None
        } else {
            Some(TicketFacts {
                team: row.try_get("team")?,
                workload: row.try_get("workload")?,
                severity: row.try_get("severity")?,
                source: row.try_get("source")?,
                kind: row.try_get("kind")?,
                age: row.try_get("age")?,
                open: row.try_get(n("open_now").as_str())?,
                created: row.try_get(n("created").as_str())?,
                responded: row.try_get(n("responded").as_str())?,
                response_seconds: row.try_get(n("response_seconds").as_str())?,
                resolved: row.try_get(n("resolved").as_str())?,
                resolution_seconds: row.try_get(n("resolution_seconds").as_str())?,
                reopened: row.try_get(n("reopened").as_str())?,
                response_met: row.try_get(n("response_met").as_str())?,
                response_missed: row.try_get(n("response_missed").as_str())?,
                resolution_met: row.try_get(n("resolution_met").as_str())?,
                resolution_missed: row.try_get(n("resolution_missed").as_str())?,
                status_seconds: [
                    row.try_get(n("in_new").as_str())?,
                    row.try_get(n("in_acknowledged").as_str())?,
                    row.try_get(n("in_progress").as_str())?,
                    row.try_get(n("in_pending").as_str())?,
                ],
            })
        }
    }};
}

macro_rules! state_from_row {
    ($row:expr) => {{
        let row = $row;
        KpiStateRecord {
            name: row.try_get("name")?,
            scope: row.try_get("scope")?,
            value: row.try_get("value")?,
            status: row.try_get("status")?,
            since: row.try_get::<Ts, _>("since")?.0,
            evaluated_at: row.try_get::<Ts, _>("evaluated_at")?.0,
            point_at: row.try_get::<Ts, _>("point_at")?.0,
        }
    }};
}

macro_rules! point_from_row {
    ($row:expr) => {{
        let row = $row;
        KpiPoint {
            name: row.try_get("name")?,
            scope: row.try_get("scope")?,
            at: row.try_get::<Ts, _>("at")?.0,
            value: row.try_get("value")?,
            status: row.try_get("status")?,
        }
    }};
}

/// One scan of the tickets that are open or changed since the earliest window's start: every
/// built-in ticket KPI's counts and sums at once, for each of `windows` windows. `$1` is the
/// earliest start, `$2`..`$4` cut the `age` buckets at one, seven and thirty days before now,
/// only tickets with ids in `[$5, $6)` are read (so the table can be read in parts), and window
/// `i` is `[$(7 + 2i), $(8 + 2i))`. Window `i` counts only the tickets open or changed since its
/// own start (as if it were read alone); its columns end in `_i`, and `rows_i` says how many
/// of the group's tickets it counts.
///
/// Each ticket's contributions are worked out first (small numbers), and only those are
/// grouped: SQLite sorts the rows to group them, and sorting the numbers instead of the
/// timestamps they come from is about a quarter faster.
fn facts_sql(backend: crate::Backend, windows: usize) -> String {
    // A plain scan beats SQLite's two-index OR plan (and its row lookups) for the share of
    // the table these windows touch.
    let scan = match backend {
        crate::Backend::Sqlite => "tickets t NOT INDEXED",
        crate::Backend::Postgres => "tickets t",
    };
    let mut per_ticket = Vec::new();
    let mut sums = Vec::new();
    for w in 0..windows {
        let (from, to) = (format!("${}", 7 + 2 * w), format!("${}", 8 + 2 * w));
        let in_window = |col: &str| format!("{col} >= {from} AND {col} < {to}");
        let counted = format!("(t.updated_at >= {from} OR t.status IN {OPEN})");
        let part = |cond: String, what: &str| {
            format!("CASE WHEN {counted} AND {cond} THEN {what} ELSE 0 END")
        };
        let resolved = format!(
            "{} AND t.status IN ('resolved', 'closed') AND c.resolution_seconds IS NOT NULL",
            in_window("t.resolved_at")
        );
        let responded = format!(
            "{} AND c.response_seconds IS NOT NULL",
            in_window("c.response_at")
        );
        let parts = [
            ("rows", part("1 = 1".into(), "1")),
            ("open_now", part(format!("t.status IN {OPEN}"), "1")),
            ("created", part(in_window("t.created_at"), "1")),
            ("responded", part(responded.clone(), "1")),
            (
                "response_seconds",
                part(responded.clone(), "c.response_seconds"),
            ),
            ("resolved", part(resolved.clone(), "1")),
            (
                "resolution_seconds",
                part(resolved.clone(), "c.resolution_seconds"),
            ),
            (
                "reopened",
                part(format!("{resolved} AND c.reopens > 0"), "1"),
            ),
            (
                "response_met",
                part(format!("{responded} AND c.response_met = 1"), "1"),
            ),
            (
                "response_missed",
                part(
                    format!(
                        "(c.response_met = 0 OR (c.response_met IS NULL \
                         AND t.acknowledged_at IS NULL AND t.status IN {OPEN})) AND {}",
                        in_window("c.first_response_due_at")
                    ),
                    "1",
                ),
            ),
            (
                "resolution_met",
                part(format!("{resolved} AND c.resolution_met = 1"), "1"),
            ),
            (
                "resolution_missed",
                part(
                    format!(
                        "(c.resolution_met = 0 OR (c.resolution_met IS NULL \
                         AND t.status IN {OPEN})) AND {}",
                        in_window("c.resolution_due_at")
                    ),
                    "1",
                ),
            ),
            ("in_new", part(resolved.clone(), "c.new_seconds")),
            (
                "in_acknowledged",
                part(resolved.clone(), "c.acknowledged_seconds"),
            ),
            (
                "in_progress",
                part(resolved.clone(), "c.in_progress_seconds"),
            ),
            ("in_pending", part(resolved.clone(), "c.pending_seconds")),
        ];
        for (name, expr) in parts {
            per_ticket.push(format!("{expr} AS {name}_{w}"));
            sums.push(format!("CAST(SUM({name}_{w}) AS BIGINT) AS {name}_{w}"));
        }
    }
    format!(
        "SELECT team, workload, severity, source, kind, age, {sums} FROM (\
         SELECT t.team, t.workload, t.severity, t.source, t.kind, \
         CASE WHEN t.status IN {OPEN} THEN \
           CASE WHEN t.created_at >= $2 THEN 'lt_1d' WHEN t.created_at >= $3 THEN '1d_7d' \
                WHEN t.created_at >= $4 THEN '7d_30d' ELSE 'gt_30d' END END AS age, \
         {per_ticket} \
         FROM {scan} LEFT JOIN ticket_clocks c ON c.ticket_id = t.id \
         WHERE (t.updated_at >= $1 OR t.status IN {OPEN}) AND t.id >= $5 AND t.id < $6\
         ) f GROUP BY team, workload, severity, source, kind, age",
        sums = sums.join(", "),
        per_ticket = per_ticket.join(", "),
    )
}

impl TicketFacts {
    fn key(&self) -> FactsKey {
        (
            self.team.clone(),
            self.workload.clone(),
            self.severity.clone(),
            self.source.clone(),
            self.kind.clone(),
            self.age.clone(),
        )
    }

    /// Adds the counts and sums of the same group read from another part of the table.
    fn add(&mut self, o: &TicketFacts) {
        self.open += o.open;
        self.created += o.created;
        self.responded += o.responded;
        self.response_seconds += o.response_seconds;
        self.resolved += o.resolved;
        self.resolution_seconds += o.resolution_seconds;
        self.reopened += o.reopened;
        self.response_met += o.response_met;
        self.response_missed += o.response_missed;
        self.resolution_met += o.resolution_met;
        self.resolution_missed += o.resolution_missed;
        for (mine, theirs) in self.status_seconds.iter_mut().zip(o.status_seconds) {
            *mine += theirs;
        }
    }
}

/// The groups of several parts of the table, each group once.
fn merge_facts(parts: Vec<Vec<TicketFacts>>) -> Vec<TicketFacts> {
    let mut parts = parts.into_iter();
    let mut all = parts.next().unwrap_or_default();
    let mut at: std::collections::HashMap<FactsKey, usize> =
        all.iter().enumerate().map(|(i, f)| (f.key(), i)).collect();
    for part in parts {
        for f in part {
            match at.get(&f.key()) {
                Some(&i) => all[i].add(&f),
                None => {
                    at.insert(f.key(), all.len());
                    all.push(f);
                }
            }
        }
    }
    all
}

/// A group of the ticket facts: team, workload, severity, source, kind and age.
type FactsKey = (
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
);

impl Db {
    /// The facts of every built-in ticket KPI over `[from, to)`, per group.
    pub async fn ticket_facts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<TicketFacts>> {
        Ok(self
            .ticket_facts_of(&[(from, to)], now)
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// The facts of each window `[from, to)`, from one read of the tickets: the same as
    /// [`Db::ticket_facts`] for each window alone.
    pub async fn ticket_facts_of(
        &self,
        windows: &[(DateTime<Utc>, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Vec<TicketFacts>>> {
        match self.backend() {
            // SQLite groups on one core: read the two halves of the table side by side on two
            // reader connections and add their groups up.
            crate::Backend::Sqlite => {
                let top: i64 = on_read!(self, p, _b => {
                    Ok::<i64, crate::StoreError>(
                        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM tickets")
                            .fetch_one(p)
                            .await?,
                    )
                })?;
                let mid = top / 2 + 1;
                let (low, high) = tokio::try_join!(
                    self.ticket_facts_in(windows, now, 0, mid),
                    self.ticket_facts_in(windows, now, mid, i64::MAX),
                )?;
                Ok(low
                    .into_iter()
                    .zip(high)
                    .map(|(l, h)| merge_facts(vec![l, h]))
                    .collect())
            }
            crate::Backend::Postgres => self.ticket_facts_in(windows, now, 0, i64::MAX).await,
        }
    }

    /// The facts of each window, of the tickets with ids in `[lo, hi)`.
    async fn ticket_facts_in(
        &self,
        windows: &[(DateTime<Utc>, DateTime<Utc>)],
        now: DateTime<Utc>,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<Vec<TicketFacts>>> {
        let Some(start) = windows.iter().map(|(from, _)| *from).min() else {
            return Ok(Vec::new());
        };
        let sql = facts_sql(self.backend(), windows.len());
        let day = chrono::Duration::days(1);
        on_read!(self, p, _b => {
            let mut q = sqlx::query(&sql)
                .bind(Ts(start))
                .bind(Ts(now - day))
                .bind(Ts(now - day * 7))
                .bind(Ts(now - day * 30))
                .bind(lo)
                .bind(hi);
            for (from, to) in windows {
                q = q.bind(Ts(*from)).bind(Ts(*to));
            }
            let rows = q.fetch_all(p).await?;
            let mut out = vec![Vec::new(); windows.len()];
            for row in &rows {
                for (w, facts) in out.iter_mut().enumerate() {
                    if let Some(f) = facts_from_row!(row, w) {
                        facts.push(f);
                    }
                }
            }
            Ok(out)
        })
    }

    /// AWS Support cases requested in `[from, to)`.
    pub async fn case_facts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CaseFact>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT c.account_id, t.severity AS ticket_severity, c.severity, c.state, \
                 c.created_at, c.first_reply_at \
                 FROM support_cases c JOIN tickets t ON t.id = c.ticket_id \
                 WHERE c.created_at >= $1 AND c.created_at < $2",
            )
            .bind(Ts(from))
            .bind(Ts(to))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(CaseFact {
                        account_id: row.try_get("account_id")?,
                        ticket_severity: row.try_get("ticket_severity")?,
                        severity: row.try_get("severity")?,
                        state: row.try_get("state")?,
                        created_at: row.try_get::<Ts, _>("created_at")?.0,
                        first_reply_at: row.try_get::<Option<Ts>, _>("first_reply_at")?.map(|t| t.0),
                    })
                })
                .collect()
        })
    }

    /// Open tickets from AWS Health issue events on production workloads, per (workload,
    /// team).
    pub async fn health_open_production(
        &self,
    ) -> Result<Vec<(Option<String>, Option<String>, i64)>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT t.workload, t.team, COUNT(*) AS n FROM tickets t \
                 JOIN workloads w ON w.name = t.workload \
                 WHERE t.source = $1 AND t.status IN {OPEN} AND w.environment = 'production' \
                 AND EXISTS (SELECT 1 FROM signals s WHERE s.ticket_id = t.id AND s.kind = 'issue') \
                 GROUP BY t.workload, t.team"
            ))
            .bind(opsdesk_domain::signal::HEALTH)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("workload")?, row.try_get("team")?, row.try_get("n")?)))
                .collect()
        })
    }

    /// Maintenance windows starting in `[from, to)`, per workload.
    pub async fn maintenance_starting(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(Option<String>, i64)>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT workload, COUNT(*) AS n FROM maintenance_windows \
                 WHERE start_at >= $1 AND start_at < $2 GROUP BY workload",
            )
            .bind(Ts(from))
            .bind(Ts(to))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("workload")?, row.try_get("n")?)))
                .collect()
        })
    }

    /// The Trusted Advisor items whose newest finding still flags them.
    pub async fn trusted_advisor_flagged(&self) -> Result<Vec<FlaggedItem>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT s.category, s.kind, s.savings FROM signals s \
                 WHERE s.id IN (SELECT MAX(id) FROM signals WHERE source = $1 GROUP BY dedup_key) \
                 AND s.state = 'firing'",
            )
            .bind(TRUSTED_ADVISOR)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(FlaggedItem {
                        category: row.try_get("category")?,
                        status: row.try_get("kind")?,
                        savings: row.try_get("savings")?,
                    })
                })
                .collect()
        })
    }

    /// How many tickets or signals a custom KPI counts, per group of `q.dims`.
    pub async fn kpi_counts(&self, q: &KpiQuery<'_>) -> Result<Vec<(Vec<Option<String>>, i64)>> {
        let cols = group_columns(q);
        on_read!(self, p, _b => {
            let mut qb = QueryBuilder::new(format!("SELECT {}COUNT(*) AS n", select_groups(&cols)));
            push_from(&mut qb, q);
            if !cols.is_empty() {
                qb.push(format!(" GROUP BY {}", cols.join(", ")));
            }
            let rows = qb.build().persistent(false).fetch_all(p).await?;
            rows.iter()
                .map(|row| Ok((dims_of!(row, cols.len()), row.try_get::<i64, _>("n")?)))
                .collect()
        })
    }

    /// Wall-clock seconds from `from` to `to` of each matching ticket that has both, with its
    /// group.
    pub async fn kpi_durations(
        &self,
        q: &KpiQuery<'_>,
        from: TicketTime,
        to: TicketTime,
    ) -> Result<Vec<(Vec<Option<String>>, f64)>> {
        let cols = group_columns(q);
        let start = time_column(from);
        let end = time_column(to);
        on_read!(self, p, _b => {
            let mut qb = QueryBuilder::new(format!(
                "SELECT {}{start} AS started, {end} AS ended",
                select_groups(&cols)
            ));
            push_from(&mut qb, q);
            qb.push(format!(" AND {start} IS NOT NULL AND {end} IS NOT NULL"));
            let rows = qb.build().persistent(false).fetch_all(p).await?;
            rows.iter()
                .map(|row| {
                    let started = row.try_get::<Ts, _>("started")?.0;
                    let ended = row.try_get::<Ts, _>("ended")?.0;
                    // A ticket reopened and acknowledged again may read backwards: no time.
                    let seconds = (ended - started).num_milliseconds().max(0) as f64 / 1000.0;
                    Ok((dims_of!(row, cols.len()), seconds))
                })
                .collect()
        })
    }

    pub async fn kpi_definitions(&self) -> Result<Vec<KpiDefinitionRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT name, spec, created_by, created_at, updated_at FROM kpi_definitions ORDER BY name",
            )
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(KpiDefinitionRecord {
                        name: row.try_get("name")?,
                        spec: row.try_get("spec")?,
                        created_by: row.try_get("created_by")?,
                        created_at: row.try_get::<Ts, _>("created_at")?.0,
                        updated_at: row.try_get::<Ts, _>("updated_at")?.0,
                    })
                })
                .collect()
        })
    }

    /// Whether schedule `name` sent the report of the period starting at `from`.
    pub async fn report_sent(&self, name: &str, from: DateTime<Utc>) -> Result<bool> {
        on_read!(self, p, _b => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM report_runs WHERE name = $1 AND period_from = $2",
            )
            .bind(name)
            .bind(Ts(from))
            .fetch_one(p)
            .await?;
            Ok(n > 0)
        })
    }

    /// When each KPI was last evaluated.
    pub async fn kpi_runs(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query("SELECT name, evaluated_at FROM kpi_runs")
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("name")?, row.try_get::<Ts, _>("evaluated_at")?.0)))
                .collect()
        })
    }

    /// The latest value of every KPI in every scope.
    pub async fn kpi_states(&self) -> Result<Vec<KpiStateRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT name, scope, value, status, since, evaluated_at, point_at FROM kpi_states \
                 ORDER BY name, scope",
            )
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(state_from_row!(row))).collect()
        })
    }

    /// The newest point of a KPI's series in `scope` at or before `at`.
    pub async fn kpi_point_before(
        &self,
        name: &str,
        scope: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<KpiPoint>> {
        on_read!(self, p, _b => {
            let row = sqlx::query(
                "SELECT name, scope, at, value, status FROM kpi_points \
                 WHERE name = $1 AND scope = $2 AND at <= $3 ORDER BY at DESC LIMIT 1",
            )
            .bind(name)
            .bind(scope)
            .bind(Ts(at))
            .fetch_optional(p)
            .await?;
            match row {
                Some(row) => Ok(Some(point_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// The points of a KPI's series in `scope` within `[from, to]`, oldest first, up to `limit`.
    pub async fn kpi_points(
        &self,
        name: &str,
        scope: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<KpiPoint>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT name, scope, at, value, status FROM kpi_points \
                 WHERE name = $1 AND scope = $2 AND at >= $3 AND at <= $4 ORDER BY at LIMIT $5",
            )
            .bind(name)
            .bind(scope)
            .bind(Ts(from))
            .bind(Ts(to))
            .bind(limit)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(point_from_row!(row))).collect()
        })
    }
}

/// A problem that kept coming back: one dedup key's firing signals in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Recurring {
    pub source: String,
    pub dedup_key: String,
    /// The newest signal's title.
    pub title: String,
    pub occurrences: i64,
    /// The newest ticket the signals went to.
    pub ticket_id: Option<i64>,
}

/// How often one kind of signal came in during a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SignalType {
    pub source: String,
    /// Health `issue`, Trusted Advisor `WARN`, CloudWatch `ALARM`, ...
    pub kind: String,
    pub service: Option<String>,
    pub occurrences: i64,
}

impl Db {
    /// The dedup keys with the most firing signals in `[from, to)`, most first.
    pub async fn recurring_signals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Recurring>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT s.source, s.dedup_key, COUNT(*) AS n, MAX(s.id) AS newest, \
                 MAX(s.ticket_id) AS ticket_id FROM signals s \
                 WHERE s.received_at >= $1 AND s.received_at < $2 AND s.state = 'firing' \
                 GROUP BY s.source, s.dedup_key HAVING COUNT(*) > 1 \
                 ORDER BY n DESC, newest DESC LIMIT $3",
            )
            .bind(Ts(from))
            .bind(Ts(to))
            .bind(limit)
            .fetch_all(p)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let newest: i64 = row.try_get("newest")?;
                let title: String = sqlx::query_scalar("SELECT title FROM signals WHERE id = $1")
                    .bind(newest)
                    .fetch_one(p)
                    .await?;
                out.push(Recurring {
                    source: row.try_get("source")?,
                    dedup_key: row.try_get("dedup_key")?,
                    title,
                    occurrences: row.try_get("n")?,
                    ticket_id: row.try_get("ticket_id")?,
                });
            }
            Ok(out)
        })
    }

    /// Signals in `[from, to)` by source, kind and service, most first.
    pub async fn signal_types(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<SignalType>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT source, kind, service, COUNT(*) AS n FROM signals \
                 WHERE received_at >= $1 AND received_at < $2 \
                 GROUP BY source, kind, service ORDER BY n DESC, source, kind LIMIT $3",
            )
            .bind(Ts(from))
            .bind(Ts(to))
            .bind(limit)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(SignalType {
                        source: row.try_get("source")?,
                        kind: row.try_get("kind")?,
                        service: row.try_get("service")?,
                        occurrences: row.try_get("n")?,
                    })
                })
                .collect()
        })
    }

    /// Tickets reopened at least once that changed in `[from, to)`, newest change first.
    pub async fn reopened_tickets(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<i64>> {
        on_read!(self, p, _b => {
            Ok(sqlx::query_scalar(
                "SELECT t.id FROM tickets t JOIN ticket_clocks c ON c.ticket_id = t.id \
                 WHERE c.reopens > 0 AND t.updated_at >= $1 AND t.created_at < $2 \
                 ORDER BY t.updated_at DESC LIMIT $3",
            )
            .bind(Ts(from))
            .bind(Ts(to))
            .bind(limit)
            .fetch_all(p)
            .await?)
        })
    }
}

impl Tx {
    /// Creates or replaces a KPI definition.
    pub async fn save_kpi_definition(
        &mut self,
        name: &str,
        spec: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO kpi_definitions (name, spec, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(spec)
            .bind(by)
            .bind(Ts(now))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Deletes a KPI definition with its values and series; false when there was none.
    pub async fn delete_kpi_definition(&mut self, name: &str) -> Result<bool> {
        self.note_write();
        on_tx!(self, c, _b => {
            let gone = sqlx::query("DELETE FROM kpi_definitions WHERE name = $1")
                .bind(name)
                .execute(&mut *c)
                .await?
                .rows_affected();
            for table in ["kpi_states", "kpi_points", "kpi_runs"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE name = $1"))
                    .bind(name)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(gone > 0)
        })
    }

    /// When the KPI was last evaluated, holding its row until the transaction ends (on
    /// PostgreSQL; SQLite has one writer) so two nodes do not store one evaluation twice.
    pub async fn kpi_run_locked(&mut self, name: &str) -> Result<Option<DateTime<Utc>>> {
        on_tx!(self, c, b => {
            sqlx::query("INSERT INTO kpi_runs (name, evaluated_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(Ts(DateTime::<Utc>::UNIX_EPOCH))
                .execute(&mut *c)
                .await?;
            let row = sqlx::query(&format!(
                "SELECT evaluated_at FROM kpi_runs WHERE name = $1{}",
                b.for_update()
            ))
            .bind(name)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some(row) => {
                    let at = row.try_get::<Ts, _>("evaluated_at")?.0;
                    Ok((at > DateTime::<Utc>::UNIX_EPOCH).then_some(at))
                }
                None => Ok(None),
            }
        })
    }

    pub async fn save_kpi_run(&mut self, name: &str, at: DateTime<Utc>) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE kpi_runs SET evaluated_at = $2 WHERE name = $1")
                .bind(name)
                .bind(Ts(at))
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// The latest values of one KPI, every scope.
    pub async fn kpi_states_of(&mut self, name: &str) -> Result<Vec<KpiStateRecord>> {
        on_tx!(self, c, _b => {
            let rows = sqlx::query(
                "SELECT name, scope, value, status, since, evaluated_at, point_at FROM kpi_states \
                 WHERE name = $1",
            )
            .bind(name)
            .fetch_all(&mut *c)
            .await?;
            rows.iter().map(|row| Ok(state_from_row!(row))).collect()
        })
    }

    /// Forgets the latest values of these scopes of a KPI.
    pub async fn delete_kpi_states(&mut self, name: &str, scopes: &[String]) -> Result<()> {
        if scopes.is_empty() {
            return Ok(());
        }
        self.note_write();
        on_tx!(self, c, _b => {
            for scope in scopes {
                sqlx::query("DELETE FROM kpi_states WHERE name = $1 AND scope = $2")
                    .bind(name)
                    .bind(scope)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        })
    }

    pub async fn save_kpi_states(&mut self, states: &[KpiStateRecord]) -> Result<()> {
        if states.is_empty() {
            return Ok(());
        }
        self.note_write();
        for chunk in states.chunks(200) {
            on_tx!(self, c, _b => {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO kpi_states (name, scope, value, status, since, evaluated_at, point_at) ",
                );
                qb.push_values(chunk, |mut b, s| {
                    b.push_bind(s.name.clone())
                        .push_bind(s.scope.clone())
                        .push_bind(s.value)
                        .push_bind(s.status.clone())
                        .push_bind(Ts(s.since))
                        .push_bind(Ts(s.evaluated_at))
                        .push_bind(Ts(s.point_at));
                });
                qb.push(
                    " ON CONFLICT (name, scope) DO UPDATE SET value = excluded.value, \
                     status = excluded.status, since = excluded.since, \
                     evaluated_at = excluded.evaluated_at, point_at = excluded.point_at",
                );
                qb.build().persistent(false).execute(&mut *c).await?;
            });
        }
        Ok(())
    }

    pub async fn add_kpi_points(&mut self, points: &[KpiPoint]) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        self.note_write();
        for chunk in points.chunks(200) {
            on_tx!(self, c, _b => {
                let mut qb = QueryBuilder::new("INSERT INTO kpi_points (name, scope, at, value, status) ");
                qb.push_values(chunk, |mut b, p| {
                    b.push_bind(p.name.clone())
                        .push_bind(p.scope.clone())
                        .push_bind(Ts(p.at))
                        .push_bind(p.value)
                        .push_bind(p.status.clone());
                });
                qb.push(" ON CONFLICT (name, scope, at) DO NOTHING");
                qb.build().persistent(false).execute(&mut *c).await?;
            });
        }
        Ok(())
    }

    /// Records that schedule `name` sent the report of the period starting at `from`; false
    /// when it had been sent already (by this node or another).
    pub async fn claim_report_run(
        &mut self,
        name: &str,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.note_write();
        on_tx!(self, c, _b => {
            let n = sqlx::query(
                "INSERT INTO report_runs (name, period_from, sent_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name, period_from) DO NOTHING",
            )
            .bind(name)
            .bind(Ts(from))
            .bind(Ts(now))
            .execute(&mut *c)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Drops the points older than `before`; returns how many.
    pub async fn prune_kpi_points(&mut self, before: DateTime<Utc>) -> Result<u64> {
        self.note_write();
        on_tx!(self, c, _b => {
            Ok(sqlx::query("DELETE FROM kpi_points WHERE at < $1")
                .bind(Ts(before))
                .execute(&mut *c)
                .await?
                .rows_affected())
        })
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    fn facts(team: &str, age: Option<&str>, open: i64, seconds: i64) -> TicketFacts {
        TicketFacts {
            team: Some(team.to_owned()),
            workload: None,
            severity: "SEV2".into(),
            source: "api".into(),
            kind: "incident".into(),
            age: age.map(str::to_owned),
            open,
            created: open,
            responded: 1,
            response_seconds: seconds,
            resolved: 0,
            resolution_seconds: 0,
            reopened: 0,
            response_met: 1,
            response_missed: 0,
            resolution_met: 0,
            resolution_missed: 0,
            status_seconds: [seconds, 0, 0, 1],
        }
    }

    #[test]
    fn groups_read_from_two_parts_are_added_up() {
        let low = vec![facts("ops", Some("lt_1d"), 2, 10), facts("sre", None, 0, 5)];
        let high = vec![
            facts("ops", Some("lt_1d"), 3, 7),
            facts("ops", Some("gt_30d"), 1, 1),
        ];
        let mut all = merge_facts(vec![low, high]);
        all.sort_by_key(|f| f.key());
        assert_eq!(all.len(), 3);
        let ops_new = all
            .iter()
            .find(|f| f.age.as_deref() == Some("lt_1d"))
            .unwrap();
        assert_eq!(
            (ops_new.open, ops_new.created, ops_new.responded),
            (5, 5, 2)
        );
        assert_eq!(ops_new.response_seconds, 17);
        assert_eq!(ops_new.status_seconds, [17, 0, 0, 2]);
        assert!(all
            .iter()
            .any(|f| f.team.as_deref() == Some("sre") && f.open == 0));
        assert_eq!(merge_facts(vec![]), Vec::<TicketFacts>::new());
    }
}
