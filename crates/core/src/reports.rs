//! Trend reports: what a period's history says about the support work against the period
//! before, for people to read (Markdown), for tools (JSON) and for spreadsheets (CSV).

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use opsdesk_domain::kpi::{direction, Better, Direction, Unit};
use opsdesk_domain::report::Period;
use opsdesk_domain::{Status, Ticket};
use opsdesk_store::{Recurring, SignalType, TicketFacts};
use serde::Serialize;
use utoipa::ToSchema;

use crate::kpis::show;
use crate::{Actor, Desk, Result};

/// Who sends scheduled reports.
const SCHEDULER: &str = "system:reports";

/// How many recurring problems, signal types and reopened tickets a report lists.
const TOP: i64 = 10;

/// A count this period and the period before.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Count {
    /// The kind, severity, source, workload or team; `(none)` for tickets without one.
    pub name: String,
    pub current: i64,
    pub previous: i64,
}

/// Tickets created, in all and by kind, severity, source, workload and team.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Volume {
    pub total: Count,
    pub by_kind: Vec<Count>,
    pub by_severity: Vec<Count>,
    pub by_source: Vec<Count>,
    pub by_workload: Vec<Count>,
    pub by_team: Vec<Count>,
}

/// A measure of the support process this period and the period before.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Measure {
    /// The KPI it matches: `mtta`, `mttr`, `first_response_sla`, `resolution_sla`,
    /// `reopen_rate`.
    pub name: String,
    pub title: String,
    pub unit: Unit,
    pub current: Option<f64>,
    pub previous: Option<f64>,
    pub trend: Option<Direction>,
}

/// Where work waited: time the tickets resolved in the period spent in one status.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StatusTime {
    pub status: Status,
    pub total_hours: f64,
    /// Per resolved ticket.
    pub mean_hours: f64,
    /// Of all the time those tickets were open.
    pub share_percent: f64,
}

/// A ticket reopened in the period and what was said when it was.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Reopened {
    pub key: String,
    pub title: String,
    pub team: Option<String>,
    pub source: String,
    pub reopened_at: DateTime<Utc>,
    pub reopened_by: String,
    /// The first comment written at or after the reopening, when there is one.
    pub reason: Option<String>,
}

/// Why tickets came back.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Reopens {
    /// Tickets reopened in the period.
    pub count: usize,
    pub by_team: Vec<Count>,
    pub by_source: Vec<Count>,
    /// The newest, up to ten.
    pub tickets: Vec<Reopened>,
}

/// Trusted Advisor's estimated monthly savings over the period, from the
/// `trusted_advisor_savings` KPI series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Savings {
    pub at_start: Option<f64>,
    pub at_end: Option<f64>,
    /// The value at the end of each day (or week, for long periods).
    pub points: Vec<SavingsPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SavingsPoint {
    pub at: DateTime<Utc>,
    pub value: Option<f64>,
}

/// A trend report over a period, compared with the period just before.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TrendReport {
    pub period: Period,
    pub previous_period: Period,
    pub generated_at: DateTime<Utc>,
    pub volume: Volume,
    pub measures: Vec<Measure>,
    /// Dedup keys that fired more than once in the period, most first.
    pub recurring_problems: Vec<Recurring>,
    /// Signals by source, kind and service, most first.
    pub signal_types: Vec<SignalType>,
    pub time_in_status: Vec<StatusTime>,
    pub reopens: Reopens,
    pub trusted_advisor_savings: Savings,
}

fn tally(rows: &[TicketFacts], key: impl Fn(&TicketFacts) -> String) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for f in rows.iter().filter(|f| f.created > 0) {
        *out.entry(key(f)).or_insert(0) += f.created;
    }
    out
}

fn counts(
    now: &[TicketFacts],
    before: &[TicketFacts],
    key: impl Fn(&TicketFacts) -> String + Copy,
) -> Vec<Count> {
    let (a, b) = (tally(now, key), tally(before, key));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    let mut out: Vec<Count> = names
        .into_iter()
        .map(|n| Count {
            name: n.clone(),
            current: a.get(n).copied().unwrap_or(0),
            previous: b.get(n).copied().unwrap_or(0),
        })
        .collect();
    out.sort_by(|x, y| y.current.cmp(&x.current).then(x.name.cmp(&y.name)));
    out
}

