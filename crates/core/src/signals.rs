//! Ingest: signals from AWS and monitors open, update, resolve and reopen tickets, one ticket
//! per real problem, each delivery taking effect once.
//!
//! The pipeline for one signal: receipt (a repeated delivery stops here), workload match,
//! maintenance, severity rules, correlation with the open ticket, ticket change, stored signal.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::{AuditEntry, Changes, FieldChange};
use opsdesk_domain::channel::NotificationEvent;
use opsdesk_domain::signal::rules::{decide, default_rules, Decision, SeverityRule};
use opsdesk_domain::signal::source::{self, Source};
use opsdesk_domain::signal::workload::match_workload;
use opsdesk_domain::signal::Pages;
use opsdesk_domain::validation::NewTicket;
use opsdesk_domain::{Kind, Permission, Signal, SignalState, Status, Ticket, Validated, Workload};
use opsdesk_store::{
    Correlation, MaintenanceWindow, NewMaintenanceWindow, NewOutboxItem, RawJson, SignalRecord, Tx,
};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use tokio::sync::{mpsc, oneshot};

use crate::notify::Routing;
use crate::{Actor, Desk, Error, Result};

/// How signals become tickets, beyond the severity rules' defaults.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Tried in order before the built-in rules.
    pub rules: Vec<SeverityRule>,
    /// A problem that fires again this soon after its ticket was resolved reopens that ticket.
    pub reopen_window: chrono::Duration,
    /// This many firing/resolved flips within `flapping_window` mark a problem as flapping.
    pub flapping_changes: usize,
    pub flapping_window: chrono::Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            rules: Vec::new(),
            reopen_window: chrono::Duration::hours(24),
            flapping_changes: 4,
            flapping_window: chrono::Duration::hours(1),
        }
    }
}

/// What one signal did.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Outcome {
    /// The stored signal; none for a repeated delivery.
    pub signal_id: Option<i64>,
    pub ticket_id: Option<i64>,
    pub effect: Effect,
}

/// The effect of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// A new ticket.
    Created,
    /// Counted on the open ticket for the same problem.
    Occurrence,
    Acknowledged,
    Resolved,
    Reopened,
    /// Stored, with no ticket change: no rule asked for a ticket, expected during maintenance,
    /// damped while flapping, or nothing open to resolve.
    Recorded,
    /// The same news arrived before; nothing changed.
    Duplicate,
    /// Another page of news its source split over several messages (an AWS Health event
    /// with many affected resources): its resources joined the ticket's, and the ticket
    /// was decided again on all of them.
    Merged,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Created => "created",
            Effect::Occurrence => "occurrence",
            Effect::Acknowledged => "acknowledged",
            Effect::Resolved => "resolved",
            Effect::Reopened => "reopened",
            Effect::Recorded => "recorded",
            Effect::Duplicate => "duplicate",
            Effect::Merged => "merged",
        }
    }
}

/// Workloads and user maintenance windows, read once for many signals.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    workloads: Vec<Workload>,
    windows: Vec<MaintenanceWindow>,
}

/// The catalog as of a moment; changes made through this node drop it at once, changes made
/// through other nodes are seen within `CATALOG_TTL`.
#[derive(Debug, Default)]
pub(crate) struct CatalogCache(Mutex<Option<(Instant, Arc<Catalog>)>>);

const CATALOG_TTL: Duration = Duration::from_secs(2);

impl CatalogCache {
    pub(crate) fn clear(&self) {
        if let Ok(mut c) = self.0.lock() {
            *c = None;
        }
    }
}

impl Catalog {
    /// Maintenance: whether the signal falls in a window people planned for its workload, and
    /// its source lets such a window expect it.
    fn expected(
        &self,
        source: Option<&dyn Source>,
        workload: Option<&Workload>,
        s: &Signal,
    ) -> bool {
        let Some(workload) = workload else {
            return false;
        };
        source.is_none_or(|src| src.expected_in_maintenance(s))
            && self.windows.iter().any(|w| {
                w.origin == "user"
                    && w.workload.as_deref() == Some(workload.name.as_str())
                    && w.start <= s.occurred_at
                    && w.end.is_none_or(|end| s.occurred_at < end)
            })
    }
}

