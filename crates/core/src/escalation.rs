//! The clocks of open tickets and escalation.
//!
//! A watcher looks at each open ticket when one of its clocks may have moved: the database
//! marks a ticket for a look whenever it is opened or its status, severity, kind, workload or
//! team changes, and the watcher schedules the next look at the earliest coming SLA warning,
//! SLA breach or escalation deadline. Each look, in one transaction with the ticket locked:
//! stores the SLA due times, announces SLA warnings and breaches once each, moves an
//! unacknowledged ticket up its escalation policy's tiers, and sends production emergencies
//! to AWS Support at once (`[escalation.aws]`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use opsdesk_domain::audit::{AuditEntry, AuditRecord, Changes, FieldChange};
use opsdesk_domain::channel::NotificationEvent;
use opsdesk_domain::escalation::{select_escalation, AwsEscalation, EscalateTo, EscalationPolicy};
use opsdesk_domain::sla::{measure, ClockState, Deadline, SlaClock, TicketTimes};
use opsdesk_domain::support::{cap, CaseContext};
use opsdesk_domain::{
    AwsAccount, Calendar, Environment, FieldError, Permission, SlaPolicy, Status, Ticket, Workload,
};
use opsdesk_store::{SupportCaseRecord, TicketClock, Tx};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::outbox::Routing;
use crate::sla::ticket_times;
use crate::{Actor, Desk, Error, Result};

/// Tickets looked at per pass of the watcher, in one transaction.
pub const WATCH_BATCH: usize = 200;
/// The mark in `ticket_clocks.announced` of a ticket the automatic AWS rule has handled.
const AUTO_AWS: &str = "aws.auto";
/// Who the watcher's changes are recorded as.
const WATCHER: &str = "system:escalation";

/// Escalation policies and the way to AWS Support (`[escalation]`).
#[derive(Debug, Clone)]
pub struct EscalationSettings {
    pub policies: Vec<EscalationPolicy>,
    pub aws: AwsEscalation,
    /// How often an open AWS case is read back into its ticket.
    pub case_sync_interval: Duration,
    /// How long a node holds the cases it took before another may work on them.
    pub case_lease: Duration,
    /// Attempts at opening a case before it is marked failed.
    pub case_max_attempts: i64,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        EscalationSettings {
            policies: Vec::new(),
            aws: AwsEscalation::default(),
            case_sync_interval: Duration::seconds(60),
            // Longer than the calls of one case can take (each AWS call gives up after 30 s).
            case_lease: Duration::minutes(5),
            case_max_attempts: 8,
        }
    }
}

/// What a manual escalation did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Escalation {
    pub ticket: Ticket,
    /// The tier the ticket is at now, when a policy applies.
    pub tier: Option<String>,
    /// The AWS Support case, when the escalation went to AWS.
    pub aws_case: Option<SupportCaseRecord>,
}

/// What the watcher reads before it locks the ticket.
struct Snapshot {
    ticket: Ticket,
    history: Vec<AuditRecord>,
    environment: Option<Environment>,
    account: Option<AwsAccount>,
    service: Option<String>,
    /// The SLA policy and calendar that apply.
    sla: Option<(SlaPolicy, Calendar)>,
}

/// The subject of a case: the ticket's key, severity and title, within AWS's 300 characters.
fn case_subject(t: &Ticket) -> String {
    let s = format!("[{}][{}] {}", t.key, t.severity, t.title);
    s.chars().take(300).collect()
}

fn case_body(t: &Ticket, environment: Option<Environment>, url: Option<String>) -> String {
    let mut lines = vec![format!(
        "opsdesk ticket {} ({}, {}), opened {}.",
        t.key,
        t.severity,
        t.kind,
        t.created_at.format("%Y-%m-%d %H:%M UTC")
    )];
    if let Some(w) = &t.workload {
        let env = environment.map(|e| format!(" ({e})")).unwrap_or_default();
        lines.push(format!("Workload: {w}{env}."));
    }
    if let Some(url) = url {
        lines.push(format!("Ticket: {url}"));
    }
    lines.push(String::new());
    lines.push(if t.description.trim().is_empty() {
        t.title.clone()
    } else {
        t.description.clone()
    });
    // CreateCase takes at most 8,000 characters of body.
    lines.join("\n").chars().take(8000).collect()
}

fn change(field: &str, before: Value, after: Value) -> (String, FieldChange) {
    (field.to_owned(), FieldChange { before, after })
}

