//! Grafana Alerting's webhook contact point: its JSON carries `alerts[]` with `status`,
//! `labels`, `annotations`, `fingerprint`, `startsAt` and `endsAt`, as Alertmanager's does.
//! One signal per alert, one ticket per fingerprint, resolved by `status: resolved`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::alertmanager::alert_group;
use super::source::Source;
use super::Signal;
use crate::validation::FieldError;

/// `source` of Grafana signals.
pub const GRAFANA: &str = "grafana";

pub struct Grafana;

impl Source for Grafana {
    fn name(&self) -> &'static str {
        GRAFANA
    }

    fn takes_webhooks(&self) -> bool {
        true
    }

    fn read_webhook(
        &self,
        body: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Signal>, FieldError> {
        alert_group(body, GRAFANA, received_at)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn received() -> DateTime<Utc> {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }
    use crate::signal::SignalState;

    /// A notification as Grafana's webhook contact point documentation shows one.
    fn notification(status: &str) -> Value {
        json!({
            "receiver": "opsdesk",
            "status": status,
            "orgId": 1,
            "alerts": [{
                "status": status,
                "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1", "severity": "critical"},
                "annotations": {
                    "description": "The system has high memory usage",
                    "runbook_url": "https://runbooks.example.com/memory",
                    "summary": "This alert was triggered for zone us-1"
                },
                "startsAt": "2026-11-30T09:51:03.157076+02:00",
                "endsAt": if status == "resolved" { "2026-11-30T10:21:03.157076+02:00" } else { "0001-01-01T00:00:00Z" },
                "generatorURL": "https://grafana.example.com/alerting/1afz29v7z/edit",
                "fingerprint": "c6eadffa33fcdf37",
                "silenceURL": "https://grafana.example.com/alerting/silence/new",
                "dashboardURL": "https://grafana.example.com/d/abc",
                "panelURL": "https://grafana.example.com/d/abc?viewPanel=2",
                "values": {"B": 44.23943737541908, "C": 1},
                "valueString": "[ var='B' labels={__name__=go_memstats_alloc_bytes} value=44.23943737541908 ]"
            }],
            "groupLabels": {"alertname": "High memory usage"},
            "commonLabels": {"team": "blue"},
            "commonAnnotations": {},
            "externalURL": "https://grafana.example.com/",
            "version": "1",
            "groupKey": "{}:{alertname=\"High memory usage\"}",
            "truncatedAlerts": 0,
            "title": "[FIRING:1] High memory usage (blue)",
            "state": "alerting",
            "message": "**Firing**"
        })
    }

    #[test]
    fn an_alert_is_one_signal_per_fingerprint_and_resolves() {
        let now = received();
        let firing = &Grafana.read_webhook(&notification("firing"), now).unwrap()[0];
        assert_eq!(firing.source, "grafana");
        assert_eq!(firing.dedup_key, "c6eadffa33fcdf37");
        assert_eq!(firing.state, SignalState::Firing);
        assert_eq!(firing.title, "This alert was triggered for zone us-1");
        assert_eq!(firing.tags.get("team").map(String::as_str), Some("blue"));
        assert_eq!(
            firing.occurred_at.to_rfc3339(),
            "2026-11-30T07:51:03.157076+00:00"
        );
        assert!(
            firing.body.contains("https://runbooks.example.com/memory"),
            "{}",
            firing.body
        );
        assert!(
            firing.body.contains("https://grafana.example.com/d/abc"),
            "{}",
            firing.body
        );
        let resolved = &Grafana
            .read_webhook(&notification("resolved"), now)
            .unwrap()[0];
        assert_eq!(resolved.state, SignalState::Resolved);
        assert_eq!(resolved.dedup_key, firing.dedup_key);
        assert_ne!(resolved.receipt_key, firing.receipt_key);
        let mut bad = notification("firing");
        bad["alerts"][0]["status"] = json!("pending");
        assert_eq!(
            Grafana.read_webhook(&bad, now).unwrap_err().field,
            "alerts[0].status"
        );
    }
}
