//! AWS Health events, from EventBridge (`aws.health`) or from the Health API poller.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{clip, receipt_key, Fields, Signal, SignalState, Window, HEALTH};
use crate::validation::FieldError;

/// A Health event in the words of the Health API, whichever way it arrived.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealthEvent {
    pub arn: String,
    pub service: Option<String>,
    pub type_code: Option<String>,
    /// `issue`, `scheduledChange`, `accountNotification`, `investigation`.
    pub category: String,
    /// `open`, `closed`, `upcoming`.
    pub status: String,
    pub region: Option<String>,
    pub affected_account: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub last_updated: Option<DateTime<Utc>>,
    pub description: String,
    /// Affected resources (entity values) with their tags.
    pub entities: Vec<(String, std::collections::BTreeMap<String, String>)>,
}

impl HealthEvent {
    /// The signal for this event. `fallback_time` stands in when AWS sent no update time.
    pub fn into_signal(self, raw: Value, fallback_time: DateTime<Utc>) -> Signal {
        let occurred_at = self.last_updated.or(self.start).unwrap_or(fallback_time);
        let account = self.affected_account.clone().unwrap_or_default();
        let dedup_key = format!("{}|{account}", self.arn);
        let updated = occurred_at.to_rfc3339();
        let receipt = receipt_key(HEALTH, &[&dedup_key, &self.status, &updated]);
        let state = if self.status.eq_ignore_ascii_case("closed") {
            SignalState::Resolved
        } else {
            SignalState::Firing
        };
        let window = (self.category == "scheduledChange")
            .then_some(self.start)
            .flatten()
            .map(|start| Window {
                start,
                end: self.end,
            });
        let type_code = self
            .type_code
            .clone()
            .unwrap_or_else(|| self.category.clone());
        let title = match &self.service {
            Some(service) => format!("AWS Health: {service} {}", readable(&type_code)),
            None => format!("AWS Health: {}", readable(&type_code)),
        };
        let mut tags = std::collections::BTreeMap::new();
        let mut resources = Vec::with_capacity(self.entities.len());
        for (entity, entity_tags) in self.entities {
            resources.push(entity);
            tags.extend(entity_tags);
        }
        Signal {
            source: HEALTH.to_owned(),
            receipt_key: receipt,
            dedup_key,
            state,
            kind: self.category,
            category: self.type_code,
            severity: None,
            account: self.affected_account,
            region: self.region,
            service: self.service,
            resources,
            tags,
            title: clip(&title, 300),
            body: self.description,
            occurred_at,
            window,
            savings: None,
            classified: true,
            raw,
        }
    }
}

/// `AWS_EC2_OPERATIONAL_ISSUE` -> `operational issue` (the service is said separately).
fn readable(type_code: &str) -> String {
    let words: Vec<&str> = type_code.split('_').filter(|w| !w.is_empty()).collect();
    let skip = if words.first() == Some(&"AWS") { 2 } else { 0 };
    let rest: Vec<String> = words
        .iter()
        .skip(skip.min(words.len().saturating_sub(1)))
        .map(|w| w.to_lowercase())
        .collect();
    rest.join(" ")
}

/// The `detail` of an EventBridge `AWS Health Event`.
pub(crate) fn from_eventbridge(
    event: &Fields<'_>,
    received_at: DateTime<Utc>,
) -> Result<Signal, FieldError> {
    let detail = event.obj("detail")?;
    let description = detail
        .array("eventDescription")?
        .iter()
        .filter_map(|d| d.get("latestDescription").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n\n");
    let mut entities = Vec::new();
    for (i, e) in detail.array("affectedEntities")?.iter().enumerate() {
        let e = Fields::new(e, format!("detail.affectedEntities[{i}]"))?;
        if let Some(value) = e.opt_str("entityValue")? {
            entities.push((value.to_owned(), e.string_map("tags")));
        }
    }
    if entities.is_empty() {
        entities = event
            .array("resources")?
            .iter()
            .filter_map(Value::as_str)
            .map(|r| (r.to_owned(), Default::default()))
            .collect();
    }
    let health = HealthEvent {
        arn: detail.str("eventArn")?.to_owned(),
        service: detail.opt_str("service")?.map(str::to_owned),
        type_code: detail.opt_str("eventTypeCode")?.map(str::to_owned),
        category: detail.str("eventTypeCategory")?.to_owned(),
        status: detail.opt_str("statusCode")?.unwrap_or("open").to_owned(),
        region: detail
            .opt_str("eventRegion")?
            .or(event.opt_str("region")?)
            .map(str::to_owned),
        affected_account: detail
            .opt_str("affectedAccount")?
            .or(event.opt_str("account")?)
            .map(str::to_owned),
        start: detail.opt_time("startTime")?,
        end: detail.opt_time("endTime")?,
        last_updated: detail.opt_time("lastUpdatedTime")?,
        description,
        entities,
    };
    let fallback = event.opt_time("time")?.unwrap_or(received_at);
    Ok(health.into_signal(event.value().clone(), fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_read_as_words() {
        assert_eq!(readable("AWS_EC2_OPERATIONAL_ISSUE"), "operational issue");
        assert_eq!(readable("issue"), "issue");
    }
}
