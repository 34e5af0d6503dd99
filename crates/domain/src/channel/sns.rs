//! The SNS channel type: publishes to a topic.
//!
//! The subject is [`Notification::sns_subject`] (email subscribers see it), the message the
//! plain-text body, and the message attributes `event`, `severity`, `workload`, `environment`
//! and `team` (those that are known) let subscriptions filter, e.g. a filter policy
//! `{"environment": ["production"], "severity": ["SEV1", "SEV2"]}` for the pager.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::{Attempt, ChannelType, FormField, Input, Outgoing, SnsPublish};
use super::Notification;
use crate::validation::FieldError;

/// The Amazon SNS channel type.
pub struct Sns;

impl ChannelType for Sns {
    type Settings = SnsTarget;
    const NAME: &'static str = "sns";
    const LABEL: &'static str = "Amazon SNS";
    const FIELDS: &'static [FormField] = &[
        FormField {
            key: "topic_arn",
            label: "Topic ARN",
            input: Input::Text { required: true },
            hint: "",
            placeholder: "arn:aws:sns:eu-west-1:111111111111:ops",
        },
        FormField {
            key: "region",
            label: "Region",
            input: Input::Text { required: false },
            hint: "(default: the topic's)",
            placeholder: "",
        },
    ];

    fn validate(settings: SnsTarget) -> Result<SnsTarget, FieldError> {
        settings.checked()
    }

    fn summary(t: &SnsTarget) -> String {
        t.topic_arn.clone()
    }

    fn render(t: &SnsTarget, n: &Notification, _: Attempt<'_>) -> Result<Outgoing, String> {
        Ok(Outgoing::Sns(SnsPublish {
            topic_arn: t.topic_arn.clone(),
            region: t.publish_region().map(str::to_owned),
            subject: n.sns_subject(),
            message: n.text(),
            attributes: attributes(n),
        }))
    }
}

/// An SNS topic to publish to.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnsTarget {
    /// `arn:aws:sns:<region>:<account>:<topic>`.
    pub topic_arn: String,
    /// The region to publish in. Default: the topic's, from its ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// The message attributes for `n`, leaving out what is not known.
pub fn attributes(n: &Notification) -> Vec<(&'static str, String)> {
    let mut out = vec![("event", n.event.as_str().to_owned())];
    let mut push = |name: &'static str, value: Option<String>| {
        if let Some(v) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            out.push((name, v));
        }
    };
    push("severity", n.severity.map(|s| s.to_string()));
    push("workload", n.workload.clone());
    push("environment", n.environment.map(|e| e.to_string()));
    push("team", n.team.clone());
    out
}

/// The parts of an SNS topic ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub topic: &'a str,
}

impl<'a> TopicArn<'a> {
    /// Reads `arn:aws[-cn|-us-gov]:sns:<region>:<12 digits>:<topic>`.
    pub fn parse(arn: &'a str) -> Option<TopicArn<'a>> {
        let mut parts = arn.split(':');
        let (Some("arn"), Some(partition), Some("sns"), Some(region), Some(account), Some(topic)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let ok = parts.next().is_none()
            && matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
            && is_region(region)
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && is_topic_name(topic);
        ok.then_some(TopicArn {
            partition,
            region,
            account,
            topic,
        })
    }
}

fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// 1 to 256 letters, digits, `-` and `_`; a FIFO topic ends in `.fifo`.
fn is_topic_name(t: &str) -> bool {
    let base = t.strip_suffix(".fifo").unwrap_or(t);
    !base.is_empty()
        && t.len() <= 256
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SnsTarget {
    /// The region to publish in: the configured one, else the topic's.
    pub fn publish_region(&self) -> Option<&str> {
        self.region
            .as_deref()
            .or_else(|| TopicArn::parse(&self.topic_arn).map(|a| a.region))
    }

    fn checked(mut self) -> Result<SnsTarget, FieldError> {
        self.topic_arn = self.topic_arn.trim().to_owned();
        if TopicArn::parse(&self.topic_arn).is_none() {
            return Err(FieldError::new(
                "topic_arn",
                "must be an SNS topic ARN: arn:aws:sns:<region>:<12-digit account>:<topic>",
            ));
        }
        self.region = self.region.map(|r| r.trim().to_owned());
        if self.region.as_deref().is_some_and(|r| !is_region(r)) {
            return Err(FieldError::new(
                "region",
                "must be an AWS region name such as eu-west-1",
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::NotificationEvent;
    use crate::{Environment, Severity};
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn attributes_leave_out_what_is_unknown() {
        let mut n = Notification {
            event: NotificationEvent::KpiBreach,
            ticket_id: None,
            ticket_key: None,
            title: "MTTA".into(),
            severity: None,
            status: None,
            workload: Some(" ".into()),
            environment: None,
            team: None,
            summary: String::new(),
            url: None,
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            recipients: Vec::new(),
            report: None,
        };
        assert_eq!(attributes(&n), [("event", "kpi_breach".to_owned())]);
        n.severity = Some(Severity::Sev2);
        n.workload = Some("checkout".into());
        n.environment = Some(Environment::Production);
        n.team = Some("payments".into());
        assert_eq!(
            attributes(&n),
            [
                ("event", "kpi_breach".to_owned()),
                ("severity", "SEV2".to_owned()),
                ("workload", "checkout".to_owned()),
                ("environment", "production".to_owned()),
                ("team", "payments".to_owned()),
            ]
        );
    }
}
