//! The webhook channel: a JSON POST to a configured URL, through the guarded [`HttpClient`].
//!
//! The body depends on the channel's format:
//!
//! - `generic`: the [`Notification`] as JSON with a `delivery_id` (the idempotency key);
//! - `slack`: a Slack incoming-webhook message, `text` (the notification's fallback) and
//!   Block Kit `blocks`;
//! - `teams`: a `message` with one Adaptive Card attachment, which Teams incoming webhooks
//!   and Teams Workflows ("when a webhook request is received") both accept.
//!
//! Every request carries `Idempotency-Key: <key>` (the same on every retry of one delivery)
//! and `X-Opsdesk-Event: <event>`. When the channel has a `secret`, it also carries
//!
//! ```text
//! X-Opsdesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//! ```
//!
//! A receiver verifies it so:
//!
//! 1. split the header on `,` into `t=` and `v1=`;
//! 2. compute HMAC-SHA256 keyed with the secret's UTF-8 bytes over the ASCII digits of `t`,
//!    a `.`, and the request body exactly as received (bytes, before any JSON parsing);
//! 3. compare its lowercase hex with `v1` in constant time;
//! 4. refuse a `t` more than five minutes from its own clock (a replayed request), and
//!    treat a repeated `Idempotency-Key` as already handled.
//!
//! In Python: `hmac.compare_digest(hmac.new(secret, f"{t}.".encode() + body,
//! hashlib.sha256).hexdigest(), v1)`.
//!
//! A 2xx answer is a delivery. 408, 429, 5xx and network errors are worth retrying (a 429 or
//! 503 `Retry-After` is passed on); any other answer, redirects included, is not.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use opsdesk_core::Clock;
use opsdesk_domain::channel::{truncate, Notification, WebhookFormat, WebhookTarget};
use opsdesk_domain::Severity;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::http::{refusal, HttpClient, HttpError};
use crate::{Channel, Receipt, SendError};

/// At most this much of an error response is quoted in the error.
const QUOTED_BODY_MAX: usize = 300;

/// Sends notifications to webhooks.
#[derive(Clone)]
pub struct Webhook {
    http: HttpClient,
    clock: Arc<dyn Clock>,
}

impl Webhook {
    pub fn new(http: HttpClient, clock: Arc<dyn Clock>) -> Webhook {
        Webhook { http, clock }
    }
}

impl Channel for Webhook {
    type Target = WebhookTarget;

    async fn send(
        &self,
        target: &WebhookTarget,
        n: &Notification,
        idempotency_key: &str,
    ) -> Result<Receipt, SendError> {
        let body = serde_json::to_vec(&payload(target.format, n, idempotency_key))
            .map_err(|e| SendError::permanent(format!("cannot encode the body: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            "idempotency-key",
            header_value("Idempotency-Key", idempotency_key)?,
        );
        headers.insert(
            "x-opsdesk-event",
            HeaderValue::from_static(n.event.as_str()),
        );
        if let Some(secret) = &target.secret {
            let t = self.clock.now().timestamp();
            headers.insert(
                "x-opsdesk-signature",
                header_value(
                    "X-Opsdesk-Signature",
                    &signature_header(secret.as_bytes(), t, &body),
                )?,
            );
        }
        for (name, value) in &target.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::permanent(format!("header {name}: not a header name")))?;
            headers.insert(name.clone(), header_value(name.as_str(), value)?);
        }
        let where_to = target.masked_url();
        let request = self.http.post(&target.url).map_err(|e| match e {
            HttpError::Refused(r) => SendError::permanent(r.to_string()),
            e => SendError::permanent(format!("{where_to}: {e}")),
        })?;
        let response = request
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if let Some(r) = refusal(&e) {
                    return SendError::permanent(r.to_string());
                }
                // The URL may hold a token (Slack's do): it stays out of errors and logs.
                let e = e.without_url();
                if e.is_builder() {
                    return SendError::permanent(format!("{where_to}: {}", error_chain(&e)));
                }
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                SendError::retryable(format!("{where_to}: {what}: {}", error_chain(&e)))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(Receipt {
                detail: format!("HTTP {}", status.as_u16()),
            });
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, self.clock.now()));
        let quoted = quote_body(response).await;
        let message = if quoted.is_empty() {
            format!("{where_to} answered HTTP {status}")
        } else {
            format!("{where_to} answered HTTP {status}: {quoted}")
        };
        Err(SendError {
            message,
            retryable: is_retryable(status),
            retry_after,
        })
    }
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, SendError> {
    HeaderValue::from_str(value)
        .map_err(|_| SendError::permanent(format!("header {name}: not a valid header value")))
}

