//! The AWS Health poller: reads the events updated since it last looked, with their
//! descriptions and affected resources, and ingests one signal per event and affected account.
//!
//! In the account view that is one signal per event. In the organization view (the management
//! account or a delegated administrator, with organizational view enabled) it is one signal per
//! event and affected account, since opsdesk keeps one ticket per event and account.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_health::types::{
    AffectedEntity, DateTimeRange, EntityAccountFilter, EntityFilter, Event, EventAccountFilter,
    EventFilter, OrganizationEvent, OrganizationEventFilter,
};
use aws_sdk_health::Client;
use chrono::{DateTime, Utc};
use opsdesk_core::Desk;
use opsdesk_domain::signal::health::HealthEvent;
use opsdesk_domain::Signal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::poll::{
    aws_error, chrono_time, commit, finish_run, object, pause, smithy_time, PollError, PollReport,
    Schedule,
};

/// The API's name in messages.
const API: &str = "AWS Health";
/// The audit actor of ingested events.
const ACTOR: &str = "poller:health";
/// The `poller` label of metrics and logs.
const POLLER: &str = "health";
/// Where the account view keeps its cursor.
const CURSOR: &str = "aws.health";
/// Where the organization view keeps its cursor; a different view reads different events.
const ORGANIZATION_CURSOR: &str = "aws.health.organization";
/// How far back the first run reads.
const FIRST_LOOKBACK_DAYS: i64 = 7;
/// The most event ARNs (or event and account pairs) the detail and entity calls take at once.
const BATCH: usize = 10;

/// `[ingest.health]`: the AWS Health API poller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Poll the AWS Health API. Needs a plan with the AWS Support API (Business Support+,
    /// Enterprise, Unified Operations; Business and Enterprise On-Ramp until they end), and
    /// `health:Describe*` permissions.
    pub enabled: bool,
    /// The region the poller asks first. The API answers in `us-east-1` or, after a failover,
    /// `us-east-2`; the poller follows whichever answers.
    pub region: String,
    /// Read the organization view (`Describe*ForOrganization`): events of every account in
    /// the AWS Organization, one ticket per event and affected account. Needs the management
    /// account or a delegated administrator, with organizational view enabled.
    pub organization: bool,
    /// Seconds between polls.
    pub interval_seconds: u64,
    /// The account the account view's events belong to, for events whose affected resources
    /// do not name it (so that they match the same events delivered through EventBridge).
    pub account: Option<String>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: false,
            region: "us-east-1".to_owned(),
            organization: false,
            interval_seconds: 300,
            account: None,
        }
    }
}

impl HealthConfig {
    fn cursor_name(&self) -> &'static str {
        if self.organization {
            ORGANIZATION_CURSOR
        } else {
            CURSOR
        }
    }
}

/// What one read of the Health API found.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthBatch {
    pub signals: Vec<Signal>,
    /// The latest `lastUpdatedTime` seen, or `since` when nothing newer came.
    pub latest: DateTime<Utc>,
}

/// Polls the Health API until `shutdown`: reads, ingests, stores the cursor, waits.
pub async fn run_health(desk: Desk, config: HealthConfig, shutdown: CancellationToken) {
    if !config.enabled {
        return;
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .load()
        .await;
    let mut clients = HealthClients::new(config.region.clone(), Client::new(&sdk));
    if let Some(other) = other_region(&config.region) {
        let sdk = sdk
            .into_builder()
            .region(aws_config::Region::new(other))
            .build();
        clients = clients.with_failover(other.to_owned(), Client::new(&sdk));
    }
    let mut schedule = Schedule::new(Duration::from_secs(config.interval_seconds));
    tracing::info!(
        poller = POLLER,
        region = %config.region,
        organization = config.organization,
        "polling AWS Health"
    );
    loop {
        let run = tokio::select! {
            _ = shutdown.cancelled() => return,
            run = poll_health_once(&mut clients, &desk, &config) => run,
        };
        let delay = finish_run(POLLER, &mut schedule, &run);
        if !pause(delay, &shutdown).await {
            return;
        }
    }
}

/// The other of the Health API's two regions; none outside them (another partition).
pub fn other_region(region: &str) -> Option<&'static str> {
    match region {
        "us-east-1" => Some("us-east-2"),
        "us-east-2" => Some("us-east-1"),
        _ => None,
    }
}

/// A client per Health API region, and the region that answered last. The API is
/// active-passive behind a global endpoint: when the region in use answers that it is not the
/// active one, or cannot be reached, the other is tried and, if it answers, kept.
#[derive(Debug, Clone)]
pub struct HealthClients {
    clients: Vec<(String, Client)>,
    active: usize,
}

impl HealthClients {
    pub fn new(region: impl Into<String>, client: Client) -> Self {
        HealthClients {
            clients: vec![(region.into(), client)],
            active: 0,
        }
    }

    /// Adds the region to try when the one in use does not answer.
    pub fn with_failover(mut self, region: impl Into<String>, client: Client) -> Self {
        self.clients.push((region.into(), client));
        self
    }

    /// The region in use.
    pub fn region(&self) -> &str {
        self.clients
            .get(self.active)
            .map(|(r, _)| r.as_str())
            .unwrap_or_default()
    }

