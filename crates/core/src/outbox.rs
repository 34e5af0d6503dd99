//! Notifications: ticket events routed to channels through the outbox.
//!
//! A change that should be announced writes one outbox row per channel in the same
//! transaction as the change, so nothing is announced that did not happen and nothing that
//! happened goes unannounced. A dispatcher (opsdesk-notify) claims due rows with a lease,
//! sends them and records every attempt here: delivered, retried later with backoff, or
//! dead-lettered for a person to look at and retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::{AuditEntry, Changes, FieldChange};
use opsdesk_domain::channel::{ChannelSpec, Notification, NotificationEvent};
use opsdesk_domain::routing::{
    explain, kpi_routes, route, routes, KpiRouted, Recipient, Routed, RoutingRule, RuleCheck,
};
use opsdesk_domain::{Environment, Permission, Status, Ticket, Validated};
use opsdesk_store::{
    AfterAttempt, DeliveryAttempt, NewOutboxItem, OutboxFilter, OutboxItem, Stored, Tx,
};
use rand::Rng;
use serde_json::json;

use crate::audit::{record, whole};
use crate::{Actor, Desk, Error, Result};

/// How notifications are routed and retried.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Channels from the config file; the API adds more.
    pub channels: Vec<ChannelSpec>,
    /// Rules from the config file, tried before those kept through the API.
    pub rules: Vec<RoutingRule>,
    /// The address people open opsdesk at, for links in messages.
    pub base_url: Option<String>,
    /// Attempts before an item is dead-lettered.
    pub max_attempts: i64,
    /// The first retry waits this long; each next one twice as long, up to `max_backoff`.
    pub first_backoff: chrono::Duration,
    pub max_backoff: chrono::Duration,
    /// How long a dispatcher holds a claimed item before another may take it.
    pub lease: chrono::Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            channels: Vec::new(),
            rules: Vec::new(),
            base_url: None,
            max_attempts: 8,
            first_backoff: chrono::Duration::seconds(30),
            max_backoff: chrono::Duration::hours(1),
            lease: chrono::Duration::seconds(60),
        }
    }
}

/// The rules in force and the environments of the workloads they may ask about.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    rules: Vec<RoutingRule>,
    environments: HashMap<String, Environment>,
    base_url: Option<String>,
    /// The accounts of the configuration file, for their account teams.
    accounts: Arc<Vec<opsdesk_domain::AwsAccount>>,
    /// Channels whose type follows a ticket it was told about to its acknowledgement and
    /// resolution (PagerDuty's alerts).
    followers: Vec<String>,
    /// Letters to requesters, when they are on.
    pub(crate) mail: Option<Arc<crate::mail::MailSettings>>,
}

/// Routing as of a moment; changes through this node drop it at once, changes through other
/// nodes are seen within `ROUTING_TTL`.
#[derive(Debug, Default)]
pub(crate) struct RoutingCache(Mutex<Option<(Instant, Arc<Routing>)>>);

const ROUTING_TTL: Duration = Duration::from_secs(2);

impl RoutingCache {
    pub(crate) fn clear(&self) {
        if let Ok(mut c) = self.0.lock() {
            *c = None;
        }
    }
}

/// The one-line story of a ticket for a message.
fn summary(event: NotificationEvent, t: &Ticket) -> String {
    let mut lines = vec![format!("{} {}: {}", t.key, event.label(), t.title)];
    lines.push(format!(
        "Severity {}, status {}, kind {}, source {}.",
        t.severity, t.status, t.kind, t.source
    ));
    if let Some(w) = &t.workload {
        lines.push(format!("Workload {w}."));
    }
    if let Some(team) = &t.team {
        lines.push(format!("Team {team}."));
    }
    lines.join("\n")
}

impl Routing {
    fn notification(
        &self,
        event: NotificationEvent,
        t: &Ticket,
        at: DateTime<Utc>,
    ) -> Notification {
        Notification {
            event,
            ticket_id: Some(t.id),
            ticket_key: Some(t.key.clone()),
            title: t.title.clone(),
            severity: Some(t.severity),
            status: Some(t.status.as_str().to_owned()),
            workload: t.workload.clone(),
            environment: self.environment(t),
            team: t.team.clone(),
            summary: summary(event, t),
            url: self.ticket_url(t),
            at,
            recipients: Vec::new(),
            report: None,
        }
    }

