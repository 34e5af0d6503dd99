//! The webhook channel: a JSON POST to a configured URL, through the guarded HTTP client.
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

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use utoipa::ToSchema;

use super::spec::{Attempt, ChannelType, FormField, Input, Outgoing, Post};
use super::{truncate, Notification};
use crate::ticket::named_enum;
use crate::validation::FieldError;
use crate::Severity;

const REDACTED: &str = crate::credentials::REDACTED;

pub const WEBHOOK_URL_MAX: usize = 2048;
pub const WEBHOOK_SECRET_MIN: usize = 16;
pub const WEBHOOK_HEADERS_MAX: usize = 20;

/// The webhook channel type.
pub struct Webhook;

impl ChannelType for Webhook {
    type Settings = WebhookTarget;
    const NAME: &'static str = "webhook";
    const LABEL: &'static str = "webhook";
    const CARRIES_REPORTS: bool = true;
    const FIELDS: &'static [FormField] = &[
        FormField {
            key: "url",
            label: "Webhook URL",
            input: Input::Text { required: true },
            hint: "",
            placeholder: "https://hooks.example.com/opsdesk",
        },
        FormField {
            key: "format",
            label: "Format",
            input: Input::Choice(&[
                ("", "opsdesk JSON"),
                ("slack", "Slack"),
                ("teams", "Microsoft Teams"),
            ]),
            hint: "",
            placeholder: "",
        },
        FormField {
            key: "secret",
            label: "Signing secret",
            input: Input::Secret,
            hint: "(16+ characters, optional)",
            placeholder: "",
        },
    ];

    fn validate(settings: WebhookTarget) -> Result<WebhookTarget, FieldError> {
        settings.checked()
    }

    fn redact(w: &mut WebhookTarget) {
        w.url = w.masked_url();
        if w.secret.is_some() {
            w.secret = Some(REDACTED.to_owned());
        }
        for v in w.headers.values_mut() {
            *v = REDACTED.to_owned();
        }
    }

    fn summary(w: &WebhookTarget) -> String {
        w.masked_url()
    }

    fn render(
        w: &WebhookTarget,
        n: &Notification,
        attempt: Attempt<'_>,
    ) -> Result<Outgoing, String> {
        let body = serde_json::to_vec(&payload(w.format, n, attempt.idempotency_key))
            .map_err(|e| format!("cannot encode the body: {e}"))?;
        let mut headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (
                "Idempotency-Key".to_owned(),
                attempt.idempotency_key.to_owned(),
            ),
            ("X-Opsdesk-Event".to_owned(), n.event.as_str().to_owned()),
        ];
        if let Some(secret) = &w.secret {
            headers.push((
                "X-Opsdesk-Signature".to_owned(),
                signature_header(secret.as_bytes(), attempt.now.timestamp(), &body),
            ));
        }
        headers.extend(w.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut secrets: Vec<String> = w.headers.values().cloned().collect();
        secrets.extend(w.secret.clone());
        Ok(Outgoing::Post(Post {
            url: w.url.clone(),
            shown_url: w.masked_url(),
            headers,
            body,
            secrets,
        }))
    }
}

named_enum! {
    /// The body a webhook receives.
    #[derive(Default)]
    WebhookFormat {
        /// The notification as JSON, with `delivery_id`, signed when a secret is set.
        #[default]
        Generic => "generic",
        /// A Slack incoming-webhook message (`text` and Block Kit `blocks`).
        Slack => "slack",
        /// A Microsoft Teams message with an Adaptive Card, as Teams incoming webhooks and
        /// Workflows accept.
        Teams => "teams",
    }
}

/// An HTTP(S) endpoint to POST to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// Kept whole for delivery; shown masked (`https://hooks.slack.com/***`) in answers.
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// HMAC-SHA256 key for `X-Opsdesk-Signature`, at least 16 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Extra request headers, e.g. `Authorization`; their values are kept secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Webhook URLs often carry a token in the path (Slack's do), so they are shown as
/// `scheme://host/***`; the secret and header values are never shown.
impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.masked_url())
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| REDACTED))
            .field(
                "headers",
                &self
                    .headers
                    .keys()
                    .map(|k| (k.as_str(), REDACTED))
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

impl WebhookTarget {
    /// The URL as it may be shown (audit trail, API, pages, CLI, logs and error messages):
    /// without path, query or user info, which is where webhook URLs carry their secret.
    pub fn masked_url(&self) -> String {
        crate::credentials::masked_url(&self.url)
    }
}

/// Headers opsdesk sets itself; a channel may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "idempotency-key",
    "x-opsdesk-event",
    "x-opsdesk-signature",
    "x-opsdesk-delivery",
];

impl WebhookTarget {
    fn checked(mut self) -> Result<WebhookTarget, FieldError> {
        self.url = self.url.trim().to_owned();
        if self.url.len() > WEBHOOK_URL_MAX {
            return Err(FieldError::new(
                "url",
                format!("must be at most {WEBHOOK_URL_MAX} characters"),
            ));
        }
        let parsed = url::Url::parse(&self.url)
            .map_err(|e| FieldError::new("url", format!("is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FieldError::new("url", "must be an http:// or https:// URL"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(FieldError::new("url", "must name a host"));
        }
        // A channel read back (API, page) shows its URL masked and its secrets redacted;
        // saving those back would store them in place of the real ones and break delivery.
        if parsed.path() == "/***" && crate::credentials::masked_url(&self.url) == self.url {
            return Err(FieldError::new(
                "url",
                "is the masked form opsdesk shows; send the channel's whole URL",
            ));
        }
        let redacted = |v: &str| v == REDACTED;
        if self.secret.as_deref().is_some_and(redacted) {
            return Err(FieldError::new(
                "secret",
                "is the redacted form opsdesk shows; send the secret itself",
            ));
        }
        if let Some((name, _)) = self.headers.iter().find(|(_, v)| redacted(v)) {
            return Err(FieldError::new(
                format!("headers.{name}"),
                "is the redacted form opsdesk shows; send the value itself",
            ));
        }
        if let Some(secret) = &self.secret {
            if secret.chars().count() < WEBHOOK_SECRET_MIN {
                return Err(FieldError::new(
                    "secret",
                    format!("must be at least {WEBHOOK_SECRET_MIN} characters"),
                ));
            }
            if secret.chars().any(char::is_control) {
                return Err(FieldError::new(
                    "secret",
                    "must not contain control characters",
                ));
            }
        }
        if self.headers.len() > WEBHOOK_HEADERS_MAX {
            return Err(FieldError::new(
                "headers",
                format!("at most {WEBHOOK_HEADERS_MAX} headers"),
            ));
        }
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || name.len() > 128 || !name.bytes().all(token) {
                return Err(FieldError::new(field, "is not a valid header name"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(FieldError::new(
                    field,
                    "is set by opsdesk and cannot be set",
                ));
            }
            if value.len() > 4096
                || !value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                return Err(FieldError::new(
                    field,
                    "must be printable ASCII without line breaks, at most 4096 characters",
                ));
            }
        }
        Ok(self)
    }
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
    use super::NotificationEvent as E;
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
    use super::super::NotificationEvent;
    use crate::Environment;
    use chrono::{TimeZone, Utc};

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
}
