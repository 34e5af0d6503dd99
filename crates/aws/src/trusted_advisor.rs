//! The Trusted Advisor poller: reads the flagged resources of every check and ingests one
//! finding per flagged resource, and an OK finding for a resource that was flagged before and
//! is no longer, so its ticket resolves.
//!
//! Two AWS APIs serve Trusted Advisor results; [`TrustedAdvisorApi`] chooses one. The set of
//! (check, resource) pairs flagged at the last run is the poller's cursor.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_trustedadvisor::types::{
    ExclusionStatus, RecommendationLanguage, RecommendationResourceSummary, RecommendationSummary,
    RecommendationType,
};
use chrono::{DateTime, Utc};
use opsdesk_core::Desk;
use opsdesk_domain::signal::parse_time;
use opsdesk_domain::signal::trusted_advisor::{category_name, parse_savings, Finding};
use opsdesk_domain::Signal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::poll::{
    aws_error, chrono_time, commit, finish_run, object, pause, PollError, PollReport, Schedule,
};

/// The audit actor of ingested findings.
const ACTOR: &str = "poller:trustedadvisor";
/// The `poller` label of metrics and logs.
const POLLER: &str = "trustedadvisor";
/// The metadata column whose value is a resource's savings.
const SAVINGS_COLUMN: &str = "Estimated Monthly Savings";
/// How long the list of checks is kept before it is read again.
const CHECKS_TTL_HOURS: i64 = 24;

/// Which AWS API the poller reads.
///
/// The default is `trustedadvisor`, the Trusted Advisor API (2022-09-15), which AWS now
/// documents as the programmatic way to Trusted Advisor: it returns global recommendations in
/// a few paged calls instead of one call per check, includes checks the Support API does not
/// (from Security Hub, Compute Optimizer, Well-Architected and others), honours resource
/// exclusions, and states savings per recommendation. `support` is the older AWS Support API
/// (`DescribeTrustedAdvisorCheck*`), for accounts whose IAM policies allow only it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustedAdvisorApi {
    /// The AWS Support API's Trusted Advisor operations.
    Support,
    /// The Trusted Advisor API.
    #[default]
    TrustedAdvisor,
}

impl TrustedAdvisorApi {
    /// The API's name in messages.
    fn name(self) -> &'static str {
        match self {
            TrustedAdvisorApi::Support => "AWS Support (Trusted Advisor)",
            TrustedAdvisorApi::TrustedAdvisor => "AWS Trusted Advisor",
        }
    }

    fn cursor_name(self) -> &'static str {
        match self {
            TrustedAdvisorApi::Support => "aws.trustedadvisor.support",
            TrustedAdvisorApi::TrustedAdvisor => "aws.trustedadvisor",
        }
    }
}

/// `[ingest.trusted_advisor]`: the Trusted Advisor poller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustedAdvisorConfig {
    /// Poll Trusted Advisor. Needs a plan with the AWS Support API (Business Support+,
    /// Enterprise, Unified Operations; Business and Enterprise On-Ramp until they end),
    /// and `trustedadvisor:List*` (or `support:DescribeTrustedAdvisor*`) permissions.
    pub enabled: bool,
    /// The region of the endpoint; both APIs answer in `us-east-1`.
    pub region: String,
    /// `trustedadvisor` (the Trusted Advisor API) or `support` (the AWS Support API).
    pub api: TrustedAdvisorApi,
    /// Seconds between polls. Trusted Advisor refreshes most checks at most daily.
    pub interval_seconds: u64,
    /// The language of check names and metadata columns (ISO 639-1, e.g. `en`, `ja`).
    /// Savings are read only from English metadata columns.
    pub language: String,
    /// The account the findings belong to when AWS does not say (the Support API never does).
    pub account: Option<String>,
}

impl Default for TrustedAdvisorConfig {
    fn default() -> Self {
        TrustedAdvisorConfig {
            enabled: false,
            region: "us-east-1".to_owned(),
            api: TrustedAdvisorApi::default(),
            interval_seconds: 3600,
            language: "en".to_owned(),
            account: None,
        }
    }
}

/// A client for the API the configuration chose.
#[derive(Debug, Clone)]
pub enum TrustedAdvisorClient {
    Support(aws_sdk_support::Client),
    TrustedAdvisor(aws_sdk_trustedadvisor::Client),
}

impl TrustedAdvisorClient {
    fn api(&self) -> TrustedAdvisorApi {
        match self {
            TrustedAdvisorClient::Support(_) => TrustedAdvisorApi::Support,
            TrustedAdvisorClient::TrustedAdvisor(_) => TrustedAdvisorApi::TrustedAdvisor,
        }
    }
}

/// One Trusted Advisor check as the poller needs it.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    id: String,
    /// The Trusted Advisor API's check ARN.
    arn: Option<String>,
    name: String,
    category: Option<String>,
    /// Metadata column names by position (`"0"`, `"1"`, ...).
    columns: BTreeMap<String, String>,
}

/// The list of checks, read once a day rather than every run.
#[derive(Debug, Clone, Default)]
pub struct CheckCache {
    checks: Vec<Check>,
    read_at: Option<DateTime<Utc>>,
}

impl CheckCache {
    fn fresh(&self, now: DateTime<Utc>) -> bool {
        self.read_at
            .is_some_and(|at| now - at < chrono::Duration::hours(CHECKS_TTL_HOURS))
    }

    fn by_arn(&self, arn: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.arn.as_deref() == Some(arn))
    }
}

/// The (check, resource) pairs flagged at the last run: the poller's cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flagged {
    pub flagged: BTreeSet<(String, String)>,
}

impl Flagged {
    fn has_check(&self, check: &str) -> bool {
        self.flagged.iter().any(|(c, _)| c == check)
    }
}

/// A check whose result this run read.
#[derive(Debug, Clone)]
struct CheckRead {
    name: String,
    category: Option<String>,
    /// When Trusted Advisor last refreshed the check.
    refreshed_at: DateTime<Utc>,
}