fn or_none(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(none)".to_owned())
}

/// The five process measures from one period's facts, in business seconds and percent.
fn process(rows: &[TicketFacts]) -> [Option<f64>; 5] {
    let sum = |f: fn(&TicketFacts) -> i64| rows.iter().map(f).sum::<i64>() as f64;
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    let responded = sum(|f| f.responded);
    let resolved = sum(|f| f.resolved);
    let fr = sum(|f| f.response_met);
    let res = sum(|f| f.resolution_met);
    [
        ratio(sum(|f| f.response_seconds), responded),
        ratio(sum(|f| f.resolution_seconds), resolved),
        ratio(fr, fr + sum(|f| f.response_missed)).map(|r| r * 100.0),
        ratio(res, res + sum(|f| f.resolution_missed)).map(|r| r * 100.0),
        ratio(sum(|f| f.reopened), resolved).map(|r| r * 100.0),
    ]
}

impl Desk {
    /// The trend report of `period` against the period before it.
    pub async fn trend_report(&self, actor: &Actor, period: Period) -> Result<TrendReport> {
        crate::kpis::require_overview(actor)?;
        let now = self.now();
        let previous = period.previous();
        // The reads are independent: run them side by side on the reader pool.
        let (facts, recurring_problems, signal_types, reopens, savings) = futures::try_join!(
            // Both periods from one read of the tickets.
            async {
                Ok::<_, crate::Error>(
                    self.db()
                        .ticket_facts_of(
                            &[(period.from, period.to), (previous.from, previous.to)],
                            now,
                        )
                        .await?,
                )
            },
            async {
                Ok(self
                    .db()
                    .recurring_signals(period.from, period.to, TOP)
                    .await?)
            },
            async { Ok(self.db().signal_types(period.from, period.to, TOP).await?) },
            self.reopens_in(period),
            self.savings_in(period),
        )?;
        let mut facts = facts.into_iter();
        let (current, before) = (
            facts.next().unwrap_or_default(),
            facts.next().unwrap_or_default(),
        );

        let total = |rows: &[TicketFacts]| rows.iter().map(|f| f.created).sum::<i64>();
        let volume = Volume {
            total: Count {
                name: "tickets".into(),
                current: total(&current),
                previous: total(&before),
            },
            by_kind: counts(&current, &before, |f| f.kind.clone()),
            by_severity: counts(&current, &before, |f| f.severity.clone()),
            by_source: counts(&current, &before, |f| f.source.clone()),
            by_workload: counts(&current, &before, |f| or_none(&f.workload)),
            by_team: counts(&current, &before, |f| or_none(&f.team)),
        };

        let (now_m, before_m) = (process(&current), process(&before));
        let defs = [
            (
                "mtta",
                "Mean time to acknowledge",
                Unit::Seconds,
                Better::Lower,
            ),
            ("mttr", "Mean time to resolve", Unit::Seconds, Better::Lower),
            (
                "first_response_sla",
                "First-response SLA compliance",
                Unit::Percent,
                Better::Higher,
            ),
            (
                "resolution_sla",
                "Resolution SLA compliance",
                Unit::Percent,
                Better::Higher,
            ),
            ("reopen_rate", "Reopen rate", Unit::Percent, Better::Lower),
        ];
        let measures = defs
            .iter()
            .zip(now_m.iter().zip(before_m.iter()))
            .map(|((name, title, unit, better), (c, p))| Measure {
                name: (*name).to_owned(),
                title: (*title).to_owned(),
                unit: *unit,
                current: *c,
                previous: *p,
                trend: match (c, p) {
                    (Some(c), Some(p)) => Some(direction(*better, *p, *c)),
                    _ => None,
                },
            })
            .collect();

        let resolved: i64 = current.iter().map(|f| f.resolved).sum();
        let mut waited = [0i64; 4];
        for f in &current {
            for (w, s) in waited.iter_mut().zip(f.status_seconds) {
                *w += s;
            }
        }
        let all: i64 = waited.iter().sum();
        let time_in_status = [
            Status::New,
            Status::Acknowledged,
            Status::InProgress,
            Status::Pending,
        ]
        .into_iter()
        .zip(waited)
        .map(|(status, secs)| StatusTime {
            status,
            total_hours: secs as f64 / 3600.0,
            mean_hours: if resolved > 0 {
                secs as f64 / 3600.0 / resolved as f64
            } else {
                0.0
            },
            share_percent: if all > 0 {
                100.0 * secs as f64 / all as f64
            } else {
                0.0
            },
        })
        .collect();

        Ok(TrendReport {
            period,
            previous_period: previous,
            generated_at: now,
            volume,
            measures,
            recurring_problems,
            signal_types,
            time_in_status,
            reopens,
            trusted_advisor_savings: savings,
        })
    }

