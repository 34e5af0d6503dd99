//! What KPIs read (grouped facts about tickets, signals, AWS cases and maintenance) and what
//! they keep (their definitions, latest values and series).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use opsdesk_domain::kpi::{Dimension, KpiFilter, Over, TicketTime};
use opsdesk_domain::signal::TRUSTED_ADVISOR;
use serde::{Deserialize, Serialize};
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
    /// The plan the case was decided on; none for cases from before opsdesk kept it.
    pub support_plan: Option<String>,
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

/// Most windows one read of the tickets answers: each window is a bit of the masks below.
const MAX_WINDOWS: usize = 32;

/// Ticket ids per read: each read returns one JSON text of at most this many tickets'
/// contributions, so memory stays bounded whatever the table's size.
const CHUNK: i64 = 100_000;

/// What one ticket contributes to each window, from [`contributions_sql`]: its group, its
/// numbers, and one bit per window in each mask.
#[derive(Debug, Deserialize)]
struct Contribution {
    team: Option<String>,
    workload: Option<String>,
    severity: String,
    source: String,
    kind: String,
    age: Option<String>,
    /// Open now (1), reopened before (2), first-response clock met (4), resolution clock
    /// met (8).
    flags: i64,
    /// The windows that count the ticket at all: it is open, or changed since their start.
    counted: i64,
    /// The windows it was created in, first responded to in, resolved in (and still
    /// resolved or closed), and whose first-response and resolution due times it missed in.
    created: i64,
    responded: i64,
    resolved: i64,
    response_missed: i64,
    resolution_missed: i64,
    response_seconds: i64,
    resolution_seconds: i64,
    status_seconds: [i64; 4],
}