/// How many signals one ingest transaction takes at most; the rest wait for the next.
const GROUP_SIGNALS: usize = 1_000;

/// One request's signals, waiting to be written.
pub(crate) struct SignalBatch {
    actor: Actor,
    signals: Vec<Signal>,
    /// Each signal's payload as stored, written out before the batch queues for the
    /// single writer.
    raws: Vec<RawJson>,
}

type Waiting = (Arc<SignalBatch>, oneshot::Sender<Result<Vec<Outcome>>>);

/// The queue in front of ingest: one task takes what has gathered and writes it together.
#[derive(Default)]
pub(crate) struct Intake {
    queue: OnceLock<mpsc::Sender<Waiting>>,
}

impl Intake {
    async fn submit(
        &self,
        desk: &Desk,
        actor: Actor,
        signals: Vec<Signal>,
    ) -> Result<Vec<Outcome>> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4096);
            // The task's own handle has an intake of its own, so it ends when the last
            // handle holding this queue is dropped.
            let writer = Desk {
                intake: Arc::new(Intake::default()),
                ..desk.clone()
            };
            desk.db().spawn_beside_writer(writer.gather(rx));
            tx
        });
        let (done, answer) = oneshot::channel();
        queue
            .send((
                Arc::new(SignalBatch {
                    actor,
                    raws: signals.iter().map(|s| RawJson::of(&s.raw)).collect(),
                    signals,
                }),
                done,
            ))
            .await
            .map_err(|_| {
                Error::Store(opsdesk_store::StoreError::Commit(
                    "ingest has stopped".into(),
                ))
            })?;
        answer.await.map_err(|_| {
            Error::Store(opsdesk_store::StoreError::Commit(
                "ingest dropped the delivery".into(),
            ))
        })?
    }
}

