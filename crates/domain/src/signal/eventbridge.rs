//! EventBridge events, as API destinations and SQS targets deliver them.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{clip, receipt_key, Fields, Signal, SignalState};
use crate::validation::FieldError;

/// Whether `v` has the shape of an EventBridge event.
pub fn is_event(v: &Value) -> bool {
    v.get("detail-type").is_some() && v.get("source").is_some() && v.get("detail").is_some()
}

/// What API destinations and batch senders post: one event, or a non-empty array of them.
/// Errors name the item (`[1].detail.eventArn`).
pub fn from_events(v: &Value, received_at: DateTime<Utc>) -> Result<Vec<Signal>, FieldError> {
    match v {
        Value::Array(items) if items.is_empty() => {
            Err(FieldError::new("body", "the array holds no event"))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.extend(checked(item, received_at).map_err(|e| e.within(i))?);
            }
            Ok(out)
        }
        one => checked(one, received_at),
    }
}

/// An event, after saying plainly what is missing when it is not one.
fn checked(v: &Value, received_at: DateTime<Utc>) -> Result<Vec<Signal>, FieldError> {
    if !v.is_object() {
        return Err(FieldError::new("body", "must be a JSON object"));
    }
    if let Some(key) = ["source", "detail-type", "detail"]
        .into_iter()
        .find(|k| v.get(*k).is_none())
    {
        return Err(FieldError::new(
            key,
            "is required: an EventBridge event has source, detail-type and detail",
        ));
    }
    from_event(v, received_at)
}

/// One EventBridge event as signals (Security Hub sends several findings in one); events of
/// sources opsdesk has no reader for become one unclassified signal.
pub fn from_event(v: &Value, received_at: DateTime<Utc>) -> Result<Vec<Signal>, FieldError> {
    let event = Fields::new(v, "")?;
    let source = event.str("source")?;
    let detail_type = event.str("detail-type")?;
    event.obj("detail")?;
    match super::source::for_event(source, detail_type) {
        Some(reader) => reader.read_event(v, received_at),
        None => Ok(vec![unclassified(
            &event,
            source,
            detail_type,
            received_at,
        )?]),
    }
}

fn unclassified(
    event: &Fields<'_>,
    source: &str,
    detail_type: &str,
    received_at: DateTime<Utc>,
) -> Result<Signal, FieldError> {
    let id = event.opt_str("id")?;
    let resources: Vec<String> = event
        .array("resources")?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    // The body shows the whole detail, so it is read without the credentials it may carry.
    let raw = crate::credentials::stripped(event.value());
    let key = match id {
        Some(id) => receipt_key(source, &[id]),
        None => receipt_key(source, &[&raw.to_string()]),
    };
    Ok(Signal {
        source: clip(source, 100),
        receipt_key: key.clone(),
        dedup_key: key,
        state: SignalState::Firing,
        kind: clip(detail_type, 200),
        category: None,
        severity: None,
        account: event.opt_str("account")?.map(str::to_owned),
        region: event.opt_str("region")?.map(str::to_owned),
        service: None,
        resources,
        tags: Default::default(),
        title: clip(&format!("{source}: {detail_type}"), 300),
        body: serde_json::to_string_pretty(raw.get("detail").unwrap_or(&Value::Null))
            .unwrap_or_default(),
        occurred_at: event.opt_time("time")?.unwrap_or(received_at),
        window: None,
        savings: None,
        actionability: None,
        personas: Vec::new(),
        page: None,
        classified: false,
        raw,
    })
}