    /// Where people open `t`, when the desk's address is known.
    pub(crate) fn ticket_url(&self, t: &Ticket) -> Option<String> {
        self.base_url
            .as_ref()
            .map(|b| format!("{}/tickets/{}", b.trim_end_matches('/'), t.key))
    }

    fn environment(&self, t: &Ticket) -> Option<Environment> {
        t.workload
            .as_ref()
            .and_then(|w| self.environments.get(w).copied())
    }

    /// The outbox rows announcing `event` on ticket `t` (as it is after the change).
    pub(crate) async fn items(
        &self,
        tx: &mut Tx,
        event: NotificationEvent,
        t: &Ticket,
        at: DateTime<Utc>,
    ) -> Result<Vec<NewOutboxItem>> {
        self.items_with(tx, event, t, at, None, &[]).await
    }

    /// The outbox rows announcing `event` on ticket `t`: to the channels the rules pick (with
    /// the recipients they name, looked up now) and to `extra` channels, each of those with
    /// addresses it also reaches (an email channel mails them). `tag` tells apart events of
    /// one kind on one ticket version (the first-response and the resolution SLA warnings,
    /// say), so each gets its own idempotency key.
    pub(crate) async fn items_with(
        &self,
        tx: &mut Tx,
        event: NotificationEvent,
        t: &Ticket,
        at: DateTime<Utc>,
        tag: Option<&str>,
        extra: &[(String, Vec<String>)],
    ) -> Result<Vec<NewOutboxItem>> {
        let routed = Routed {
            event,
            ticket: t,
            environment: self.environment(t),
        };
        let mut channels: Vec<(String, Vec<String>)> = Vec::new();
        for r in routes(&self.rules, &routed) {
            let addresses = if r.recipients.is_empty() {
                Vec::new()
            } else {
                self.addresses(tx, t, &r.recipients).await?
            };
            channels.push((r.channel, addresses));
        }
        for (name, recipients) in extra {
            match channels.iter_mut().find(|(c, _)| c == name) {
                Some((_, r)) => r.extend(recipients.iter().cloned()),
                None => channels.push((name.clone(), recipients.clone())),
            }
        }
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.notification(event, t, at);
        let event_key = match tag {
            Some(tag) => format!("{event}-{tag}"),
            None => event.as_str().to_owned(),
        };
        Ok(channels
            .into_iter()
            .map(|(channel, mut recipients)| {
                let mut seen: Vec<String> = Vec::with_capacity(recipients.len());
                recipients.retain(|r| {
                    let lower = r.to_ascii_lowercase();
                    let new = !seen.contains(&lower);
                    seen.push(lower);
                    new
                });
                let mut n = n.clone();
                n.recipients = recipients;
                NewOutboxItem {
                    idempotency_key: format!("{}-v{}-{}-{}", t.key, t.version, event_key, channel),
                    ticket_id: Some(t.id),
                    event: event.as_str().to_owned(),
                    channel,
                    notification: json!(n),
                }
            })
            .collect())
    }

    /// The outbox rows announcing a KPI event `n` to the channels the rules pick; `key`
    /// tells this event apart from every other (KPI, breakdown and evaluation time).
    pub(crate) async fn kpi_items(
        &self,
        tx: &mut Tx,
        event: NotificationEvent,
        n: &Notification,
        key: &str,
    ) -> Result<Vec<NewOutboxItem>> {
        let routed = KpiRouted {
            event,
            team: n.team.as_deref(),
            workload: n.workload.as_deref(),
            severity: n.severity,
            environment: n.environment,
        };
        let mut items = Vec::new();
        for r in kpi_routes(&self.rules, &routed) {
            let mut recipients = Vec::new();
            if let Some(team) = &n.team {
                for who in &r.recipients {
                    match who {
                        Recipient::OwningTeam => recipients.extend(tx.team_emails(team).await?),
                        Recipient::OnCall => recipients.extend(tx.team_lead_email(team).await?),
                        Recipient::AccountTeam => {}
                    }
                }
            }
            recipients.sort();
            recipients.dedup();
            let mut n = n.clone();
            n.recipients = recipients;
            items.push(NewOutboxItem {
                idempotency_key: format!("{key}-{event}-{}", r.channel),
                ticket_id: None,
                event: event.as_str().to_owned(),
                channel: r.channel,
                notification: json!(n),
            });
        }
        Ok(items)
    }