impl Desk {
    async fn gather(self, mut rx: mpsc::Receiver<Waiting>) {
        while let Some(first) = rx.recv().await {
            let mut count = first.0.signals.len();
            let mut group = vec![first];
            while count < GROUP_SIGNALS {
                match rx.try_recv() {
                    Ok(next) => {
                        count += next.0.signals.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.write_group(group).await;
        }
    }

    async fn write_group(&self, group: Vec<Waiting>) {
        // Signals per transaction = opsdesk_signals_total / opsdesk_ingest_groups_total.
        metrics::counter!("opsdesk_ingest_groups_total").increment(1);
        let batches: Vec<Arc<SignalBatch>> = group.iter().map(|(d, _)| d.clone()).collect();
        match self.ingest_together(batches).await {
            Ok(outcomes) => {
                for ((_, done), outcomes) in group.into_iter().zip(outcomes) {
                    let _ = done.send(Ok(outcomes));
                }
            }
            Err(e) if group.len() == 1 => {
                if let Some((_, done)) = group.into_iter().next() {
                    let _ = done.send(Err(e));
                }
            }
            Err(_) => {
                for (batch, done) in group {
                    let result = self
                        .ingest_together(vec![batch])
                        .await
                        .map(|mut o| o.pop().unwrap_or_default());
                    let _ = done.send(result);
                }
            }
        }
    }
}

/// The `source` label of `opsdesk_signals_total`: the known sources, else `other`, so that
/// senders cannot grow the label set.
fn metric_source(source: &str) -> &'static str {
    opsdesk_domain::signal::source::named(source).map_or("other", |s| s.name())
}

/// Ticket sources are short lowercase names; EventBridge sources of unclassified events may not be.
fn ticket_source(source: &str) -> String {
    let s: String = source
        .chars()
        .take(64)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "signal".to_owned()
    } else {
        s
    }
}

fn tag(s: &str) -> Option<String> {
    let t: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.:/".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    (!t.trim_matches('-').is_empty()).then_some(t)
}

/// Tags from what the source says of its news: who it is for (routing rules can send
/// `persona:security` or `persona:billing` to their own channels), whether it asks for
/// action, and the source's own (`security` on AWS Health abuse reports).
fn signal_tags(s: &Signal, source: Option<&dyn Source>) -> Vec<String> {
    let mut tags: Vec<String> = s
        .personas
        .iter()
        .filter_map(|p| tag(&format!("persona:{p}")))
        .collect();
    if let Some(a) = &s.actionability {
        tags.extend(tag(&format!("actionability:{a}")));
    }
    if let Some(src) = source {
        tags.extend(src.ticket_tags(s).iter().map(|t| (*t).to_owned()));
    }
    tags
}

fn description_for(s: &Signal, workload: Option<&Workload>, decision: &Decision) -> String {
    let mut d = String::new();
    if !s.body.is_empty() {
        d.push_str(&s.body);
        d.push_str("\n\n");
    }
    d.push_str(&format!("- Source: {} ({})\n", s.source, s.kind));
    if let Some(a) = &s.account {
        d.push_str(&format!("- Account: {a}\n"));
    }
    if let Some(r) = &s.region {
        d.push_str(&format!("- Region: {r}\n"));
    }
    if let Some(svc) = &s.service {
        d.push_str(&format!("- Service: {svc}\n"));
    }
    if let Some(a) = &s.actionability {
        d.push_str(&format!("- Actionability: {a}\n"));
    }
    if !s.personas.is_empty() {
        d.push_str(&format!("- For: {}\n", s.personas.join(", ")));
    }
    if let Some(w) = workload {
        d.push_str(&format!("- Workload: {} ({})\n", w.name, w.environment));
    }
    if let Some(win) = &s.window {
        let end = win
            .end
            .map(|e| e.to_rfc3339())
            .unwrap_or_else(|| "open".into());
        d.push_str(&format!(
            "- Maintenance window: {} to {end}\n",
            win.start.to_rfc3339()
        ));
    }
    if let Some(v) = s.savings {
        d.push_str(&format!("- Estimated monthly savings: ${v:.2}\n"));
    }
    for r in s.resources.iter().take(50) {
        d.push_str(&format!("- Resource: {r}\n"));
    }
    d.push_str(&format!("- Severity from: {}\n", decision.rule));
    d.chars()
        .take(opsdesk_domain::validation::DESCRIPTION_MAX)
        .collect()
}

fn new_ticket(
    s: &Signal,
    source: Option<&dyn Source>,
    workload: Option<&Workload>,
    decision: &Decision,
) -> Result<NewTicket> {
    let title: String = s
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut tags: Vec<String> = [Some(s.source.as_str()), s.category.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(tag)
        .collect();
    if workload.is_some_and(Workload::is_production) {
        tags.push("production".into());
    }
    tags.extend(signal_tags(s, source));
    let input = NewTicket {
        title: if title.trim().is_empty() {
            "Signal".into()
        } else {
            title
        },
        description: description_for(s, workload, decision),
        kind: source.map_or(Kind::Incident, |src| src.kind_for(s)),
        severity: decision.severity,
        requester: None,
        assignee: None,
        team: workload.and_then(|w| w.team.clone()),
        workload: workload.map(|w| w.name.clone()),
        tags,
        source: Some(ticket_source(&s.source)),
        dedup_key: Some(s.dedup_key.chars().take(512).collect()),
    };
    Ok(input.validate()?)
}

/// Everything about one signal that does not need the database.
struct Assessed<'a> {
    actor: &'a Actor,
    /// As received: what is stored.
    signal: &'a Signal,
    /// Its source in the registry; none for an unclassified event.
    source: Option<&'static dyn Source>,
    /// With the entities of every page received so far: what the ticket is decided on.
    view: &'a Signal,
    /// The pages received so far, for a signal that is one page of several.
    pages: Option<Pages>,
    /// Another page of the communication the problem's last signal began.
    continues: bool,
    raw: &'a RawJson,
    workload: Option<&'a Workload>,
    decision: Decision,
    expected: bool,
}

fn change(field: &str, before: Value, after: Value) -> (String, FieldChange) {
    (field.to_owned(), FieldChange { before, after })
}

fn signal_change(id: i64, s: &Signal, rule: &str) -> (String, FieldChange) {
    change(
        "signal",
        Value::Null,
        json!({
            "id": id,
            "source": s.source,
            "state": s.state,
            "kind": s.kind,
            "title": s.title,
            "body": s.body,
            "occurred_at": s.occurred_at,
            "rule": rule,
        }),
    )
}

/// One ingest transaction: the problems and tickets its signals touch are read once, changed
/// in memory, and written back once at the end, so a batch costs a few statements rather than
/// several per signal.
struct IngestTx<'a> {
    tx: &'a mut Tx,
    settings: &'a IngestSettings,
    now: DateTime<Utc>,
    correlations: HashMap<(String, String), Correlation>,
    /// Ticket id -> (as read, as it is now).
    tickets: HashMap<i64, (Ticket, Ticket)>,
    changed: Vec<Correlation>,
    records: Vec<SignalRecord>,
    receipts: Vec<(String, DateTime<Utc>)>,
    next_id: i64,
    routing: &'a Routing,
    outbox: Vec<NewOutboxItem>,
    workloads: &'a [Workload],
}