/// Each ticket's contributions to `windows` windows, as one JSON array, for the tickets open
/// or changed since the earliest window's start. `$1` is the earliest start, `$2`..`$4` cut
/// the `age` buckets at one, seven and thirty days before now, only tickets with ids in
/// `[$5, $6)` are read, and window `i` is `[$(7 + 2i), $(8 + 2i))`, bit `i` of each mask.
/// Grouping is left to [`FactsTally`] (why: docs/storage.md, "Statements shaped for
/// speed").
fn contributions_sql(backend: crate::Backend, windows: usize) -> String {
    // A plain scan on SQLite (`NOT INDEXED`): see docs/storage.md, "Statements shaped for
    // speed".
    let (scan, array, (agg_start, agg_end)) = match backend {
        crate::Backend::Sqlite => (
            "tickets t NOT INDEXED",
            "json_array",
            ("json_group_array(", ")"),
        ),
        crate::Backend::Postgres => (
            "tickets t",
            "json_build_array",
            ("COALESCE(json_agg(", "), '[]')::text"),
        ),
    };
    // Two comparisons, not a four-value list: see docs/storage.md, "Statements shaped for
    // speed".
    let open = "t.status NOT IN ('resolved', 'closed')";
    let mask = |cond: &dyn Fn(&str, &str) -> String| {
        (0..windows)
            .map(|w| {
                let (from, to) = (format!("${}", 7 + 2 * w), format!("${}", 8 + 2 * w));
                format!(
                    "CASE WHEN {} THEN {} ELSE 0 END",
                    cond(&from, &to),
                    1_i64 << w
                )
            })
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let within = |col: &str, from: &str, to: &str| format!("{col} >= {from} AND {col} < {to}");
    let masks = [
        mask(&|from, _| format!("(t.updated_at >= {from} OR {open})")),
        mask(&|from, to| within("t.created_at", from, to)),
        mask(&|from, to| {
            format!(
                "c.response_seconds IS NOT NULL AND {}",
                within("c.response_at", from, to)
            )
        }),
        mask(&|from, to| {
            format!(
                "t.status IN ('resolved', 'closed') AND c.resolution_seconds IS NOT NULL AND {}",
                within("t.resolved_at", from, to)
            )
        }),
        mask(&|from, to| {
            format!(
                "(c.response_met = 0 OR (c.response_met IS NULL AND t.acknowledged_at IS NULL \
                 AND {open})) AND {}",
                within("c.first_response_due_at", from, to)
            )
        }),
        mask(&|from, to| {
            format!(
                "(c.resolution_met = 0 OR (c.resolution_met IS NULL AND {open})) AND {}",
                within("c.resolution_due_at", from, to)
            )
        }),
    ];
    format!(
        "SELECT {agg_start}{array}(t.team, t.workload, t.severity, t.source, t.kind, \
         CASE WHEN {open} THEN \
           CASE WHEN t.created_at >= $2 THEN 'lt_1d' WHEN t.created_at >= $3 THEN '1d_7d' \
                WHEN t.created_at >= $4 THEN '7d_30d' ELSE 'gt_30d' END END, \
         CASE WHEN {open} THEN 1 ELSE 0 END + CASE WHEN c.reopens > 0 THEN 2 ELSE 0 END \
           + CASE WHEN c.response_met = 1 THEN 4 ELSE 0 END \
           + CASE WHEN c.resolution_met = 1 THEN 8 ELSE 0 END, \
         {masks}, \
         COALESCE(c.response_seconds, 0), COALESCE(c.resolution_seconds, 0), \
         {array}(COALESCE(c.new_seconds, 0), COALESCE(c.acknowledged_seconds, 0), \
                 COALESCE(c.in_progress_seconds, 0), COALESCE(c.pending_seconds, 0))){agg_end} \
         FROM {scan} LEFT JOIN ticket_clocks c ON c.ticket_id = t.id \
         WHERE (t.updated_at >= $1 OR {open}) AND t.id >= $5 AND t.id < $6",
        masks = masks.join(", "),
    )
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

/// The ticket facts of several windows, added up one ticket at a time.
#[derive(Debug)]
struct FactsTally {
    windows: usize,
    /// Per group, per window: how many of the group's tickets the window counts, and what
    /// they add up to.
    groups: HashMap<FactsKey, Vec<(i64, TicketFacts)>>,
}

impl FactsTally {
    fn new(windows: usize) -> FactsTally {
        FactsTally {
            windows,
            groups: HashMap::new(),
        }
    }

    fn add(&mut self, c: Contribution) {
        let windows = self.windows;
        let key = (c.team, c.workload, c.severity, c.source, c.kind, c.age);
        let group = self
            .groups
            .entry(key)
            .or_insert_with(|| vec![(0, TicketFacts::default()); windows]);
        let flag = |bit: i64| i64::from(c.flags & bit != 0);
        for (w, (rows, f)) in group.iter_mut().enumerate() {
            let within = |mask: i64| mask >> w & 1 == 1;
            if !within(c.counted) {
                continue;
            }
            *rows += 1;
            f.open += flag(1);
            f.created += i64::from(within(c.created));
            if within(c.responded) {
                f.responded += 1;
                f.response_seconds += c.response_seconds;
                f.response_met += flag(4);
            }
            if within(c.resolved) {
                f.resolved += 1;
                f.resolution_seconds += c.resolution_seconds;
                f.reopened += flag(2);
                f.resolution_met += flag(8);
                for (total, s) in f.status_seconds.iter_mut().zip(c.status_seconds) {
                    *total += s;
                }
            }
            f.response_missed += i64::from(within(c.response_missed));
            f.resolution_missed += i64::from(within(c.resolution_missed));
        }
    }

    /// Adds up one JSON array of contributions without holding them all.
    fn add_json(&mut self, json: &str) -> Result<()> {
        struct Each<'t>(&'t mut FactsTally);
        impl<'de> serde::de::Visitor<'de> for Each<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of ticket contributions")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<(), A::Error> {
                while let Some(c) = seq.next_element::<Contribution>()? {
                    self.0.add(c);
                }
                Ok(())
            }
        }
        let mut de = serde_json::Deserializer::from_str(json);
        serde::Deserializer::deserialize_seq(&mut de, Each(self))
            .and_then(|()| de.end())
            .map_err(|e| crate::StoreError::Corrupt(format!("unreadable ticket facts: {e}")))
    }

    /// Each window's groups: those it counts at least one ticket of.
    fn facts(self) -> Vec<Vec<TicketFacts>> {
        let mut out = vec![Vec::new(); self.windows];
        for (key, group) in self.groups {
            for (facts, (rows, f)) in out.iter_mut().zip(group) {
                if rows > 0 {
                    let (team, workload, severity, source, kind, age) = key.clone();
                    facts.push(TicketFacts {
                        team,
                        workload,
                        severity,
                        source,
                        kind,
                        age,
                        ..f
                    });
                }
            }
        }
        out
    }
}

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
    /// [`Db::ticket_facts`] for each window alone. A window counts the tickets open now or
    /// changed since its start.
    ///
    /// The table is read in parts of [`CHUNK`] ids, two at a time (SQLite works a query on
    /// one core), and each part's contributions are added up as they arrive.
    pub async fn ticket_facts_of(
        &self,
        windows: &[(DateTime<Utc>, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Vec<TicketFacts>>> {
        let mut out = Vec::with_capacity(windows.len());
        for some in windows.chunks(MAX_WINDOWS) {
            out.extend(self.ticket_facts_within(some, now).await?);
        }
        Ok(out)
    }

    async fn ticket_facts_within(
        &self,
        windows: &[(DateTime<Utc>, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Vec<TicketFacts>>> {
        let mut tally = FactsTally::new(windows.len());
        let Some(start) = windows.iter().map(|(from, _)| *from).min() else {
            return Ok(tally.facts());
        };
        let (low, high): (Option<i64>, Option<i64>) = on_read!(self, p, _b => {
            Ok::<_, crate::StoreError>(
                sqlx::query_as("SELECT MIN(id), MAX(id) FROM tickets")
                    .fetch_one(p)
                    .await?,
            )
        })?;
        let (Some(low), Some(high)) = (low, high) else {
            return Ok(tally.facts());
        };
        let sql = contributions_sql(self.backend(), windows.len());
        let day = chrono::Duration::days(1);
        // Parts `[lo, hi)` from the lowest id on; the last one is open-ended, so tickets
        // opened while the table is read are counted as the single scan counted them.
        let parts = (0..=high.saturating_sub(low) / CHUNK).map(|i| {
            let lo = low.saturating_add(i * CHUNK);
            let hi = lo.saturating_add(CHUNK);
            (lo, if hi > high { i64::MAX } else { hi })
        });
        let mut read = futures::stream::iter(parts)
            .map(|(lo, hi)| {
                let sql = &sql;
                async move {
                    on_read!(self, p, _b => {
                        let mut q = sqlx::query_scalar::<_, String>(sql)
                            .bind(Ts(start))
                            .bind(Ts(now - day))
                            .bind(Ts(now - day * 7))
                            .bind(Ts(now - day * 30))
                            .bind(lo)
                            .bind(hi);
                        for (from, to) in windows {
                            q = q.bind(Ts(*from)).bind(Ts(*to));
                        }
                        Ok::<_, crate::StoreError>(q.fetch_one(p).await?)
                    })
                }
            })
            .buffer_unordered(2);
        while let Some(json) = read.next().await {
            tally.add_json(&json?)?;
        }
        Ok(tally.facts())
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
                 c.created_at, c.first_reply_at, c.support_plan \
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
                        support_plan: row.try_get("support_plan")?,
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
mod tally_tests {
    use super::*;

    /// A ticket of team `team` with these flags, masks and seconds, as the reader gets it.
    fn ticket(team: &str, flags: i64, masks: [i64; 6], seconds: i64) -> String {
        let [counted, created, responded, resolved, response_missed, resolution_missed] = masks;
        format!(
            r#"["{team}",null,"SEV2","api","incident",null,{flags},{counted},{created},{responded},{resolved},{response_missed},{resolution_missed},{seconds},{seconds},[1,2,3,4]]"#
        )
    }

    #[test]
    fn contributions_add_up_per_group_and_window() {
        let mut tally = FactsTally::new(2);
        // Open, created and responded to in window 0 (first-response clock met); counted by
        // window 1 without anything in it.
        let a = ticket("ops", 1 | 4, [0b11, 0b01, 0b01, 0, 0, 0], 60);
        // Resolved in window 1 after a reopen, resolution clock met; window 0 does not count it.
        let b = ticket("ops", 2 | 8, [0b10, 0b10, 0, 0b10, 0, 0], 100);
        // Another team, missing both due times in window 0 only.
        let c = ticket("sre", 1, [0b01, 0, 0, 0, 0b01, 0b01], 0);
        tally.add_json(&format!("[{a},{b}]")).unwrap();
        tally.add_json(&format!("[{c}]")).unwrap();
        tally.add_json("[]").unwrap();
        let mut windows = tally.facts();
        for w in &mut windows {
            w.sort_by(|x, y| x.team.cmp(&y.team));
        }
        let [w0, w1] = <[Vec<TicketFacts>; 2]>::try_from(windows).unwrap();

        assert_eq!(w0.len(), 2);
        let (ops, sre) = (&w0[0], &w0[1]);
        assert_eq!((ops.open, ops.created, ops.responded), (1, 1, 1));
        assert_eq!((ops.response_seconds, ops.response_met), (60, 1));
        assert_eq!(
            (ops.resolved, ops.reopened, ops.status_seconds),
            (0, 0, [0; 4])
        );
        assert_eq!(
            (sre.response_missed, sre.resolution_missed, sre.open),
            (1, 1, 1)
        );

        // Window 1 does not know team sre, and counts both ops tickets.
        assert_eq!(w1.len(), 1);
        let ops = &w1[0];
        assert_eq!((ops.open, ops.created, ops.responded), (1, 1, 0));
        assert_eq!((ops.resolved, ops.resolution_seconds), (1, 100));
        assert_eq!((ops.reopened, ops.resolution_met), (1, 1));
        assert_eq!(ops.status_seconds, [1, 2, 3, 4]);
        assert_eq!((ops.response_missed, ops.resolution_missed), (0, 0));
    }

    #[test]
    fn unreadable_contributions_are_an_error() {
        let mut tally = FactsTally::new(1);
        assert!(tally.add_json("[1, 2]").is_err());
        assert!(tally.add_json("{}").is_err());
        assert!(tally.add_json("[] trailing").is_err());
        assert!(FactsTally::new(0).facts().is_empty());
    }
}