/// What one read of Trusted Advisor found.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    pub signals: Vec<Signal>,
    /// What is flagged now: the next cursor.
    pub flagged: Flagged,
}

/// Polls Trusted Advisor until `shutdown`: reads, ingests, stores the cursor, waits.
pub async fn run_trusted_advisor(
    desk: Desk,
    config: TrustedAdvisorConfig,
    shutdown: CancellationToken,
) {
    if !config.enabled {
        return;
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .load()
        .await;
    let client = match config.api {
        TrustedAdvisorApi::Support => {
            TrustedAdvisorClient::Support(aws_sdk_support::Client::new(&sdk))
        }
        TrustedAdvisorApi::TrustedAdvisor => {
            TrustedAdvisorClient::TrustedAdvisor(aws_sdk_trustedadvisor::Client::new(&sdk))
        }
    };
    let mut checks = CheckCache::default();
    let mut schedule = Schedule::new(Duration::from_secs(config.interval_seconds));
    tracing::info!(poller = POLLER, region = %config.region, api = ?config.api, "polling Trusted Advisor");
    loop {
        let run = tokio::select! {
            _ = shutdown.cancelled() => return,
            run = poll_trusted_advisor_once(&client, &desk, &config, &mut checks) => run,
        };
        let delay = finish_run(POLLER, &mut schedule, &run);
        if !pause(delay, &shutdown).await {
            return;
        }
    }
}

/// One poll: reads every check's flagged resources, ingests the findings and, once that
/// committed, stores what is flagged now as the cursor.
pub async fn poll_trusted_advisor_once(
    client: &TrustedAdvisorClient,
    desk: &Desk,
    config: &TrustedAdvisorConfig,
    checks: &mut CheckCache,
) -> Result<PollReport, PollError> {
    let cursor_name = client.api().cursor_name();
    let previous = match desk.poller_cursor(cursor_name).await? {
        None => Flagged::default(),
        Some(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(poller = POLLER, error = %e,
                "the stored cursor is not a set of flagged resources; starting afresh");
            Flagged::default()
        }),
    };
    let now = desk.now();
    let found = fetch_trusted_advisor_signals(client, config, checks, &previous, now).await?;
    let cursor = serde_json::to_string(&found.flagged).map_err(|e| PollError::Aws {
        api: client.api().name(),
        message: e.to_string(),
    })?;
    commit(desk, ACTOR, cursor_name, found.signals, cursor).await
}

/// Reads the findings, given what was flagged at the last run. `now` stands in when AWS
/// sends no time.
pub async fn fetch_trusted_advisor_signals(
    client: &TrustedAdvisorClient,
    config: &TrustedAdvisorConfig,
    checks: &mut CheckCache,
    previous: &Flagged,
    now: DateTime<Utc>,
) -> Result<Findings, PollError> {
    let (read, observed) = match client {
        TrustedAdvisorClient::Support(c) => read_support(c, config, checks, now).await?,
        TrustedAdvisorClient::TrustedAdvisor(c) => {
            read_recommendations(c, config, checks, previous, now).await?
        }
    };
    Ok(reconcile(
        previous,
        &read,
        observed,
        config.account.as_deref(),
    ))
}

/// Signals for what was observed, plus an OK for every resource flagged before whose check
/// was read and no longer flags it. OKs of resources that were never flagged are dropped:
/// they would only fill the signal log. A check that could not be read keeps its pairs.
fn reconcile(
    previous: &Flagged,
    read: &BTreeMap<String, CheckRead>,
    observed: Vec<(Finding, Value)>,
    account: Option<&str>,
) -> Findings {
    let mut flagged = Flagged::default();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut signals = Vec::new();
    for (finding, raw) in observed {
        let key = (
            finding.check_id.clone().unwrap_or_default(),
            finding.resource_id.clone(),
        );
        if finding.status == "OK" {
            if !previous.flagged.contains(&key) || !seen.insert(key) {
                continue;
            }
        } else {
            seen.insert(key.clone());
            flagged.flagged.insert(key);
        }
        signals.push(finding.into_signal(raw));
    }
    for key in &previous.flagged {
        let (check_id, resource_id) = key;
        match read.get(check_id) {
            None => {
                flagged.flagged.insert(key.clone());
            }
            Some(_) if seen.contains(key) => {}
            Some(check) => {
                let finding = Finding {
                    check_id: Some(check_id.clone()),
                    check_name: check.name.clone(),
                    category: check.category.clone(),
                    status: "OK".to_owned(),
                    resource_id: resource_id.clone(),
                    account: account.map(str::to_owned),
                    region: None,
                    savings: None,
                    details: BTreeMap::new(),
                    observed_at: check.refreshed_at,
                };
                let raw = json!({
                    "checkId": check_id,
                    "checkName": check.name,
                    "resourceId": resource_id,
                    "status": "ok",
                    "reason": "no longer flagged",
                });
                signals.push(finding.into_signal(raw));
            }
        }
    }
    Findings { signals, flagged }
}

/// `error` / `warning` / `ok` as a finding status.
fn finding_status(s: &str) -> Option<&'static str> {
    match s {
        "error" => Some("ERROR"),
        "warning" => Some("WARN"),
        "ok" => Some("OK"),
        _ => None,
    }
}

/// Metadata values under their column names (the position where a column has no name).
fn details<'a>(
    columns: &BTreeMap<String, String>,
    values: impl IntoIterator<Item = (String, &'a str)>,
) -> BTreeMap<String, String> {
    values
        .into_iter()
        .map(|(key, v)| {
            let name = columns.get(&key).cloned().unwrap_or(key);
            (name, v.to_owned())
        })
        .collect()
}

fn savings_column(details: &BTreeMap<String, String>) -> Option<f64> {
    details
        .iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(SAVINGS_COLUMN))
        .and_then(|(_, v)| parse_savings(v))
}

type Read = (BTreeMap<String, CheckRead>, Vec<(Finding, Value)>);