impl IngestTx<'_> {
    async fn audit(
        &mut self,
        actor: &Actor,
        action: &str,
        ticket_id: i64,
        changes: Changes,
    ) -> Result<()> {
        self.tx
            .append_audit(AuditEntry {
                at: self.now,
                actor: actor.name.clone(),
                action: action.to_owned(),
                ticket_id: Some(ticket_id),
                changes,
            })
            .await?;
        Ok(())
    }

    async fn apply(&mut self, a: &Assessed<'_>) -> Result<Outcome> {
        let s = a.signal;
        let signal_id = self.next_id;
        self.next_id += 1;
        let key = (s.source.clone(), s.dedup_key.clone());
        let correlation = self.correlations.get(&key).cloned();
        let ticket = correlation
            .as_ref()
            .and_then(|c| self.tickets.get(&c.ticket_id))
            .map(|(_, now)| now.clone());
        let (effect, ticket_id) = match (correlation, ticket) {
            (Some(c), Some(t)) => self.follow_up(a, signal_id, c, t).await?,
            _ => self.first_sight(a, signal_id).await?,
        };
        let announced = a.source.filter(|src| src.keeps_windows());
        if let (Some(win), Some(_), Some(src)) = (&s.window, ticket_id, announced) {
            self.tx
                .save_maintenance_window(
                    &NewMaintenanceWindow {
                        origin: src.name().to_owned(),
                        dedup_key: Some(s.dedup_key.clone()),
                        workload: a.workload.map(|w| w.name.clone()),
                        title: s.title.clone(),
                        service: s.service.clone(),
                        start: win.start,
                        end: win.end,
                        resources: a.view.resources.clone(),
                        ticket_id,
                        created_by: a.actor.name.clone(),
                    },
                    self.now,
                )
                .await?;
        }
        self.receipts.push((s.receipt_key.clone(), self.now));
        self.records.push(SignalRecord {
            id: signal_id,
            received_at: self.now,
            source: s.source.clone(),
            dedup_key: s.dedup_key.clone(),
            state: s.state.as_str().to_owned(),
            kind: s.kind.clone(),
            category: s.category.clone(),
            severity: a.decision.severity.as_str().to_owned(),
            account: s.account.clone(),
            region: s.region.clone(),
            service: s.service.clone(),
            resources: s.resources.clone(),
            title: s.title.clone(),
            body: s.body.clone(),
            occurred_at: s.occurred_at,
            workload: a.workload.map(|w| w.name.clone()),
            classified: s.classified,
            expected: a.expected,
            savings: s.savings,
            rule: a.decision.rule.clone(),
            outcome: effect.as_str().to_owned(),
            ticket_id,
            raw: a.raw.clone(),
        });
        Ok(Outcome {
            signal_id: Some(signal_id),
            ticket_id,
            effect,
        })
    }

    /// A problem with no ticket yet, or whose ticket was resolved too long ago to reopen.
    async fn first_sight(
        &mut self,
        a: &Assessed<'_>,
        signal_id: i64,
    ) -> Result<(Effect, Option<i64>)> {
        let s = a.signal;
        if s.state != SignalState::Firing || !a.decision.ticket || a.expected {
            return Ok((Effect::Recorded, None));
        }
        let input = new_ticket(a.view, a.source, a.workload, &a.decision)?;
        let mut ticket = Ticket::open(input, self.now);
        ticket.id = self.tx.insert_ticket(&ticket).await?;
        ticket.key = Ticket::key_for(ticket.id);
        let mut changes = ticket.creation_changes();
        changes.extend([signal_change(signal_id, s, &a.decision.rule)]);
        self.audit(a.actor, "ticket.created", ticket.id, changes)
            .await?;
        let items = self
            .routing
            .items(self.tx, NotificationEvent::Created, &ticket, self.now)
            .await?;
        self.outbox.extend(items);
        self.tickets
            .insert(ticket.id, (ticket.clone(), ticket.clone()));
        self.save_correlation(Correlation {
            source: s.source.clone(),
            dedup_key: s.dedup_key.clone(),
            ticket_id: ticket.id,
            occurrences: 1,
            first_seen_at: self.now,
            last_seen_at: self.now,
            last_state: s.state,
            state_changes: Vec::new(),
            flapping: false,
            pages: a.pages.clone(),
        });
        Ok((Effect::Created, Some(ticket.id)))
    }

    /// A problem that already has a ticket.
    async fn follow_up(
        &mut self,
        a: &Assessed<'_>,
        signal_id: i64,
        mut c: Correlation,
        current: Ticket,
    ) -> Result<(Effect, Option<i64>)> {
        let s = a.signal;
        let settings = self.settings;
        if s.state == SignalState::Firing && !current.status.is_open() {
            let recent = current
                .resolved_at
                .is_some_and(|at| self.now - at <= settings.reopen_window);
            if !recent {
                // An old problem back again is a new ticket.
                return self.first_sight(a, signal_id).await;
            }
        }

        // Flapping: firing/resolved flips within the window.
        let was_flapping = c.flapping;
        let flips = matches!(
            (c.last_state, s.state),
            (SignalState::Resolved, SignalState::Firing)
                | (
                    SignalState::Firing | SignalState::Acknowledged,
                    SignalState::Resolved
                )
        );
        if flips {
            c.state_changes.push(self.now);
        }
        c.state_changes
            .retain(|t| self.now - *t <= settings.flapping_window);
        c.flapping = c.state_changes.len() >= settings.flapping_changes;
        if s.state != SignalState::Acknowledged {
            c.last_state = s.state;
        }
        c.last_seen_at = self.now;

        let mut next = current.clone();
        let mut changes = Changes::new();
        if let Some(pages) = &a.pages {
            let before = c
                .pages
                .as_ref()
                .filter(|p| p.communication == pages.communication);
            changes.extend([change(
                "pages",
                json!(before.map(|p| &p.received)),
                json!({
                    "received": pages.received,
                    "total": pages.total,
                    "resources": s.resources.len(),
                }),
            )]);
            c.pages = Some(pages.clone());
        }
        let (action, effect) = match s.state {
            SignalState::Firing if a.continues && current.status.is_open() => {
                ("ticket.merged", Effect::Merged)
            }
            SignalState::Firing if current.status.is_open() => {
                ("ticket.occurrence", Effect::Occurrence)
            }
            SignalState::Firing if c.flapping => ("ticket.occurrence", Effect::Recorded),
            SignalState::Firing => {
                let t = current.status.transition_to(Status::InProgress)?;
                next.apply_transition(t, self.now);
                changes.extend([change(
                    "reason",
                    Value::Null,
                    json!(format!("{} fired again within the reopen window", s.source)),
                )]);
                ("ticket.reopened", Effect::Reopened)
            }
            SignalState::Acknowledged if current.status == Status::New => {
                let t = current.status.transition_to(Status::Acknowledged)?;
                next.apply_transition(t, self.now);
                ("ticket.acknowledged", Effect::Acknowledged)
            }
            SignalState::Resolved if current.status.is_open() && !c.flapping => {
                let t = current.status.transition_to(Status::Resolved)?;
                next.apply_transition(t, self.now);
                changes.extend([change(
                    "reason",
                    Value::Null,
                    json!(format!(
                        "{} says the problem is over ({})",
                        s.source, s.kind
                    )),
                )]);
                ("ticket.resolved", Effect::Resolved)
            }
            SignalState::Acknowledged | SignalState::Resolved => {
                ("ticket.signal", Effect::Recorded)
            }
        };
        if matches!(s.state, SignalState::Firing) {
            // Another page is more of the same news, not the news again.
            if effect != Effect::Merged {
                c.occurrences += 1;
                changes.extend([change(
                    "occurrences",
                    json!(c.occurrences - 1),
                    json!(c.occurrences),
                )]);
            }
            // A problem can get worse; it never gets quieter by itself.
            if a.decision.severity < next.severity && next.status.is_open() {
                next.severity = a.decision.severity;
            }
            if next.status.is_open() {
                self.move_to_production(a, &mut next);
            }
        }
        if c.flapping != was_flapping {
            let mut tags = next.tags.clone();
            if c.flapping {
                tags.push("flapping".into());
                tags.sort();
                tags.dedup();
            } else {
                tags.retain(|t| t != "flapping");
            }
            next.tags = tags;
            changes.extend([change("flapping", json!(was_flapping), json!(c.flapping))]);
        }
        for (field, before, after) in [
            ("status", json!(current.status), json!(next.status)),
            ("severity", json!(current.severity), json!(next.severity)),
            ("workload", json!(current.workload), json!(next.workload)),
            ("team", json!(current.team), json!(next.team)),
            ("tags", json!(current.tags), json!(next.tags)),
            (
                "resolved_at",
                json!(current.resolved_at),
                json!(next.resolved_at),
            ),
            (
                "acknowledged_at",
                json!(current.acknowledged_at),
                json!(next.acknowledged_at),
            ),
        ] {
            if before != after {
                changes.extend([change(field, before, after)]);
            }
        }
        changes.extend([signal_change(signal_id, s, &a.decision.rule)]);
        next.touch(self.now);
        self.audit(a.actor, action, current.id, changes).await?;
        if let Some(entry) = self.tickets.get_mut(&current.id) {
            entry.1 = next;
        }
        self.save_correlation(c);
        Ok((effect, Some(current.id)))
    }

    /// A ticket not yet on production moves to the production workload a later signal (or
    /// another page of the same event) shows affected, with that workload's team when the
    /// team it had came from its former workload. Like severity, this only ever escalates.
    fn move_to_production(&self, a: &Assessed<'_>, next: &mut Ticket) {
        let Some(w) = a.workload.filter(|w| w.is_production()) else {
            return;
        };
        if next.tags.iter().any(|t| t == "production") || next.workload.as_deref() == Some(&w.name)
        {
            return;
        }
        let former_team = next
            .workload
            .as_deref()
            .and_then(|name| self.workloads.iter().find(|x| x.name == name))
            .and_then(|x| x.team.clone());
        if next.team.is_none() || next.team == former_team {
            next.team = w.team.clone();
        }
        next.workload = Some(w.name.clone());
        let mut tags = next.tags.clone();
        tags.push("production".into());
        tags.sort();
        tags.dedup();
        next.tags = tags;
    }

    fn save_correlation(&mut self, c: Correlation) {
        self.correlations
            .insert((c.source.clone(), c.dedup_key.clone()), c.clone());
        self.changed.push(c);
    }

    /// Writes back the tickets that changed, and the signals with their receipts and problems.
    async fn finish(self) -> Result<()> {
        let mut changed: Vec<&(Ticket, Ticket)> = self
            .tickets
            .values()
            .filter(|(before, now)| before.version != now.version)
            .collect();
        changed.sort_by_key(|(before, _)| before.id);
        // Most changes are state only (occurrences, resolves, reopens): one statement for all.
        let mut states: Vec<(&Ticket, &Ticket)> = Vec::with_capacity(changed.len());
        let mut outbox = self.outbox;
        for (before, now) in &changed {
            for event in Routing::events(Some(before), now) {
                outbox.extend(self.routing.items(self.tx, event, now, self.now).await?);
            }
        }
        self.tx.enqueue(&outbox, self.now).await?;
        for (before, now) in changed {
            if before.tags == now.tags && before.workload == now.workload && before.team == now.team
            {
                states.push((now, before));
            } else {
                self.tx.update_ticket(now, before).await?;
            }
        }
        self.tx.update_ticket_states(&states).await?;
        if !self.records.is_empty() {
            self.tx
                .record_signals(self.records, self.receipts, self.changed)
                .await?;
        }
        Ok(())
    }
}

