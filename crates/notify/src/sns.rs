//! The SNS channel: publishes to a topic through opsdesk-aws's [`SnsPublisher`].
//!
//! The subject is [`Notification::sns_subject`] (email subscribers see it), the message the
//! plain-text body, and the message attributes `event`, `severity`, `workload`, `environment`
//! and `team` (those that are known) let subscriptions filter, e.g. a filter policy
//! `{"environment": ["production"], "severity": ["SEV1", "SEV2"]}` for the pager.

use std::sync::Arc;

use opsdesk_aws::sns::SnsPublisher;
use opsdesk_domain::channel::{Notification, SnsTarget};

use crate::{Channel, Receipt, SendError};

/// Sends notifications to SNS topics.
#[derive(Clone)]
pub struct Sns {
    publisher: Arc<SnsPublisher>,
}

impl Sns {
    pub fn new(publisher: Arc<SnsPublisher>) -> Sns {
        Sns { publisher }
    }
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

impl Channel for Sns {
    type Target = SnsTarget;

    async fn send(
        &self,
        target: &SnsTarget,
        n: &Notification,
        _idempotency_key: &str,
    ) -> Result<Receipt, SendError> {
        let attributes = attributes(n);
        let attributes: Vec<(&str, &str)> =
            attributes.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let id = self
            .publisher
            .publish(
                &target.topic_arn,
                target.publish_region(),
                &n.sns_subject(),
                &n.text(),
                &attributes,
            )
            .await
            .map_err(|e| SendError {
                message: e.message,
                retryable: e.retryable,
                retry_after: None,
            })?;
        Ok(Receipt {
            detail: format!("SNS message id {id}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use opsdesk_domain::channel::NotificationEvent;
    use opsdesk_domain::{Environment, Severity};

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