async fn read_support(
    client: &aws_sdk_support::Client,
    config: &TrustedAdvisorConfig,
    cache: &mut CheckCache,
    now: DateTime<Utc>,
) -> Result<Read, PollError> {
    let api = TrustedAdvisorApi::Support.name();
    if !cache.fresh(now) {
        let out = client
            .describe_trusted_advisor_checks()
            .language(&config.language)
            .send()
            .await
            .map_err(|e| aws_error(api, e))?;
        cache.checks = out
            .checks()
            .iter()
            .map(|c| Check {
                id: c.id().to_owned(),
                arn: None,
                name: c.name().to_owned(),
                category: Some(category_name(c.category())).filter(|c| !c.is_empty()),
                columns: c
                    .metadata()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| Some((i.to_string(), n.clone()?)))
                    .collect(),
            })
            .collect();
        cache.read_at = Some(now);
    }

    let mut read = BTreeMap::new();
    let mut observed = Vec::new();
    for check in &cache.checks {
        let out = match client
            .describe_trusted_advisor_check_result()
            .check_id(&check.id)
            .language(&config.language)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => match aws_error(api, e) {
                e @ (PollError::SubscriptionRequired { .. } | PollError::Throttled { .. }) => {
                    return Err(e)
                }
                e => {
                    tracing::warn!(poller = POLLER, check = %check.id, error = %e,
                        "cannot read a Trusted Advisor check; keeping what it flagged before");
                    continue;
                }
            },
        };
        let Some(result) = out.result() else {
            continue;
        };
        if result.status() == "not_available" {
            continue;
        }
        let refreshed_at = parse_time(result.timestamp()).unwrap_or(now);
        read.insert(
            check.id.clone(),
            CheckRead {
                name: check.name.clone(),
                category: check.category.clone(),
                refreshed_at,
            },
        );
        for resource in result.flagged_resources() {
            let Some(status) = finding_status(resource.status()) else {
                continue;
            };
            if resource.is_suppressed() {
                continue;
            }
            let details = details(
                &check.columns,
                resource
                    .metadata()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| Some((i.to_string(), v.as_deref()?))),
            );
            let finding = Finding {
                check_id: Some(check.id.clone()),
                check_name: check.name.clone(),
                category: check.category.clone(),
                status: status.to_owned(),
                resource_id: resource.resource_id().to_owned(),
                account: config.account.clone(),
                region: resource
                    .region()
                    .filter(|r| !r.is_empty() && *r != "-")
                    .map(str::to_owned),
                savings: savings_column(&details),
                details,
                observed_at: refreshed_at,
            };
            let raw = json!({
                "checkId": result.check_id(),
                "checkName": check.name,
                "category": check.category,
                "timestamp": result.timestamp(),
                "status": result.status(),
                "flaggedResource": {
                    "status": resource.status(),
                    "region": resource.region(),
                    "resourceId": resource.resource_id(),
                    "isSuppressed": resource.is_suppressed(),
                    "metadata": resource.metadata(),
                },
            });
            observed.push((finding, raw));
        }
    }
    Ok((read, observed))
}

/// `Qch7DwouX1` from `arn:aws:trustedadvisor:::check/Qch7DwouX1`.
fn check_id_of(check_arn: &str) -> Option<&str> {
    check_arn
        .rsplit_once("check/")
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty())
}

/// The account in a recommendation resource ARN: `arn:aws:trustedadvisor::123456789012:...`.
fn account_of(arn: &str) -> Option<&str> {
    arn.split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
}

async fn read_recommendations(
    client: &aws_sdk_trustedadvisor::Client,
    config: &TrustedAdvisorConfig,
    cache: &mut CheckCache,
    previous: &Flagged,
    now: DateTime<Utc>,
) -> Result<Read, PollError> {
    let api = TrustedAdvisorApi::TrustedAdvisor.name();
    let language = RecommendationLanguage::from(config.language.as_str());
    if !cache.fresh(now) {
        let mut pages = client
            .list_checks()
            .language(language.clone())
            .into_paginator()
            .send();
        let mut checks = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error(api, e))?;
            checks.extend(page.check_summaries().iter().map(|c| {
                Check {
                    id: c.id().to_owned(),
                    arn: Some(c.arn().to_owned()),
                    name: c.name().to_owned(),
                    category: c.pillars().first().map(|p| p.as_str().to_owned()),
                    columns: c
                        .metadata()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }
            }));
        }
        cache.checks = checks;
        cache.read_at = Some(now);
    }

    // Priority recommendations repeat standard ones, curated by an account team.
    let mut pages = client
        .list_recommendations()
        .r#type(RecommendationType::Standard)
        .language(language.clone())
        .into_paginator()
        .send();
    let mut recommendations: Vec<RecommendationSummary> = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error(api, e))?;
        recommendations.extend(page.recommendation_summaries().iter().cloned());
    }

    let mut read = BTreeMap::new();
    let mut observed = Vec::new();
    for rec in &recommendations {
        let check_id = rec
            .check_arn()
            .and_then(check_id_of)
            .unwrap_or(rec.id())
            .to_owned();
        let check = rec.check_arn().and_then(|arn| cache.by_arn(arn));
        let category = rec
            .pillars()
            .first()
            .map(|p| p.as_str().to_owned())
            .or_else(|| check.and_then(|c| c.category.clone()));
        let this = CheckRead {
            name: rec.name().to_owned(),
            category: category.clone(),
            refreshed_at: rec.last_updated_at().and_then(chrono_time).unwrap_or(now),
        };
        // All clear and nothing flagged before: nothing to say, no call needed.
        if rec.status().as_str() == "ok" && !previous.has_check(&check_id) {
            read.insert(check_id, this);
            continue;
        }
        let resources = match list_resources(client, rec.arn(), &language).await {
            Ok(r) => r,
            Err(e @ (PollError::SubscriptionRequired { .. } | PollError::Throttled { .. })) => {
                return Err(e)
            }
            Err(e) => {
                tracing::warn!(poller = POLLER, recommendation = %rec.arn, error = %e,
                    "cannot read a Trusted Advisor recommendation; keeping what it flagged before");
                continue;
            }
        };
        read.insert(check_id.clone(), this);
        let flagged_count = rec
            .resources_aggregates()
            .map(|a| a.error_count() + a.warning_count())
            .unwrap_or(0);
        // Savings are stated per recommendation; they belong to a resource only when it is
        // the one flagged, else summing findings would count them many times.
        let rec_savings = rec
            .pillar_specific_aggregates()
            .and_then(|p| p.cost_optimizing())
            .map(|c| c.estimated_monthly_savings())
            .filter(|_| flagged_count == 1);
        let no_columns = BTreeMap::new();
        let columns = check.map(|c| &c.columns).unwrap_or(&no_columns);
        for resource in &resources {
            let Some(status) = finding_status(resource.status().as_str()) else {
                continue;
            };
            if *resource.exclusion_status() == ExclusionStatus::Excluded {
                continue;
            }
            let details = details(
                columns,
                resource
                    .metadata()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str())),
            );
            let resource_id = Some(resource.aws_resource_id())
                .filter(|r| !r.trim().is_empty())
                .unwrap_or(resource.id());
            let finding = Finding {
                check_id: Some(check_id.clone()),
                check_name: rec.name().to_owned(),
                category: category.clone(),
                status: status.to_owned(),
                resource_id: resource_id.to_owned(),
                account: account_of(resource.arn())
                    .map(str::to_owned)
                    .or_else(|| config.account.clone()),
                region: Some(resource.region_code())
                    .filter(|r| !r.is_empty() && *r != "-")
                    .map(str::to_owned),
                savings: savings_column(&details).or(rec_savings),
                details,
                observed_at: chrono_time(resource.last_updated_at()).unwrap_or(now),
            };
            observed.push((finding, recommendation_raw(rec, resource)));
        }
    }
    Ok((read, observed))
}

