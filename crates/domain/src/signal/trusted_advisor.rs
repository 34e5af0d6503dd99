//! Trusted Advisor findings, from EventBridge (`aws.trustedadvisor`) or from the pollers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{clip, receipt_key, Fields, Signal, SignalState, TRUSTED_ADVISOR};
use crate::validation::FieldError;

/// One flagged (or cleared) resource of a Trusted Advisor check.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Finding {
    pub check_id: Option<String>,
    pub check_name: String,
    /// `security`, `fault_tolerance`, `cost_optimizing`, `performance`, `service_limits`,
    /// `operational_excellence`.
    pub category: Option<String>,
    /// `ERROR`, `WARN` or `OK`.
    pub status: String,
    pub resource_id: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub savings: Option<f64>,
    pub details: BTreeMap<String, String>,
    pub observed_at: DateTime<Utc>,
}

/// The category of the best-known checks by name, for EventBridge events, which do not say it.
fn category_of(check_name: &str) -> Option<&'static str> {
    let n = check_name.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if has(&[
        "security group",
        "access key",
        "mfa",
        "iam",
        "s3 bucket permissions",
        "public",
        "cloudtrail",
        "ssl certificate",
    ]) {
        Some("security")
    } else if has(&[
        "underutilized",
        "idle",
        "low utilization",
        "reserved",
        "savings plan",
    ]) {
        Some("cost_optimizing")
    } else if has(&["service limit", "quota"]) {
        Some("service_limits")
    } else if has(&[
        "backup",
        "snapshot",
        "multi-az",
        "redundancy",
        "availability zone",
        "failover",
    ]) {
        Some("fault_tolerance")
    } else if has(&[
        "high utilization",
        "throughput",
        "latency",
        "provisioned iops",
    ]) {
        Some("performance")
    } else {
        None
    }
}

/// `cost_optimizing` from `Cost Optimizing`, `cost-optimizing` or `COST_OPTIMIZING`.
pub fn category_name(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads `$1,234.56` or `1234.56`.
pub fn parse_savings(s: &str) -> Option<f64> {
    let cleaned: String = s
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    cleaned.parse().ok()
}

impl Finding {
    pub fn into_signal(self, raw: Value) -> Signal {
        let check = self
            .check_id
            .clone()
            .unwrap_or_else(|| self.check_name.clone());
        let dedup_key = format!("{check}|{}", self.resource_id);
        let status = self.status.to_ascii_uppercase();
        let receipt = receipt_key(
            TRUSTED_ADVISOR,
            &[&dedup_key, &status, &self.observed_at.to_rfc3339()],
        );
        let state = if status == "OK" {
            SignalState::Resolved
        } else {
            SignalState::Firing
        };
        let category = self
            .category
            .map(|c| category_name(&c))
            .or_else(|| category_of(&self.check_name).map(str::to_owned));
        let mut body = String::new();
        for (k, v) in &self.details {
            body.push_str(&format!("- {k}: {v}\n"));
        }
        let title = format!(
            "Trusted Advisor: {} ({})",
            self.check_name, self.resource_id
        );
        Signal {
            source: TRUSTED_ADVISOR.to_owned(),
            receipt_key: receipt,
            dedup_key,
            state,
            kind: status,
            category,
            severity: None,
            account: self.account,
            region: self.region,
            service: None,
            resources: vec![self.resource_id],
            tags: BTreeMap::new(),
            title: clip(&title, 300),
            body,
            occurred_at: self.observed_at,
            window: None,
            savings: self.savings,
            actionability: None,
            personas: Vec::new(),
            page: None,
            classified: true,
            raw,
        }
    }
}

/// The `detail` of an EventBridge `Trusted Advisor Check Item Refresh Notification`.
pub(crate) fn from_eventbridge(
    event: &Fields<'_>,
    received_at: DateTime<Utc>,
) -> Result<Signal, FieldError> {
    let detail = event.obj("detail")?;
    let item = detail.opt_obj("check-item-detail")?;
    let details = item
        .as_ref()
        .map(|i| i.string_map_all())
        .unwrap_or_default();
    let savings = details
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase().contains("savings"))
        .and_then(|(_, v)| parse_savings(v));
    let resource_id = detail
        .opt_str("resource_id")?
        .or(detail.opt_str("uuid")?)
        .unwrap_or("account")
        .to_owned();
    let finding = Finding {
        check_id: None,
        check_name: detail.str("check-name")?.to_owned(),
        category: None,
        status: detail.str("status")?.to_owned(),
        resource_id,
        account: event.opt_str("account")?.map(str::to_owned),
        region: event.opt_str("region")?.map(str::to_owned),
        savings,
        details,
        observed_at: event.opt_time("time")?.unwrap_or(received_at),
    };
    Ok(finding.into_signal(event.value().clone()))
}

impl Fields<'_> {
    /// Every value of a flat object as text (numbers and booleans printed).
    fn string_map_all(&self) -> BTreeMap<String, String> {
        self.value()
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| {
                        let text = v
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string());
                        (k.clone(), text)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Trusted Advisor: check refreshes through EventBridge (the API poller brings the same).
pub struct TrustedAdvisor;

impl super::source::Source for TrustedAdvisor {
    fn name(&self) -> &'static str {
        TRUSTED_ADVISOR
    }

    fn detail_types(&self) -> Option<&'static [&'static str]> {
        Some(&[])
    }

    fn read_event(
        &self,
        event: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Signal>, FieldError> {
        super::source::one_signal(event, received_at, from_eventbridge)
    }

    /// A finding is work to plan, not an outage.
    fn kind_for(&self, _s: &Signal) -> crate::ticket::Kind {
        crate::ticket::Kind::Task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savings_read_with_currency_signs() {
        assert_eq!(parse_savings("$1,234.50"), Some(1234.5));
        assert_eq!(parse_savings("n/a"), None);
    }

    #[test]
    fn categories_are_snake_case() {
        assert_eq!(category_name("Cost Optimizing"), "cost_optimizing");
        assert_eq!(category_name("fault_tolerance"), "fault_tolerance");
        assert_eq!(category_of("Exposed Access Keys"), Some("security"));
        assert_eq!(
            category_of("Low Utilization Amazon EC2 Instances"),
            Some("cost_optimizing")
        );
    }
}
