//! Prometheus Alertmanager webhook notifications (`version` 4): one signal per alert.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::alerts::severity_of;
use super::{clip, receipt_key, Fields, Signal, SignalState, ALERTMANAGER};
use crate::validation::FieldError;

pub fn from_webhook(body: &Value, received_at: DateTime<Utc>) -> Result<Vec<Signal>, FieldError> {
    let message = Fields::new(body, "")?;
    let alerts = message.array("alerts")?;
    if body.get("alerts").is_none() {
        return Err(FieldError::new("alerts", "is required"));
    }
    let common = message.string_map("commonLabels");
    let mut out = Vec::with_capacity(alerts.len());
    for (i, alert) in alerts.iter().enumerate() {
        let a = Fields::new(alert, format!("alerts[{i}]"))?;
        let status = a.str("status")?;
        let state = match status {
            "firing" => SignalState::Firing,
            "resolved" => SignalState::Resolved,
            other => {
                return Err(FieldError::new(
                    format!("alerts[{i}].status"),
                    format!("`{other}` is not firing or resolved"),
                ))
            }
        };
        let mut labels = common.clone();
        labels.extend(a.string_map("labels"));
        let annotations = a.string_map("annotations");
        let fingerprint = a.str("fingerprint")?;
        let starts_at = a.opt_time("startsAt")?;
        let ends_at = a.opt_time("endsAt")?;
        let occurred_at = match state {
            SignalState::Resolved => ends_at.or(starts_at),
            _ => starts_at,
        }
        .unwrap_or(received_at);
        let name = labels
            .get("alertname")
            .cloned()
            .unwrap_or_else(|| "alert".into());
        let title = annotations
            .get("summary")
            .cloned()
            .unwrap_or_else(|| format!("{name} is {status}"));
        let mut body_text = annotations.get("description").cloned().unwrap_or_default();
        if let Some(url) = a.opt_str("generatorURL")? {
            body_text.push_str(&format!("\n\nSource: {url}"));
        }
        let severity_label = labels.get("severity").cloned();
        let receipt = receipt_key(
            ALERTMANAGER,
            &[fingerprint, status, &occurred_at.to_rfc3339()],
        );
        out.push(Signal {
            source: ALERTMANAGER.to_owned(),
            receipt_key: receipt,
            dedup_key: fingerprint.to_owned(),
            state,
            kind: severity_label.clone().unwrap_or_else(|| "alert".into()),
            category: Some(name),
            severity: severity_label.as_deref().and_then(severity_of),
            account: labels.get("account").cloned(),
            region: labels.get("region").cloned(),
            service: labels.get("service").or(labels.get("job")).cloned(),
            resources: labels.get("instance").cloned().into_iter().collect(),
            tags: labels,
            title: clip(&title, 300),
            body: body_text.trim().to_owned(),
            occurred_at,
            window: None,
            savings: None,
            actionability: None,
            personas: Vec::new(),
            page: None,
            classified: true,
            raw: alert.clone(),
        });
    }
    Ok(out)
}