async fn list_resources(
    client: &aws_sdk_trustedadvisor::Client,
    recommendation_arn: &str,
    language: &RecommendationLanguage,
) -> Result<Vec<RecommendationResourceSummary>, PollError> {
    let api = TrustedAdvisorApi::TrustedAdvisor.name();
    let mut pages = client
        .list_recommendation_resources()
        .recommendation_identifier(recommendation_arn)
        .language(language.clone())
        .into_paginator()
        .send();
    let mut resources = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error(api, e))?;
        resources.extend(page.recommendation_resource_summaries().iter().cloned());
    }
    Ok(resources)
}

fn recommendation_raw(rec: &RecommendationSummary, r: &RecommendationResourceSummary) -> Value {
    let time = |t: Option<&aws_sdk_trustedadvisor::primitives::DateTime>| {
        t.and_then(chrono_time).map(|t| json!(t.to_rfc3339()))
    };
    let recommendation = object([
        ("id", Some(json!(rec.id()))),
        ("arn", Some(json!(rec.arn()))),
        ("name", Some(json!(rec.name()))),
        ("checkArn", rec.check_arn().map(|v| json!(v))),
        ("status", Some(json!(rec.status().as_str()))),
        (
            "pillars",
            Some(json!(rec
                .pillars()
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>())),
        ),
        ("source", Some(json!(rec.source().as_str()))),
        ("awsServices", Some(json!(rec.aws_services()))),
        (
            "resourcesAggregates",
            rec.resources_aggregates().map(|a| {
                json!({
                    "errorCount": a.error_count(),
                    "warningCount": a.warning_count(),
                    "okCount": a.ok_count(),
                })
            }),
        ),
        (
            "pillarSpecificAggregates",
            rec.pillar_specific_aggregates()
                .and_then(|p| p.cost_optimizing())
                .map(|c| {
                    json!({"costOptimizing": {
                        "estimatedMonthlySavings": c.estimated_monthly_savings(),
                        "estimatedPercentMonthlySavings": c.estimated_percent_monthly_savings(),
                    }})
                }),
        ),
        ("lastUpdatedAt", time(rec.last_updated_at())),
    ]);
    let resource = json!({
        "id": r.id(),
        "arn": r.arn(),
        "awsResourceId": r.aws_resource_id(),
        "regionCode": r.region_code(),
        "status": r.status().as_str(),
        "metadata": r.metadata().iter().collect::<BTreeMap<_, _>>(),
        "lastUpdatedAt": time(Some(r.last_updated_at())),
        "exclusionStatus": r.exclusion_status().as_str(),
    });
    json!({"recommendation": recommendation, "resource": resource})
}

#[cfg(test)]
mod tests {
    use aws_sdk_trustedadvisor::config::retry::RetryConfig;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use opsdesk_core::signals::Effect;
    use opsdesk_core::Actor;
    use opsdesk_domain::{SignalState, Status};

    use super::*;
    use crate::poll::testing;

    const LOW_UTILIZATION: &str = "Qch7DwouX1";
    const OPEN_PORTS: &str = "HCP4007jGY";
    const LIMITS: &str = "eW7HH0l7J9";
    const INSTANCE: &str = "Hs4Ma3G19uPgUAWtkXlkvPGNcJVOYP5vW9Wa6N1uLNg";

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A rule answering `$op` with HTTP `$status` and the JSON `$body`, every time it matches.
    macro_rules! reply {
        ($op:expr, $status:expr, $body:expr) => {
            mock!($op)
                .sequence()
                .http_status($status, Some($body.to_string()))
                .repeatedly()
                .build()
        };
        ($op:expr, when $matches:expr, $status:expr, $body:expr) => {
            mock!($op)
                .match_requests($matches)
                .sequence()
                .http_status($status, Some($body.to_string()))
                .repeatedly()
                .build()
        };
    }

    fn support_config() -> TrustedAdvisorConfig {
        TrustedAdvisorConfig {
            enabled: true,
            api: TrustedAdvisorApi::Support,
            account: Some("123456789012".into()),
            ..TrustedAdvisorConfig::default()
        }
    }