/// Adds an internal note to the ticket's conversation, inside `tx`.
async fn note(
    tx: &mut Tx,
    t: &Ticket,
    author: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<Value> {
    let c = tx.insert_comment(t.id, body, author, false, now).await?;
    Ok(json!({ "id": c.id, "public": false, "body": c.body }))
}

impl Desk {
    /// Uses these escalation policies and AWS settings instead of the defaults.
    pub fn with_escalation_settings(mut self, settings: EscalationSettings) -> Desk {
        self.settings.escalation = Arc::new(settings);
        self
    }

    pub fn escalation_settings(&self) -> &EscalationSettings {
        &self.settings.escalation
    }

    /// Every AWS account: the configured ones first, then those added through the API.
    pub(crate) async fn known_accounts(&self) -> Result<Vec<AwsAccount>> {
        let mut all: Vec<AwsAccount> = self.settings.aws_accounts.as_ref().clone();
        for stored in self.db().aws_accounts().await? {
            if !all.iter().any(|a| a.id == stored.id) {
                all.push(stored.account());
            }
        }
        Ok(all)
    }

    /// What a look at each of `ids` needs, read before its transaction with a few queries for
    /// all of them. Tickets that do not exist are left out.
    async fn snapshots(&self, ids: &[i64], asked_account: Option<&str>) -> Result<Vec<Snapshot>> {
        let tickets = self.db().get_tickets(ids).await?;
        let mut changes: HashMap<i64, Vec<AuditRecord>> = HashMap::new();
        for entry in self.db().status_changes(ids).await? {
            if let Some(id) = entry.ticket_id {
                changes.entry(id).or_default().push(entry);
            }
        }
        let mut contexts = self.db().tickets_aws_context(ids).await?;
        let known = self.known_accounts().await?;
        let mut workloads: HashMap<String, Option<Workload>> = HashMap::new();
        let mut out = Vec::with_capacity(tickets.len());
        for ticket in tickets {
            let workload = match &ticket.workload {
                Some(w) => {
                    if !workloads.contains_key(w) {
                        let found = self.db().workload(w).await?;
                        workloads.insert(w.clone(), found);
                    }
                    workloads.get(w).cloned().flatten()
                }
                None => None,
            };
            let (signal_account, service) = contexts.remove(&ticket.id).unwrap_or_default();
            let named: Vec<String> = signal_account
                .into_iter()
                .chain(workload.iter().flat_map(|w| w.accounts.iter().cloned()))
                .collect();
            let account = case_account(asked_account, &named, &known)?;
            out.push(Snapshot {
                history: changes.remove(&ticket.id).unwrap_or_default(),
                environment: workload.as_ref().map(|w| w.environment),
                account,
                service,
                sla: self.sla_policy(&ticket),
                ticket,
            });
        }
        Ok(out)
    }

    /// One pass of the watcher: looks at up to 200 tickets whose clocks are due, in one
    /// transaction (one by one when that fails, so one bad ticket holds up no other).
    /// Returns how many it looked at.
    pub async fn watch_clocks(&self) -> Result<usize> {
        let ids = self.db().due_clocks(self.now(), WATCH_BATCH as i64).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let routing = self.routing().await?;
        let snaps: Vec<Arc<Snapshot>> = self
            .snapshots(&ids, None)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        if self.look_at(snaps.clone(), routing.clone()).await.is_ok() {
            return Ok(ids.len());
        }
        for snap in snaps {
            let id = snap.ticket.id;
            if let Err(e) = self.look_at(vec![snap], routing.clone()).await {
                tracing::warn!(ticket = %Ticket::key_for(id), error = %e, "checking a ticket's clocks failed; trying again in a minute");
                self.change(move |tx, now| {
                    Box::pin(async move {
                        let mut clock = tx.ticket_clock(id).await?.unwrap_or_default();
                        clock.ticket_id = id;
                        clock.check_at = Some(now + Duration::minutes(1));
                        tx.save_ticket_clock(&clock).await?;
                        Ok(())
                    })
                })
                .await?;
            }
        }
        Ok(ids.len())
    }

    /// Looks at each ticket of `snaps` in one transaction.
    async fn look_at(&self, snaps: Vec<Arc<Snapshot>>, routing: Arc<Routing>) -> Result<()> {
        let settings = self.settings.escalation.clone();
        let base_url = self.settings.notify.base_url.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                // A few statements for the whole batch: the tickets locked, their clocks read
                // and, at the end, written.
                let ids: Vec<i64> = snaps.iter().map(|s| s.ticket.id).collect();
                let mut current: HashMap<i64, Ticket> = tx
                    .tickets_for_update(&ids)
                    .await?
                    .into_iter()
                    .map(|t| (t.id, t))
                    .collect();
                let mut clocks: HashMap<i64, TicketClock> = tx
                    .ticket_clocks(&ids)
                    .await?
                    .into_iter()
                    .map(|c| (c.ticket_id, c))
                    .collect();
                let mut looked = Vec::with_capacity(snaps.len());
                for snap in &snaps {
                    let id = snap.ticket.id;
                    let Some(ticket) = current.remove(&id) else {
                        continue;
                    };
                    let clock = clocks.remove(&id).unwrap_or_default();
                    let step = look(
                        tx,
                        snap,
                        ticket,
                        clock,
                        &routing,
                        &settings,
                        base_url.clone(),
                        now,
                    );
                    if let Some(clock) = step.await? {
                        looked.push(clock);
                    }
                }
                tx.save_ticket_clocks(&looked).await?;
                Ok(())
            })
        })
        .await
    }

    /// Escalates a ticket by hand: to the next tier of its policy, or straight to AWS Support
    /// (in `account`, or the account opsdesk finds for the ticket).
    pub async fn escalate(
        &self,
        actor: &Actor,
        id: i64,
        to: EscalateTo,
        account: Option<String>,
        reason: Option<String>,
    ) -> Result<Escalation> {
        actor.require(Permission::WriteTickets)?;
        self.ticket(actor, id).await?;
        let snap = self
            .snapshots(&[id], account.as_deref())
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("ticket {}", Ticket::key_for(id))))?;
        let routing = self.routing().await?;
        let settings = self.settings.escalation.clone();
        let base_url = self.settings.notify.base_url.clone();
        let actor = actor.clone();
        let reason = reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| format!("escalated by {}", actor.name));
        let (ticket, tier) = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let mut t = tx
                        .ticket_for_update(id)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("ticket {}", Ticket::key_for(id))))?;
                    if !t.status.is_open() {
                        return Err(Error::Conflict(format!(
                            "{} is {}; reopen it before escalating",
                            t.key, t.status
                        )));
                    }
                    let step = EscalationTx {
                        routing: &routing,
                        settings: &settings,
                        actor: &actor.name,
                        environment: snap.environment,
                        account: snap.account.as_ref(),
                        service: snap.service.as_deref(),
                        base_url,
                        now,
                    };
                    let mut clock = tx.ticket_clock(id).await?.unwrap_or_default();
                    clock.ticket_id = id;
                    let policy = clock
                        .escalation_policy
                        .as_ref()
                        .and_then(|n| settings.policies.iter().find(|p| &p.name == n))
                        .or_else(|| select_escalation(&settings.policies, &t, snap.environment));
                    let tier_name = |p: &EscalationPolicy, i: i64| {
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| p.tiers.get(i))
                            .map(|x| x.name.clone())
                    };
                    match to {
                        EscalateTo::Aws => {
                            step.to_aws(tx, &mut t, &reason).await?;
                            if let Some(p) = policy {
                                if p.tiers.last().is_some_and(|x| x.aws) {
                                    clock.escalation_policy = Some(p.name.clone());
                                    clock.tier = i64::try_from(p.tiers.len() - 1).ok();
                                    clock.tier_since = Some(now);
                                    clock.escalate_at = None;
                                }
                            }
                        }
                        EscalateTo::Next => {
                            let p = policy.ok_or_else(|| {
                                Error::Conflict(format!(
                                    "no escalation policy applies to {}; escalate to \"aws\" or add a policy under [[escalation.policies]]",
                                    t.key
                                ))
                            })?;
                            let current = usize::try_from(clock.tier.unwrap_or(0)).unwrap_or(0);
                            let next = current + 1;
                            if next >= p.tiers.len() {
                                return Err(Error::Conflict(format!(
                                    "{} is at the last tier of policy {}",
                                    t.key, p.name
                                )));
                            }
                            step.to_tier(tx, &mut t, p, next, &reason).await?;
                            clock.escalation_policy = Some(p.name.clone());
                            clock.tier = i64::try_from(next).ok();
                            clock.tier_since = Some(now);
                            clock.escalate_at = match t.status {
                                Status::New => p
                                    .timeout_at(next)
                                    .map(|m| now + Duration::minutes(i64::from(m))),
                                _ => None,
                            };
                        }
                    }
                    let tier = policy.and_then(|p| clock.tier.and_then(|i| tier_name(p, i)));
                    // The watcher schedules the next look from the new state.
                    clock.check_at = Some(now);
                    tx.save_ticket_clock(&clock).await?;
                    Ok((t, tier))
                })
            })
            .await?;
        let aws_case = self.db().support_case(id).await?;
        Ok(Escalation {
            ticket,
            tier,
            aws_case: aws_case.filter(|_| to == EscalateTo::Aws),
        })
    }

    /// A ticket's stored clocks (SLA due times, escalation tier) and its AWS case.
    pub async fn ticket_clocks(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<(
        Option<opsdesk_store::TicketClock>,
        Option<SupportCaseRecord>,
    )> {
        // The case names the AWS account and its account team: inventory, not for requesters.
        actor.require(opsdesk_domain::Permission::ReadInventory)?;
        self.ticket(actor, id).await?;
        Ok((
            self.db().ticket_clock(id).await?,
            self.db().support_case(id).await?,
        ))
    }

    /// A ticket's stored clock alone (SLA due times, escalation tier), for staff.
    pub async fn ticket_clock(&self, actor: &Actor, id: i64) -> Result<Option<TicketClock>> {
        // Escalation tiers name teams and policies: inventory, as in `ticket_clocks`.
        actor.require(opsdesk_domain::Permission::ReadInventory)?;
        self.ticket(actor, id).await?;
        Ok(self.db().ticket_clock(id).await?)
    }

    /// A ticket's AWS Support case alone, for staff.
    pub async fn ticket_case(&self, actor: &Actor, id: i64) -> Result<Option<SupportCaseRecord>> {
        // The case names the AWS account and its account team: inventory, not for requesters.
        actor.require(opsdesk_domain::Permission::ReadInventory)?;
        self.ticket(actor, id).await?;
        Ok(self.db().support_case(id).await?)
    }
}

