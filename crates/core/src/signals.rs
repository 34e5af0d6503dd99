//! Ingest: signals from AWS and monitors open, update, resolve and reopen tickets, one ticket
//! per real problem, each delivery taking effect once.
//!
//! The pipeline (`opsdesk_domain::signal::pipeline`): receipt (a repeated delivery stops
//! here) and dedup/correlate for the whole group, then for each signal workload match,
//! maintenance, severity rules, the follow-up decision, ticket change and routing, and the
//! signal stored. The decisions are domain functions; this module reads what they need, calls
//! them and writes what they decide.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::{AuditEntry, Changes, FieldChange};
use opsdesk_domain::channel::NotificationEvent;
use opsdesk_domain::signal::follow_up::{self, Change, Decision, Note, Update};
use opsdesk_domain::signal::pipeline::Assessment;
use opsdesk_domain::signal::rules::{self, decide, default_rules, SeverityRule};
use opsdesk_domain::signal::source::{self, Source};
use opsdesk_domain::signal::workload::match_workload;
use opsdesk_domain::signal::Pages;
use opsdesk_domain::validation::NewTicket;
use opsdesk_domain::{Kind, Permission, Signal, Ticket, Validated, Workload};
use opsdesk_store::{
    Correlation, MaintenanceWindow, NewMaintenanceWindow, NewOutboxItem, RawJson, SignalRecord, Tx,
};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use tokio::sync::{mpsc, oneshot};

use crate::outbox::Routing;
use crate::{Actor, Desk, Error, Result};

pub use opsdesk_domain::signal::pipeline::IngestSettings;

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

/// Adds a tag to a ticket's sorted tags, once.
fn add_tag(tags: &mut Vec<String>, t: &str) {
    tags.push(t.to_owned());
    tags.sort();
    tags.dedup();
}

fn description_for(s: &Signal, workload: Option<&Workload>, decision: &rules::Decision) -> String {
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
    decision: &rules::Decision,
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
    view: Cow<'a, Signal>,
    /// The pages received so far, for a signal that is one page of several.
    pages: Option<Pages>,
    /// Another page of the communication the problem's last signal began.
    continues: bool,
    raw: &'a RawJson,
    workload: Option<&'a Workload>,
    decision: rules::Decision,
    expected: bool,
}

impl Assessed<'_> {
    /// What the follow-up decision looks at.
    fn assessment(&self) -> Assessment {
        Assessment {
            state: self.signal.state,
            continues: self.continues,
            severity: self.decision.severity,
            ticket: self.decision.ticket,
            expected: self.expected,
        }
    }
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

/// What ingest reads before its transaction, for every signal of a group.
struct Pipeline<'a> {
    settings: &'a IngestSettings,
    defaults: &'a [SeverityRule],
    catalog: &'a Catalog,
    routing: &'a Routing,
}

/// The signals of a group, in order.
fn signals(batches: &[Arc<SignalBatch>]) -> impl Iterator<Item = &Signal> {
    batches.iter().flat_map(|d| d.signals.iter())
}

/// Receipt: which signals repeat news already received, before this group or within it.
async fn repeated_deliveries(tx: &mut Tx, batches: &[Arc<SignalBatch>]) -> Result<Vec<bool>> {
    let keys: Vec<String> = signals(batches).map(|s| s.receipt_key.clone()).collect();
    let known = tx.known_receipts(&keys).await?;
    let mut seen = HashSet::new();
    Ok(keys
        .iter()
        .map(|k| known.contains(k) || !seen.insert(k.as_str()))
        .collect())
}

/// One ingest transaction: the problems and tickets its signals touch are read once, changed
/// in memory, and written back once at the end, so a batch costs a few statements rather than
/// several per signal.
struct IngestTx<'a> {
    tx: &'a mut Tx,
    pipeline: Pipeline<'a>,
    now: DateTime<Utc>,
    correlations: HashMap<(String, String), Correlation>,
    /// Ticket id -> (as read, as it is now).
    tickets: HashMap<i64, (Ticket, Ticket)>,
    changed: Vec<Correlation>,
    records: Vec<SignalRecord>,
    receipts: Vec<(String, DateTime<Utc>)>,
    next_id: i64,
    outbox: Vec<NewOutboxItem>,
}