    fn support_checks() -> Value {
        json!({"checks": [
            {
                "id": LOW_UTILIZATION,
                "name": "Low Utilization Amazon EC2 Instances",
                "description": "Checks the Amazon Elastic Compute Cloud (Amazon EC2) instances that were running at any time during the last 14 days.",
                "category": "cost_optimizing",
                "metadata": ["Region/AZ", "Instance ID", "Instance Name", "Instance Type",
                    "Estimated Monthly Savings", "14-Day Average CPU Utilization",
                    "14-Day Average Network I/O", "Number of Days Low Utilization"]
            },
            {
                "id": OPEN_PORTS,
                "name": "Security Groups - Specific Ports Unrestricted",
                "description": "Checks security groups for rules that allow unrestricted access (0.0.0.0/0) to specific ports.",
                "category": "security",
                "metadata": ["Region", "Security Group Name", "Security Group ID", "Protocol", "Status", "Ports"]
            },
            {
                "id": LIMITS,
                "name": "VPC",
                "description": "Checks for usage that is more than 80% of the VPC Limit.",
                "category": "service_limits",
                "metadata": ["Region", "Service", "Limit Name", "Limit Amount", "Current Usage", "Status"]
            }
        ]})
    }

    fn support_result(check: &str, status: &str, flagged: Value) -> Value {
        json!({"result": {
            "checkId": check,
            "timestamp": "2024-05-02T10:15:31Z",
            "status": status,
            "resourcesSummary": {"resourcesProcessed": 12, "resourcesFlagged": 1,
                "resourcesIgnored": 0, "resourcesSuppressed": 1},
            "categorySpecificSummary": {"costOptimizing":
                {"estimatedMonthlySavings": 38.5, "estimatedPercentMonthlySavings": 0.4}},
            "flaggedResources": flagged
        }})
    }

    fn low_utilization(resource: &str) -> Value {
        json!({
            "status": "warning", "region": "eu-west-1", "resourceId": resource, "isSuppressed": false,
            "metadata": ["eu-west-1a", "i-0a1b2c3d4e5f67890", "batch-worker", "m5.xlarge", "$38.50",
                "2.1%", "0.3MB", "14 days"]
        })
    }

    fn open_ports() -> Value {
        json!([
            {
                "status": "error", "region": "eu-west-1", "resourceId": "rSs93HQwa1", "isSuppressed": false,
                "metadata": ["eu-west-1", "default", "sg-0123456789abcdef0", "tcp", "Red", "3389"]
            },
            {
                "status": "warning", "region": "eu-west-1", "resourceId": "qh9T2vX0Ls", "isSuppressed": true,
                "metadata": ["eu-west-1", "web", "sg-0fedcba9876543210", "tcp", "Yellow", "20,21"]
            }
        ])
    }

    fn limits() -> Value {
        json!([{
            "status": "ok", "region": "us-east-1", "resourceId": "aVpcLimitUsEast1", "isSuppressed": false,
            "metadata": ["us-east-1", "VPC", "VPCs", "5", "1", null]
        }])
    }