    /// The addresses of the people `who` names for ticket `t`, as they are now.
    async fn addresses(&self, tx: &mut Tx, t: &Ticket, who: &[Recipient]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for w in who {
            match w {
                Recipient::OwningTeam => {
                    if let Some(team) = &t.team {
                        out.extend(tx.team_emails(team).await?);
                    }
                }
                Recipient::OnCall => match t.assignee.as_deref().filter(|a| a.contains('@')) {
                    Some(a) => out.push(a.to_owned()),
                    None => {
                        if let Some(team) = &t.team {
                            out.extend(tx.team_lead_email(team).await?);
                        }
                    }
                },
                Recipient::AccountTeam => {
                    for id in tx.ticket_account_ids(t.id, t.workload.as_deref()).await? {
                        let team = match self.accounts.iter().find(|a| a.id == id) {
                            Some(a) => Some(a.account_team_emails.clone()),
                            None => tx.aws_account_team(&id).await?,
                        };
                        if let Some(team) = team {
                            out.extend(team);
                            break;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The events a change from `before` to `after` announces.
    pub(crate) fn events(before: Option<&Ticket>, after: &Ticket) -> Vec<NotificationEvent> {
        let Some(before) = before else {
            return vec![NotificationEvent::Created];
        };
        let mut events = Vec::new();
        if before.acknowledged_at.is_none() && after.acknowledged_at.is_some() {
            events.push(NotificationEvent::Acknowledged);
        }
        if before.severity != after.severity {
            events.push(NotificationEvent::SeverityChanged);
        }
        if before.status != Status::Resolved && after.status == Status::Resolved {
            events.push(NotificationEvent::Resolved);
        }
        if !before.status.is_open() && after.status.is_open() {
            events.push(NotificationEvent::Reopened);
        }
        events
    }

    /// Queues what a change from `before` to `after` announces, inside `tx`.
    pub(crate) async fn announce(
        &self,
        tx: &mut Tx,
        before: Option<&Ticket>,
        after: &Ticket,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let events = Routing::events(before, after);
        for e in &events {
            let letter = match e {
                NotificationEvent::Created => Some(opsdesk_domain::mail::LetterKind::Received),
                NotificationEvent::Resolved => Some(opsdesk_domain::mail::LetterKind::Resolved),
                _ => None,
            };
            if let Some(kind) = letter {
                self.letter(tx, kind, after, None, now).await?;
            }
        }
        if self.rules.is_empty() {
            return Ok(());
        }
        let mut items: Vec<NewOutboxItem> = Vec::new();
        let mut followed: Option<Vec<(String, Vec<String>)>> = None;
        for e in events {
            let extra = match e {
                NotificationEvent::Acknowledged
                | NotificationEvent::Resolved
                | NotificationEvent::Reopened
                    if !self.followers.is_empty() =>
                {
                    if followed.is_none() {
                        let told = tx.ticket_channels(after.id).await?;
                        followed = Some(
                            self.followers
                                .iter()
                                .filter(|f| told.contains(f))
                                .map(|f| (f.clone(), Vec::new()))
                                .collect(),
                        );
                    }
                    followed.as_deref().unwrap_or_default()
                }
                _ => &[],
            };
            items.extend(self.items_with(tx, e, after, now, None, extra).await?);
        }
        tx.enqueue(&items, now).await?;
        Ok(())
    }
}

/// The wait before retry number `attempt` (1-based): doubling from `first`, capped at `max`,
/// with up to a fifth of jitter either way so that retries of many items spread out.
pub fn backoff(
    attempt: i64,
    first: chrono::Duration,
    max: chrono::Duration,
    rng: &mut impl Rng,
) -> chrono::Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let base = first
        .num_milliseconds()
        .saturating_mul(1_i64 << doublings)
        .min(max.num_milliseconds());
    let jitter = base / 5;
    let ms = if jitter > 0 {
        base + rng.gen_range(-jitter..=jitter)
    } else {
        base
    };
    chrono::Duration::milliseconds(ms.max(0))
}

/// What a dispatcher reports after one attempt.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub ok: bool,
    pub retryable: bool,
    pub detail: String,
}

fn not_found_channel(name: &str) -> Error {
    Error::NotFound(format!("channel {name}"))
}

impl Desk {
    /// Uses these channels, rules and retry settings instead of the defaults.
    pub fn with_notify_settings(mut self, settings: NotifySettings) -> Desk {
        self.settings.notify = Arc::new(settings);
        self
    }

    pub fn notify_settings(&self) -> &NotifySettings {
        &self.settings.notify
    }

    pub(crate) async fn routing(&self) -> Result<Arc<Routing>> {
        if let Ok(guard) = self.caches.routing.0.lock() {
            if let Some((at, r)) = guard.as_ref() {
                if at.elapsed() < ROUTING_TTL {
                    return Ok(r.clone());
                }
            }
        }
        let mut rules = self.settings.notify.rules.clone();
        rules.extend(
            self.db()
                .stored_routing_rules()
                .await?
                .into_iter()
                .map(|s| s.item),
        );
        let environments = if rules.iter().any(|r| !r.environments.is_empty()) {
            self.db()
                .workloads()
                .await?
                .into_iter()
                .map(|w| (w.name, w.environment))
                .collect()
        } else {
            HashMap::new()
        };
        let followers = self
            .channel_specs()
            .await?
            .into_iter()
            .filter(|c| c.channel_type().follows_tickets())
            .map(|c| c.name)
            .collect();
        let routing = Arc::new(Routing {
            rules,
            environments,
            base_url: self.settings.notify.base_url.clone(),
            accounts: self.settings.aws_accounts.clone(),
            followers,
            mail: self.letter_settings().await?,
        });
        if let Ok(mut guard) = self.caches.routing.0.lock() {
            *guard = Some((Instant::now(), routing.clone()));
        }
        Ok(routing)
    }

    /// Every channel: those of the config file, then those kept through the API.
    pub async fn channels(&self, actor: &Actor) -> Result<Vec<ChannelSpec>> {
        actor.require_admin()?;
        Ok(self
            .channel_specs()
            .await?
            .into_iter()
            .map(|c| c.redacted())
            .collect())
    }

    /// The channels with their secrets, for the dispatcher.
    pub async fn channel_specs(&self) -> Result<Vec<ChannelSpec>> {
        let mut all = self.settings.notify.channels.clone();
        all.extend(
            self.db()
                .stored_channels()
                .await?
                .into_iter()
                .map(|s| s.item),
        );
        Ok(all)
    }

    pub async fn channel_spec(&self, name: &str) -> Result<ChannelSpec> {
        self.channel_specs()
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| not_found_channel(name))
    }

    /// Adds or replaces a channel kept in the database (not one from the config file).
    pub async fn save_channel(&self, actor: &Actor, spec: ChannelSpec) -> Result<ChannelSpec> {
        actor.require_admin()?;
        let spec = spec.validate()?;
        if self
            .settings
            .notify
            .channels
            .iter()
            .any(|c| c.name == spec.name)
        {
            return Err(Error::Conflict(format!(
                "channel {} comes from the config file; change it there",
                spec.name
            )));
        }
        let actor = actor.clone();
        let saved = spec.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                tx.save_channel(&saved, &actor.name, now).await?;
                record(
                    tx,
                    &actor,
                    now,
                    "channel.saved",
                    whole("channel", serde_json::Value::Null, json!(saved.redacted())),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        self.caches.routing.clear();
        Ok(spec.redacted())
    }

    pub async fn delete_channel(&self, actor: &Actor, name: &str) -> Result<()> {
        actor.require_admin()?;
        let actor = actor.clone();
        let name = name.to_owned();
        self.change(move |tx, now| {
            Box::pin(async move {
                if !tx.delete_channel(&name).await? {
                    return Err(not_found_channel(&name));
                }
                record(
                    tx,
                    &actor,
                    now,
                    "channel.deleted",
                    whole("channel", json!(name), serde_json::Value::Null),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        self.caches.routing.clear();
        Ok(())
    }

    /// Every routing rule in the order tried: the config file's first.
    pub async fn routing_rules(&self, actor: &Actor) -> Result<Vec<RoutingRule>> {
        actor.require(Permission::WriteTickets)?;
        Ok(self.routing().await?.rules.clone())
    }

    /// Rules kept through the API, with who made them.
    pub async fn stored_routing_rules(&self, actor: &Actor) -> Result<Vec<Stored<RoutingRule>>> {
        actor.require(Permission::WriteTickets)?;
        Ok(self.db().stored_routing_rules().await?)
    }

    /// Adds or replaces (by name) a routing rule; its channels must exist.
    pub async fn save_routing_rule(
        &self,
        actor: &Actor,
        rule: RoutingRule,
        position: Option<i64>,
    ) -> Result<RoutingRule> {
        actor.require_admin()?;
        let rule = rule.validate()?;
        if self
            .settings
            .notify
            .rules
            .iter()
            .any(|r| r.name == rule.name)
        {
            return Err(Error::Conflict(format!(
                "routing rule {} comes from the config file; change it there",
                rule.name
            )));
        }
        let known = self.channel_specs().await?;
        if let Some((i, c)) = rule
            .channels
            .iter()
            .enumerate()
            .find(|(_, c)| !known.iter().any(|k| &k.name == *c))
        {
            return Err(opsdesk_domain::FieldError::new(
                format!("channels[{i}]"),
                format!("there is no channel named {c}"),
            )
            .into());
        }
        let actor = actor.clone();
        let saved = rule.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                tx.save_routing_rule(&saved, position, &actor.name, now)
                    .await?;
                record(
                    tx,
                    &actor,
                    now,
                    "routing_rule.saved",
                    whole("rule", serde_json::Value::Null, json!(saved)),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        self.caches.routing.clear();
        Ok(rule)
    }

    pub async fn delete_routing_rule(&self, actor: &Actor, name: &str) -> Result<()> {
        actor.require_admin()?;
        let actor = actor.clone();
        let name = name.to_owned();
        self.change(move |tx, now| {
            Box::pin(async move {
                if !tx.delete_routing_rule(&name).await? {
                    return Err(Error::NotFound(format!("routing rule {name}")));
                }
                record(
                    tx,
                    &actor,
                    now,
                    "routing_rule.deleted",
                    whole("rule", json!(name), serde_json::Value::Null),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        self.caches.routing.clear();
        Ok(())
    }

    /// How each rule judges `event` on ticket `id`: which match, which do not and why.
    pub async fn check_routing(
        &self,
        actor: &Actor,
        event: NotificationEvent,
        ticket: &Ticket,
    ) -> Result<(Vec<RuleCheck>, Vec<String>)> {
        actor.require(Permission::WriteTickets)?;
        let routing = self.routing().await?;
        let routed = Routed {
            event,
            ticket,
            environment: routing.environment(ticket),
        };
        Ok((
            explain(&routing.rules, &routed),
            route(&routing.rules, &routed),
        ))
    }

    /// Queues a test message to one channel; the dispatcher sends it like any other.
    pub async fn test_channel(&self, actor: &Actor, name: &str) -> Result<OutboxItem> {
        actor.require_admin()?;
        self.channel_spec(name).await?;
        let actor = actor.clone();
        let name = name.to_owned();
        let base_url = self.settings.notify.base_url.clone();
        let key = format!("test-{}-{}", name, rand::thread_rng().gen::<u64>());
        let db = self.db().clone();
        let found = key.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let n = Notification::test(&name, &actor.name, base_url, now);
                tx.enqueue(
                    &[NewOutboxItem {
                        idempotency_key: key,
                        ticket_id: None,
                        event: NotificationEvent::Test.as_str().to_owned(),
                        channel: name,
                        notification: json!(n),
                    }],
                    now,
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        db.outbox_item_by_key(&found)
            .await?
            .ok_or_else(|| Error::NotFound("the queued test message".into()))
    }

    /// Outbox items (deliveries), newest first.
    pub async fn deliveries(
        &self,
        actor: &Actor,
        filter: &OutboxFilter,
    ) -> Result<Vec<OutboxItem>> {
        actor.require(Permission::WriteTickets)?;
        Ok(self.db().outbox(filter).await?)
    }

    /// One outbox item with all its attempts.
    pub async fn delivery(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<(OutboxItem, Vec<DeliveryAttempt>)> {
        actor.require(Permission::WriteTickets)?;
        let item = self
            .db()
            .outbox_item(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("delivery {id}")))?;
        let attempts = self.db().delivery_attempts(&[id]).await?;
        Ok((item, attempts))
    }

    /// Puts a dead-lettered delivery back in the queue.
    pub async fn retry_delivery(&self, actor: &Actor, id: i64) -> Result<OutboxItem> {
        actor.require(Permission::WriteTickets)?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let item = tx.retry_outbox(id, now).await?.ok_or_else(|| {
                    Error::Conflict(format!("delivery {id} is not dead-lettered"))
                })?;
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: actor.name.clone(),
                    action: "notification.retried".into(),
                    ticket_id: item.ticket_id,
                    changes: Changes::from([(
                        "delivery".to_owned(),
                        FieldChange {
                            before: json!("dead"),
                            after: json!({ "id": item.id, "channel": item.channel, "state": "pending" }),
                        },
                    )]),
                })
                .await?;
                Ok(item)
            })
        })
        .await
    }

    /// Claims due deliveries for this dispatcher, leased for `NotifySettings::lease`.
    pub async fn claim_deliveries(&self, limit: i64) -> Result<Vec<OutboxItem>> {
        if !self.db().outbox_due(self.now()).await? {
            return Ok(Vec::new());
        }
        let lease = self.settings.notify.lease;
        self.change(move |tx, now| {
            Box::pin(async move { Ok(tx.claim_outbox(now, now + lease, limit).await?) })
        })
        .await
    }

    /// Records how an attempt went: delivered, retried later, or dead-lettered. The ticket's
    /// history shows every attempt.
    pub async fn record_delivery(&self, item: &OutboxItem, report: AttemptReport) -> Result<()> {
        let settings = self.settings.notify.clone();
        let item = item.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let after = if report.ok {
                    AfterAttempt::Delivered
                } else if !report.retryable || item.attempts >= settings.max_attempts {
                    AfterAttempt::Dead
                } else {
                    let wait = backoff(
                        item.attempts,
                        settings.first_backoff,
                        settings.max_backoff,
                        &mut rand::thread_rng(),
                    );
                    AfterAttempt::RetryAt(now + wait)
                };
                let attempt = DeliveryAttempt {
                    outbox_id: item.id,
                    attempt: item.attempts,
                    at: now,
                    ok: report.ok,
                    retryable: report.retryable,
                    detail: report.detail.clone(),
                };
                tx.record_attempt(&item, &attempt, after).await?;
                let (action, state) = match after {
                    AfterAttempt::Delivered => ("notification.delivered", "delivered"),
                    AfterAttempt::RetryAt(_) => ("notification.failed", "pending"),
                    AfterAttempt::Dead => ("notification.dead", "dead"),
                };
                let mut after_json = json!({
                    "id": item.id,
                    "channel": item.channel,
                    "event": item.event,
                    "attempt": item.attempts,
                    "state": state,
                    "detail": report.detail,
                });
                if let AfterAttempt::RetryAt(at) = after {
                    after_json["next_attempt_at"] = json!(at);
                }
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: "system:notify".into(),
                    action: action.into(),
                    ticket_id: item.ticket_id,
                    changes: Changes::from([(
                        "delivery".to_owned(),
                        FieldChange {
                            before: serde_json::Value::Null,
                            after: after_json,
                        },
                    )]),
                })
                .await?;
                Ok(())
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let first = chrono::Duration::seconds(30);
        let max = chrono::Duration::hours(1);
        for (attempt, base) in [
            (1, 30_000),
            (2, 60_000),
            (3, 120_000),
            (8, 3_600_000),
            (50, 3_600_000),
        ] {
            for _ in 0..50 {
                let ms = backoff(attempt, first, max, &mut rng).num_milliseconds();
                assert!(
                    (base * 4 / 5..=base * 6 / 5).contains(&ms),
                    "attempt {attempt}: {ms} ms not within a fifth of {base}"
                );
            }
        }
    }

    #[test]
    fn events_of_a_change() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = Ticket::open(
            opsdesk_domain::NewTicket {
                title: "x".into(),
                description: String::new(),
                kind: opsdesk_domain::Kind::Incident,
                severity: opsdesk_domain::Severity::Sev3,
                requester: None,
                assignee: None,
                team: None,
                workload: None,
                tags: vec![],
                source: None,
                dedup_key: None,
            },
            at,
        );
        assert_eq!(Routing::events(None, &t), vec![NotificationEvent::Created]);
        let mut worse = t.clone();
        worse.severity = opsdesk_domain::Severity::Sev1;
        worse.status = Status::Resolved;
        worse.acknowledged_at = Some(at);
        assert_eq!(
            Routing::events(Some(&t), &worse),
            vec![
                NotificationEvent::Acknowledged,
                NotificationEvent::SeverityChanged,
                NotificationEvent::Resolved
            ]
        );
        assert!(Routing::events(Some(&worse), &worse).is_empty());
        let mut reopened = worse.clone();
        reopened.status = Status::InProgress;
        assert_eq!(
            Routing::events(Some(&worse), &reopened),
            vec![NotificationEvent::Reopened]
        );
    }
}