impl<'a> IngestTx<'a> {
    fn new(tx: &'a mut Tx, pipeline: Pipeline<'a>, now: DateTime<Utc>) -> IngestTx<'a> {
        IngestTx {
            tx,
            pipeline,
            now,
            correlations: HashMap::new(),
            tickets: HashMap::new(),
            changed: Vec::new(),
            records: Vec::new(),
            receipts: Vec::new(),
            next_id: 0,
            outbox: Vec::new(),
        }
    }

    /// Dedup/correlate: reads the problems the new signals belong to, their tickets, and the
    /// id the first new signal takes.
    async fn correlate(&mut self, batches: &[Arc<SignalBatch>], repeated: &[bool]) -> Result<()> {
        let mut problems: Vec<(String, String)> = signals(batches)
            .zip(repeated)
            .filter(|(_, r)| !**r)
            .map(|(s, _)| (s.source.clone(), s.dedup_key.clone()))
            .collect();
        problems.sort();
        problems.dedup();
        self.correlations = self.tx.correlations(&problems).await?;
        let mut ids: Vec<i64> = self.correlations.values().map(|c| c.ticket_id).collect();
        ids.sort_unstable();
        ids.dedup();
        self.tickets = self
            .tx
            .tickets_for_update(&ids)
            .await?
            .into_iter()
            .map(|t| (t.id, (t.clone(), t)))
            .collect();
        if !repeated.iter().all(|r| *r) {
            self.next_id = self.tx.next_signal_id().await?;
        }
        Ok(())
    }

    /// Runs every signal of the group through the pipeline, in order; one list of outcomes
    /// per batch.
    async fn ingest(
        &mut self,
        batches: &[Arc<SignalBatch>],
        repeated: &[bool],
    ) -> Result<Vec<Vec<Outcome>>> {
        let mut repeated = repeated.iter();
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let mut outcomes = Vec::with_capacity(batch.signals.len());
            for (signal, raw) in batch.signals.iter().zip(&batch.raws) {
                if repeated.next().copied().unwrap_or(true) {
                    outcomes.push(Outcome {
                        signal_id: None,
                        ticket_id: None,
                        effect: Effect::Duplicate,
                    });
                    continue;
                }
                let assessed = self.assess(&batch.actor, signal, raw);
                outcomes.push(self.apply(&assessed).await?);
            }
            out.push(outcomes);
        }
        Ok(out)
    }

    /// Workload match, maintenance and severity rules, on the signal with the pages of its
    /// problem received before it.
    fn assess<'b>(&self, actor: &'b Actor, signal: &'b Signal, raw: &'b RawJson) -> Assessed<'b>
    where
        'a: 'b,
    {
        let Pipeline {
            settings,
            defaults,
            catalog,
            ..
        } = self.pipeline;
        // A page of a split event is decided with the pages before it.
        let before = self
            .correlations
            .get(&(signal.source.clone(), signal.dedup_key.clone()))
            .and_then(|c| c.pages.as_ref());
        let (pages, continues) = match Pages::after(before, signal) {
            Some((p, c)) => (Some(p), c),
            None => (None, false),
        };
        let view = match &pages {
            Some(p) => Cow::Owned(p.merged(signal)),
            None => Cow::Borrowed(signal),
        };
        let source = source::named(&signal.source);
        let workload = match_workload(&catalog.workloads, &view);
        let expected = catalog.expected(source, workload, signal);
        let decision = decide(
            &settings.rules,
            defaults,
            &view,
            workload.map(|w| w.environment),
        );
        Assessed {
            actor,
            signal,
            source,
            view,
            pages,
            continues,
            raw,
            workload,
            decision,
            expected,
        }
    }

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

    /// The follow-up decision and the ticket change it makes, then the signal as stored.
    async fn apply(&mut self, a: &Assessed<'_>) -> Result<Outcome> {
        let s = a.signal;
        let signal_id = self.next_id;
        self.next_id += 1;
        let key = (s.source.clone(), s.dedup_key.clone());
        // The problem and its ticket as this job has them so far.
        let followed = self
            .correlations
            .get(&key)
            .and_then(|c| Some((c, &self.tickets.get(&c.ticket_id)?.1)));
        let decision = match followed {
            Some((c, t)) => {
                follow_up::follow_up(c, t, &a.assessment(), self.pipeline.settings, self.now)
            }
            None => follow_up::first_sight(&a.assessment()),
        };
        let (effect, ticket_id) = match (decision, followed) {
            (Decision::Open, _) => self.open(a, signal_id).await?,
            (Decision::Update(update), Some((c, t))) => {
                let (c, t) = (c.clone(), t.clone());
                self.update(a, signal_id, update, c, t).await?
            }
            // Only a problem with a ticket is decided an update.
            (Decision::Record(_) | Decision::Update(_), _) => (Effect::Recorded, None),
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

    /// Opens a ticket for a problem with none to follow up, and routes the news.
    async fn open(&mut self, a: &Assessed<'_>, signal_id: i64) -> Result<(Effect, Option<i64>)> {
        let s = a.signal;
        let input = new_ticket(&a.view, a.source, a.workload, &a.decision)?;
        let mut ticket = Ticket::open(input, self.now);
        ticket.id = self.tx.insert_ticket(&ticket).await?;
        ticket.key = Ticket::key_for(ticket.id);
        let mut changes = ticket.creation_changes();
        changes.extend([signal_change(signal_id, s, &a.decision.rule)]);
        self.audit(a.actor, "ticket.created", ticket.id, changes)
            .await?;
        let items = self
            .pipeline
            .routing
            .items(self.tx, NotificationEvent::Created, &ticket, self.now)
            .await?;
        self.outbox.extend(items);
        self.tickets
            .insert(ticket.id, (ticket.clone(), ticket.clone()));
        self.save_correlation(Correlation::first_seen(
            s,
            ticket.id,
            a.pages.clone(),
            self.now,
        ));
        Ok((Effect::Created, Some(ticket.id)))
    }

    /// Applies a follow-up decision to the problem and its ticket, audited.
    async fn update(
        &mut self,
        a: &Assessed<'_>,
        signal_id: i64,
        update: Update,
        mut c: Correlation,
        current: Ticket,
    ) -> Result<(Effect, Option<i64>)> {
        let s = a.signal;
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
        c.note(
            s.state,
            &update,
            self.now,
            self.pipeline.settings.flapping_window,
        );

        let mut next = current.clone();
        if let Some(to) = update.change.status() {
            let t = current.status.transition_to(to)?;
            next.apply_transition(t, self.now);
        }
        let (action, effect) = match update.change {
            Change::Merge { .. } => ("ticket.merged", Effect::Merged),
            Change::Occurrence { .. } => ("ticket.occurrence", Effect::Occurrence),
            Change::Note(Note::FiredWhileFlapping) => ("ticket.occurrence", Effect::Recorded),
            Change::Reopen { .. } => {
                changes.extend([change(
                    "reason",
                    Value::Null,
                    json!(format!("{} fired again within the reopen window", s.source)),
                )]);
                ("ticket.reopened", Effect::Reopened)
            }
            Change::Acknowledge => ("ticket.acknowledged", Effect::Acknowledged),
            Change::Resolve => {
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
            Change::Note(Note::ResolvedWhileFlapping | Note::NotNew | Note::NotOpen) => {
                ("ticket.signal", Effect::Recorded)
            }
        };
        if update.change.counts() {
            changes.extend([change(
                "occurrences",
                json!(c.occurrences - 1),
                json!(c.occurrences),
            )]);
        }
        if let Some(severity) = update.change.raise() {
            next.severity = severity;
        }
        if update.change.escalates() {
            let workloads = &self.pipeline.catalog.workloads;
            if let Some(to) = follow_up::production_move(&next, a.workload, workloads) {
                if to.takes_team {
                    next.team = to.workload.team.clone();
                }
                next.workload = Some(to.workload.name.clone());
                add_tag(&mut next.tags, "production");
            }
        }
        if update.flapping.changed() {
            if c.flapping {
                add_tag(&mut next.tags, "flapping");
            } else {
                next.tags.retain(|t| t != "flapping");
            }
            changes.extend([change("flapping", json!(!c.flapping), json!(c.flapping))]);
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
        // Routing: who hears of each change.
        for (before, now) in &changed {
            for event in Routing::events(Some(before), now) {
                let items = self.pipeline.routing.items(self.tx, event, now, self.now);
                outbox.extend(items.await?);
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
                let repeated = repeated_deliveries(tx, &batches).await?;
                let pipeline = Pipeline {
                    settings: &settings,
                    defaults: &defaults,
                    catalog: &catalog,
                    routing: &routing,
                };
                let mut step = IngestTx::new(tx, pipeline, now);
                step.correlate(&batches, &repeated).await?;
                let out = step.ingest(&batches, &repeated).await?;
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