    /// Reads as [`fetch_health_signals`] does, in the region in use and, when that region
    /// fails for any reason but the account's plan or throttling, in the other.
    pub async fn fetch(
        &mut self,
        config: &HealthConfig,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<HealthBatch, PollError> {
        let count = self.clients.len();
        let mut first_error = None;
        for step in 0..count {
            let at = (self.active + step) % count;
            let Some((region, client)) = self.clients.get(at) else {
                break;
            };
            match fetch_health_signals(client, config, since, now).await {
                Ok(batch) => {
                    if at != self.active {
                        tracing::warn!(poller = POLLER, from = %self.region(), to = %region,
                            error = ?first_error.as_ref().map(ToString::to_string),
                            "AWS Health answered in the other region; polling there from now on");
                        self.active = at;
                    }
                    return Ok(batch);
                }
                Err(e @ PollError::Aws { .. }) => {
                    tracing::info!(poller = POLLER, region = %region, error = %e,
                        "AWS Health did not answer in this region");
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_error.unwrap_or(PollError::Aws {
            api: API,
            message: "no region to ask".to_owned(),
        }))
    }
}

/// One poll: reads what changed since the stored cursor (the last 7 days on the first run),
/// ingests it and, once that committed, stores the new cursor.
pub async fn poll_health_once(
    clients: &mut HealthClients,
    desk: &Desk,
    config: &HealthConfig,
) -> Result<PollReport, PollError> {
    let now = desk.now();
    let cursor_name = config.cursor_name();
    let stored = desk.poller_cursor(cursor_name).await?;
    let since = match stored.as_deref().map(DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => t.with_timezone(&Utc),
        Some(Err(e)) => {
            tracing::warn!(poller = POLLER, cursor = ?stored, error = %e,
                "the stored cursor is not a time; reading the last 7 days");
            now - chrono::Duration::days(FIRST_LOOKBACK_DAYS)
        }
        None => now - chrono::Duration::days(FIRST_LOOKBACK_DAYS),
    };
    let batch = clients.fetch(config, since, now).await?;
    commit(
        desk,
        ACTOR,
        cursor_name,
        batch.signals,
        batch.latest.to_rfc3339(),
    )
    .await
}

/// Reads the events updated at or after `since`, in the view `config` chooses, as signals.
/// `now` stands in for an event's time when AWS sent none.
pub async fn fetch_health_signals(
    client: &Client,
    config: &HealthConfig,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<HealthBatch, PollError> {
    if config.organization {
        fetch_organization(client, since, now).await
    } else {
        fetch_account(client, config, since, now).await
    }
}

/// The fields of `Event` and `OrganizationEvent` opsdesk reads.
#[derive(Debug, Clone)]
struct EventSummary {
    arn: String,
    service: Option<String>,
    type_code: Option<String>,
    category: Option<String>,
    scope: Option<String>,
    region: Option<String>,
    availability_zone: Option<String>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    last_updated: Option<DateTime<Utc>>,
    status: Option<String>,
    actionability: Option<String>,
    personas: Vec<String>,
}

impl From<&Event> for EventSummary {
    fn from(e: &Event) -> Self {
        EventSummary {
            arn: e.arn().unwrap_or_default().to_owned(),
            service: e.service().map(str::to_owned),
            type_code: e.event_type_code().map(str::to_owned),
            category: e.event_type_category().map(|c| c.as_str().to_owned()),
            scope: e.event_scope_code().map(|c| c.as_str().to_owned()),
            region: e.region().map(str::to_owned),
            availability_zone: e.availability_zone().map(str::to_owned),
            start: e.start_time().and_then(chrono_time),
            end: e.end_time().and_then(chrono_time),
            last_updated: e.last_updated_time().and_then(chrono_time),
            status: e.status_code().map(|c| c.as_str().to_owned()),
            actionability: e.actionability().map(|a| a.as_str().to_owned()),
            personas: e.personas().iter().map(|p| p.as_str().to_owned()).collect(),
        }
    }
}

impl From<&OrganizationEvent> for EventSummary {
    fn from(e: &OrganizationEvent) -> Self {
        EventSummary {
            arn: e.arn().unwrap_or_default().to_owned(),
            service: e.service().map(str::to_owned),
            type_code: e.event_type_code().map(str::to_owned),
            category: e.event_type_category().map(|c| c.as_str().to_owned()),
            scope: e.event_scope_code().map(|c| c.as_str().to_owned()),
            region: e.region().map(str::to_owned),
            availability_zone: None,
            start: e.start_time().and_then(chrono_time),
            end: e.end_time().and_then(chrono_time),
            last_updated: e.last_updated_time().and_then(chrono_time),
            status: e.status_code().map(|c| c.as_str().to_owned()),
            actionability: e.actionability().map(|a| a.as_str().to_owned()),
            personas: e.personas().iter().map(|p| p.as_str().to_owned()).collect(),
        }
    }
}

impl EventSummary {
    fn raw(&self) -> Value {
        object([
            ("arn", Some(json!(self.arn))),
            ("service", self.service.as_ref().map(|v| json!(v))),
            ("eventTypeCode", self.type_code.as_ref().map(|v| json!(v))),
            (
                "eventTypeCategory",
                self.category.as_ref().map(|v| json!(v)),
            ),
            ("eventScopeCode", self.scope.as_ref().map(|v| json!(v))),
            ("region", self.region.as_ref().map(|v| json!(v))),
            (
                "availabilityZone",
                self.availability_zone.as_ref().map(|v| json!(v)),
            ),
            ("startTime", self.start.map(|t| json!(t.to_rfc3339()))),
            ("endTime", self.end.map(|t| json!(t.to_rfc3339()))),
            (
                "lastUpdatedTime",
                self.last_updated.map(|t| json!(t.to_rfc3339())),
            ),
            ("statusCode", self.status.as_ref().map(|v| json!(v))),
            (
                "actionability",
                self.actionability.as_ref().map(|v| json!(v)),
            ),
            (
                "personas",
                (!self.personas.is_empty()).then(|| json!(self.personas)),
            ),
        ])
    }
}

/// An event's description and metadata, from `DescribeEventDetails*`.
#[derive(Debug, Clone, Default)]
struct Details {
    description: Option<String>,
    metadata: BTreeMap<String, String>,
}

/// Builds the signal for one event and affected account.
fn signal(
    event: &EventSummary,
    account: Option<String>,
    details: Option<&Details>,
    entities: &[AffectedEntity],
    now: DateTime<Utc>,
) -> Signal {
    let raw = object([
        ("event", Some(event.raw())),
        (
            "eventDescription",
            details.map(|d| {
                object([(
                    "latestDescription",
                    d.description.as_ref().map(|v| json!(v)),
                )])
            }),
        ),
        (
            "eventMetadata",
            details
                .filter(|d| !d.metadata.is_empty())
                .map(|d| json!(d.metadata)),
        ),
        ("affectedAccount", account.as_ref().map(|a| json!(a))),
        (
            "affectedEntities",
            Some(Value::Array(entities.iter().map(entity_raw).collect())),
        ),
    ]);
    let health = HealthEvent {
        arn: event.arn.clone(),
        service: event.service.clone(),
        type_code: event.type_code.clone(),
        category: event.category.clone().unwrap_or_else(|| "issue".to_owned()),
        status: event.status.clone().unwrap_or_else(|| "open".to_owned()),
        region: event.region.clone(),
        affected_account: account,
        start: event.start,
        end: event.end,
        last_updated: event.last_updated,
        description: details
            .and_then(|d| d.description.clone())
            .unwrap_or_default(),
        entities: entities
            .iter()
            .filter_map(|e| {
                let value = e.entity_value().or(e.entity_arn())?;
                let tags = e
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                Some((value.to_owned(), tags))
            })
            .collect(),
        actionability: event.actionability.clone(),
        personas: event.personas.clone(),
        // The API answers with every affected resource: one whole event, never a page.
        page: None,
        // As on the EventBridge path: the service, or an abuse event type, says so.
        abuse: event.service.as_deref() == Some("ABUSE")
            || event
                .type_code
                .as_deref()
                .is_some_and(|t| t.starts_with("AWS_ABUSE_")),
    };
    health.into_signal(raw, now)
}

fn entity_raw(e: &AffectedEntity) -> Value {
    object([
        ("entityArn", e.entity_arn().map(|v| json!(v))),
        ("eventArn", e.event_arn().map(|v| json!(v))),
        ("entityValue", e.entity_value().map(|v| json!(v))),
        ("entityUrl", e.entity_url().map(|v| json!(v))),
        ("awsAccountId", e.aws_account_id().map(|v| json!(v))),
        (
            "lastUpdatedTime",
            e.last_updated_time()
                .and_then(chrono_time)
                .map(|t| json!(t.to_rfc3339())),
        ),
        ("statusCode", e.status_code().map(|c| json!(c.as_str()))),
        (
            "tags",
            e.tags()
                .map(|t| json!(t.iter().collect::<BTreeMap<_, _>>())),
        ),
    ])
}

/// The latest update among `events`, never before `since`.
fn latest(since: DateTime<Utc>, events: &[EventSummary]) -> DateTime<Utc> {
    events
        .iter()
        .filter_map(|e| e.last_updated)
        .fold(since, DateTime::max)
}

fn since_range(since: DateTime<Utc>) -> DateTimeRange {
    DateTimeRange::builder().from(smithy_time(since)).build()
}

async fn fetch_account(
    client: &Client,
    config: &HealthConfig,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<HealthBatch, PollError> {
    let filter = EventFilter::builder()
        .last_updated_times(since_range(since))
        .build();
    let mut pages = client
        .describe_events()
        .filter(filter)
        .max_results(100)
        .into_paginator()
        .send();
    let mut events: Vec<EventSummary> = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error(API, e))?;
        events.extend(page.events().iter().map(EventSummary::from));
    }
    events.retain(|e| !e.arn.is_empty());

    let mut details: HashMap<String, Details> = HashMap::new();
    let mut entities: HashMap<String, Vec<AffectedEntity>> = HashMap::new();
    for batch in events.chunks(BATCH) {
        let arns: Vec<String> = batch.iter().map(|e| e.arn.clone()).collect();
        let out = client
            .describe_event_details()
            .set_event_arns(Some(arns.clone()))
            .send()
            .await
            .map_err(|e| aws_error(API, e))?;
        for d in out.successful_set() {
            let Some(arn) = d.event().and_then(|e| e.arn()) else {
                continue;
            };
            details.insert(
                arn.to_owned(),
                Details {
                    description: d
                        .event_description()
                        .and_then(|d| d.latest_description())
                        .map(str::to_owned),
                    metadata: sorted(d.event_metadata()),
                },
            );
        }
        for f in out.failed_set() {
            tracing::warn!(poller = POLLER, event = ?f.event_arn(), error = ?f.error_name(),
                message = ?f.error_message(), "AWS Health gave no details for an event");
        }

        let filter = EntityFilter::builder()
            .set_event_arns(Some(arns))
            .build()
            .map_err(|e| PollError::Aws {
                api: API,
                message: e.to_string(),
            })?;
        let mut pages = client
            .describe_affected_entities()
            .filter(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error(API, e))?;
            for entity in page.entities() {
                if let Some(arn) = entity.event_arn() {
                    entities
                        .entry(arn.to_owned())
                        .or_default()
                        .push(entity.clone());
                }
            }
        }
    }

    let signals = events
        .iter()
        .map(|e| {
            let found = entities.get(&e.arn).map(Vec::as_slice).unwrap_or_default();
            let account = found
                .iter()
                .find_map(|x| x.aws_account_id().map(str::to_owned))
                .or_else(|| config.account.clone());
            signal(e, account, details.get(&e.arn), found, now)
        })
        .collect();
    Ok(HealthBatch {
        signals,
        latest: latest(since, &events),
    })
}

async fn fetch_organization(
    client: &Client,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<HealthBatch, PollError> {
    let filter = OrganizationEventFilter::builder()
        .last_updated_time(since_range(since))
        .build();
    let mut pages = client
        .describe_events_for_organization()
        .filter(filter)
        .max_results(100)
        .into_paginator()
        .send();
    let mut events: Vec<EventSummary> = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error(API, e))?;
        events.extend(page.events().iter().map(EventSummary::from));
    }
    events.retain(|e| !e.arn.is_empty());

    // (event, affected account); a public event affects no account in particular.
    let mut pairs: Vec<(usize, Option<String>)> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let mut pages = client
            .describe_affected_accounts_for_organization()
            .event_arn(&event.arn)
            .into_paginator()
            .send();
        let mut accounts = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error(API, e))?;
            accounts.extend(page.affected_accounts().iter().cloned());
        }
        if accounts.is_empty() {
            pairs.push((i, None));
        } else {
            accounts.sort();
            accounts.dedup();
            pairs.extend(accounts.into_iter().map(|a| (i, Some(a))));
        }
    }

    type Key = (String, Option<String>);
    let mut details: HashMap<Key, Details> = HashMap::new();
    let mut entities: HashMap<Key, Vec<AffectedEntity>> = HashMap::new();
    for batch in pairs.chunks(BATCH) {
        let mut detail_filters = Vec::with_capacity(batch.len());
        let mut entity_filters = Vec::with_capacity(batch.len());
        for (i, account) in batch {
            let arn = &events[*i].arn;
            detail_filters.push(
                EventAccountFilter::builder()
                    .event_arn(arn)
                    .set_aws_account_id(account.clone())
                    .build()
                    .map_err(build_error)?,
            );
            if let Some(account) = account {
                entity_filters.push(
                    EntityAccountFilter::builder()
                        .event_arn(arn)
                        .aws_account_id(account)
                        .build()
                        .map_err(build_error)?,
                );
            }
        }
        let out = client
            .describe_event_details_for_organization()
            .set_organization_event_detail_filters(Some(detail_filters))
            .send()
            .await
            .map_err(|e| aws_error(API, e))?;
        for d in out.successful_set() {
            let Some(arn) = d.event().and_then(|e| e.arn()) else {
                continue;
            };
            details.insert(
                (arn.to_owned(), d.aws_account_id().map(str::to_owned)),
                Details {
                    description: d
                        .event_description()
                        .and_then(|d| d.latest_description())
                        .map(str::to_owned),
                    metadata: sorted(d.event_metadata()),
                },
            );
        }
        for f in out.failed_set() {
            tracing::warn!(poller = POLLER, event = ?f.event_arn(), account = ?f.aws_account_id(),
                error = ?f.error_name(), message = ?f.error_message(),
                "AWS Health gave no details for an event");
        }
        if entity_filters.is_empty() {
            continue;
        }
        let mut pages = client
            .describe_affected_entities_for_organization()
            .set_organization_entity_account_filters(Some(entity_filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error(API, e))?;
            for entity in page.entities() {
                if let Some(arn) = entity.event_arn() {
                    let key = (arn.to_owned(), entity.aws_account_id().map(str::to_owned));
                    entities.entry(key).or_default().push(entity.clone());
                }
            }
            for f in page.failed_set() {
                tracing::warn!(poller = POLLER, event = ?f.event_arn(), account = ?f.aws_account_id(),
                    error = ?f.error_name(), message = ?f.error_message(),
                    "AWS Health gave no affected resources for an event");
            }
        }
    }

    let signals = pairs
        .into_iter()
        .map(|(i, account)| {
            let event = &events[i];
            let key = (event.arn.clone(), account.clone());
            let found = entities.get(&key).map(Vec::as_slice).unwrap_or_default();
            // Details of a public event come without an account.
            let detail = details
                .get(&key)
                .or_else(|| details.get(&(event.arn.clone(), None)));
            signal(event, account, detail, found, now)
        })
        .collect();
    Ok(HealthBatch {
        signals,
        latest: latest(since, &events),
    })
}

