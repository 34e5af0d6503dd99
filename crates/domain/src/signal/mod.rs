//! Signals: one normalised input from AWS or a monitor, whatever its source. Each source has
//! one module that turns its payload into a [`Signal`], registered in [`source::SOURCES`];
//! everything after that is the same.

pub mod alertmanager;
pub mod alerts;
pub mod cloudwatch;
pub mod correlation;
pub mod eventbridge;
pub mod follow_up;
pub mod grafana;
pub mod guardduty;
pub mod health;
pub mod pipeline;
pub mod rules;
pub mod securityhub;
pub mod source;
pub mod trusted_advisor;
pub mod workload;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::ticket::{named_enum, Severity};
use crate::validation::FieldError;

pub use correlation::Correlation;

/// `source` of AWS Health signals.
pub const HEALTH: &str = "aws.health";
/// `source` of Trusted Advisor signals.
pub const TRUSTED_ADVISOR: &str = "aws.trustedadvisor";
/// `source` of CloudWatch alarm signals.
pub const CLOUDWATCH: &str = "aws.cloudwatch";
/// `source` of Prometheus Alertmanager signals.
pub const ALERTMANAGER: &str = "alertmanager";
/// `source` of signals sent to `/api/v1/alerts`.
pub const ALERTS: &str = "alerts";

named_enum! {
    /// What the source says about the problem.
    SignalState {
        /// The problem is there (again).
        Firing => "firing",
        /// Someone at the source has taken it.
        Acknowledged => "acknowledged",
        /// The source says it is over.
        Resolved => "resolved",
    }
}

/// A maintenance window announced by the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

/// One page of news that its source split over several messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Page {
    /// The same on every page of one message (AWS Health's `communicationId` without its page
    /// suffix).
    pub communication: String,
    /// From 1.
    pub number: u32,
    pub total: u32,
}

/// The pages of one communication received so far, with the entities they brought together:
/// what workload matching and severity rules see, whichever page came first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pages {
    pub communication: String,
    pub total: u32,
    /// Page numbers received, ascending.
    pub received: Vec<u32>,
    pub resources: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl Pages {
    /// The pages after `s`, given those before it; `None` when `s` is not a page of a
    /// message split in several. The flag says whether `s` continues the communication the
    /// pages before it began (another page of the same news rather than an update).
    pub fn after(previous: Option<&Pages>, s: &Signal) -> Option<(Pages, bool)> {
        let page = s.page.as_ref().filter(|p| p.total > 1)?;
        let mut pages = match previous {
            Some(p) if p.communication == page.communication => p.clone(),
            _ => Pages {
                communication: page.communication.clone(),
                total: page.total,
                ..Pages::default()
            },
        };
        let continues = !pages.received.is_empty() && !pages.received.contains(&page.number);
        if !pages.received.contains(&page.number) {
            pages.received.push(page.number);
            pages.received.sort_unstable();
        }
        pages.total = pages.total.max(page.total);
        // Split events carry thousands of entities: membership by set, not by scanning.
        let mut seen: std::collections::HashSet<String> = pages.resources.iter().cloned().collect();
        for r in &s.resources {
            if seen.insert(r.clone()) {
                pages.resources.push(r.clone());
            }
        }
        pages
            .tags
            .extend(s.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        Some((pages, continues))
    }

    /// `s` as if it carried every page's entities received so far.
    pub fn merged(&self, s: &Signal) -> Signal {
        Signal {
            resources: self.resources.clone(),
            tags: self.tags.clone(),
            ..s.clone()
        }
    }

    /// Whether every page has arrived.
    pub fn complete(&self) -> bool {
        self.received.len() as u64 >= u64::from(self.total)
    }
}

/// One normalised input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Signal {
    /// `aws.health`, `aws.trustedadvisor`, `aws.cloudwatch`, `alertmanager`, `alerts`, or the
    /// EventBridge source of an unclassified event.
    pub source: String,
    /// The same for every delivery of the same news, so a repeated delivery has no effect.
    pub receipt_key: String,
    /// One value per real problem: signals with the same key belong to one ticket.
    pub dedup_key: String,
    pub state: SignalState,
    /// What the source calls this kind of news: Health `issue` / `scheduledChange` /
    /// `accountNotification`, Trusted Advisor `ERROR` / `WARN` / `OK`, CloudWatch `ALARM` / `OK`,
    /// an alert's severity.
    pub kind: String,
    /// Trusted Advisor category (`security`, `fault_tolerance`, `cost_optimizing`,
    /// `performance`, `service_limits`), or the Health event type code.
    pub category: Option<String>,
    /// The source's own severity, when it has one.
    pub severity: Option<Severity>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// The AWS service, e.g. `EC2`.
    pub service: Option<String>,
    /// ARNs or ids of what is affected.
    pub resources: Vec<String>,
    /// Labels or resource tags, for workload tag selectors and rules.
    pub tags: BTreeMap<String, String>,
    pub title: String,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
    pub window: Option<Window>,
    /// Trusted Advisor estimated monthly savings, in USD.
    pub savings: Option<f64>,
    /// Whether the news asks something of its reader: AWS Health's `ACTION_REQUIRED`,
    /// `ACTION_MAY_BE_REQUIRED` or `INFORMATIONAL`.
    #[serde(default)]
    pub actionability: Option<String>,
    /// Who the news is for: AWS Health's `OPERATIONS`, `SECURITY`, `BILLING`.
    #[serde(default)]
    pub personas: Vec<String>,
    /// Which page this is of news split over several messages (AWS Health events whose
    /// affected entities exceed one EventBridge message).
    #[serde(default)]
    pub page: Option<Page>,
    /// False for well-formed events opsdesk has no reader for; they open a ticket only when a
    /// rule asks for one.
    pub classified: bool,
    /// The payload as received.
    pub raw: Value,
}