/// The AWS account a ticket's case goes to: the one asked for, else the first of the accounts
/// the ticket names (its newest signal's, then its workload's) that opsdesk knows, else, when
/// the ticket names no account at all, the only account known.
fn case_account(
    asked: Option<&str>,
    named: &[String],
    known: &[AwsAccount],
) -> Result<Option<AwsAccount>> {
    if let Some(id) = asked {
        let found = known.iter().find(|a| a.id == id).cloned().ok_or_else(|| {
            FieldError::new(
                "account",
                format!(
                    "AWS account {id} is not known: add it under [[aws.accounts]] or through \
                     POST /api/v1/aws-accounts"
                ),
            )
        })?;
        return Ok(Some(found));
    }
    if let Some(a) = named
        .iter()
        .find_map(|id| known.iter().find(|a| &a.id == id))
    {
        return Ok(Some(a.clone()));
    }
    match known {
        [only] if named.is_empty() => Ok(Some(only.clone())),
        _ => Ok(None),
    }
}

/// One look at a ticket, inside `tx`: stores its SLA due times, announces SLA events, moves
/// it up its escalation tiers, sends a production emergency to AWS Support, and schedules the
/// next look.
/// `current` is the ticket as locked in `tx`, `clock` its stored clock; the answer is the
/// clock to store, or `None` when the ticket changed since the snapshot (the next pass reads
/// it again).
#[allow(clippy::too_many_arguments)]
async fn look(
    tx: &mut Tx,
    snap: &Snapshot,
    current: Ticket,
    mut clock: TicketClock,
    routing: &Routing,
    settings: &EscalationSettings,
    base_url: Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<TicketClock>> {
    let id = snap.ticket.id;
    let sla = &snap.sla;
    if current.version != snap.ticket.version {
        return Ok(None);
    }
    clock.ticket_id = id;
    let mut t = current;
    clock.reopens = reopens(&snap.history);
    clock.status_seconds = time_in_status(&t, &snap.history, now);
    let times = ticket_times(&t, &snap.history);
    let sla_clock = sla
        .as_ref()
        .map(|(policy, calendar)| measure(policy, calendar, &times, now));
    record_measures(&mut clock, &times, sla_clock.as_ref());
    if !t.status.is_open() {
        clock.check_at = None;
        clock.escalate_at = None;
        // A resolved ticket resolves its AWS case: tell the case worker now.
        tx.hurry_support_case(id, now).await?;
        return Ok(Some(clock));
    }
    let mut next: Vec<DateTime<Utc>> = Vec::new();
    if let (Some((policy, _)), Some(sla_clock)) = (&sla, &sla_clock) {
        if clock
            .sla_policy
            .as_deref()
            .is_some_and(|p| p != policy.name.as_str())
        {
            clock
                .announced
                .retain(|a| !a.contains(".warning") && !a.contains(".breach"));
        }
        clock.sla_policy = Some(policy.name.clone());
        for (name, d) in [
            ("first_response", &sla_clock.first_response),
            ("resolution", &sla_clock.resolution),
        ] {
            check_deadline(tx, routing, &t, name, d, &mut clock, &mut next, now).await?;
        }
    } else {
        clock.sla_policy = None;
    }

    if clock.escalation_policy.is_none() {
        if let Some(p) = select_escalation(&settings.policies, &t, snap.environment) {
            clock.escalation_policy = Some(p.name.clone());
            clock.tier = Some(0);
            clock.tier_since = Some(t.created_at);
        }
    }
    let policy = clock
        .escalation_policy
        .as_ref()
        .and_then(|n| settings.policies.iter().find(|p| &p.name == n));
    clock.escalate_at = None;
    if let (Some(p), Some(tier), Status::New) = (policy, clock.tier, t.status) {
        let tier = usize::try_from(tier).unwrap_or(0);
        let since = clock.tier_since.unwrap_or(t.created_at);
        let due = p
            .timeout_at(tier)
            .map(|m| since + Duration::minutes(i64::from(m)));
        match due {
            Some(due) if due <= now => {
                let minutes = p.timeout_at(tier).unwrap_or(0);
                let why = format!(
                    "not acknowledged within {minutes} minutes at tier {}",
                    p.tiers.get(tier).map_or("?", |x| x.name.as_str())
                );
                let step = EscalationTx {
                    routing,
                    settings,
                    actor: WATCHER,
                    environment: snap.environment,
                    account: snap.account.as_ref(),
                    service: snap.service.as_deref(),
                    base_url: base_url.clone(),
                    now,
                };
                step.to_tier(tx, &mut t, p, tier + 1, &why).await?;
                clock.tier = Some(i64::try_from(tier + 1).unwrap_or(i64::MAX));
                clock.tier_since = Some(now);
                clock.escalate_at = p
                    .timeout_at(tier + 1)
                    .map(|m| now + Duration::minutes(i64::from(m)));
            }
            due => clock.escalate_at = due,
        }
    }
    if settings.aws.auto_applies(&t, snap.environment)
        && !clock.announced.iter().any(|a| a == AUTO_AWS)
    {
        // Once per ticket, whatever comes of it.
        clock.announced.push(AUTO_AWS.to_owned());
        if tx.support_case(id).await?.is_none() {
            let step = EscalationTx {
                routing,
                settings,
                actor: WATCHER,
                environment: snap.environment,
                account: snap.account.as_ref(),
                service: snap.service.as_deref(),
                base_url,
                now,
            };
            let why = format!(
                "{} on a {} workload: sent to AWS Support at once",
                t.severity,
                snap.environment.map_or("production", |e| e.as_str())
            );
            if snap.account.is_some() {
                step.to_aws(tx, &mut t, &why).await?;
            } else {
                step.no_account(tx, &mut t, &why).await?;
            }
            // The climb ends where AWS Support already is.
            if let Some(p) = policy.filter(|p| p.tiers.last().is_some_and(|x| x.aws)) {
                clock.tier = i64::try_from(p.tiers.len() - 1).ok();
                clock.tier_since = Some(now);
                clock.escalate_at = None;
            }
        }
    }
    if let Some(at) = clock.escalate_at {
        next.push(at);
    }
    clock.check_at = next.into_iter().min();
    Ok(Some(clock))
}

/// How often a ticket went from resolved or closed back to work, by its status changes.
fn reopens(history: &[AuditRecord]) -> i64 {
    let done = |v: &serde_json::Value| {
        v.as_str()
            .and_then(Status::parse)
            .is_some_and(|s| !s.is_open())
    };
    let n = history
        .iter()
        .filter_map(|e| e.changes.get("status"))
        .filter(|c| done(&c.before) && !done(&c.after))
        .count();
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Wall-clock seconds the ticket spent in `new`, `acknowledged`, `in_progress` and `pending`,
/// by its status changes, up to `now` while it is open.
fn time_in_status(t: &Ticket, history: &[AuditRecord], now: DateTime<Utc>) -> [i64; 4] {
    let slot = |s: Status| match s {
        Status::New => Some(0),
        Status::Acknowledged => Some(1),
        Status::InProgress => Some(2),
        Status::Pending => Some(3),
        _ => None,
    };
    let mut out = [0i64; 4];
    let mut add = |s: Status, from: DateTime<Utc>, to: DateTime<Utc>| {
        if let Some(i) = slot(s) {
            out[i] += (to - from).num_seconds().max(0);
        }
    };
    let (mut status, mut since) = (Status::New, t.created_at);
    for e in history {
        let Some(after) = e
            .changes
            .get("status")
            .and_then(|c| c.after.as_str())
            .and_then(Status::parse)
        else {
            continue;
        };
        add(status, since, e.at);
        status = after;
        since = e.at.max(since);
    }
    if t.status.is_open() {
        add(status, since, now);
    }
    out
}

/// Keeps what the KPIs read off the clocks: the due times, and for each clock that stopped
/// its business seconds and whether it met the target.
fn record_measures(clock: &mut TicketClock, times: &TicketTimes, sla: Option<&SlaClock>) {
    let stopped = |d: &Deadline| matches!(d.state, ClockState::Met | ClockState::Breached);
    let response_at = times.responded_at.or(times.resolved_at);
    clock.first_response_due_at = sla.and_then(|c| c.first_response.due_at);
    clock.first_response_warn_at = sla.and_then(|c| c.first_response.warn_at);
    clock.resolution_due_at = sla.and_then(|c| c.resolution.due_at);
    clock.resolution_warn_at = sla.and_then(|c| c.resolution.warn_at);
    match sla.map(|c| &c.first_response) {
        Some(d) if stopped(d) && response_at.is_some() => {
            clock.response_at = response_at;
            clock.response_seconds = Some(d.elapsed_seconds);
            clock.response_met = Some(d.state == ClockState::Met);
        }
        _ => {
            clock.response_at = None;
            clock.response_seconds = None;
            clock.response_met = None;
        }
    }
    match sla.map(|c| &c.resolution) {
        Some(d) if stopped(d) && times.resolved_at.is_some() => {
            clock.resolution_seconds = Some(d.elapsed_seconds);
            clock.resolution_met = Some(d.state == ClockState::Met);
        }
        _ => {
            clock.resolution_seconds = None;
            clock.resolution_met = None;
        }
    }
}

/// Announces an SLA warning or breach of one clock once, and schedules the next look.
#[allow(clippy::too_many_arguments)]
async fn check_deadline(
    tx: &mut Tx,
    routing: &Routing,
    t: &Ticket,
    name: &str,
    d: &Deadline,
    clock: &mut TicketClock,
    next: &mut Vec<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    let breach = format!("{name}.breach");
    let warning = format!("{name}.warning");
    let announce = if d.state == ClockState::Breached && !clock.announced.contains(&breach) {
        clock.announced.push(breach.clone());
        Some((NotificationEvent::SlaBreach, "ticket.sla_breached"))
    } else if d.warning
        && d.state == ClockState::Running
        && !clock.announced.contains(&warning)
        && !clock.announced.contains(&breach)
    {
        clock.announced.push(warning.clone());
        Some((NotificationEvent::SlaWarning, "ticket.sla_warning"))
    } else {
        None
    };
    if let Some((event, action)) = announce {
        tx.append_audit(AuditEntry {
            at: now,
            actor: WATCHER.to_owned(),
            action: action.to_owned(),
            ticket_id: Some(t.id),
            changes: Changes::from([change(
                name,
                Value::Null,
                json!({
                    "target_minutes": d.target_minutes,
                    "due_at": d.due_at,
                    "warn_at": d.warn_at,
                    "state": d.state,
                }),
            )]),
        })
        .await?;
        let items = routing
            .items_with(tx, event, t, now, Some(name), &[])
            .await?;
        tx.enqueue(&items, now).await?;
    }
    if d.state == ClockState::Running {
        if let Some(w) = d
            .warn_at
            .filter(|w| *w > now && !clock.announced.contains(&warning))
        {
            next.push(w);
        }
        if let Some(due) = d
            .due_at
            .filter(|due| *due >= now && !clock.announced.contains(&breach))
        {
            // Breached once past the due time.
            next.push(due + Duration::seconds(1));
        }
    }
    Ok(())
}

/// One escalation step inside a transaction, and what it needs to know.
struct EscalationTx<'a> {
    routing: &'a Routing,
    settings: &'a EscalationSettings,
    actor: &'a str,
    environment: Option<Environment>,
    account: Option<&'a AwsAccount>,
    service: Option<&'a str>,
    base_url: Option<String>,
    now: DateTime<Utc>,
}

impl EscalationTx<'_> {
    /// Moves the ticket to tier `i` of `p`: hands it to the tier's team, or opens the AWS case.
    async fn to_tier(
        &self,
        tx: &mut Tx,
        t: &mut Ticket,
        p: &EscalationPolicy,
        i: usize,
        why: &str,
    ) -> Result<()> {
        let Some(tier) = p.tiers.get(i) else {
            return Ok(());
        };
        let from = i
            .checked_sub(1)
            .and_then(|j| p.tiers.get(j))
            .map(|x| x.name.clone());
        if tier.aws {
            return match tx.support_case(t.id).await? {
                // Already with AWS Support (or told why not): the tier is reached, no second
                // case, note or email.
                Some(case) => {
                    self.record_tier(tx, t, p, tier, from, why, Some(&case.state))
                        .await
                }
                None if self.account.is_none() => self.no_account(tx, t, why).await,
                None => self.to_aws(tx, t, why).await,
            };
        }
        self.record_tier(tx, t, p, tier, from, why, None).await
    }

    /// Records a move to `tier`: hands the ticket to the tier's team, audits the move and
    /// announces it. `aws_case` is the state of the ticket's AWS case when the tier is AWS
    /// Support and the ticket is there already.
    #[allow(clippy::too_many_arguments)]
    async fn record_tier(
        &self,
        tx: &mut Tx,
        t: &mut Ticket,
        p: &EscalationPolicy,
        tier: &opsdesk_domain::escalation::Tier,
        from: Option<String>,
        why: &str,
        aws_case: Option<&str>,
    ) -> Result<()> {
        let before = t.clone();
        if tier.team.is_some() {
            t.team = tier.team.clone();
        }
        t.touch(self.now);
        tx.update_ticket(t, &before).await?;
        let mut after = json!({ "policy": p.name, "tier": tier.name, "why": why });
        if let Some(state) = aws_case {
            after["aws_case"] = json!(state);
        }
        let mut changes = Changes::from([change("tier", json!(from), after)]);
        if before.team != t.team {
            changes.extend([change("team", json!(before.team), json!(t.team))]);
        }
        tx.append_audit(AuditEntry {
            at: self.now,
            actor: self.actor.to_owned(),
            action: "ticket.escalated".into(),
            ticket_id: Some(t.id),
            changes,
        })
        .await?;
        let items = self
            .routing
            .items_with(tx, NotificationEvent::Escalated, t, self.now, None, &[])
            .await?;
        tx.enqueue(&items, self.now).await?;
        Ok(())
    }

    /// The ticket was to go to AWS Support but no AWS account is known for it: says so on
    /// the ticket, once, and leaves everything else as it is.
    async fn no_account(&self, tx: &mut Tx, t: &mut Ticket, why: &str) -> Result<()> {
        let text = format!(
            "Not sent to AWS Support: no AWS account is known for this ticket (no signal names \
             one, and its workload names none opsdesk knows). Why it was to go: {why}. Add the \
             account under [[aws.accounts]] or through /api/v1/aws-accounts, then escalate \
             with {{\"to\": \"aws\", \"account\": \"...\"}}."
        );
        let comment = note(tx, t, self.actor, &text, self.now).await?;
        let before = t.clone();
        t.touch(self.now);
        tx.update_ticket(t, &before).await?;
        tx.append_audit(AuditEntry {
            at: self.now,
            actor: self.actor.to_owned(),
            action: "ticket.escalation_skipped".into(),
            ticket_id: Some(t.id),
            changes: Changes::from([
                change(
                    "aws_case",
                    Value::Null,
                    json!({ "why": why, "reason": "no AWS account known" }),
                ),
                change("comment", Value::Null, comment),
            ]),
        })
        .await?;
        Ok(())
    }

    /// Sends the ticket to AWS Support: records the case for the case worker to open (or, on a
    /// plan without the AWS Support API, says so), notes the plan's decision on the ticket and
    /// tells the escalation channels and the account team, all in this transaction.
    async fn to_aws(&self, tx: &mut Tx, t: &mut Ticket, why: &str) -> Result<()> {
        if let Some(existing) = tx.support_case(t.id).await? {
            if matches!(existing.state.as_str(), "requested" | "opened") {
                return Err(Error::Conflict(format!(
                    "{} is already escalated to AWS Support{}",
                    t.key,
                    existing
                        .case_id
                        .map(|c| format!(" (case {c})"))
                        .unwrap_or_default()
                )));
            }
        }
        let account = self.account.ok_or_else(|| {
            FieldError::new(
                "account",
                format!(
                    "no AWS account is known for {}: name one (\"account\"), give its workload \
                     an account, or add the account under [[aws.accounts]]",
                    t.key
                ),
            )
        })?;
        // What AWS last said about the account's severities decides, when it has said; the
        // case worker asks again before it opens the case.
        let offered = tx
            .severity_levels_of(&account.id)
            .await?
            .and_then(|l| l.levels);
        let decision = cap(
            account.support_plan,
            t.severity,
            &CaseContext {
                day: self.now.date_naive(),
                govcloud: account.govcloud,
                offered,
            },
        );
        let aws = &self.settings.aws;
        let (service_code, category_code) = self
            .service
            .and_then(|s| aws.mapped(s))
            .map(|m| (m.service_code.clone(), m.category_code.clone()))
            .unwrap_or_else(|| {
                (
                    aws.default_service_code.clone(),
                    aws.default_category_code.clone(),
                )
            });
        let opens = decision.granted.is_some();
        let url = self
            .base_url
            .as_ref()
            .map(|b| format!("{}/tickets/{}", b.trim_end_matches('/'), t.key));
        let record = SupportCaseRecord {
            ticket_id: t.id,
            account_id: account.id.clone(),
            state: if opens { "requested" } else { "unavailable" }.to_owned(),
            case_id: None,
            display_id: None,
            requested_severity: decision.requested.as_str().to_owned(),
            severity: decision.granted.map(|g| g.as_str().to_owned()),
            service_code,
            category_code,
            subject: case_subject(t),
            body: case_body(t, self.environment, url),
            cc: account.account_team_emails.clone(),
            aws_status: None,
            detail: decision.reason.clone(),
            attempts: 0,
            next_sync_at: self.now,
            last_message_at: None,
            first_reply_at: None,
            // Replies written before the case are in its body or history already.
            sent_comment_id: tx.newest_comment_id(t.id).await?,
            sent_parts: 0,
            created_by: self.actor.to_owned(),
            created_at: self.now,
            updated_at: self.now,
            support_plan: Some(decision.plan_in_effect),
            severity_source: Some(decision.capped_by),
        };
        tx.save_support_case(&record).await?;
        let team = if account.account_team_emails.is_empty() {
            "no account team addresses are configured".to_owned()
        } else {
            account.account_team_emails.join(", ")
        };
        let text = if opens {
            format!(
                "Escalated to AWS Support in account {} ({}): {}. Why: {why}. Account team: {team}.",
                account.id, account.name, decision.reason
            )
        } else {
            let told = match &aws.account_team_channel {
                Some(c) => {
                    format!("The AWS account team is notified instead ({team}, through {c}).")
                }
                None => {
                    "Tell the AWS account team yourself: no escalation.aws.account_team_channel \
                         is set."
                        .to_owned()
                }
            };
            format!(
                "Not sent to AWS Support: the {} {}. Why it was to go: {why}. {told}",
                account.name, decision.reason
            )
        };
        let comment = note(tx, t, self.actor, &text, self.now).await?;
        let before = t.clone();
        t.touch(self.now);
        tx.update_ticket(t, &before).await?;
        tx.append_audit(AuditEntry {
            at: self.now,
            actor: self.actor.to_owned(),
            action: "ticket.escalated".into(),
            ticket_id: Some(t.id),
            changes: Changes::from([
                change(
                    "aws_case",
                    Value::Null,
                    json!({
                        "account": account.id,
                        "plan": account.support_plan,
                        "plan_in_effect": decision.plan_in_effect,
                        "requested": decision.requested,
                        "granted": decision.granted,
                        "capped": decision.capped,
                        "capped_by": decision.capped_by,
                        "state": record.state,
                        "reason": decision.reason,
                        "why": why,
                    }),
                ),
                change("comment", Value::Null, comment),
            ]),
        })
        .await?;
        let mut extra: Vec<(String, Vec<String>)> = aws
            .notify_channels
            .iter()
            .map(|c| (c.clone(), Vec::new()))
            .collect();
        if let Some(c) = &aws.account_team_channel {
            extra.push((c.clone(), account.account_team_emails.clone()));
        }
        let items = self
            .routing
            .items_with(
                tx,
                NotificationEvent::Escalated,
                t,
                self.now,
                Some("aws"),
                &extra,
            )
            .await?;
        tx.enqueue(&items, self.now).await?;
        Ok(())
    }
}
