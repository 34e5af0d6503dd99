//! Amazon GuardDuty findings as EventBridge delivers them (`aws.guardduty`, `GuardDuty
//! Finding`): one signal per finding event, one ticket per finding id. Severity follows
//! GuardDuty's documented bands of its numeric severity; an archived finding resolves.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::source::Source;
use super::{clip, receipt_key, Fields, Signal, SignalState};
use crate::ticket::Severity;
use crate::validation::FieldError;

/// `source` of GuardDuty signals.
pub const GUARDDUTY: &str = "aws.guardduty";

pub struct GuardDuty;

impl Source for GuardDuty {
    fn name(&self) -> &'static str {
        GUARDDUTY
    }

    fn detail_types(&self) -> Option<&'static [&'static str]> {
        Some(&["GuardDuty Finding"])
    }

    fn read_event(
        &self,
        event: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Signal>, FieldError> {
        Ok(vec![finding(event, received_at)?])
    }
}

/// GuardDuty's severity bands: 1.0–3.9 low, 4.0–6.9 medium, 7.0–8.9 high, 9.0–10.0
/// critical; opsdesk's severity for each.
pub fn band(severity: f64) -> (&'static str, Severity) {
    if severity >= 9.0 {
        ("critical", Severity::Sev1)
    } else if severity >= 7.0 {
        ("high", Severity::Sev2)
    } else if severity >= 4.0 {
        ("medium", Severity::Sev3)
    } else {
        ("low", Severity::Sev4)
    }
}