impl Signal {
    /// The signal with every credential its payload carried replaced (see
    /// [`crate::credentials::strip`]): what opsdesk stores, whatever the source.
    pub fn without_credentials(mut self) -> Signal {
        crate::credentials::strip(&mut self.raw);
        for (name, value) in self.tags.iter_mut() {
            if crate::credentials::is_credential_name(name) {
                *value = crate::credentials::REDACTED.to_owned();
            }
        }
        self
    }
}

/// A stable digest of the parts that make two deliveries the same news.
pub fn receipt_key(source: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    for p in parts {
        h.update([0x1f]);
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Reads the time formats AWS and monitors send: RFC 3339, RFC 1123 (`Fri, 27 Jan 2023
/// 06:02:51 GMT`) and CloudWatch's `2023-01-27T09:01:22.123+0000`.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// Field access on a JSON payload with errors that name the field.
pub(crate) struct Fields<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(value: &'a Value, path: impl Into<String>) -> Result<Self, FieldError> {
        let path = path.into();
        if value.is_object() {
            Ok(Fields { value, path })
        } else {
            Err(FieldError::new(
                if path.is_empty() { "body" } else { &path },
                "must be a JSON object",
            ))
        }
    }

    fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(FieldError::new(self.name(key), "must be a string")),
        }
    }

    pub(crate) fn str(&self, key: &str) -> Result<&'a str, FieldError> {
        match self.opt_str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(FieldError::new(self.name(key), "is required")),
        }
    }

    pub(crate) fn obj(&self, key: &str) -> Result<Fields<'a>, FieldError> {
        match self.value.get(key) {
            Some(v) => Fields::new(v, self.name(key)),
            None => Err(FieldError::new(self.name(key), "is required")),
        }
    }

    pub(crate) fn opt_obj(&self, key: &str) -> Result<Option<Fields<'a>>, FieldError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Fields::new(v, self.name(key)).map(Some),
        }
    }

    pub(crate) fn array(&self, key: &str) -> Result<&'a [Value], FieldError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(FieldError::new(self.name(key), "must be an array")),
        }
    }

    pub(crate) fn opt_time(&self, key: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => parse_time(s).map(Some).ok_or_else(|| {
                FieldError::new(self.name(key), format!("`{s}` is not a time opsdesk reads"))
            }),
        }
    }

    /// String values of a flat object (labels, tags); other values are skipped.
    pub(crate) fn string_map(&self, key: &str) -> BTreeMap<String, String> {
        self.value
            .get(key)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn value(&self) -> &'a Value {
        self.value
    }
}

/// Cuts text to at most `max` characters, on a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// Signals from a message whose shape is not known in advance, as SQS queues and SNS topics
/// carry them: an EventBridge event, an array of events, a CloudWatch alarm notification, or an
/// SNS envelope around any of these.
pub fn from_payload(v: &Value, received_at: DateTime<Utc>) -> Result<Vec<Signal>, FieldError> {
    if v.is_array() || eventbridge::is_event(v) {
        return eventbridge::from_events(v, received_at);
    }
    if cloudwatch::is_sns_alarm(v) {
        return Ok(vec![cloudwatch::from_sns_message(v, received_at)?]);
    }
    if v.get("Type").and_then(Value::as_str) == Some("Notification") {
        let message = v
            .get("Message")
            .and_then(Value::as_str)
            .ok_or_else(|| FieldError::new("Message", "is required"))?;
        let inner: Value = serde_json::from_str(message)
            .map_err(|_| FieldError::new("Message", "is not JSON opsdesk reads"))?;
        if inner.get("Type").is_some() {
            return Err(FieldError::new("Message", "holds another SNS envelope"));
        }
        return from_payload(&inner, received_at);
    }
    Err(FieldError::new(
        "body",
        "is not an EventBridge event, a CloudWatch alarm or an SNS notification",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_time_formats_aws_sends() {
        let want = "2023-01-27T06:02:51Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(parse_time("Fri, 27 Jan 2023 06:02:51 GMT"), Some(want));
        assert_eq!(parse_time("2023-01-27T06:02:51Z"), Some(want));
        assert_eq!(parse_time("2023-01-27T06:02:51.000+0000"), Some(want));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn receipt_keys_separate_parts() {
        assert_ne!(receipt_key("a", &["bc", ""]), receipt_key("a", &["b", "c"]));
        assert_eq!(receipt_key("a", &["b"]), receipt_key("a", &["b"]));
    }

    #[test]
    fn clip_keeps_whole_characters() {
        assert_eq!(clip("héllo", 2), "hé");
        assert_eq!(clip("hi", 5), "hi");
    }
}