    fn support_client(
        results: Vec<(&'static str, u16, Value)>,
    ) -> (aws_sdk_support::Client, Vec<Rule>) {
        use aws_sdk_support::Client;
        let mut rules = vec![reply!(
            Client::describe_trusted_advisor_checks,
            when | r | r.language() == Some("en"),
            200,
            support_checks()
        )];
        for (check, status, body) in results {
            rules.push(reply!(
                Client::describe_trusted_advisor_check_result,
                when move |r| r.check_id() == Some(check),
                status,
                body
            ));
        }
        let client = mock_client!(aws_sdk_support, RuleMode::MatchAny, &rules, |c| c
            .retry_config(RetryConfig::disabled()));
        (client, rules)
    }

    fn pair(check: &str, resource: &str) -> (String, String) {
        (check.to_owned(), resource.to_owned())
    }

    #[tokio::test]
    async fn support_findings_name_their_metadata_columns() {
        let (client, _rules) = support_client(vec![
            (
                LOW_UTILIZATION,
                200,
                support_result(
                    LOW_UTILIZATION,
                    "warning",
                    json!([low_utilization(INSTANCE)]),
                ),
            ),
            (
                OPEN_PORTS,
                200,
                support_result(OPEN_PORTS, "error", open_ports()),
            ),
            (LIMITS, 200, support_result(LIMITS, "ok", limits())),
        ]);
        let client = TrustedAdvisorClient::Support(client);
        let now = at("2024-05-02T12:00:00Z");
        let found = fetch_trusted_advisor_signals(
            &client,
            &support_config(),
            &mut CheckCache::default(),
            &Flagged::default(),
            now,
        )
        .await
        .unwrap();
        // The suppressed resource and the never-flagged OK one say nothing.
        let [idle, open] = found.signals.as_slice() else {
            panic!("want two signals, got {:#?}", found.signals);
        };
        assert_eq!(idle.kind, "WARN");
        assert_eq!(idle.state, SignalState::Firing);
        assert_eq!(idle.dedup_key, format!("{LOW_UTILIZATION}|{INSTANCE}"));
        assert_eq!(idle.category.as_deref(), Some("cost_optimizing"));
        assert_eq!(idle.savings, Some(38.5));
        assert_eq!(idle.region.as_deref(), Some("eu-west-1"));
        assert_eq!(idle.account.as_deref(), Some("123456789012"));
        assert_eq!(idle.occurred_at, at("2024-05-02T10:15:31Z"));
        assert!(
            idle.body.contains("- Instance ID: i-0a1b2c3d4e5f67890\n"),
            "{}",
            idle.body
        );
        assert!(idle.body.contains("- Estimated Monthly Savings: $38.50\n"));
        assert_eq!(
            idle.raw["flaggedResource"]["metadata"][1],
            "i-0a1b2c3d4e5f67890"
        );
        assert_eq!(
            idle.title,
            format!("Trusted Advisor: Low Utilization Amazon EC2 Instances ({INSTANCE})")
        );

        assert_eq!(open.kind, "ERROR");
        assert_eq!(open.category.as_deref(), Some("security"));
        assert_eq!(open.savings, None);
        assert!(open.body.contains("- Ports: 3389\n"));

        assert_eq!(
            found.flagged.flagged,
            BTreeSet::from([
                pair(LOW_UTILIZATION, INSTANCE),
                pair(OPEN_PORTS, "rSs93HQwa1")
            ])
        );
    }

    #[tokio::test]
    async fn resources_no_longer_flagged_resolve_and_unread_checks_keep_theirs() {
        let (client, _rules) = support_client(vec![
            (
                LOW_UTILIZATION,
                200,
                support_result(LOW_UTILIZATION, "ok", json!([])),
            ),
            (
                OPEN_PORTS,
                400,
                json!({"__type": "InvalidParameterValueException", "message": "check is not available"}),
            ),
            (LIMITS, 200, support_result(LIMITS, "ok", limits())),
        ]);
        let client = TrustedAdvisorClient::Support(client);
        let previous = Flagged {
            flagged: BTreeSet::from([
                pair(LOW_UTILIZATION, INSTANCE),
                pair(OPEN_PORTS, "rSs93HQwa1"),
                pair(LIMITS, "aVpcLimitUsEast1"),
            ]),
        };
        let found = fetch_trusted_advisor_signals(
            &client,
            &support_config(),
            &mut CheckCache::default(),
            &previous,
            at("2024-05-02T12:00:00Z"),
        )
        .await
        .unwrap();
        let got: Vec<(&str, &str, SignalState)> = found
            .signals
            .iter()
            .map(|s| (s.dedup_key.as_str(), s.kind.as_str(), s.state))
            .collect();
        let gone = format!("{LOW_UTILIZATION}|{INSTANCE}");
        let limit = format!("{LIMITS}|aVpcLimitUsEast1");
        assert_eq!(
            got,
            vec![
                (limit.as_str(), "OK", SignalState::Resolved),
                (gone.as_str(), "OK", SignalState::Resolved),
            ]
        );
        assert_eq!(found.signals[1].occurred_at, at("2024-05-02T10:15:31Z"));
        assert_eq!(
            found.flagged.flagged,
            BTreeSet::from([pair(OPEN_PORTS, "rSs93HQwa1")])
        );
    }

    #[tokio::test]
    async fn the_check_list_is_read_once_a_day() {
        let (client, rules) = support_client(vec![
            (
                LOW_UTILIZATION,
                200,
                support_result(LOW_UTILIZATION, "ok", json!([])),
            ),
            (OPEN_PORTS, 200, support_result(OPEN_PORTS, "ok", json!([]))),
            (LIMITS, 200, support_result(LIMITS, "ok", json!([]))),
        ]);
        let client = TrustedAdvisorClient::Support(client);
        let mut cache = CheckCache::default();
        let now = at("2024-05-02T12:00:00Z");
        for later in [0, 1, 23, 25] {
            fetch_trusted_advisor_signals(
                &client,
                &support_config(),
                &mut cache,
                &Flagged::default(),
                now + chrono::Duration::hours(later),
            )
            .await
            .unwrap();
        }
        assert_eq!(rules[0].num_calls(), 2);
        assert_eq!(rules[1].num_calls(), 4);
    }

    #[tokio::test]
    async fn support_plan_and_throttling_errors_stop_the_run() {
        let plan = json!({"__type": "SubscriptionRequiredException",
            "message": "AWS Premium Support Subscription is required to use this service."});
        let rules = [reply!(
            aws_sdk_support::Client::describe_trusted_advisor_checks,
            400,
            plan
        )];
        let client = mock_client!(aws_sdk_support, RuleMode::MatchAny, &rules);
        let err = fetch_trusted_advisor_signals(
            &TrustedAdvisorClient::Support(client),
            &support_config(),
            &mut CheckCache::default(),
            &Flagged::default(),
            at("2024-05-02T12:00:00Z"),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the AWS Support (Trusted Advisor) API needs a Business Support+, Enterprise or \
             Unified Operations support plan (or Business or Enterprise On-Ramp where they \
             remain; AWS answered SubscriptionRequiredException)"
        );

        let (client, _rules) = support_client(vec![(
            LOW_UTILIZATION,
            400,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        )]);
        let err = fetch_trusted_advisor_signals(
            &TrustedAdvisorClient::Support(client),
            &support_config(),
            &mut CheckCache::default(),
            &Flagged::default(),
            at("2024-05-02T12:00:00Z"),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PollError::Throttled { .. }), "{err:?}");
    }

    const REC_IDLE: &str =
        "arn:aws:trustedadvisor::123456789012:recommendation/55fa4d2e-bbb7-491a-833b-5773e9589578";
    const REC_PORTS: &str =
        "arn:aws:trustedadvisor::123456789012:recommendation/0c6d2e8a-5b1a-4d4e-9f0e-3c2b1a0f9e8d";
    const REC_LIMITS: &str =
        "arn:aws:trustedadvisor::123456789012:recommendation/9a8b7c6d-1e2f-4a3b-8c9d-0e1f2a3b4c5d";

    fn list_checks() -> Value {
        json!({"checkSummaries": [
            {
                "id": LOW_UTILIZATION,
                "arn": format!("arn:aws:trustedadvisor:::check/{LOW_UTILIZATION}"),
                "name": "Low Utilization Amazon EC2 Instances",
                "description": "Checks the Amazon EC2 instances that were running at any time during the last 14 days.",
                "pillars": ["cost_optimizing"],
                "awsServices": ["EC2"],
                "source": "ta_check",
                "metadata": {"0": "Region/AZ", "1": "Instance ID", "2": "Instance Name",
                    "3": "Instance Type", "4": "Estimated Monthly Savings"}
            },
            {
                "id": OPEN_PORTS,
                "arn": format!("arn:aws:trustedadvisor:::check/{OPEN_PORTS}"),
                "name": "Security Groups - Specific Ports Unrestricted",
                "description": "Checks security groups for rules that allow unrestricted access to specific ports.",
                "pillars": ["security"],
                "awsServices": ["EC2"],
                "source": "ta_check",
                "metadata": {"0": "Region", "1": "Security Group Name", "2": "Security Group ID",
                    "3": "Protocol", "4": "Status", "5": "Ports"}
            }
        ]})
    }

