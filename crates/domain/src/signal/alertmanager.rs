//! Prometheus Alertmanager webhook notifications (`version` 4): one signal per alert. Grafana's
//! webhook contact point sends the same shape, read by the same code.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::alerts::severity_of;
use super::{clip, receipt_key, Fields, Signal, SignalState, ALERTMANAGER};
use crate::validation::FieldError;

/// Prometheus Alertmanager, at `/api/v1/ingest/alertmanager`.
pub struct Alertmanager;

impl super::source::Source for Alertmanager {
    fn name(&self) -> &'static str {
        ALERTMANAGER
    }

    fn takes_webhooks(&self) -> bool {
        true
    }

    fn read_webhook(
        &self,
        body: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Signal>, FieldError> {
        alert_group(body, ALERTMANAGER, received_at)
    }
}

/// A group of alerts as Alertmanager and Grafana send it, as signals of `source`, one ticket
/// per alert fingerprint.
pub(crate) fn alert_group(
    body: &Value,
    source: &'static str,
    received_at: DateTime<Utc>,
) -> Result<Vec<Signal>, FieldError> {
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
        if let Some(url) = a.opt_str("generatorURL")?.filter(|u| !u.is_empty()) {
            body_text.push_str(&format!("\n\nSource: {url}"));
        }
        // Grafana's links: its dashboard, panel and the rule's runbook.
        if source == super::grafana::GRAFANA {
            for (key, said) in [("dashboardURL", "Dashboard"), ("panelURL", "Panel")] {
                if let Some(url) = a.opt_str(key)?.filter(|u| !u.is_empty()) {
                    body_text.push_str(&format!("\n{said}: {url}"));
                }
            }
            if let Some(url) = annotations.get("runbook_url").filter(|u| !u.is_empty()) {
                body_text.push_str(&format!("\nRunbook: {url}"));
            }
        }
        let severity_label = labels.get("severity").cloned();
        let receipt = receipt_key(source, &[fingerprint, status, &occurred_at.to_rfc3339()]);
        out.push(Signal {
            source: source.to_owned(),
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
