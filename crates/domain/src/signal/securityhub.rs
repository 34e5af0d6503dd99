//! AWS Security Hub findings as EventBridge delivers them (`aws.securityhub`, `Security Hub
//! Findings - Imported`, in the AWS Security Finding Format): one signal per finding in
//! `detail.findings`, one ticket per finding `Id`. Severity from `Severity.Label` (or, for
//! findings without one, the documented bands of `Severity.Normalized`); a finding whose
//! `Workflow.Status` is `RESOLVED` or `SUPPRESSED` (reviewed, nothing to do, no longer
//! updated) or whose `RecordState` is `ARCHIVED` resolves. GuardDuty's findings, which
//! Security Hub imports too, are read from GuardDuty's own events only, so that one finding is
//! one ticket.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::source::Source;
use super::{clip, receipt_key, Fields, Signal, SignalState};
use crate::ticket::Severity;
use crate::validation::FieldError;

/// `source` of Security Hub signals.
pub const SECURITY_HUB: &str = "aws.securityhub";

pub struct SecurityHub;

impl Source for SecurityHub {
    fn name(&self) -> &'static str {
        SECURITY_HUB
    }

    fn detail_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Security Hub Findings - Imported"])
    }

    fn read_event(
        &self,
        event: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Signal>, FieldError> {
        let e = Fields::new(event, "")?;
        let detail = e.obj("detail")?;
        let findings = detail.array("findings")?;
        if findings.is_empty() {
            return Err(FieldError::new("detail.findings", "holds no finding"));
        }
        let mut out = Vec::with_capacity(findings.len());
        for (i, f) in findings.iter().enumerate() {
            let path = format!("detail.findings[{i}]");
            let product = Fields::new(f, path.as_str())?.opt_str("ProductArn")?;
            if product.is_some_and(|p| p.ends_with(GUARDDUTY_PRODUCT)) {
                continue;
            }
            out.push(finding(&e, f, &path, received_at)?);
        }
        Ok(out)
    }
}

/// The end of GuardDuty's product ARN in Security Hub.
const GUARDDUTY_PRODUCT: &str = ":product/aws/guardduty";

/// opsdesk's severity for an ASFF severity label.
pub fn severity_of(label: &str) -> Option<Severity> {
    Some(match label {
        "CRITICAL" => Severity::Sev1,
        "HIGH" => Severity::Sev2,
        "MEDIUM" => Severity::Sev3,
        "LOW" => Severity::Sev4,
        "INFORMATIONAL" => Severity::Sev5,
        _ => return None,
    })
}

/// The label of a normalized severity (0–100), by the bands the ASFF documents.
fn label_of(normalized: f64) -> &'static str {
    match normalized {
        n if n >= 90.0 => "CRITICAL",
        n if n >= 70.0 => "HIGH",
        n if n >= 40.0 => "MEDIUM",
        n if n >= 1.0 => "LOW",
        _ => "INFORMATIONAL",
    }
}

