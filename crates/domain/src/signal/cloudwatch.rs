//! CloudWatch alarms: EventBridge `CloudWatch Alarm State Change` events and the alarm
//! notifications CloudWatch publishes to SNS.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{clip, receipt_key, Fields, Signal, SignalState, CLOUDWATCH};
use crate::validation::FieldError;

struct Alarm<'a> {
    arn: String,
    name: &'a str,
    description: Option<&'a str>,
    state: &'a str,
    reason: Option<&'a str>,
    account: Option<&'a str>,
    changed_at: DateTime<Utc>,
}

/// `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME` -> (region, account).
fn arn_parts(arn: &str) -> (Option<String>, Option<String>) {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let part = |i: usize| {
        parts
            .get(i)
            .filter(|p| !p.is_empty())
            .map(|p| (*p).to_owned())
    };
    (part(3), part(4))
}

impl Alarm<'_> {
    fn into_signal(self, raw: Value) -> Signal {
        let (region, arn_account) = arn_parts(&self.arn);
        let state = match self.state {
            "OK" => SignalState::Resolved,
            _ => SignalState::Firing,
        };
        let receipt = receipt_key(
            CLOUDWATCH,
            &[&self.arn, self.state, &self.changed_at.to_rfc3339()],
        );
        let mut body = String::new();
        if let Some(d) = self.description.filter(|d| !d.is_empty()) {
            body.push_str(d);
            body.push_str("\n\n");
        }
        if let Some(r) = self.reason {
            body.push_str(r);
        }
        Signal {
            source: CLOUDWATCH.to_owned(),
            receipt_key: receipt,
            dedup_key: self.arn.clone(),
            state,
            kind: self.state.to_owned(),
            category: None,
            severity: None,
            account: self.account.map(str::to_owned).or(arn_account),
            region,
            service: Some("CloudWatch".to_owned()),
            resources: vec![self.arn],
            tags: BTreeMap::new(),
            title: clip(
                &format!("CloudWatch alarm {} is {}", self.name, self.state),
                300,
            ),
            body,
            occurred_at: self.changed_at,
            window: None,
            savings: None,
            actionability: None,
            personas: Vec::new(),
            page: None,
            classified: true,
            raw,
        }
    }
}

/// An EventBridge `CloudWatch Alarm State Change` event.
pub(crate) fn from_eventbridge(
    event: &Fields<'_>,
    received_at: DateTime<Utc>,
) -> Result<Signal, FieldError> {
    let detail = event.obj("detail")?;
    let state = detail.obj("state")?;
    let name = detail.str("alarmName")?;
    let arn = event
        .array("resources")?
        .iter()
        .filter_map(Value::as_str)
        .find(|r| r.contains(":alarm:"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "arn:aws:cloudwatch:{}:{}:alarm:{name}",
                event.opt_str("region").ok().flatten().unwrap_or_default(),
                event.opt_str("account").ok().flatten().unwrap_or_default()
            )
        });
    let description = match detail.opt_obj("configuration")? {
        Some(c) => c.opt_str("description")?,
        None => None,
    };
    let alarm = Alarm {
        arn,
        name,
        description,
        state: state.str("value")?,
        reason: state.opt_str("reason")?,
        account: event.opt_str("account")?,
        changed_at: state
            .opt_time("timestamp")?
            .or(event.opt_time("time")?)
            .unwrap_or(received_at),
    };
    Ok(alarm.into_signal(event.value().clone()))
}

/// Whether an SNS `Message` looks like a CloudWatch alarm notification.
pub fn is_sns_alarm(message: &Value) -> bool {
    message.get("AlarmArn").is_some() && message.get("NewStateValue").is_some()
}

/// The alarm notification CloudWatch publishes to an SNS topic.
pub fn from_sns_message(message: &Value, received_at: DateTime<Utc>) -> Result<Signal, FieldError> {
    let m = Fields::new(message, "Message")?;
    let alarm = Alarm {
        arn: m.str("AlarmArn")?.to_owned(),
        name: m.str("AlarmName")?,
        description: m.opt_str("AlarmDescription")?,
        state: m.str("NewStateValue")?,
        reason: m.opt_str("NewStateReason")?,
        account: m.opt_str("AWSAccountId")?,
        changed_at: m.opt_time("StateChangeTime")?.unwrap_or(received_at),
    };
    Ok(alarm.into_signal(message.clone()))
}

/// CloudWatch alarms: state changes through EventBridge (SNS notifications too, read by
/// [`super::from_payload`]).
pub struct CloudWatch;

impl super::source::Source for CloudWatch {
    fn name(&self) -> &'static str {
        CLOUDWATCH
    }

    fn detail_types(&self) -> Option<&'static [&'static str]> {
        Some(&["CloudWatch Alarm State Change"])
    }

    fn read_event(
        &self,
        event: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Signal>, FieldError> {
        super::source::one_signal(event, received_at, from_eventbridge)
    }
}