impl Desk {
    /// Uses these rules and windows instead of the defaults.
    pub fn with_ingest_settings(mut self, settings: IngestSettings) -> Desk {
        self.settings.ingest = Arc::new(settings);
        self
    }

    async fn catalog(&self) -> Result<Arc<Catalog>> {
        if let Ok(guard) = self.caches.catalog.0.lock() {
            if let Some((at, c)) = guard.as_ref() {
                if at.elapsed() < CATALOG_TTL {
                    return Ok(c.clone());
                }
            }
        }
        let now = self.now();
        let catalog = Arc::new(Catalog {
            workloads: self.db().workloads().await?,
            windows: self
                .db()
                .maintenance_windows(
                    now - chrono::Duration::days(30),
                    now + chrono::Duration::days(1),
                )
                .await?,
        });
        if let Ok(mut guard) = self.caches.catalog.0.lock() {
            *guard = Some((Instant::now(), catalog.clone()));
        }
        Ok(catalog)
    }

    /// Applies signals in one transaction, in order; returns once committed.
    ///
    /// Deliveries that arrive while others are being written wait and are then written
    /// together, in one transaction, in arrival order: a thousand single-event requests cost
    /// a few transactions rather than a thousand. A group that fails is retried one delivery
    /// at a time, so a bad delivery fails alone.
    pub async fn ingest(&self, actor: &Actor, signals: Vec<Signal>) -> Result<Vec<Outcome>> {
        actor.require(Permission::Ingest)?;
        if signals.is_empty() {
            return Ok(Vec::new());
        }
        // Whatever the source, no credential a payload carried is stored (nor reaches the
        // audit trail, exports or any answer, which all read what is stored).
        let signals: Vec<Signal> = signals
            .into_iter()
            .map(Signal::without_credentials)
            .collect();
        let sources: Vec<&'static str> = signals.iter().map(|s| metric_source(&s.source)).collect();
        let outcomes = self.intake.submit(self, actor.clone(), signals).await?;
        for (source, o) in sources.into_iter().zip(&outcomes) {
            metrics::counter!("opsdesk_signals_total", "source" => source, "effect" => o.effect.as_str())
                .increment(1);
        }
        Ok(outcomes)
    }