fn finding(
    event: &Fields<'_>,
    v: &Value,
    path: &str,
    received_at: DateTime<Utc>,
) -> Result<Signal, FieldError> {
    let f = Fields::new(v, path)?;
    let id = f.str("Id")?;
    let severity = f.obj("Severity")?;
    let label = match severity.opt_str("Label")? {
        Some(l) => l.to_owned(),
        None => match severity.value().get("Normalized").and_then(Value::as_f64) {
            Some(n) => label_of(n).to_owned(),
            None => {
                return Err(FieldError::new(
                    format!("{path}.Severity.Label"),
                    "is required",
                ))
            }
        },
    };
    let sev = severity_of(&label).ok_or_else(|| {
        FieldError::new(
            format!("{path}.Severity.Label"),
            format!("`{label}` is not INFORMATIONAL, LOW, MEDIUM, HIGH or CRITICAL"),
        )
    })?;
    let workflow = match f.opt_obj("Workflow")? {
        Some(w) => w.opt_str("Status")?,
        None => f.opt_str("WorkflowState")?,
    };
    let record_state = f.opt_str("RecordState")?;
    let resolved =
        matches!(workflow, Some("RESOLVED" | "SUPPRESSED")) || record_state == Some("ARCHIVED");
    let mut resources = Vec::new();
    let mut tags = BTreeMap::new();
    let mut types = Vec::new();
    for (i, r) in f.array("Resources")?.iter().enumerate() {
        let r = Fields::new(r, format!("{path}.Resources[{i}]"))?;
        if let Some(rid) = r.opt_str("Id")? {
            resources.push(rid.to_owned());
        }
        if let Some(t) = r.opt_str("Type")? {
            types.push(t.to_owned());
        }
        tags.extend(r.string_map("Tags"));
    }
    let updated = f.opt_time("UpdatedAt")?;
    let occurred_at = updated
        .or(f.opt_time("LastObservedAt")?)
        .or(event.opt_time("time")?)
        .unwrap_or(received_at);
    let title = f.opt_str("Title")?.unwrap_or(id);
    let product = f
        .opt_str("ProductName")?
        .or_else(|| {
            v.pointer("/ProductFields/aws~1securityhub~1ProductName")
                .and_then(Value::as_str)
        })
        .unwrap_or("Security Hub");
    let mut body = f.opt_str("Description")?.unwrap_or_default().to_owned();
    body.push_str(&format!("\n\n- Product: {product}\n- Severity: {label}\n"));
    if let Some(t) = f.array("Types")?.first().and_then(Value::as_str) {
        body.push_str(&format!("- Type: {t}\n"));
    }
    if let Some(c) = f
        .opt_obj("Compliance")?
        .map(|c| c.opt_str("Status"))
        .transpose()?
        .flatten()
    {
        body.push_str(&format!("- Compliance: {c}\n"));
    }
    if let Some(r) = v.pointer("/Remediation/Recommendation") {
        if let Some(text) = r.get("Text").and_then(Value::as_str) {
            body.push_str(&format!("- Remediation: {text}\n"));
        }
        if let Some(url) = r.get("Url").and_then(Value::as_str) {
            body.push_str(&format!("- Read more: {url}\n"));
        }
    }
    // Each event is news (changes made in Security Hub leave `UpdatedAt` as it was); a
    // redelivery of one event is not. Ids are unique within a product.
    let updated_text = updated.map(|t| t.to_rfc3339()).unwrap_or_default();
    let receipt = match event.opt_str("id")? {
        Some(event_id) => receipt_key(SECURITY_HUB, &[event_id, id]),
        None => receipt_key(
            SECURITY_HUB,
            &[
                id,
                &updated_text,
                workflow.unwrap_or_default(),
                record_state.unwrap_or_default(),
            ],
        ),
    };
    let dedup = match f.opt_str("ProductArn")? {
        Some(product) => format!("{product}/{id}"),
        None => id.to_owned(),
    };
    Ok(Signal {
        source: SECURITY_HUB.to_owned(),
        receipt_key: receipt,
        dedup_key: clip(&dedup, 512),
        state: if resolved {
            SignalState::Resolved
        } else {
            SignalState::Firing
        },
        kind: label.clone(),
        category: f.opt_str("GeneratorId")?.map(|g| clip(g, 200)),
        severity: Some(sev),
        account: f
            .opt_str("AwsAccountId")?
            .or(event.opt_str("account")?)
            .map(str::to_owned),
        region: f
            .opt_str("Region")?
            .or(event.opt_str("region")?)
            .map(str::to_owned),
        service: types.first().cloned(),
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

    /// An event as the Security Hub user guide shows one, with two findings.
    fn event() -> Value {
        let finding = |id: &str, label: &str, workflow: &str, record: &str| {
            json!({
                "SchemaVersion": "2018-10-08",
                "Id": id,
                "ProductArn": "arn:aws:securityhub:us-west-2::product/aws/securityhub",
                "GeneratorId": "aws-foundational-security-best-practices/v/1.0.0/S3.2",
                "AwsAccountId": "123456789012",
                "Types": ["Software and Configuration Checks/Industry and Regulatory Standards/AWS-Foundational-Security-Best-Practices"],
                "FirstObservedAt": "2026-11-30T20:00:00.000Z",
                "LastObservedAt": "2026-11-30T21:52:15.900Z",
                "CreatedAt": "2026-11-30T20:00:00.000Z",
                "UpdatedAt": "2026-11-30T21:52:15.900Z",
                "Severity": {"Label": label, "Normalized": 70, "Original": "HIGH"},
                "Title": "S3.2 S3 buckets should prohibit public read access",
                "Description": "This control checks whether your S3 buckets allow public read access.",
                "Remediation": {"Recommendation": {"Text": "For directions on how to fix this issue, consult the AWS Security Hub Foundational Security Best Practices documentation.", "Url": "https://docs.aws.amazon.com/console/securityhub/S3.2/remediation"}},
                "ProductFields": {"aws/securityhub/ProductName": "Security Hub"},
                "Resources": [{"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::checkout-assets", "Partition": "aws", "Region": "us-west-2", "Tags": {"app": "checkout"}}],
                "Compliance": {"Status": "FAILED"},
                "WorkflowState": "NEW",
                "Workflow": {"Status": workflow},
                "RecordState": record,
                "Region": "us-west-2",
                "ProductName": "Security Hub",
                "CompanyName": "AWS"
            })
        };
        json!({
            "version": "0",
            "id": "8e5622f9-d81c-4d81-612a-9319e7ee2506",
            "detail-type": "Security Hub Findings - Imported",
            "source": "aws.securityhub",
            "account": "123456789012",
            "time": "2026-11-30T21:52:17Z",
            "region": "us-west-2",
            "resources": ["arn:aws:securityhub:us-west-2:123456789012:subscription/aws-foundational-security-best-practices/v/1.0.0/S3.2/finding/a1b2"],
            "detail": {"findings": [
                finding("arn:aws:securityhub:us-west-2:123456789012:subscription/aws-foundational-security-best-practices/v/1.0.0/S3.2/finding/a1b2", "HIGH", "NEW", "ACTIVE"),
                finding("arn:aws:securityhub:us-west-2:123456789012:subscription/aws-foundational-security-best-practices/v/1.0.0/S3.2/finding/c3d4", "CRITICAL", "RESOLVED", "ACTIVE"),
            ]}
        })
    }

    #[test]
    fn each_finding_is_a_signal_keyed_by_its_id() {
        let signals = SecurityHub.read_event(&event(), received()).unwrap();
        assert_eq!(signals.len(), 2);
        let (a, b) = (&signals[0], &signals[1]);
        assert!(a.dedup_key.ends_with("/finding/a1b2"));
        assert!(a
            .dedup_key
            .starts_with("arn:aws:securityhub:us-west-2::product/aws/securityhub/"));
        assert_eq!(
            (a.kind.as_str(), a.severity),
            ("HIGH", Some(Severity::Sev2))
        );
        assert_eq!(a.state, SignalState::Firing);
        assert_eq!(a.resources, ["arn:aws:s3:::checkout-assets"]);
        assert_eq!(a.tags.get("app").map(String::as_str), Some("checkout"));
        assert_eq!(a.region.as_deref(), Some("us-west-2"));
        assert!(a.body.contains("Compliance: FAILED"), "{}", a.body);
        assert_eq!(b.severity, Some(Severity::Sev1));
        assert_eq!(b.state, SignalState::Resolved);
        assert_ne!(a.receipt_key, b.receipt_key);
    }

    #[test]
    fn guardduty_findings_are_left_to_guardduty_and_suppressed_ones_resolve() {
        let mut e = event();
        e["detail"]["findings"][0]["ProductArn"] =
            json!("arn:aws:securityhub:us-west-2::product/aws/guardduty");
        e["detail"]["findings"][1]["Workflow"]["Status"] = json!("SUPPRESSED");
        let signals = SecurityHub.read_event(&e, received()).unwrap();
        assert_eq!(signals.len(), 1);
        assert!(signals[0].dedup_key.ends_with("/finding/c3d4"));
        assert_eq!(signals[0].state, SignalState::Resolved);
    }

    #[test]
    fn archived_findings_resolve_and_bad_ones_are_named() {
        let mut e = event();
        e["detail"]["findings"][0]["RecordState"] = json!("ARCHIVED");
        let signals = SecurityHub.read_event(&e, received()).unwrap();
        assert_eq!(signals[0].state, SignalState::Resolved);

        let mut e = event();
        e["detail"]["findings"][1]["Severity"] = json!({"Label": "SEVERE"});
        let err = SecurityHub.read_event(&e, received()).unwrap_err();
        assert_eq!(err.field, "detail.findings[1].Severity.Label");

        // Findings of products that give only a normalized severity.
        let mut e = event();
        e["detail"]["findings"][0]["Severity"] = json!({"Normalized": 95});
        assert_eq!(
            SecurityHub.read_event(&e, received()).unwrap()[0].severity,
            Some(Severity::Sev1)
        );

        let mut e = event();
        e["detail"]["findings"] = json!([]);
        let err = SecurityHub.read_event(&e, received()).unwrap_err();
        assert_eq!(err.field, "detail.findings");
    }
}