/// The ARNs of what the finding is about, for workload matching, and the tags of the
/// instance it names.
fn affected(
    resource: Option<&Fields<'_>>,
    partition: &str,
    account: &str,
    region: &str,
) -> Result<(Vec<String>, BTreeMap<String, String>), FieldError> {
    let mut arns = Vec::new();
    let mut tags = BTreeMap::new();
    let Some(r) = resource else {
        return Ok((arns, tags));
    };
    if let Some(i) = r.opt_obj("instanceDetails")? {
        if let Some(id) = i.opt_str("instanceId")? {
            arns.push(format!(
                "arn:{partition}:ec2:{region}:{account}:instance/{id}"
            ));
        }
        for t in i.array("tags")? {
            if let (Some(k), Some(v)) = (
                t.get("key").and_then(Value::as_str),
                t.get("value").and_then(Value::as_str),
            ) {
                tags.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    for b in r.array("s3BucketDetails")? {
        match (
            b.get("arn").and_then(Value::as_str),
            b.get("name").and_then(Value::as_str),
        ) {
            (Some(arn), _) => arns.push(arn.to_owned()),
            (None, Some(name)) => arns.push(format!("arn:{partition}:s3:::{name}")),
            _ => {}
        }
    }
    for (key, field) in [
        ("eksClusterDetails", "arn"),
        ("ecsClusterDetails", "arn"),
        ("rdsDbInstanceDetails", "dbInstanceArn"),
        ("lambdaDetails", "functionArn"),
    ] {
        if let Some(arn) = r
            .opt_obj(key)?
            .map(|d| d.opt_str(field))
            .transpose()?
            .flatten()
        {
            arns.push(arn.to_owned());
        }
    }
    if let Some(k) = r.opt_obj("accessKeyDetails")? {
        if let (Some("IAMUser"), Some(user)) = (k.opt_str("userType")?, k.opt_str("userName")?) {
            arns.push(format!("arn:{partition}:iam::{account}:user/{user}"));
        }
    }
    Ok((arns, tags))
}

fn finding(v: &Value, received_at: DateTime<Utc>) -> Result<Signal, FieldError> {
    let event = Fields::new(v, "")?;
    let d = event.obj("detail")?;
    let id = d.str("id")?;
    let severity = match d.value().get("severity").and_then(Value::as_f64) {
        Some(s) if (0.0..=10.0).contains(&s) => s,
        _ => {
            return Err(FieldError::new(
                "detail.severity",
                "must be GuardDuty's severity, a number from 1 to 10",
            ))
        }
    };
    let (level, sev) = band(severity);
    let finding_type = d.str("type")?;
    let account = d
        .opt_str("accountId")?
        .or(event.opt_str("account")?)
        .unwrap_or_default();
    let region = d
        .opt_str("region")?
        .or(event.opt_str("region")?)
        .unwrap_or_default();
    let partition = d.opt_str("partition")?.unwrap_or("aws");
    let resource = d.opt_obj("resource")?;
    let (resources, mut tags) = affected(resource.as_ref(), partition, account, region)?;
    let resource_type = match &resource {
        Some(r) => r.opt_str("resourceType")?,
        None => None,
    };
    if let Some(t) = resource_type {
        tags.insert("guardduty_resource_type".into(), t.to_owned());
    }
    let service = d.opt_obj("service")?;
    let (archived, count, last_seen) = match &service {
        Some(s) => (
            s.value()
                .get("archived")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            s.value().get("count").and_then(Value::as_i64),
            s.opt_time("eventLastSeen")?,
        ),
        None => (false, None, None),
    };
    let updated = d.opt_time("updatedAt")?;
    let occurred_at = updated
        .or(last_seen)
        .or(event.opt_time("time")?)
        .unwrap_or(received_at);
    let title = d.opt_str("title")?.unwrap_or(finding_type);
    let mut body = d.opt_str("description")?.unwrap_or_default().to_owned();
    body.push_str(&format!(
        "\n\n- Finding type: {finding_type}\n- GuardDuty severity: {severity} ({level})\n"
    ));
    if let Some(n) = count {
        body.push_str(&format!("- Seen {n} times\n"));
    }
    if let Some(arn) = d.opt_str("arn")? {
        body.push_str(&format!("- Finding: {arn}\n"));
    }
    // Each update of a finding is news; a redelivery of one event is not.
    let updated_text = updated.map(|t| t.to_rfc3339()).unwrap_or_default();
    let receipt = match event.opt_str("id")? {
        Some(event_id) => receipt_key(GUARDDUTY, &[event_id]),
        None => receipt_key(
            GUARDDUTY,
            &[
                id,
                &updated_text,
                &count.unwrap_or(0).to_string(),
                &archived.to_string(),
            ],
        ),
    };
    Ok(Signal {
        source: GUARDDUTY.to_owned(),
        receipt_key: receipt,
        dedup_key: clip(id, 200),
        state: if archived {
            SignalState::Resolved
        } else {
            SignalState::Firing
        },
        kind: level.to_owned(),
        category: Some(clip(finding_type, 200)),
        severity: Some(sev),
        account: Some(account.to_owned()).filter(|a| !a.is_empty()),
        region: Some(region.to_owned()).filter(|r| !r.is_empty()),
        service: Some("GuardDuty".to_owned()),
        resources,
        tags,
        title: clip(title, 300),
        body: body.trim().to_owned(),
        occurred_at,
        window: None,
        savings: None,
        actionability: None,
        personas: vec!["SECURITY".to_owned()],
        page: None,
        classified: true,
        raw: v.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn received() -> DateTime<Utc> {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    /// A finding event as the GuardDuty user guide shows one (EventBridge, schema 2.0).
    fn event(severity: Value, archived: bool) -> Value {
        json!({
            "version": "0",
            "id": "c8c4daa7-a20c-2f03-0070-b7393dd542ad",
            "detail-type": "GuardDuty Finding",
            "source": "aws.guardduty",
            "account": "123456789012",
            "time": "2026-11-30T23:16:23Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "schemaVersion": "2.0",
                "accountId": "123456789012",
                "region": "us-east-1",
                "partition": "aws",
                "id": "16afba5c5c43e07c9e3e5e2e544e95df",
                "arn": "arn:aws:guardduty:us-east-1:123456789012:detector/123456789012345678901234567890/finding/16afba5c5c43e07c9e3e5e2e544e95df",
                "type": "UnauthorizedAccess:EC2/SSHBruteForce",
                "resource": {
                    "resourceType": "Instance",
                    "instanceDetails": {
                        "instanceId": "i-05746eb48123455e0",
                        "instanceType": "t3.micro",
                        "tags": [{"key": "app", "value": "checkout"}]
                    }
                },
                "service": {
                    "serviceName": "guardduty",
                    "detectorId": "123456789012345678901234567890",
                    "eventFirstSeen": "2026-11-30T22:16:23Z",
                    "eventLastSeen": "2026-11-30T23:16:23Z",
                    "archived": archived,
                    "count": 7
                },
                "severity": severity,
                "createdAt": "2026-11-30T22:16:23.824Z",
                "updatedAt": "2026-11-30T23:16:23.824Z",
                "title": "198.51.100.7 is performing SSH brute force attacks against i-05746eb48123455e0.",
                "description": "198.51.100.7 is performing SSH brute force attacks against i-05746eb48123455e0. Brute force attacks are used to gain unauthorized access to your instance by guessing the SSH password."
            }
        })
    }

    #[test]
    fn a_finding_becomes_a_signal_keyed_by_its_id() {
        let now = received();
        let s = &GuardDuty.read_event(&event(json!(8), false), now).unwrap()[0];
        assert_eq!(s.source, "aws.guardduty");
        assert_eq!(s.dedup_key, "16afba5c5c43e07c9e3e5e2e544e95df");
        assert_eq!(s.state, SignalState::Firing);
        assert_eq!(
            (s.kind.as_str(), s.severity),
            ("high", Some(Severity::Sev2))
        );
        assert_eq!(
            s.category.as_deref(),
            Some("UnauthorizedAccess:EC2/SSHBruteForce")
        );
        assert_eq!(
            s.resources,
            ["arn:aws:ec2:us-east-1:123456789012:instance/i-05746eb48123455e0"]
        );
        assert_eq!(s.tags.get("app").map(String::as_str), Some("checkout"));
        assert_eq!(s.account.as_deref(), Some("123456789012"));
        assert!(s.body.contains("Seen 7 times"), "{}", s.body);
        let archived = &GuardDuty.read_event(&event(json!(8), true), now).unwrap()[0];
        assert_eq!(archived.state, SignalState::Resolved);
        assert_eq!(archived.dedup_key, s.dedup_key);
    }

    #[test]
    fn severity_follows_the_documented_bands() {
        for (value, level, sev) in [
            (1.0, "low", Severity::Sev4),
            (3.9, "low", Severity::Sev4),
            (4.0, "medium", Severity::Sev3),
            (6.9, "medium", Severity::Sev3),
            (7.0, "high", Severity::Sev2),
            (8.9, "high", Severity::Sev2),
            (9.0, "critical", Severity::Sev1),
            (10.0, "critical", Severity::Sev1),
        ] {
            assert_eq!(band(value), (level, sev), "{value}");
        }
        for bad in [json!("HIGH"), json!(11), json!(null)] {
            let e = GuardDuty
                .read_event(&event(bad, false), received())
                .unwrap_err();
            assert_eq!(e.field, "detail.severity");
        }
    }
}