    /// Uses these report schedules.
    pub fn with_report_schedules(
        mut self,
        schedules: Vec<opsdesk_domain::report::ReportSchedule>,
    ) -> Desk {
        self.settings.reports = std::sync::Arc::new(schedules);
        self
    }

    /// Sends each scheduled report whose period has ended and that has not gone out yet, to
    /// its channel through the outbox. Returns how many were queued.
    pub async fn deliver_reports(&self) -> Result<usize> {
        let mut queued = 0;
        for schedule in self.settings.reports.iter() {
            let now = self.now();
            let period = schedule.period(now)?;
            if self.db().report_sent(&schedule.name, period.from).await? {
                continue;
            }
            let actor = Actor::new(SCHEDULER, opsdesk_domain::Role::Admin);
            let report = self.trend_report(&actor, period).await?;
            let d = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
            let n = opsdesk_domain::channel::Notification {
                event: opsdesk_domain::channel::NotificationEvent::Report,
                ticket_id: None,
                ticket_key: None,
                title: format!(
                    "Support trends {} to {}",
                    d(period.from),
                    d(period.to - chrono::Duration::seconds(1))
                ),
                severity: None,
                status: None,
                workload: None,
                environment: None,
                team: None,
                summary: report.markdown(),
                url: self.settings.notify.base_url.as_ref().map(|b| {
                    format!(
                        "{}/api/v1/reports/trends?period={}..{}",
                        b.trim_end_matches('/'),
                        d(period.from),
                        d(period.to - chrono::Duration::seconds(1))
                    )
                }),
                at: now,
                recipients: Vec::new(),
                report: Some(serde_json::json!(report)),
            };
            let item = opsdesk_store::NewOutboxItem {
                idempotency_key: format!(
                    "report-{}-{}-{}",
                    schedule.name,
                    d(period.from),
                    schedule.channel
                ),
                ticket_id: None,
                event: n.event.as_str().to_owned(),
                channel: schedule.channel.clone(),
                notification: serde_json::json!(n),
            };
            let name = schedule.name.clone();
            let sent = self
                .change(move |tx, now| {
                    Box::pin(async move {
                        if !tx.claim_report_run(&name, period.from, now).await? {
                            return Ok(false);
                        }
                        tx.enqueue(&[item], now).await?;
                        Ok(true)
                    })
                })
                .await?;
            queued += usize::from(sent);
        }
        Ok(queued)
    }

    async fn reopens_in(&self, period: Period) -> Result<Reopens> {
        let ids = self
            .db()
            .reopened_tickets(period.from, period.to, 500)
            .await?;
        let tickets: BTreeMap<i64, Ticket> = self
            .db()
            .get_tickets(&ids)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let history = self.db().audit_of(&ids).await?;
        let mut found: Vec<(DateTime<Utc>, String, i64)> = history
            .iter()
            .filter(|e| e.at >= period.from && e.at < period.to)
            .filter_map(|e| {
                let c = e.changes.get("status")?;
                let done = |v: &serde_json::Value| {
                    v.as_str()
                        .and_then(Status::parse)
                        .is_some_and(|s| !s.is_open())
                };
                (done(&c.before) && !done(&c.after))
                    .then(|| (e.at, e.actor.clone(), e.ticket_id.unwrap_or(0)))
            })
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        let mut by_team: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_source: BTreeMap<String, i64> = BTreeMap::new();
        for (_, _, id) in &found {
            if let Some(t) = tickets.get(id) {
                *by_team.entry(or_none(&t.team)).or_insert(0) += 1;
                *by_source.entry(t.source.clone()).or_insert(0) += 1;
            }
        }
        let newest: Vec<(DateTime<Utc>, String, i64)> =
            found.iter().take(TOP as usize).cloned().collect();
        let shown: Vec<i64> = newest.iter().map(|x| x.2).collect();
        let comments = self.db().comments_of(&shown).await?;
        let listed = newest
            .into_iter()
            .filter_map(|(at, by, id)| {
                let t = tickets.get(&id)?;
                let reason = comments
                    .iter()
                    .filter(|c| c.ticket_id == id && c.created_at >= at)
                    .min_by_key(|c| (c.created_at, c.id))
                    .map(|c| c.body.clone());
                Some(Reopened {
                    key: t.key.clone(),
                    title: t.title.clone(),
                    team: t.team.clone(),
                    source: t.source.clone(),
                    reopened_at: at,
                    reopened_by: by,
                    reason,
                })
            })
            .collect();
        let as_counts = |m: BTreeMap<String, i64>| {
            let mut v: Vec<Count> = m
                .into_iter()
                .map(|(name, current)| Count {
                    name,
                    current,
                    previous: 0,
                })
                .collect();
            v.sort_by(|a, b| b.current.cmp(&a.current).then(a.name.cmp(&b.name)));
            v
        };
        Ok(Reopens {
            count: found.len(),
            by_team: as_counts(by_team),
            by_source: as_counts(by_source),
            tickets: listed,
        })
    }