    fn recommendation(
        arn: &str,
        check: &str,
        name: &str,
        status: &str,
        pillar: &str,
        counts: [u32; 3],
    ) -> Value {
        let mut r = json!({
            "id": arn.rsplit('/').next().unwrap(),
            "type": "standard",
            "checkArn": format!("arn:aws:trustedadvisor:::check/{check}"),
            "status": status,
            "lifecycleStage": "in_progress",
            "pillars": [pillar],
            "source": "ta_check",
            "awsServices": ["EC2"],
            "name": name,
            "resourcesAggregates": {"okCount": counts[0], "warningCount": counts[1], "errorCount": counts[2]},
            "createdAt": "2023-11-01T18:34:11.372Z",
            "lastUpdatedAt": "2024-05-02T10:15:31.113Z",
            "arn": arn
        });
        if pillar == "cost_optimizing" {
            r["pillarSpecificAggregates"] = json!({"costOptimizing":
                {"estimatedMonthlySavings": 38.5, "estimatedPercentMonthlySavings": 0.4}});
        }
        r
    }

    fn resource(rec: &str, id: &str, aws_id: &str, status: &str, metadata: Value) -> Value {
        json!({
            "id": id,
            "arn": format!("{}/{id}", rec.replace(":recommendation/", ":recommendation-resource/")),
            "awsResourceId": aws_id,
            "regionCode": "eu-west-1",
            "status": status,
            "metadata": metadata,
            "lastUpdatedAt": "2024-05-02T10:15:31.113Z",
            "exclusionStatus": "included",
            "recommendationArn": rec
        })
    }

    fn idle_resources(flagged: bool) -> Value {
        let mut list = vec![resource(
            REC_IDLE,
            "Xk2pQ9",
            "i-0ccccccccccccccc0",
            "ok",
            json!({"0": "eu-west-1b", "1": "i-0ccccccccccccccc0", "2": "api", "3": "c6g.large"}),
        )];
        if flagged {
            list.push(resource(REC_IDLE, INSTANCE, "i-0a1b2c3d4e5f67890", "warning",
                json!({"0": "eu-west-1a", "1": "i-0a1b2c3d4e5f67890", "2": "batch-worker", "3": "m5.xlarge"})));
            let mut excluded = resource(
                REC_IDLE,
                "Zt7Lm3",
                "i-0eeeeeeeeeeeeeee0",
                "warning",
                json!({}),
            );
            excluded["exclusionStatus"] = json!("excluded");
            list.push(excluded);
        }
        json!({"recommendationResourceSummaries": list})
    }

    fn ports_resources() -> Value {
        json!({"recommendationResourceSummaries": [
            resource(REC_PORTS, "rSs93HQwa1", "sg-0123456789abcdef0", "error",
                json!({"0": "eu-west-1", "1": "default", "2": "sg-0123456789abcdef0", "3": "tcp", "4": "Red", "5": "3389"})),
            resource(REC_PORTS, "Vr9Kd2Wq", "", "error", json!({"0": "eu-west-1", "5": "22"}))
        ]})
    }

    /// A Trusted Advisor API client; the recommendations come in two pages.
    fn recommendations_client(idle_flagged: bool) -> (aws_sdk_trustedadvisor::Client, Vec<Rule>) {
        use aws_sdk_trustedadvisor::Client;
        let idle_status = if idle_flagged { "warning" } else { "ok" };
        let idle_counts = if idle_flagged { [1, 1, 0] } else { [1, 0, 0] };
        let rules = vec![
            reply!(Client::list_checks, 200, list_checks()),
            reply!(
                Client::list_recommendations,
                when | r | r.next_token().is_none(),
                200,
                json!({
                    "recommendationSummaries": [recommendation(REC_IDLE, LOW_UTILIZATION,
                        "Low Utilization Amazon EC2 Instances", idle_status, "cost_optimizing", idle_counts)],
                    "nextToken": "page-2"
                })
            ),
            reply!(
                Client::list_recommendations,
                when | r | r.next_token() == Some("page-2"),
                200,
                json!({
                    "recommendationSummaries": [
                        recommendation(REC_PORTS, OPEN_PORTS, "Security Groups - Specific Ports Unrestricted",
                            "error", "security", [0, 0, 2]),
                        recommendation(REC_LIMITS, LIMITS, "VPC", "ok", "service_limits", [4, 0, 0])
                    ]
                })
            ),
            reply!(
                Client::list_recommendation_resources,
                when | r | r.recommendation_identifier() == Some(REC_IDLE),
                200,
                idle_resources(idle_flagged)
            ),
            reply!(
                Client::list_recommendation_resources,
                when | r | r.recommendation_identifier() == Some(REC_PORTS),
                200,
                ports_resources()
            ),
            reply!(
                Client::list_recommendation_resources,
                when | r | r.recommendation_identifier() == Some(REC_LIMITS),
                200,
                json!({"recommendationResourceSummaries": []})
            ),
        ];
        let client = mock_client!(aws_sdk_trustedadvisor, RuleMode::MatchAny, &rules, |c| c
            .retry_config(RetryConfig::disabled()));
        (client, rules)
    }