/// The error and its causes on one line (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// 408, 429 and 5xx are worth another try; other answers will not change.
pub fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// The start of an error response, on one line, for the delivery record.
async fn quote_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < QUOTED_BODY_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let one_line: String = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    truncate(&one_line, QUOTED_BODY_MAX)
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", signature(secret, t, body))
}

/// The lowercase hex HMAC-SHA256 of `"<t>.<body>"` keyed with `secret`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` only fails for fixed-size MACs.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The JSON body for `format`.
pub fn payload(format: WebhookFormat, n: &Notification, delivery_id: &str) -> Value {
    match format {
        WebhookFormat::Generic => generic(n, delivery_id),
        WebhookFormat::Slack => slack(n),
        WebhookFormat::Teams => teams(n),
    }
}

/// The notification as stored, with the delivery id receivers deduplicate on.
pub fn generic(n: &Notification, delivery_id: &str) -> Value {
    let mut v = serde_json::to_value(n).unwrap_or_else(|_| json!({}));
    if let Some(map) = v.as_object_mut() {
        map.insert("delivery_id".to_owned(), json!(delivery_id));
    }
    v
}

// Slack's limits: a header's text 150 characters, a section's 3000, a field's 2000, at most
// 10 fields; a button's label 75 and its URL 3000.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_SECTION_MAX: usize = 3000;
const SLACK_FIELD_MAX: usize = 2000;
const SLACK_FIELDS_MAX: usize = 10;
const SLACK_BUTTON_MAX: usize = 75;
const SLACK_URL_MAX: usize = 3000;

/// Slack reads `&`, `<` and `>` as markup in `mrkdwn` (`<!channel>` notifies everyone).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook message: `text` for notifications and clients without blocks,
/// then a header, the summary, the facts as fields and a button to the ticket.
pub fn slack(n: &Notification) -> Value {
    let subject = n.subject();
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&subject, SLACK_HEADER_MAX), "emoji": true },
    })];
    let summary = n.summary.trim();
    if !summary.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&slack_escape(summary), SLACK_SECTION_MAX) },
        }));
    }
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .take(SLACK_FIELDS_MAX)
        .map(|(name, value)| {
            json!({
                "type": "mrkdwn",
                "text": truncate(&format!("*{name}*\n{}", slack_escape(&value)), SLACK_FIELD_MAX),
            })
        })
        .collect();
    blocks.push(json!({ "type": "section", "fields": fields }));
    if let Some(url) = n.link().filter(|u| u.len() <= SLACK_URL_MAX) {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": { "type": "plain_text", "text": truncate(&open_label(n), SLACK_BUTTON_MAX) },
                "url": url,
            }],
        }));
    }
    json!({ "text": slack_escape(&subject), "blocks": blocks })
}

fn open_label(n: &Notification) -> String {
    match n
        .ticket_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        Some(key) => format!("Open {key}"),
        None => "Open in opsdesk".to_owned(),
    }
}

