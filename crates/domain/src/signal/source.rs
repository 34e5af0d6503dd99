//! Where signals come from, in one registry: each source says what it reads (EventBridge
//! events by `source` and `detail-type`, webhooks at `/api/v1/ingest/{name}`) and what its
//! signals open. A new source is one module with a [`Source`] and one line in [`SOURCES`].

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{alertmanager, alerts, cloudwatch, grafana, guardduty, health, securityhub};
use super::{trusted_advisor, Fields, Signal};
use crate::ticket::Kind;
use crate::validation::FieldError;

/// A source of signals.
pub trait Source: Sync {
    /// The `source` of its signals: its name in `/api/v1/ingest/{name}`, in metrics and, for
    /// an AWS service, the EventBridge `source` of its events.
    fn name(&self) -> &'static str;

    /// The EventBridge `detail-type`s it reads of events from `name`: `Some(&[])` for every
    /// one, `None` when it reads no EventBridge event.
    fn detail_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Its EventBridge event as signals; errors name the field (`detail.severity`).
    fn read_event(
        &self,
        _event: &Value,
        _received_at: DateTime<Utc>,
    ) -> Result<Vec<Signal>, FieldError> {
        Err(FieldError::new(
            "source",
            format!("{} reads no EventBridge event", self.name()),
        ))
    }

    /// Whether it takes webhooks at `/api/v1/ingest/{name}`.
    fn takes_webhooks(&self) -> bool {
        false
    }

    /// A webhook's body as signals; errors name the field (`alerts[2].status`).
    fn read_webhook(
        &self,
        _body: &Value,
        _received_at: DateTime<Utc>,
    ) -> Result<Vec<Signal>, FieldError> {
        Err(FieldError::new(
            "source",
            format!("{} takes no webhook", self.name()),
        ))
    }

    /// The kind of ticket its signal opens.
    fn kind_for(&self, _signal: &Signal) -> Kind {
        Kind::Incident
    }

    /// Tags the ticket of its signal carries, besides those of every signal.
    fn ticket_tags(&self, _signal: &Signal) -> &'static [&'static str] {
        &[]
    }

    /// Whether a planned maintenance window of the signal's workload makes it expected, so
    /// that it opens no ticket.
    fn expected_in_maintenance(&self, _signal: &Signal) -> bool {
        true
    }

    /// Whether the maintenance windows its signals announce ([`Signal::window`]) are kept
    /// with those people plan, under its name.
    fn keeps_windows(&self) -> bool {
        false
    }
}

/// An event of a source whose events carry one signal each, read by `read`.
pub(crate) fn one_signal(
    event: &Value,
    received_at: DateTime<Utc>,
    read: fn(&Fields<'_>, DateTime<Utc>) -> Result<Signal, FieldError>,
) -> Result<Vec<Signal>, FieldError> {
    Ok(vec![read(&Fields::new(event, "")?, received_at)?])
}

/// Every source opsdesk reads.
pub static SOURCES: &[&dyn Source] = &[
    &health::AwsHealth,
    &trusted_advisor::TrustedAdvisor,
    &cloudwatch::CloudWatch,
    &alertmanager::Alertmanager,
    &alerts::Alerts,
    &guardduty::GuardDuty,
    &securityhub::SecurityHub,
    &grafana::Grafana,
];

/// The source of this name.
pub fn named(name: &str) -> Option<&'static dyn Source> {
    SOURCES.iter().copied().find(|s| s.name() == name)
}

/// The source that reads EventBridge events of this `source` and `detail-type`.
pub fn for_event(source: &str, detail_type: &str) -> Option<&'static dyn Source> {
    SOURCES.iter().copied().find(|s| {
        s.name() == source
            && s.detail_types()
                .is_some_and(|types| types.is_empty() || types.contains(&detail_type))
    })
}

/// The sources that take webhooks, by name.
pub fn webhook_sources() -> impl Iterator<Item = &'static str> {
    SOURCES
        .iter()
        .filter(|s| s.takes_webhooks())
        .map(|s| s.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_events_find_their_reader() {
        let mut names: Vec<&str> = SOURCES.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a name given twice");
        assert_eq!(
            for_event("aws.guardduty", "GuardDuty Finding").map(|s| s.name()),
            Some("aws.guardduty")
        );
        assert!(for_event(
            "aws.guardduty",
            "GuardDuty Malware Protection Object Scan Result"
        )
        .is_none());
        assert_eq!(
            for_event("aws.health", "AWS Health Event").map(|s| s.name()),
            Some("aws.health")
        );
        assert!(for_event("alertmanager", "anything").is_none());
        let webhooks: Vec<&str> = webhook_sources().collect();
        assert_eq!(webhooks, ["alertmanager", "grafana"]);
    }
}