    #[tokio::test]
    async fn recommendations_become_findings() {
        let (client, rules) = recommendations_client(true);
        let config = TrustedAdvisorConfig {
            enabled: true,
            ..TrustedAdvisorConfig::default()
        };
        let found = fetch_trusted_advisor_signals(
            &TrustedAdvisorClient::TrustedAdvisor(client),
            &config,
            &mut CheckCache::default(),
            &Flagged::default(),
            at("2024-05-02T12:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(rules[2].num_calls(), 1, "the second page was not read");
        assert_eq!(
            rules[5].num_calls(),
            0,
            "an all-clear recommendation needs no resource call"
        );
        let [idle, sg, no_id] = found.signals.as_slice() else {
            panic!("want three signals, got {:#?}", found.signals);
        };
        assert_eq!(
            idle.dedup_key,
            format!("{LOW_UTILIZATION}|i-0a1b2c3d4e5f67890")
        );
        assert_eq!(idle.kind, "WARN");
        assert_eq!(idle.category.as_deref(), Some("cost_optimizing"));
        // The only flagged resource of its recommendation takes the recommendation's savings.
        assert_eq!(idle.savings, Some(38.5));
        assert_eq!(idle.account.as_deref(), Some("123456789012"));
        assert_eq!(idle.region.as_deref(), Some("eu-west-1"));
        assert_eq!(idle.occurred_at, at("2024-05-02T10:15:31.113Z"));
        assert!(
            idle.body.contains("- Instance Name: batch-worker\n"),
            "{}",
            idle.body
        );
        assert_eq!(
            idle.raw["recommendation"]["pillarSpecificAggregates"]["costOptimizing"]
                ["estimatedMonthlySavings"],
            38.5
        );
        assert_eq!(idle.raw["resource"]["awsResourceId"], "i-0a1b2c3d4e5f67890");

        assert_eq!(sg.kind, "ERROR");
        assert_eq!(sg.category.as_deref(), Some("security"));
        assert_eq!(sg.resources, vec!["sg-0123456789abcdef0"]);
        assert_eq!(sg.savings, None);
        // No AWS resource id: Trusted Advisor's own id names the resource.
        assert_eq!(no_id.resources, vec!["Vr9Kd2Wq"]);
        assert!(no_id.body.contains("- Ports: 22\n"));
    }

    #[tokio::test]
    async fn recommendations_api_errors_are_sorted() {
        use aws_sdk_trustedadvisor::Client;
        let config = TrustedAdvisorConfig {
            enabled: true,
            ..TrustedAdvisorConfig::default()
        };
        for (status, body, throttled) in [
            (429, json!({"message": "Rate exceeded"}), true),
            (
                400,
                json!({"__type": "SubscriptionRequiredException", "message": "no plan"}),
                false,
            ),
        ] {
            let rules = [reply!(Client::list_checks, status, body)];
            let client = mock_client!(aws_sdk_trustedadvisor, RuleMode::MatchAny, &rules, |c| c
                .retry_config(RetryConfig::disabled()));
            let err = fetch_trusted_advisor_signals(
                &TrustedAdvisorClient::TrustedAdvisor(client),
                &config,
                &mut CheckCache::default(),
                &Flagged::default(),
                at("2024-05-02T12:00:00Z"),
            )
            .await
            .unwrap_err();
            if throttled {
                assert!(matches!(err, PollError::Throttled { .. }), "{err:?}");
            } else {
                assert_eq!(
                    err.to_string(),
                    "the AWS Trusted Advisor API needs a Business Support+, Enterprise or \
                     Unified Operations support plan (or Business or Enterprise On-Ramp where \
                     they remain; AWS answered SubscriptionRequiredException)"
                );
            }
        }
    }

    #[tokio::test]
    async fn polls_open_once_and_resolve_what_is_no_longer_flagged() {
        let (desk, clock, _dir) = testing::desk(at("2024-05-02T12:00:00Z")).await;
        let config = TrustedAdvisorConfig {
            enabled: true,
            ..TrustedAdvisorConfig::default()
        };
        let mut checks = CheckCache::default();
        let (client, _rules) = recommendations_client(true);
        let client = TrustedAdvisorClient::TrustedAdvisor(client);

        let first = poll_trusted_advisor_once(&client, &desk, &config, &mut checks)
            .await
            .unwrap();
        assert_eq!(first.count(Effect::Created), 3, "{first:?}");
        let idle_ticket = first.outcomes[0].ticket_id.unwrap();
        let cursor: Flagged = serde_json::from_str(
            &desk
                .poller_cursor("aws.trustedadvisor")
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            cursor.flagged,
            BTreeSet::from([
                pair(LOW_UTILIZATION, "i-0a1b2c3d4e5f67890"),
                pair(OPEN_PORTS, "Vr9Kd2Wq"),
                pair(OPEN_PORTS, "sg-0123456789abcdef0"),
            ])
        );

        clock.advance(chrono::Duration::hours(1));
        let again = poll_trusted_advisor_once(&client, &desk, &config, &mut checks)
            .await
            .unwrap();
        assert_eq!(again.signals, 3);
        assert_eq!(again.count(Effect::Duplicate), 3, "{again:?}");

        clock.advance(chrono::Duration::hours(1));
        let (client, rules) = recommendations_client(false);
        let client = TrustedAdvisorClient::TrustedAdvisor(client);
        let cleared = poll_trusted_advisor_once(&client, &desk, &config, &mut checks)
            .await
            .unwrap();
        assert_eq!(rules[0].num_calls(), 0, "the check list is cached");
        assert_eq!(
            rules[3].num_calls(),
            1,
            "an all-clear recommendation flagged before is read"
        );
        assert_eq!(cleared.count(Effect::Resolved), 1, "{cleared:?}");
        assert_eq!(cleared.count(Effect::Duplicate), 2, "{cleared:?}");
        let ticket = desk.ticket(&Actor::cli(), idle_ticket).await.unwrap();
        assert_eq!(ticket.status, Status::Resolved);
        let cursor: Flagged = serde_json::from_str(
            &desk
                .poller_cursor("aws.trustedadvisor")
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert!(!cursor
            .flagged
            .contains(&pair(LOW_UTILIZATION, "i-0a1b2c3d4e5f67890")));
        assert_eq!(cursor.flagged.len(), 2);
    }

    #[test]
    fn config_defaults_and_refuses_unknown_keys() {
        let c: TrustedAdvisorConfig = serde_json::from_value(json!({"enabled": true})).unwrap();
        assert_eq!(c.api, TrustedAdvisorApi::TrustedAdvisor);
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.interval_seconds, 3600);
        assert_eq!(c.language, "en");
        let c: TrustedAdvisorConfig = serde_json::from_value(json!({"api": "support"})).unwrap();
        assert_eq!(c.api, TrustedAdvisorApi::Support);
        assert!(
            serde_json::from_value::<TrustedAdvisorConfig>(json!({"intervall_seconds": 60}))
                .is_err()
        );
        assert!(serde_json::from_value::<TrustedAdvisorConfig>(json!({"api": "both"})).is_err());
    }
}