    async fn savings_in(&self, period: Period) -> Result<Savings> {
        let name = "trusted_advisor_savings";
        let value_at = |at| async move {
            Ok::<_, crate::Error>(
                self.db()
                    .kpi_point_before(name, "", at)
                    .await?
                    .and_then(|p| p.value),
            )
        };
        let days = (period.to - period.from).num_days();
        let step = if days > 62 {
            chrono::Duration::weeks(1)
        } else {
            chrono::Duration::days(1)
        };
        let mut points = Vec::new();
        let mut at = period.from + step;
        while at <= period.to {
            points.push(SavingsPoint {
                at,
                value: value_at(at).await?,
            });
            at += step;
        }
        Ok(Savings {
            at_start: value_at(period.from).await?,
            at_end: value_at(period.to).await?,
            points,
        })
    }
}

fn change(current: f64, previous: f64) -> String {
    if previous == 0.0 {
        return if current == 0.0 {
            "=".into()
        } else {
            "new".into()
        };
    }
    format!("{:+.0}%", 100.0 * (current - previous) / previous)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl TrendReport {
    /// The report as Markdown, for people and email.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let d = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        let _ = writeln!(
            o,
            "# Support trends {} to {}\n",
            d(self.period.from),
            d(self.period.to)
        );
        let _ = writeln!(
            o,
            "Compared with {} to {}. Generated {}.\n",
            d(self.previous_period.from),
            d(self.previous_period.to),
            d(self.generated_at)
        );
        let _ = writeln!(
            o,
            "## Support process\n\n| Measure | This period | Before | Trend |\n|---|---:|---:|---|"
        );
        for m in &self.measures {
            let v = |x: Option<f64>| x.map_or("-".to_owned(), |v| show(m.unit, v));
            let trend = m.trend.map_or("-", |t| match t {
                Direction::Improving => "improving",
                Direction::Worsening => "worsening",
                Direction::Steady => "steady",
            });
            let _ = writeln!(
                o,
                "| {} | {} | {} | {trend} |",
                m.title,
                v(m.current),
                v(m.previous)
            );
        }
        let v = &self.volume;
        let _ = writeln!(
            o,
            "\n## Volume\n\n{} tickets created ({} before, {}).\n",
            v.total.current,
            v.total.previous,
            change(v.total.current as f64, v.total.previous as f64)
        );
        for (title, rows) in [
            ("kind", &v.by_kind),
            ("severity", &v.by_severity),
            ("source", &v.by_source),
            ("workload", &v.by_workload),
            ("team", &v.by_team),
        ] {
            let _ = writeln!(
                o,
                "| By {title} | This period | Before | Change |\n|---|---:|---:|---:|"
            );
            for c in rows {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    cell(&c.name),
                    c.current,
                    c.previous,
                    change(c.current as f64, c.previous as f64)
                );
            }
            o.push('\n');
        }
        let _ = writeln!(o, "## Recurring problems\n");
        if self.recurring_problems.is_empty() {
            let _ = writeln!(o, "No problem fired more than once.\n");
        } else {
            let _ = writeln!(
                o,
                "| Source | Problem | Times | Ticket |\n|---|---|---:|---|"
            );
            for r in &self.recurring_problems {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    cell(&r.source),
                    cell(&r.title),
                    r.occurrences,
                    r.ticket_id.map_or("-".to_owned(), Ticket::key_for)
                );
            }
            o.push('\n');
        }
        if !self.signal_types.is_empty() {
            let _ = writeln!(
                o,
                "| Signal source | Kind | Service | Signals |\n|---|---|---|---:|"
            );
            for s in &self.signal_types {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    cell(&s.source),
                    cell(&s.kind),
                    cell(s.service.as_deref().unwrap_or("-")),
                    s.occurrences
                );
            }
            o.push('\n');
        }
        let _ = writeln!(
            o,
            "## Where work waits\n\nTime the tickets resolved in the period spent in each status.\n\n| Status | Hours | Per ticket | Share |\n|---|---:|---:|---:|"
        );
        for s in &self.time_in_status {
            let _ = writeln!(
                o,
                "| {} | {:.1} | {:.1} | {:.0}% |",
                s.status, s.total_hours, s.mean_hours, s.share_percent
            );
        }
        let r = &self.reopens;
        let _ = writeln!(
            o,
            "\n## Reopened tickets\n\n{} reopened in the period.\n",
            r.count
        );
        for t in &r.tickets {
            let _ = writeln!(
                o,
                "- {} {} (team {}, source {}), reopened {} by {}{}",
                t.key,
                cell(&t.title),
                t.team.as_deref().unwrap_or("none"),
                t.source,
                d(t.reopened_at),
                t.reopened_by,
                t.reason
                    .as_deref()
                    .map(|r| format!(": \"{}\"", cell(r).chars().take(200).collect::<String>()))
                    .unwrap_or_default()
            );
        }
        let s = &self.trusted_advisor_savings;
        let usd = |v: Option<f64>| v.map_or("-".to_owned(), |v| show(Unit::Usd, v));
        let _ = writeln!(
            o,
            "\n## Trusted Advisor savings\n\nEstimated monthly savings flagged: {} at the start, {} at the end.",
            usd(s.at_start),
            usd(s.at_end)
        );
        o
    }

    /// The report as CSV rows `section,name,current,previous`.
    pub fn csv(&self) -> std::result::Result<String, csv::Error> {
        let mut w = crate::csv_writer::CsvWriter::from_writer(Vec::new());
        w.write_record(["section", "name", "current", "previous"])?;
        let num = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
        for m in &self.measures {
            w.write_record(["measure", &m.name, &num(m.current), &num(m.previous)])?;
        }
        let v = &self.volume;
        w.write_record([
            "volume",
            "total",
            &v.total.current.to_string(),
            &v.total.previous.to_string(),
        ])?;
        for (section, rows) in [
            ("volume_by_kind", &v.by_kind),
            ("volume_by_severity", &v.by_severity),
            ("volume_by_source", &v.by_source),
            ("volume_by_workload", &v.by_workload),
            ("volume_by_team", &v.by_team),
            ("reopens_by_team", &self.reopens.by_team),
            ("reopens_by_source", &self.reopens.by_source),
        ] {
            for c in rows {
                w.write_record([
                    section,
                    &c.name,
                    &c.current.to_string(),
                    &c.previous.to_string(),
                ])?;
            }
        }
        for r in &self.recurring_problems {
            w.write_record([
                "recurring",
                &format!("{} {}", r.source, r.dedup_key),
                &r.occurrences.to_string(),
                "",
            ])?;
        }
        for s in &self.signal_types {
            let name = format!(
                "{} {} {}",
                s.source,
                s.kind,
                s.service.as_deref().unwrap_or("")
            );
            w.write_record([
                "signal_type",
                name.trim_end(),
                &s.occurrences.to_string(),
                "",
            ])?;
        }
        for s in &self.time_in_status {
            w.write_record([
                "hours_in_status",
                s.status.as_str(),
                &format!("{:.3}", s.total_hours),
                "",
            ])?;
        }
        let s = &self.trusted_advisor_savings;
        w.write_record([
            "trusted_advisor_savings",
            "usd",
            &num(s.at_end),
            &num(s.at_start),
        ])?;
        let bytes = w.into_inner()?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
