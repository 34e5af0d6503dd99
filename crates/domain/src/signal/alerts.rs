//! `POST /api/v1/alerts`: alerts from any monitor, in the shape of PagerDuty Events API v2, so a
//! team switches by changing the URL.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{clip, receipt_key, Fields, Signal, SignalState, ALERTS};
use crate::ticket::Severity;
use crate::validation::FieldError;

/// `critical` / `error` / `warning` / `info` as PagerDuty sends them, or `SEV1`..`SEV5`.
pub fn severity_of(s: &str) -> Option<Severity> {
    match s.to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Sev2),
        "error" => Some(Severity::Sev3),
        "warning" => Some(Severity::Sev4),
        "info" => Some(Severity::Sev5),
        _ => Severity::parse(&s.to_ascii_uppercase()),
    }
}

/// The token PagerDuty senders put in the body instead of a header.
pub fn routing_key(body: &Value) -> Option<&str> {
    body.get("routing_key").and_then(Value::as_str)
}

/// One alert event. It is read without `routing_key` or any other credential it carries
/// (see [`crate::credentials::strip`]): its details become the ticket's text, and its keys
/// are digests of it.
pub fn from_body(body: &Value, received_at: DateTime<Utc>) -> Result<Signal, FieldError> {
    let body = &crate::credentials::stripped(body);
    let event = Fields::new(body, "")?;
    let action = event.str("event_action")?;
    let state = match action {
        "trigger" => SignalState::Firing,
        "acknowledge" => SignalState::Acknowledged,
        "resolve" => SignalState::Resolved,
        other => {
            return Err(FieldError::new(
                "event_action",
                format!("`{other}` is not one of trigger, acknowledge, resolve"),
            ))
        }
    };
    let payload = event.opt_obj("payload")?;
    let summary = payload
        .as_ref()
        .map(|p| p.opt_str("summary"))
        .transpose()?
        .flatten();
    if state == SignalState::Firing && summary.is_none() {
        return Err(FieldError::new(
            "payload.summary",
            "is required to trigger an alert",
        ));
    }
    let source_name = payload
        .as_ref()
        .map(|p| p.opt_str("source"))
        .transpose()?
        .flatten();
    let dedup_key = match event.opt_str("dedup_key")? {
        Some(k) if !k.trim().is_empty() => clip(k.trim(), 512),
        _ if state == SignalState::Firing => {
            // Like PagerDuty: without a key every trigger is its own alert.
            receipt_key(ALERTS, &[&body.to_string()])
        }
        _ => {
            return Err(FieldError::new(
                "dedup_key",
                "is required to acknowledge or resolve",
            ))
        }
    };
    let severity_text = payload
        .as_ref()
        .map(|p| p.opt_str("severity"))
        .transpose()?
        .flatten();
    let severity = match severity_text {
        None => None,
        Some(s) => Some(severity_of(s).ok_or_else(|| {
            FieldError::new(
                "payload.severity",
                format!("`{s}` is not one of critical, error, warning, info, SEV1..SEV5"),
            )
        })?),
    };
    let timestamp = payload
        .as_ref()
        .map(|p| p.opt_time("timestamp"))
        .transpose()?
        .flatten();
    let occurred_at = timestamp.unwrap_or(received_at);
    // A resend of the same event (same body) is one delivery; a trigger with a new timestamp
    // or new details is a new occurrence.
    let receipt = receipt_key(ALERTS, &[&dedup_key, action, &body.to_string()]);
    let details = payload
        .as_ref()
        .and_then(|p| p.value().get("custom_details"));
    let mut text = String::new();
    if let Some(d) = details {
        match d {
            Value::String(s) => text.push_str(s),
            other => text.push_str(&serde_json::to_string_pretty(other).unwrap_or_default()),
        }
    }
    for (i, link) in event.array("links")?.iter().enumerate() {
        let link = Fields::new(link, format!("links[{i}]"))?;
        let href = link.str("href")?;
        let label = link.opt_str("text")?.unwrap_or(href);
        text.push_str(&format!("\n- [{label}]({href})"));
    }
    let mut tags = BTreeMap::new();
    if let Some(p) = &payload {
        for key in ["component", "group", "class"] {
            if let Some(v) = p.opt_str(key)? {
                tags.insert(key.to_owned(), v.to_owned());
            }
        }
    }
    let source = source_name.map(|s| format!("{ALERTS}:{}", clip(s, 100)));
    Ok(Signal {
        source: ALERTS.to_owned(),
        receipt_key: receipt,
        dedup_key,
        state,
        kind: severity_text.unwrap_or("alert").to_ascii_lowercase(),
        category: source,
        severity,
        account: None,
        region: None,
        service: payload
            .as_ref()
            .map(|p| p.opt_str("component"))
            .transpose()?
            .flatten()
            .map(str::to_owned),
        resources: source_name.map(|s| vec![s.to_owned()]).unwrap_or_default(),
        tags,
        title: clip(summary.unwrap_or("Alert"), 300),
        body: text.trim().to_owned(),
        occurred_at,
        window: None,
        savings: None,
        actionability: None,
        personas: Vec::new(),
        page: None,
        classified: true,
        raw: body.clone(),
    })
}

/// Alerts from any monitor, shaped like PagerDuty Events API v2, at `/api/v1/alerts` (its own
/// route: the token may come in the body).
pub struct Alerts;

impl super::source::Source for Alerts {
    fn name(&self) -> &'static str {
        super::ALERTS
    }
}