/// A Teams message with one Adaptive Card (1.4, which Teams and Workflows render): the
/// subject, the summary, the facts and a button to the ticket.
pub fn teams(n: &Notification) -> Value {
    use opsdesk_domain::channel::NotificationEvent as E;
    let color = match (n.event, n.severity) {
        (E::Resolved | E::KpiRecovered, _) => "Good",
        (_, Some(Severity::Sev1 | Severity::Sev2)) => "Attention",
        (_, Some(Severity::Sev3)) => "Warning",
        _ => "Default",
    };
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": n.subject(),
        "size": "Medium",
        "weight": "Bolder",
        "color": color,
        "wrap": true,
    })];
    let summary = n.summary.trim();
    if !summary.is_empty() {
        body.push(json!({ "type": "TextBlock", "text": summary, "wrap": true }));
    }
    let facts: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(title, value)| json!({ "title": title, "value": value }))
        .collect();
    body.push(json!({ "type": "FactSet", "facts": facts }));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": { "width": "Full" },
        "body": body,
    });
    if let Some(url) = n.link() {
        card["actions"] = json!([{ "type": "Action.OpenUrl", "title": open_label(n), "url": url }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use opsdesk_domain::channel::NotificationEvent;
    use opsdesk_domain::Environment;

    use super::*;

    fn notification() -> Notification {
        Notification {
            event: NotificationEvent::SlaBreach,
            ticket_id: Some(12),
            ticket_key: Some("OPS-12".into()),
            title: "Checkout <!channel> & errors".into(),
            severity: Some(Severity::Sev1),
            status: Some("in_progress".into()),
            workload: Some("checkout".into()),
            environment: Some(Environment::Production),
            team: Some("payments".into()),
            summary: "Error rate above 5% <@U123>.".into(),
            url: Some("https://desk.example.com/tickets/12".into()),
            at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(),
            recipients: Vec::new(),
            report: None,
        }
    }

    #[test]
    fn signature_matches_an_independent_computation() {
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec-0123456789abcdef",
        //   b"1700000000." + b"{\"hello\":\"world\"}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature_header(
                b"whsec-0123456789abcdef",
                1_700_000_000,
                br#"{"hello":"world"}"#
            ),
            "t=1700000000,v1=83d07cfb8c6b5f1b3d1adeee50a768c18985e1397e4955d8a34ea1a80772b8ed"
        );
        // The time is signed too: the same body at another time signs differently.
        assert_ne!(
            signature(
                b"whsec-0123456789abcdef",
                1_700_000_001,
                br#"{"hello":"world"}"#
            ),
            "83d07cfb8c6b5f1b3d1adeee50a768c18985e1397e4955d8a34ea1a80772b8ed"
        );
    }

    #[test]
    fn generic_is_the_notification_with_a_delivery_id() {
        let n = notification();
        let v = generic(&n, "outbox-7");
        assert_eq!(v["delivery_id"], "outbox-7");
        assert_eq!(v["event"], "sla_breach");
        assert_eq!(v["ticket_key"], "OPS-12");
        assert_eq!(v["severity"], "SEV1");
        assert_eq!(v["at"], "2026-11-23T10:00:00Z");
        assert_eq!(serde_json::from_value::<Notification>(v).unwrap(), n);
    }

    #[test]
    fn slack_payload_has_fallback_text_and_blocks() {
        let v = slack(&notification());
        assert_eq!(
            v["text"],
            "[SEV1] OPS-12 Checkout &lt;!channel&gt; &amp; errors (SLA breached)"
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        // plain_text is not markup: no escaping there.
        assert_eq!(
            blocks[0]["text"]["text"],
            "[SEV1] OPS-12 Checkout <!channel> & errors (SLA breached)"
        );
        assert_eq!(blocks[1]["type"], "section");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        assert_eq!(
            blocks[1]["text"]["text"],
            "Error rate above 5% &lt;@U123&gt;."
        );
        let fields = blocks[2]["fields"].as_array().unwrap();
        assert!(fields.len() <= 10);
        assert!(fields.iter().all(|f| f["type"] == "mrkdwn"));
        assert_eq!(fields[2]["text"], "*Severity*\nSEV1");
        assert_eq!(blocks[3]["type"], "actions");
        assert_eq!(blocks[3]["elements"][0]["type"], "button");
        assert_eq!(blocks[3]["elements"][0]["text"]["text"], "Open OPS-12");
        assert_eq!(
            blocks[3]["elements"][0]["url"],
            "https://desk.example.com/tickets/12"
        );
    }

    #[test]
    fn slack_limits_are_kept() {
        let mut n = notification();
        n.title = "t".repeat(400);
        n.summary = "s".repeat(5000);
        n.url = None;
        let v = slack(&n);
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            150
        );
        assert_eq!(
            blocks[1]["text"]["text"].as_str().unwrap().chars().count(),
            3000
        );
        // No link, no button.
        assert_eq!(blocks.len(), 3);
    }

    #[test]
    fn teams_payload_is_an_adaptive_card_attachment() {
        let v = teams(&notification());
        assert_eq!(v["type"], "message");
        let attachment = &v["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert!(attachment["contentUrl"].is_null());
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(
            card["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        assert_eq!(card["body"][0]["type"], "TextBlock");
        assert_eq!(card["body"][0]["color"], "Attention");
        assert_eq!(
            card["body"][0]["text"],
            "[SEV1] OPS-12 Checkout <!channel> & errors (SLA breached)"
        );
        assert_eq!(card["body"][2]["type"], "FactSet");
        assert_eq!(card["body"][2]["facts"][2]["title"], "Severity");
        assert_eq!(card["body"][2]["facts"][2]["value"], "SEV1");
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(
            card["actions"][0]["url"],
            "https://desk.example.com/tickets/12"
        );
    }

    #[test]
    fn retryable_answers() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [301, 302, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