    /// Writes batches in one transaction; one list of outcomes per batch.
    async fn ingest_together(&self, batches: Vec<Arc<SignalBatch>>) -> Result<Vec<Vec<Outcome>>> {
        let catalog = self.catalog().await?;
        let routing = self.routing().await?;
        let settings = self.settings.ingest.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let defaults = default_rules();
                let signals = || batches.iter().flat_map(|d| d.signals.iter());
                // Repeated deliveries, against the database and within this group.
                let keys: Vec<String> = signals().map(|s| s.receipt_key.clone()).collect();
                let known = tx.known_receipts(&keys).await?;
                let mut seen = HashSet::new();
                let repeated: Vec<bool> = keys
                    .iter()
                    .map(|k| known.contains(k) || !seen.insert(k.as_str()))
                    .collect();
                let mut problems: Vec<(String, String)> = signals()
                    .zip(&repeated)
                    .filter(|(_, r)| !**r)
                    .map(|(s, _)| (s.source.clone(), s.dedup_key.clone()))
                    .collect();
                problems.sort();
                problems.dedup();
                let correlations = tx.correlations(&problems).await?;
                let mut ids: Vec<i64> = correlations.values().map(|c| c.ticket_id).collect();
                ids.sort_unstable();
                ids.dedup();
                let tickets = tx
                    .tickets_for_update(&ids)
                    .await?
                    .into_iter()
                    .map(|t| (t.id, (t.clone(), t)))
                    .collect();
                let next_id = if repeated.iter().all(|r| *r) {
                    0
                } else {
                    tx.next_signal_id().await?
                };
                let mut step = IngestTx {
                    tx,
                    settings: &settings,
                    now,
                    correlations,
                    tickets,
                    changed: Vec::new(),
                    records: Vec::new(),
                    receipts: Vec::new(),
                    next_id,
                    routing: &routing,
                    outbox: Vec::new(),
                    workloads: &catalog.workloads,
                };
                let mut repeated = repeated.into_iter();
                let mut out = Vec::with_capacity(batches.len());
                for batch in &batches {
                    let mut outcomes = Vec::with_capacity(batch.signals.len());
                    for (signal, raw) in batch.signals.iter().zip(&batch.raws) {
                        if repeated.next().unwrap_or(true) {
                            outcomes.push(Outcome {
                                signal_id: None,
                                ticket_id: None,
                                effect: Effect::Duplicate,
                            });
                            continue;
                        }
                        // A page of a split event is decided with the pages before it.
                        let before = step
                            .correlations
                            .get(&(signal.source.clone(), signal.dedup_key.clone()))
                            .and_then(|c| c.pages.as_ref());
                        let paged = Pages::after(before, signal);
                        let merged = paged.as_ref().map(|(p, _)| p.merged(signal));
                        let view = merged.as_ref().unwrap_or(signal);
                        let source = source::named(&signal.source);
                        let workload = match_workload(&catalog.workloads, view);
                        let environment = workload.map(|w| w.environment);
                        let decision = decide(&settings.rules, &defaults, view, environment);
                        let expected = catalog.expected(source, workload, signal);
                        let (pages, continues) = match paged {
                            Some((p, c)) => (Some(p), c),
                            None => (None, false),
                        };
                        let assessed = Assessed {
                            actor: &batch.actor,
                            signal,
                            source,
                            view,
                            pages,
                            continues,
                            raw,
                            workload,
                            decision,
                            expected,
                        };
                        outcomes.push(step.apply(&assessed).await?);
                    }
                    out.push(outcomes);
                }
                step.finish().await?;
                Ok(out)
            })
        })
        .await
    }

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

impl Desk {
    /// Stored signals, newest first (staff only: signals can name any account's resources).
    pub async fn signals(
        &self,
        actor: &Actor,
        filter: &opsdesk_store::SignalFilter,
    ) -> Result<Vec<SignalRecord>> {
        actor.require(Permission::WriteTickets)?;
        Ok(self.db().signals(filter).await?)
    }

    /// The problems a ticket tracks and its latest signals.
    pub async fn ticket_signals(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<(Vec<Correlation>, Vec<SignalRecord>)> {
        // Signals name accounts and resources: inventory, not for requesters. And it refuses
        // tickets the actor may not see, as reading the ticket does.
        actor.require(Permission::ReadInventory)?;
        self.ticket(actor, id).await?;
        let filter = opsdesk_store::SignalFilter {
            ticket_id: Some(id),
            limit: 100,
            ..Default::default()
        };
        Ok((
            self.db().ticket_correlations(id).await?,
            self.db().signals(&filter).await?,
        ))
    }
}