fn build_error(e: aws_sdk_health::error::BuildError) -> PollError {
    PollError::Aws {
        api: API,
        message: e.to_string(),
    }
}

fn sorted(m: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_health::config::retry::RetryConfig;
    use aws_sdk_health::error::ErrorMetadata;
    use aws_sdk_health::operation::describe_affected_accounts_for_organization::DescribeAffectedAccountsForOrganizationOutput;
    use aws_sdk_health::operation::describe_affected_entities::DescribeAffectedEntitiesOutput;
    use aws_sdk_health::operation::describe_affected_entities_for_organization::DescribeAffectedEntitiesForOrganizationOutput;
    use aws_sdk_health::operation::describe_event_details::DescribeEventDetailsOutput;
    use aws_sdk_health::operation::describe_event_details_for_organization::DescribeEventDetailsForOrganizationOutput;
    use aws_sdk_health::operation::describe_events::{DescribeEventsError, DescribeEventsOutput};
    use aws_sdk_health::operation::describe_events_for_organization::DescribeEventsForOrganizationOutput;
    use aws_sdk_health::types::{
        EntityStatusCode, EventDescription, EventDetails, EventDetailsErrorItem, EventScopeCode,
        EventStatusCode, EventTypeCategory, OrganizationEventDetails,
    };
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use opsdesk_core::signals::Effect;
    use opsdesk_core::Actor;
    use opsdesk_domain::{SignalState, Status};

    use super::*;
    use crate::poll::testing;

    const ACCOUNT: &str = "123456789012";
    const ISSUE: &str = "arn:aws:health:eu-west-1::event/EC2/AWS_EC2_OPERATIONAL_ISSUE/AWS_EC2_OPERATIONAL_ISSUE_7f35c8ae-af1f-54e6-a526-d0179ed6d68f";
    const REBOOT: &str = "arn:aws:health:eu-west-1::event/EC2/AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED/AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED_2bb4c1ef-17b1-4d3e-9b1f-5d9c7f0e1a22";

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn t(s: &str) -> aws_sdk_health::primitives::DateTime {
        smithy_time(at(s))
    }

    fn issue(status: EventStatusCode, updated: &str) -> Event {
        Event::builder()
            .arn(ISSUE)
            .service("EC2")
            .event_type_code("AWS_EC2_OPERATIONAL_ISSUE")
            .event_type_category(EventTypeCategory::Issue)
            .region("eu-west-1")
            .start_time(t("2024-05-02T09:40:00Z"))
            .last_updated_time(t(updated))
            .status_code(status)
            .event_scope_code(EventScopeCode::AccountSpecific)
            .build()
    }

    fn reboot() -> Event {
        Event::builder()
            .arn(REBOOT)
            .service("EC2")
            .event_type_code("AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED")
            .event_type_category(EventTypeCategory::ScheduledChange)
            .region("eu-west-1")
            .start_time(t("2024-05-09T02:00:00Z"))
            .end_time(t("2024-05-09T04:00:00Z"))
            .last_updated_time(t("2024-05-02T11:00:00Z"))
            .status_code(EventStatusCode::Upcoming)
            .event_scope_code(EventScopeCode::AccountSpecific)
            .build()
    }

    fn entity(event: &str, value: &str, account: &str) -> AffectedEntity {
        AffectedEntity::builder()
            .entity_arn(format!(
                "arn:aws:health:eu-west-1:{account}:entity/g1vFB6uP9L"
            ))
            .event_arn(event)
            .entity_value(value)
            .aws_account_id(account)
            .last_updated_time(t("2024-05-02T10:15:31Z"))
            .status_code(EntityStatusCode::Impaired)
            .tags("Environment", "production")
            .build()
    }

    fn description(text: &str) -> EventDescription {
        EventDescription::builder().latest_description(text).build()
    }

    /// A client answering the account view with `events`, one page each, their details
    /// (none for events whose description is `None`) and their entities.
    fn account_client(
        pages: Vec<Vec<Event>>,
        entities: Vec<AffectedEntity>,
    ) -> (Client, Vec<Rule>) {
        let mut rules = Vec::new();
        let count = pages.len();
        for (i, page) in pages.into_iter().enumerate() {
            let token = (i > 0).then(|| format!("page-{i}"));
            let next = (i + 1 < count).then(|| format!("page-{}", i + 1));
            rules.push(
                mock!(Client::describe_events)
                    .match_requests(move |r| r.next_token() == token.as_deref())
                    .then_output(move || {
                        DescribeEventsOutput::builder()
                            .set_events(Some(page.clone()))
                            .set_next_token(next.clone())
                            .build()
                    }),
            );
        }
        rules.push(mock!(Client::describe_event_details).then_compute_output(|req| {
            let mut out = DescribeEventDetailsOutput::builder();
            for arn in req.event_arns() {
                if arn == ISSUE {
                    out = out.successful_set(
                        EventDetails::builder()
                            .event(Event::builder().arn(arn).build())
                            .event_description(description(
                                "[RESOLVED] Increased API error rates\n\nWe are investigating increased API error rates in the EU-WEST-1 Region.",
                            ))
                            .build(),
                    );
                } else {
                    out = out.failed_set(
                        EventDetailsErrorItem::builder()
                            .event_arn(arn)
                            .error_name("UnsupportedLocale")
                            .error_message("locale not supported")
                            .build(),
                    );
                }
            }
            out.build()
        }));
        rules.push(
            mock!(Client::describe_affected_entities).then_compute_output(move |req| {
                let wanted = req
                    .filter()
                    .map(|f| f.event_arns().to_vec())
                    .unwrap_or_default();
                DescribeAffectedEntitiesOutput::builder()
                    .set_entities(Some(
                        entities
                            .iter()
                            .filter(|e| wanted.iter().any(|w| Some(w.as_str()) == e.event_arn()))
                            .cloned()
                            .collect(),
                    ))
                    .build()
            }),
        );
        let client = mock_client!(aws_sdk_health, RuleMode::MatchAny, &rules, |c| c
            .retry_config(RetryConfig::disabled()));
        (client, rules)
    }

    fn account_config() -> HealthConfig {
        HealthConfig {
            enabled: true,
            ..HealthConfig::default()
        }
    }

    #[tokio::test]
    async fn account_view_follows_pages_and_reads_details_and_entities() {
        let (client, rules) = account_client(
            vec![
                vec![issue(EventStatusCode::Open, "2024-05-02T10:15:31Z")],
                vec![reboot()],
            ],
            vec![
                entity(ISSUE, "i-0a1b2c3d4e5f67890", ACCOUNT),
                entity(REBOOT, "i-0fedcba9876543210", ACCOUNT),
            ],
        );
        let since = at("2024-04-25T00:00:00Z");
        let batch = fetch_health_signals(
            &client,
            &account_config(),
            since,
            at("2024-05-02T12:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(rules[0].num_calls(), 1);
        assert_eq!(rules[1].num_calls(), 1, "the second page was not read");
        assert_eq!(batch.latest, at("2024-05-02T11:00:00Z"));
        let [issue, reboot] = batch.signals.as_slice() else {
            panic!("want two signals, got {:?}", batch.signals);
        };

        assert_eq!(issue.dedup_key, format!("{ISSUE}|{ACCOUNT}"));
        assert_eq!(issue.state, SignalState::Firing);
        assert_eq!(issue.kind, "issue");
        assert_eq!(issue.category.as_deref(), Some("AWS_EC2_OPERATIONAL_ISSUE"));
        assert_eq!(issue.title, "AWS Health: EC2 operational issue");
        assert!(issue
            .body
            .starts_with("[RESOLVED] Increased API error rates"));
        assert_eq!(issue.resources, vec!["i-0a1b2c3d4e5f67890"]);
        assert_eq!(
            issue.tags.get("Environment").map(String::as_str),
            Some("production")
        );
        assert_eq!(issue.account.as_deref(), Some(ACCOUNT));
        assert_eq!(issue.region.as_deref(), Some("eu-west-1"));
        assert_eq!(issue.occurred_at, at("2024-05-02T10:15:31Z"));
        assert_eq!(issue.raw["event"]["statusCode"], "open");
        assert_eq!(
            issue.raw["event"]["lastUpdatedTime"],
            "2024-05-02T10:15:31+00:00"
        );
        assert_eq!(
            issue.raw["affectedEntities"][0]["entityValue"],
            "i-0a1b2c3d4e5f67890"
        );
        assert!(issue.raw["event"].get("endTime").is_none());

        // AWS gave no details for this one: still a signal, without a description.
        assert_eq!(reboot.kind, "scheduledChange");
        assert_eq!(reboot.body, "");
        let window = reboot.window.as_ref().unwrap();
        assert_eq!(window.start, at("2024-05-09T02:00:00Z"));
        assert_eq!(window.end, Some(at("2024-05-09T04:00:00Z")));
        assert!(reboot.raw.get("eventDescription").is_none());
    }

    #[tokio::test]
    async fn details_and_entities_are_asked_for_ten_events_at_a_time() {
        let events: Vec<Event> = (0..23)
            .map(|i| {
                Event::builder()
                    .arn(format!("{ISSUE}-{i}"))
                    .event_type_category(EventTypeCategory::AccountNotification)
                    .status_code(EventStatusCode::Open)
                    .build()
            })
            .collect();
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let rules = vec![
            mock!(Client::describe_events).then_output(move || {
                DescribeEventsOutput::builder()
                    .set_events(Some(events.clone()))
                    .build()
            }),
            mock!(Client::describe_event_details).then_compute_output(move |req| {
                seen.lock().unwrap().push(req.event_arns().len());
                DescribeEventDetailsOutput::builder().build()
            }),
            mock!(Client::describe_affected_entities)
                .match_requests(|req| req.filter().is_some_and(|f| f.event_arns().len() <= 10))
                .then_output(|| DescribeAffectedEntitiesOutput::builder().build()),
        ];
        let client = mock_client!(aws_sdk_health, RuleMode::MatchAny, &rules);
        let config = HealthConfig {
            account: Some(ACCOUNT.into()),
            ..account_config()
        };
        let now = at("2024-05-02T12:00:00Z");
        let batch = fetch_health_signals(&client, &config, now - chrono::Duration::days(7), now)
            .await
            .unwrap();
        assert_eq!(*sizes.lock().unwrap(), vec![10, 10, 3]);
        assert_eq!(rules[2].num_calls(), 3);
        assert_eq!(batch.signals.len(), 23);
        // No update time from AWS: the run's time stands in, and the cursor stays put.
        assert_eq!(batch.signals[0].occurred_at, now);
        assert_eq!(batch.latest, now - chrono::Duration::days(7));
        // No entity names the account: the configured one does.
        assert_eq!(batch.signals[0].account.as_deref(), Some(ACCOUNT));
    }

    #[tokio::test]
    async fn organization_view_makes_one_signal_per_affected_account() {
        let public = "arn:aws:health:global::event/IAM/AWS_IAM_OPERATIONAL_NOTIFICATION/AWS_IAM_OPERATIONAL_NOTIFICATION_0a1b";
        let rules = vec![
            mock!(Client::describe_events_for_organization).then_output(move || {
                DescribeEventsForOrganizationOutput::builder()
                    .events(
                        OrganizationEvent::builder()
                            .arn(ISSUE)
                            .service("EC2")
                            .event_type_code("AWS_EC2_OPERATIONAL_ISSUE")
                            .event_type_category(EventTypeCategory::Issue)
                            .event_scope_code(EventScopeCode::AccountSpecific)
                            .region("eu-west-1")
                            .start_time(t("2024-05-02T09:40:00Z"))
                            .last_updated_time(t("2024-05-02T10:15:31Z"))
                            .status_code(EventStatusCode::Open)
                            .actionability(
                                aws_sdk_health::types::EventActionability::ActionRequired,
                            )
                            .personas(aws_sdk_health::types::EventPersona::Operations)
                            .build(),
                    )
                    .events(
                        OrganizationEvent::builder()
                            .arn(public)
                            .service("IAM")
                            .event_type_code("AWS_IAM_OPERATIONAL_NOTIFICATION")
                            .event_type_category(EventTypeCategory::AccountNotification)
                            .event_scope_code(EventScopeCode::Public)
                            .region("global")
                            .last_updated_time(t("2024-05-01T08:00:00Z"))
                            .status_code(EventStatusCode::Open)
                            .build(),
                    )
                    .build()
            }),
            mock!(Client::describe_affected_accounts_for_organization).then_compute_output(|req| {
                let out = DescribeAffectedAccountsForOrganizationOutput::builder();
                if req.event_arn() == Some(ISSUE) {
                    out.affected_accounts("111111111111")
                        .affected_accounts("222222222222")
                        .event_scope_code(EventScopeCode::AccountSpecific)
                        .build()
                } else {
                    out.event_scope_code(EventScopeCode::Public).build()
                }
            }),
            mock!(Client::describe_event_details_for_organization).then_compute_output(|req| {
                let mut out = DescribeEventDetailsForOrganizationOutput::builder();
                for f in req.organization_event_detail_filters() {
                    out = out.successful_set(
                        OrganizationEventDetails::builder()
                            .set_aws_account_id(f.aws_account_id().map(str::to_owned))
                            .event(Event::builder().arn(f.event_arn()).build())
                            .event_description(description(&format!(
                                "details for {}",
                                f.aws_account_id().unwrap_or("everyone")
                            )))
                            .build(),
                    );
                }
                out.build()
            }),
            mock!(Client::describe_affected_entities_for_organization).then_compute_output(|req| {
                let mut out = DescribeAffectedEntitiesForOrganizationOutput::builder();
                for f in req.organization_entity_account_filters() {
                    let account = f.aws_account_id().unwrap_or_default();
                    out = out.entities(entity(f.event_arn(), &format!("i-{account}"), account));
                }
                out.build()
            }),
        ];
        let client = mock_client!(aws_sdk_health, RuleMode::MatchAny, &rules);
        let config = HealthConfig {
            organization: true,
            ..account_config()
        };
        let now = at("2024-05-02T12:00:00Z");
        let batch = fetch_health_signals(&client, &config, now - chrono::Duration::days(7), now)
            .await
            .unwrap();
        let got: Vec<(&str, Option<&str>, &[String], &str)> = batch
            .signals
            .iter()
            .map(|s| {
                (
                    s.dedup_key.as_str(),
                    s.account.as_deref(),
                    s.resources.as_slice(),
                    s.body.as_str(),
                )
            })
            .collect();
        let issue_a = format!("{ISSUE}|111111111111");
        let issue_b = format!("{ISSUE}|222222222222");
        let public_key = format!("{public}|");
        assert_eq!(
            got,
            vec![
                (
                    issue_a.as_str(),
                    Some("111111111111"),
                    &["i-111111111111".to_owned()][..],
                    "details for 111111111111"
                ),
                (
                    issue_b.as_str(),
                    Some("222222222222"),
                    &["i-222222222222".to_owned()][..],
                    "details for 222222222222"
                ),
                (public_key.as_str(), None, &[][..], "details for everyone"),
            ]
        );
        assert_eq!(batch.signals[1].raw["affectedAccount"], "222222222222");
        // Read in the management account: each signal is the affected account's, so its
        // ticket, workload match and AWS case use that account.
        assert!(batch
            .signals
            .iter()
            .all(|s| s.account.as_deref() != Some(ACCOUNT)));
        assert_eq!(
            batch.signals[0].actionability.as_deref(),
            Some("ACTION_REQUIRED")
        );
        assert_eq!(batch.signals[1].personas, ["OPERATIONS"]);
        assert_eq!(batch.latest, at("2024-05-02T10:15:31Z"));
    }

    fn failing_client(code: &'static str, retry: RetryConfig) -> (Client, Rule) {
        let rule = mock!(Client::describe_events).then_error(move || {
            DescribeEventsError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("AWS said no")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_health, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(retry.clone()));
        (client, rule)
    }

    #[tokio::test]
    async fn a_missing_support_plan_is_named() {
        let (client, _) = failing_client("SubscriptionRequiredException", RetryConfig::disabled());
        let now = at("2024-05-02T12:00:00Z");
        let err = fetch_health_signals(&client, &account_config(), now, now)
            .await
            .unwrap_err();
        assert!(
            matches!(err, PollError::SubscriptionRequired { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the AWS Health API needs a Business Support+, Enterprise or Unified Operations support plan \
             (or Business or Enterprise On-Ramp where they remain; AWS answered \
             SubscriptionRequiredException)"
        );
    }

    #[tokio::test]
    async fn throttling_that_outlasts_the_sdk_retries_backs_off() {
        let retry = RetryConfig::standard()
            .with_max_attempts(2)
            .with_initial_backoff(Duration::from_millis(1));
        let (client, rule) = failing_client("ThrottlingException", retry);
        let now = at("2024-05-02T12:00:00Z");
        let err = fetch_health_signals(&client, &account_config(), now, now)
            .await
            .unwrap_err();
        assert_eq!(rule.num_calls(), 2, "the SDK retries throttling first");
        assert!(matches!(err, PollError::Throttled { .. }), "{err:?}");
        let mut schedule = Schedule::new(Duration::from_secs(300));
        assert_eq!(schedule.next_delay(Err(&err), 1.0), Duration::from_secs(1));
        assert_eq!(schedule.next_delay(Err(&err), 1.0), Duration::from_secs(2));

        let (client, _) = failing_client("TooManyRequestsException", RetryConfig::disabled());
        let err = fetch_health_signals(&client, &account_config(), now, now)
            .await
            .unwrap_err();
        assert!(matches!(err, PollError::Throttled { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn other_errors_wait_for_the_next_interval() {
        let (client, _) = failing_client("InternalFailure", RetryConfig::disabled());
        let now = at("2024-05-02T12:00:00Z");
        let err = fetch_health_signals(&client, &account_config(), now, now)
            .await
            .unwrap_err();
        assert!(matches!(err, PollError::Aws { .. }), "{err:?}");
        assert_eq!(err.result_label(), "error");
        let mut schedule = Schedule::new(Duration::from_secs(300));
        assert_eq!(
            schedule.next_delay(Err(&err), 1.0),
            Duration::from_secs(300)
        );
    }

    #[tokio::test]
    async fn polls_open_once_and_resolve_when_aws_closes_the_event() {
        let (desk, clock, _dir) = testing::desk(at("2024-05-02T12:00:00Z")).await;
        let config = account_config();
        let entities = vec![
            entity(ISSUE, "i-0a1b2c3d4e5f67890", ACCOUNT),
            entity(REBOOT, "i-0fedcba9876543210", ACCOUNT),
        ];
        let (client, _rules) = account_client(
            vec![vec![
                issue(EventStatusCode::Open, "2024-05-02T10:15:31Z"),
                reboot(),
            ]],
            entities.clone(),
        );

        let first = poll_health_once(
            &mut HealthClients::new("us-east-1", client.clone()),
            &desk,
            &config,
        )
        .await
        .unwrap();
        assert_eq!(first.count(Effect::Created), 2, "{first:?}");
        assert_eq!(
            desk.poller_cursor(CURSOR).await.unwrap().as_deref(),
            Some("2024-05-02T11:00:00+00:00")
        );
        let ticket_id = first.outcomes[0].ticket_id.unwrap();

        clock.advance(chrono::Duration::minutes(5));
        let again = poll_health_once(
            &mut HealthClients::new("us-east-1", client.clone()),
            &desk,
            &config,
        )
        .await
        .unwrap();
        assert_eq!(again.signals, 2);
        assert_eq!(again.count(Effect::Duplicate), 2, "{again:?}");

        clock.advance(chrono::Duration::minutes(5));
        let (client, _rules) = account_client(
            vec![vec![issue(EventStatusCode::Closed, "2024-05-02T12:05:00Z")]],
            entities,
        );
        let closed = poll_health_once(
            &mut HealthClients::new("us-east-1", client.clone()),
            &desk,
            &config,
        )
        .await
        .unwrap();
        assert_eq!(closed.count(Effect::Resolved), 1, "{closed:?}");
        assert_eq!(closed.outcomes[0].ticket_id, Some(ticket_id));
        let ticket = desk.ticket(&Actor::cli(), ticket_id).await.unwrap();
        assert_eq!(ticket.status, Status::Resolved);
        assert_eq!(closed.cursor, "2024-05-02T12:05:00+00:00");
        assert_eq!(
            desk.poller_cursor(CURSOR).await.unwrap().as_deref(),
            Some("2024-05-02T12:05:00+00:00")
        );
    }

    #[tokio::test]
    async fn actionability_and_personas_are_read_from_describe_events() {
        use aws_sdk_health::types::{EventActionability, EventPersona};
        let event = Event::builder()
            .arn(REBOOT)
            .service("EC2")
            .event_type_code("AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED")
            .event_type_category(EventTypeCategory::ScheduledChange)
            .status_code(EventStatusCode::Upcoming)
            .last_updated_time(t("2024-05-02T11:00:00Z"))
            .actionability(EventActionability::ActionRequired)
            .personas(EventPersona::Operations)
            .personas(EventPersona::Security)
            .build();
        let (client, _rules) = account_client(vec![vec![event]], vec![]);
        let now = at("2024-05-02T12:00:00Z");
        let batch = fetch_health_signals(&client, &account_config(), now, now)
            .await
            .unwrap();
        let s = &batch.signals[0];
        assert_eq!(s.actionability.as_deref(), Some("ACTION_REQUIRED"));
        assert_eq!(s.personas, ["OPERATIONS", "SECURITY"]);
        assert_eq!(s.raw["event"]["actionability"], "ACTION_REQUIRED");
        assert_eq!(
            s.raw["event"]["personas"],
            json!(["OPERATIONS", "SECURITY"])
        );
    }

    /// A client whose every call fails as a Health region that is not the active one does.
    fn passive_client() -> (Client, Rule) {
        let rule = mock!(Client::describe_events).then_error(|| {
            DescribeEventsError::generic(
                ErrorMetadata::builder()
                    .code("ServiceUnavailableException")
                    .message("this Region is not active")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_health, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(RetryConfig::disabled()));
        (client, rule)
    }

    #[tokio::test]
    async fn the_poller_follows_the_active_region() {
        let (desk, clock, _dir) = testing::desk(at("2024-05-02T12:00:00Z")).await;
        let (passive, passive_rule) = passive_client();
        let (active, active_rules) = account_client(
            vec![vec![issue(EventStatusCode::Open, "2024-05-02T10:15:31Z")]],
            vec![entity(ISSUE, "i-0a1b2c3d4e5f67890", ACCOUNT)],
        );
        assert_eq!(other_region("us-east-1"), Some("us-east-2"));
        assert_eq!(other_region("us-east-2"), Some("us-east-1"));
        assert_eq!(other_region("cn-north-1"), None);
        let mut clients =
            HealthClients::new("us-east-1", passive).with_failover("us-east-2", active);
        let config = account_config();

        let first = poll_health_once(&mut clients, &desk, &config)
            .await
            .unwrap();
        assert_eq!(first.count(Effect::Created), 1, "{first:?}");
        assert_eq!(clients.region(), "us-east-2");
        assert_eq!(passive_rule.num_calls(), 1);

        // The next poll goes straight to the region that answered.
        clock.advance(chrono::Duration::minutes(5));
        let again = poll_health_once(&mut clients, &desk, &config)
            .await
            .unwrap();
        assert_eq!(again.count(Effect::Duplicate), 1, "{again:?}");
        assert_eq!(
            passive_rule.num_calls(),
            1,
            "the passive region was asked again"
        );
        assert_eq!(active_rules[0].num_calls(), 2);
    }

    #[tokio::test]
    async fn plan_and_throttling_errors_are_not_a_reason_to_switch() {
        let (refusing, refusing_rule) =
            failing_client("SubscriptionRequiredException", RetryConfig::disabled());
        let (other, other_rule) = passive_client();
        let mut clients =
            HealthClients::new("us-east-1", refusing).with_failover("us-east-2", other);
        let now = at("2024-05-02T12:00:00Z");
        let err = clients
            .fetch(&account_config(), now, now)
            .await
            .unwrap_err();
        assert!(
            matches!(err, PollError::SubscriptionRequired { .. }),
            "{err:?}"
        );
        assert_eq!(refusing_rule.num_calls(), 1);
        assert_eq!(other_rule.num_calls(), 0);
        assert_eq!(clients.region(), "us-east-1");

        // Both regions failing: the error of the region in use, which stays in use.
        let (a, _) = passive_client();
        let (b, _) = passive_client();
        let mut clients = HealthClients::new("us-east-1", a).with_failover("us-east-2", b);
        let err = clients
            .fetch(&account_config(), now, now)
            .await
            .unwrap_err();
        assert!(matches!(err, PollError::Aws { .. }), "{err:?}");
        assert_eq!(clients.region(), "us-east-1");
    }

    #[test]
    fn config_defaults_and_refuses_unknown_keys() {
        let c: HealthConfig = serde_json::from_value(json!({"enabled": true})).unwrap();
        assert_eq!(
            c,
            HealthConfig {
                enabled: true,
                region: "us-east-1".into(),
                organization: false,
                interval_seconds: 300,
                account: None,
            }
        );
        assert!(serde_json::from_value::<HealthConfig>(json!({"organisation": true})).is_err());
    }
}
