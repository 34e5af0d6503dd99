//! Notification channels: what one notification says, and where a channel sends it.
//!
//! A [`Notification`] is written to the outbox as JSON when a change commits and rendered for
//! each channel when it is sent: [`Notification::subject`], [`Notification::text`] and
//! [`Notification::html`] for people, [`Notification::facts`] for chat cards.
//! A [`ChannelSpec`] names one destination: an SNS topic, a webhook or a list of email
//! addresses. It reads from TOML (`[[notify.channels]]`) and JSON alike:
//!
//! ```toml
//! [[notify.channels]]
//! name = "ops-sns"
//! type = "sns"
//! topic_arn = "arn:aws:sns:eu-west-1:123456789012:opsdesk"
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::signal::workload::Environment;
use crate::ticket::{named_enum, Severity};
use crate::validation::FieldError;

named_enum! {
    /// What happened, as the notification tells it.
    NotificationEvent {
        /// A ticket was opened.
        Created => "created",
        /// A ticket's severity went up or down.
        SeverityChanged => "severity_changed",
        /// An SLA target is close.
        SlaWarning => "sla_warning",
        /// An SLA target was missed.
        SlaBreach => "sla_breach",
        /// A ticket was escalated (to people or to AWS Support).
        Escalated => "escalated",
        /// A ticket was resolved.
        Resolved => "resolved",
        /// A KPI crossed its threshold.
        KpiBreach => "kpi_breach",
        /// A KPI is back within its threshold.
        KpiRecovered => "kpi_recovered",
        /// A test message, sent on request to check a channel.
        Test => "test",
        /// A scheduled trend report.
        Report => "report",
        /// A workload's scheduled readiness review is due.
        ReviewDue => "review_due",
        /// A workload's scheduled readiness review is past its due date.
        ReviewOverdue => "review_overdue",
        /// An action item from a review is past its due date, not verified.
        ActionItemOverdue => "action_item_overdue",
    }
}

impl NotificationEvent {
    /// The event as a person reads it in a subject line.
    pub fn label(self) -> &'static str {
        match self {
            NotificationEvent::Created => "created",
            NotificationEvent::SeverityChanged => "severity changed",
            NotificationEvent::SlaWarning => "SLA warning",
            NotificationEvent::SlaBreach => "SLA breached",
            NotificationEvent::Escalated => "escalated",
            NotificationEvent::Resolved => "resolved",
            NotificationEvent::KpiBreach => "KPI breached",
            NotificationEvent::KpiRecovered => "KPI recovered",
            NotificationEvent::Test => "test",
            NotificationEvent::Report => "trend report",
            NotificationEvent::ReviewDue => "readiness review due",
            NotificationEvent::ReviewOverdue => "readiness review overdue",
            NotificationEvent::ActionItemOverdue => "action item overdue",
        }
    }
}

/// SNS takes subjects of printable ASCII, fewer than 100 characters, starting with a letter,
/// digit or punctuation mark.
pub const SNS_SUBJECT_MAX: usize = 99;

/// One message to people, channel-neutral. Stored as JSON in an outbox row, so every field
/// added later must be optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub event: NotificationEvent,
    #[serde(default)]
    pub ticket_id: Option<i64>,
    /// `OPS-<id>`.
    #[serde(default)]
    pub ticket_key: Option<String>,
    /// The ticket's (or KPI's) title.
    pub title: String,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub workload: Option<String>,
    #[serde(default)]
    pub environment: Option<Environment>,
    #[serde(default)]
    pub team: Option<String>,
    /// Plain text, a few lines.
    #[serde(default)]
    pub summary: String,
    /// Where the ticket is, for people to follow.
    #[serde(default)]
    pub url: Option<String>,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// Addresses the event is for beyond the channel's own (an email channel mails them too):
    /// the AWS account team of an escalation, say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// The whole trend report, for a scheduled report (`report` event); JSON webhooks carry
    /// it, other channels send the Markdown of `summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
}

impl Notification {
    /// A test message through `channel`, asked for by `requested_by`.
    pub fn test(
        channel: &str,
        requested_by: &str,
        url: Option<String>,
        at: DateTime<Utc>,
    ) -> Notification {
        Notification {
            event: NotificationEvent::Test,
            ticket_id: None,
            ticket_key: None,
            title: format!("Test message for channel {channel}"),
            severity: None,
            status: None,
            workload: None,
            environment: None,
            team: None,
            summary: format!(
                "{requested_by} asked opsdesk to send a test message through {channel}."
            ),
            url,
            at,
            recipients: Vec::new(),
            report: None,
        }
    }

    /// One line for an email subject or a chat heading: `[SEV1] OPS-12 Disk full (created)`.
    pub fn subject(&self) -> String {
        let mut s = String::new();
        if let Some(severity) = self.severity {
            s.push_str(&format!("[{severity}] "));
        }
        if let Some(key) = self.ticket_key.as_deref().filter(|k| !k.trim().is_empty()) {
            s.push_str(key.trim());
            s.push(' ');
        }
        s.push_str(self.title.trim());
        s.push_str(&format!(" ({})", self.event.label()));
        one_line(&s)
    }

    /// [`Notification::subject`] as SNS takes it: printable ASCII (anything else becomes `?`,
    /// line breaks and tabs become spaces), at most [`SNS_SUBJECT_MAX`] characters, cut with
    /// `...` when longer.
    pub fn sns_subject(&self) -> String {
        let ascii: String = self
            .subject()
            .chars()
            .map(|c| match c {
                ' '..='~' => c,
                c if c.is_whitespace() || c.is_control() => ' ',
                _ => '?',
            })
            .collect();
        let ascii = one_line(&ascii);
        let subject = if ascii.is_empty() {
            "opsdesk notification".to_owned()
        } else {
            ascii
        };
        truncate(&subject, SNS_SUBJECT_MAX)
    }

    /// What a channel shows next to the summary, in order, leaving out what is not known.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![("Event", self.event.label().to_owned())];
        let mut push = |name: &'static str, value: Option<String>| {
            if let Some(v) = value.map(|v| one_line(&v)).filter(|v| !v.is_empty()) {
                facts.push((name, v));
            }
        };
        push("Ticket", self.ticket_key.clone());
        push("Severity", self.severity.map(|s| s.to_string()));
        push("Status", self.status.clone());
        push("Workload", self.workload.clone());
        push("Environment", self.environment.map(|e| e.to_string()));
        push("Team", self.team.clone());
        push(
            "At",
            Some(self.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        );
        facts
    }

    /// The link to the ticket, if it is an http(s) URL (anything else is not offered as a
    /// link).
    pub fn link(&self) -> Option<&str> {
        self.url
            .as_deref()
            .map(str::trim)
            .filter(|u| is_http_url(u) && !u.contains(char::is_whitespace))
    }

    /// The plain-text body: subject, summary, facts and link.
    pub fn text(&self) -> String {
        let mut out = self.subject();
        out.push_str("\n\n");
        let summary = self.summary.trim();
        if !summary.is_empty() {
            out.push_str(summary);
            out.push_str("\n\n");
        }
        let facts = self.facts();
        let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
        for (name, value) in facts {
            out.push_str(&format!("{:<width$} {value}\n", format!("{name}:")));
        }
        if let Some(url) = self.link() {
            out.push_str(&format!("{:<width$} {url}\n", "Link:"));
        }
        out.push_str("\n-- \nopsdesk\n");
        out
    }

    /// The HTML body: the same as [`Notification::text`], every value escaped.
    pub fn html(&self) -> String {
        let mut out = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
        out.push_str(&escape_html(&self.subject()));
        out.push_str("</title></head>\n<body style=\"font-family: sans-serif\">\n<h2>");
        out.push_str(&escape_html(&self.subject()));
        out.push_str("</h2>\n");
        let summary = self.summary.trim();
        if !summary.is_empty() {
            out.push_str("<p>");
            out.push_str(&escape_html(summary).replace('\n', "<br>\n"));
            out.push_str("</p>\n");
        }
        out.push_str("<table>\n");
        for (name, value) in self.facts() {
            out.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                escape_html(name),
                escape_html(&value)
            ));
        }
        out.push_str("</table>\n");
        if let Some(url) = self.link() {
            let label = self.ticket_key.as_deref().unwrap_or("the ticket");
            out.push_str(&format!(
                "<p><a href=\"{}\">Open {}</a></p>\n",
                escape_html(url),
                escape_html(label)
            ));
        }
        out.push_str("<p style=\"color: #777\">opsdesk</p>\n</body></html>\n");
        out
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Control characters and line breaks become single spaces; the ends are trimmed.
fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most `max` characters, ending in `...` when cut; cuts on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let keep = max.saturating_sub(3);
    let mut out: String = s.chars().take(keep).collect();
    out.truncate(out.trim_end().len());
    out.push_str("...");
    out
}

fn is_http_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    (lower.starts_with("https://") && s.len() > 8) || (lower.starts_with("http://") && s.len() > 7)
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

/// An SNS topic to publish to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SnsTarget {
    /// `arn:aws:sns:<region>:<account>:<topic>`.
    pub topic_arn: String,
    /// The region to publish in. Default: the topic's, from its ARN.
    pub region: Option<String>,
}

/// An HTTP(S) endpoint to POST to.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: String,
    pub format: WebhookFormat,
    /// The HMAC-SHA256 key for `X-Opsdesk-Signature` (generic format).
    pub secret: Option<String>,
    /// Extra request headers, e.g. `Authorization`.
    pub headers: BTreeMap<String, String>,
}

/// Email recipients.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EmailTarget {
    pub to: Vec<String>,
    pub cc: Vec<String>,
}

/// What kind of channel, with its settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ChannelKind {
    Sns(SnsTarget),
    Webhook(WebhookTarget),
    Email(EmailTarget),
}

/// One named destination for notifications.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(from = "WireSpec", into = "WireSpec")]
pub struct ChannelSpec {
    /// Unique; letters, digits, `-`, `_` and `.`.
    pub name: String,
    pub kind: ChannelKind,
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

const REDACTED: &str = crate::credentials::REDACTED;

impl WebhookTarget {
    /// The URL as it may be shown (audit trail, API, pages, CLI, logs and error messages):
    /// without path, query or user info, which is where webhook URLs carry their secret.
    pub fn masked_url(&self) -> String {
        crate::credentials::masked_url(&self.url)
    }
}

/// The shape a channel takes in TOML and JSON: flat, tagged by `type`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = ChannelSpec)]
enum WireSpec {
    /// Publish to an Amazon SNS topic.
    Sns {
        #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
        name: String,
        /// `arn:aws:sns:<region>:<account>:<topic>`.
        topic_arn: String,
        /// Default: the region in `topic_arn`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
    /// POST to an HTTP(S) endpoint.
    Webhook {
        #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
        name: String,
        /// Kept whole for delivery; shown masked (`https://hooks.slack.com/***`) in answers.
        url: String,
        #[serde(default)]
        format: WebhookFormat,
        /// HMAC-SHA256 key for `X-Opsdesk-Signature`, at least 16 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// Send email through the configured SMTP server.
    Email {
        #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
        name: String,
        to: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cc: Vec<String>,
    },
}

impl From<WireSpec> for ChannelSpec {
    fn from(w: WireSpec) -> Self {
        match w {
            WireSpec::Sns {
                name,
                topic_arn,
                region,
            } => ChannelSpec {
                name,
                kind: ChannelKind::Sns(SnsTarget { topic_arn, region }),
            },
            WireSpec::Webhook {
                name,
                url,
                format,
                secret,
                headers,
            } => ChannelSpec {
                name,
                kind: ChannelKind::Webhook(WebhookTarget {
                    url,
                    format,
                    secret,
                    headers,
                }),
            },
            WireSpec::Email { name, to, cc } => ChannelSpec {
                name,
                kind: ChannelKind::Email(EmailTarget { to, cc }),
            },
        }
    }
}

impl From<ChannelSpec> for WireSpec {
    fn from(c: ChannelSpec) -> Self {
        let name = c.name;
        match c.kind {
            ChannelKind::Sns(SnsTarget { topic_arn, region }) => WireSpec::Sns {
                name,
                topic_arn,
                region,
            },
            ChannelKind::Webhook(WebhookTarget {
                url,
                format,
                secret,
                headers,
            }) => WireSpec::Webhook {
                name,
                url,
                format,
                secret,
                headers,
            },
            ChannelKind::Email(EmailTarget { to, cc }) => WireSpec::Email { name, to, cc },
        }
    }
}

impl utoipa::PartialSchema for ChannelSpec {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <WireSpec as utoipa::PartialSchema>::schema()
    }
}

impl ToSchema for ChannelSpec {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ChannelSpec")
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <WireSpec as ToSchema>::schemas(schemas)
    }
}

pub const CHANNEL_NAME_MAX: usize = 64;
pub const WEBHOOK_URL_MAX: usize = 2048;
pub const WEBHOOK_SECRET_MIN: usize = 16;
pub const WEBHOOK_HEADERS_MAX: usize = 20;
pub const RECIPIENTS_MAX: usize = 50;

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

impl ChannelSpec {
    /// `sns`, `webhook` or `email`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ChannelKind::Sns(_) => "sns",
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Email(_) => "email",
        }
    }

    /// The same channel as it may be shown or recorded in the audit trail: its secrets
    /// (webhook secret and header values) replaced by `<redacted>`, its URL masked
    /// (`https://hooks.slack.com/***`). Only the dispatcher reads the channel whole.
    pub fn redacted(&self) -> ChannelSpec {
        let mut c = self.clone();
        if let ChannelKind::Webhook(w) = &mut c.kind {
            w.url = w.masked_url();
            if w.secret.is_some() {
                w.secret = Some(REDACTED.to_owned());
            }
            for v in w.headers.values_mut() {
                *v = REDACTED.to_owned();
            }
        }
        c
    }

    /// Checks the settings; the error names the bad field. Trims names, addresses and
    /// URLs.
    pub fn validate(mut self) -> Result<ChannelSpec, FieldError> {
        self.name = self.name.trim().to_owned();
        let name_ok = !self.name.is_empty()
            && self.name.len() <= CHANNEL_NAME_MAX
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {CHANNEL_NAME_MAX} letters, digits, `-`, `_` or `.`"),
            ));
        }
        self.kind = match self.kind {
            ChannelKind::Sns(t) => ChannelKind::Sns(t.validate()?),
            ChannelKind::Webhook(t) => ChannelKind::Webhook(t.validate()?),
            ChannelKind::Email(t) => ChannelKind::Email(t.validate()?),
        };
        Ok(self)
    }
}

/// The parts of an SNS topic ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub topic: &'a str,
}

impl<'a> TopicArn<'a> {
    /// Reads `arn:aws[-cn|-us-gov]:sns:<region>:<12 digits>:<topic>`.
    pub fn parse(arn: &'a str) -> Option<TopicArn<'a>> {
        let mut parts = arn.split(':');
        let (Some("arn"), Some(partition), Some("sns"), Some(region), Some(account), Some(topic)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let ok = parts.next().is_none()
            && matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
            && is_region(region)
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && is_topic_name(topic);
        ok.then_some(TopicArn {
            partition,
            region,
            account,
            topic,
        })
    }
}

fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// 1 to 256 letters, digits, `-` and `_`; a FIFO topic ends in `.fifo`.
fn is_topic_name(t: &str) -> bool {
    let base = t.strip_suffix(".fifo").unwrap_or(t);
    !base.is_empty()
        && t.len() <= 256
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SnsTarget {
    /// The region to publish in: the configured one, else the topic's.
    pub fn publish_region(&self) -> Option<&str> {
        self.region
            .as_deref()
            .or_else(|| TopicArn::parse(&self.topic_arn).map(|a| a.region))
    }

    fn validate(mut self) -> Result<SnsTarget, FieldError> {
        self.topic_arn = self.topic_arn.trim().to_owned();
        if TopicArn::parse(&self.topic_arn).is_none() {
            return Err(FieldError::new(
                "topic_arn",
                "must be an SNS topic ARN: arn:aws:sns:<region>:<12-digit account>:<topic>",
            ));
        }
        self.region = self.region.map(|r| r.trim().to_owned());
        if self.region.as_deref().is_some_and(|r| !is_region(r)) {
            return Err(FieldError::new(
                "region",
                "must be an AWS region name such as eu-west-1",
            ));
        }
        Ok(self)
    }
}

impl WebhookTarget {
    fn validate(mut self) -> Result<WebhookTarget, FieldError> {
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

impl EmailTarget {
    fn validate(mut self) -> Result<EmailTarget, FieldError> {
        fn addresses(field: &str, list: Vec<String>) -> Result<Vec<String>, FieldError> {
            let mut out: Vec<String> = Vec::with_capacity(list.len());
            for (i, a) in list.into_iter().enumerate() {
                let a = a.trim().to_owned();
                if !is_email(&a) {
                    return Err(FieldError::new(
                        format!("{field}[{i}]"),
                        format!("`{a}` is not an email address"),
                    ));
                }
                if !out.iter().any(|o| o.eq_ignore_ascii_case(&a)) {
                    out.push(a);
                }
            }
            Ok(out)
        }
        self.to = addresses("to", self.to)?;
        self.cc = addresses("cc", self.cc)?;
        if self.to.is_empty() {
            return Err(FieldError::new("to", "must name at least one address"));
        }
        if self.to.len() + self.cc.len() > RECIPIENTS_MAX {
            return Err(FieldError::new(
                "to",
                format!("at most {RECIPIENTS_MAX} recipients in to and cc together"),
            ));
        }
        Ok(self)
    }
}

/// `local@domain`: a plain address (no display name), local part of printable ASCII without
/// specials, domain of letters, digits and `-` in dot-separated labels.
pub fn is_email(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn notification() -> Notification {
        Notification {
            event: NotificationEvent::Created,
            ticket_id: Some(12),
            ticket_key: Some("OPS-12".into()),
            title: "Checkout <5xx> & \"errors\"".into(),
            severity: Some(Severity::Sev1),
            status: Some("new".into()),
            workload: Some("checkout".into()),
            environment: Some(Environment::Production),
            team: Some("payments".into()),
            summary: "Error rate above 5%.\nSince 10:00.".into(),
            url: Some("https://desk.example.com/tickets/12".into()),
            at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(),
            recipients: Vec::new(),
            report: None,
        }
    }

    #[test]
    fn a_channel_as_shown_cannot_be_saved_back() {
        let spec: ChannelSpec = serde_json::from_value(serde_json::json!({
            "name":"slack","type":"webhook",
            "url":"https://hooks.slack.com/services/T000/B000/SECRETPATH",
            "secret":"very-secret-signing-key",
            "headers":{"Authorization":"token-value"}
        }))
        .unwrap();
        let spec = spec.validate().unwrap();
        let shown = serde_json::to_value(spec.redacted()).unwrap();
        let back = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut v = serde_json::to_value(&spec).unwrap();
            change(&mut v);
            serde_json::from_value::<ChannelSpec>(v)
                .unwrap()
                .validate()
                .map(|_| ())
                .map_err(|e| e.field)
        };
        assert_eq!(
            back(&|v| v["url"] = shown["url"].clone()),
            Err("url".to_owned())
        );
        assert_eq!(
            back(&|v| v["secret"] = shown["secret"].clone()),
            Err("secret".to_owned())
        );
        assert_eq!(
            back(&|v| v["headers"]["Authorization"] = shown["headers"]["Authorization"].clone()),
            Err("headers.Authorization".to_owned())
        );
        assert_eq!(back(&|_| ()), Ok(()));
    }

    #[test]
    fn subject_reads_severity_key_title_event() {
        let mut n = notification();
        assert_eq!(
            n.subject(),
            "[SEV1] OPS-12 Checkout <5xx> & \"errors\" (created)"
        );
        n.severity = None;
        n.ticket_key = None;
        n.event = NotificationEvent::KpiBreach;
        n.title = "MTTA\nabove target".into();
        assert_eq!(n.subject(), "MTTA above target (KPI breached)");
    }

    #[test]
    fn sns_subject_is_printable_ascii_under_100_characters() {
        let mut n = notification();
        n.title = format!("Ünïcode\tand\r\nbreaks {}", "é".repeat(200));
        let s = n.sns_subject();
        assert!(s.len() <= SNS_SUBJECT_MAX, "{}", s.len());
        assert!(s.bytes().all(|b| (b' '..=b'~').contains(&b)), "{s}");
        assert!(s.starts_with("[SEV1] OPS-12 ?n?code and breaks ???"), "{s}");
        assert!(s.ends_with("..."), "{s}");
        // A short subject is left alone.
        let n = notification();
        assert_eq!(n.sns_subject(), n.subject());
        // Exactly the limit is not cut.
        let mut n = notification();
        n.severity = None;
        n.ticket_key = None;
        n.title = "x".repeat(SNS_SUBJECT_MAX - " (created)".len());
        assert_eq!(n.sns_subject().len(), SNS_SUBJECT_MAX);
        assert!(!n.sns_subject().ends_with("..."));
        n.title.push('x');
        assert_eq!(n.sns_subject().len(), SNS_SUBJECT_MAX);
        assert!(n.sns_subject().ends_with("..."));
    }

    #[test]
    fn truncate_cuts_on_a_char_boundary() {
        assert_eq!(truncate("ééééé", 4), "é...");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("ab cdef", 6), "ab...");
    }

    #[test]
    fn text_lists_summary_facts_and_link() {
        let text = notification().text();
        assert!(text.starts_with("[SEV1] OPS-12 Checkout"));
        assert!(text.contains("\n\nError rate above 5%.\nSince 10:00.\n\n"));
        assert!(text.contains("Severity:    SEV1\n"), "{text}");
        assert!(text.contains("Environment: production\n"), "{text}");
        assert!(
            text.contains("At:          2026-11-23 10:00:00 UTC\n"),
            "{text}"
        );
        assert!(text.contains("Link:        https://desk.example.com/tickets/12\n"));
    }

    #[test]
    fn html_escapes_every_value() {
        let mut n = notification();
        n.summary = "<script>alert(1)</script>".into();
        n.team = Some("a&b".into());
        let html = n.html();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("Checkout &lt;5xx&gt; &amp; &quot;errors&quot;"));
        assert!(html.contains("<td>a&amp;b</td>"));
        assert!(html.contains("<a href=\"https://desk.example.com/tickets/12\">Open OPS-12</a>"));
        // A URL that is not http(s) is not linked.
        n.url = Some("javascript:alert(1)".into());
        assert!(!n.html().contains("javascript:"));
        assert!(!n.text().contains("javascript:"));
    }

    #[test]
    fn notification_round_trips_as_json() {
        let n = notification();
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["event"], "created");
        assert_eq!(json["severity"], "SEV1");
        assert_eq!(json["environment"], "production");
        assert_eq!(json["at"], "2026-11-23T10:00:00Z");
        assert_eq!(serde_json::from_value::<Notification>(json).unwrap(), n);
        // Optional fields may be left out of older rows.
        let minimal: Notification = serde_json::from_value(serde_json::json!({
            "event": "test", "title": "hello", "at": "2026-11-23T10:00:00Z"
        }))
        .unwrap();
        assert_eq!(minimal.subject(), "hello (test)");
    }

    const TOML: &str = r#"
[[notify.channels]]
name = "ops-sns"
type = "sns"
topic_arn = "arn:aws:sns:eu-west-1:123456789012:opsdesk"

[[notify.channels]]
name = "chatops"
type = "webhook"
url = "https://hooks.slack.com/services/T000/B000/XXXX"
format = "slack"

[[notify.channels]]
name = "receiver"
type = "webhook"
url = "https://hooks.example.com/opsdesk"
secret = "0123456789abcdef0123"
headers = { Authorization = "Bearer abc" }

[[notify.channels]]
name = "oncall-mail"
type = "email"
to = ["oncall@example.com"]
cc = ["lead@example.com"]
"#;

    #[derive(Deserialize)]
    struct Config {
        notify: Notify,
    }

    #[derive(Deserialize)]
    struct Notify {
        channels: Vec<ChannelSpec>,
    }

    #[test]
    fn channels_read_from_toml() {
        let c: Config = toml::from_str(TOML).unwrap();
        let channels: Vec<ChannelSpec> = c
            .notify
            .channels
            .into_iter()
            .map(|c| c.validate().unwrap())
            .collect();
        assert_eq!(
            channels[0],
            ChannelSpec {
                name: "ops-sns".into(),
                kind: ChannelKind::Sns(SnsTarget {
                    topic_arn: "arn:aws:sns:eu-west-1:123456789012:opsdesk".into(),
                    region: None,
                }),
            }
        );
        let ChannelKind::Sns(sns) = &channels[0].kind else {
            panic!()
        };
        assert_eq!(sns.publish_region(), Some("eu-west-1"));
        let ChannelKind::Webhook(slack) = &channels[1].kind else {
            panic!()
        };
        assert_eq!(slack.format, WebhookFormat::Slack);
        assert_eq!(slack.secret, None);
        let ChannelKind::Webhook(generic) = &channels[2].kind else {
            panic!()
        };
        assert_eq!(generic.format, WebhookFormat::Generic);
        assert_eq!(generic.headers["Authorization"], "Bearer abc");
        assert_eq!(channels[3].kind_name(), "email");
    }

    #[test]
    fn channels_round_trip_as_json() {
        let c: Config = toml::from_str(TOML).unwrap();
        for spec in c.notify.channels {
            let json = serde_json::to_value(&spec).unwrap();
            assert_eq!(json["type"], spec.kind_name());
            assert_eq!(json["name"], spec.name.as_str());
            assert_eq!(serde_json::from_value::<ChannelSpec>(json).unwrap(), spec);
        }
    }

    #[test]
    fn unknown_type_and_fields_are_refused() {
        let err = serde_json::from_str::<ChannelSpec>(r#"{"name":"x","type":"pager"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `pager`"), "{err}");
        assert!(err.contains("`sns`, `webhook`, `email`"), "{err}");
        let err = serde_json::from_str::<ChannelSpec>(r#"{"name":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `type`"), "{err}");
        let err = serde_json::from_str::<ChannelSpec>(
            r#"{"name":"x","type":"email","to":["a@example.com"],"bcc":[]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `bcc`"), "{err}");
        let err = toml::from_str::<Config>("[[notify.channels]]\nname = \"x\"\ntype = \"sms\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown variant `sms`"), "{err}");
    }

    fn spec(json: serde_json::Value) -> Result<ChannelSpec, FieldError> {
        serde_json::from_value::<ChannelSpec>(json)
            .unwrap()
            .validate()
    }

    #[test]
    fn topic_arns_are_checked() {
        let sns = |arn: &str| spec(serde_json::json!({"name":"s","type":"sns","topic_arn":arn}));
        for ok in [
            "arn:aws:sns:eu-west-1:123456789012:opsdesk",
            "arn:aws-cn:sns:cn-north-1:123456789012:ops_desk-1",
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:alerts.fifo",
            " arn:aws:sns:us-east-1:123456789012:a ",
        ] {
            assert!(sns(ok).is_ok(), "{ok}");
        }
        for bad in [
            "arn:aws:sqs:eu-west-1:123456789012:opsdesk",
            "arn:aws:sns:eu-west-1:12345678901:opsdesk",
            "arn:aws:sns:eu-west-1:123456789012:",
            "arn:aws:sns::123456789012:opsdesk",
            "arn:aws:sns:eu-west-1:123456789012:ops:desk",
            "arn:azure:sns:eu-west-1:123456789012:opsdesk",
            "arn:aws:sns:eu-west-1:123456789012:ops desk",
            "https://sns.eu-west-1.amazonaws.com/",
        ] {
            assert_eq!(sns(bad).unwrap_err().field, "topic_arn", "{bad}");
        }
        let err = spec(serde_json::json!({
            "name":"s","type":"sns",
            "topic_arn":"arn:aws:sns:eu-west-1:123456789012:opsdesk","region":"EU West"
        }))
        .unwrap_err();
        assert_eq!(err.field, "region");
    }

    #[test]
    fn webhook_settings_are_checked() {
        let hook = |extra: serde_json::Value| {
            let mut v =
                serde_json::json!({"name":"h","type":"webhook","url":"https://example.com/hook"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            spec(v)
        };
        assert!(hook(serde_json::json!({})).is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://",
            "http://exa mple.com/",
        ] {
            assert_eq!(
                hook(serde_json::json!({ "url": bad })).unwrap_err().field,
                "url",
                "{bad}"
            );
        }
        assert_eq!(
            hook(serde_json::json!({"secret":"short"}))
                .unwrap_err()
                .field,
            "secret"
        );
        assert_eq!(
            hook(serde_json::json!({"headers":{"X-Opsdesk-Signature":"x"}}))
                .unwrap_err()
                .field,
            "headers.X-Opsdesk-Signature"
        );
        assert_eq!(
            hook(serde_json::json!({"headers":{"Bad Name":"x"}}))
                .unwrap_err()
                .field,
            "headers.Bad Name"
        );
        assert_eq!(
            hook(serde_json::json!({"headers":{"X-Ok":"a\r\nInjected: yes"}}))
                .unwrap_err()
                .field,
            "headers.X-Ok"
        );
        let err = serde_json::from_value::<ChannelSpec>(serde_json::json!({
            "name":"h","type":"webhook","url":"https://example.com","format":"discord"
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant `discord`"), "{err}");
    }

    #[test]
    fn debug_hides_secrets_and_url_paths() {
        let spec = spec(serde_json::json!({
            "name":"h","type":"webhook",
            "url":"https://hooks.slack.com/services/T000/B000/SECRETPATH",
            "secret":"very-secret-signing-key",
            "headers":{"Authorization":"Bearer token-value"}
        }))
        .unwrap();
        let debug = format!("{spec:?}");
        for secret in ["SECRETPATH", "very-secret-signing-key", "token-value"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("https://hooks.slack.com/***"), "{debug}");
        assert!(debug.contains("Authorization"), "{debug}");
        let shown = serde_json::to_string(&spec.redacted()).unwrap();
        for secret in ["SECRETPATH", "very-secret-signing-key", "token-value"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("https://hooks.slack.com/***"), "{shown}");
    }

    #[test]
    fn email_addresses_are_checked_by_position() {
        let mail = |to: serde_json::Value, cc: serde_json::Value| {
            spec(serde_json::json!({"name":"m","type":"email","to":to,"cc":cc}))
        };
        let err = mail(
            serde_json::json!(["ops@example.com", "not an address"]),
            serde_json::json!([]),
        )
        .unwrap_err();
        assert_eq!(err.field, "to[1]");
        let err = mail(
            serde_json::json!(["ops@example.com"]),
            serde_json::json!(["lead@@example.com"]),
        )
        .unwrap_err();
        assert_eq!(err.field, "cc[0]");
        assert_eq!(
            mail(serde_json::json!([]), serde_json::json!([]))
                .unwrap_err()
                .field,
            "to"
        );
        let ok = mail(
            serde_json::json!([
                " ops@example.com",
                "OPS@example.com",
                "a.b+tag@mail.example.org"
            ]),
            serde_json::json!([]),
        )
        .unwrap();
        let ChannelKind::Email(e) = ok.kind else {
            panic!()
        };
        assert_eq!(e.to, ["ops@example.com", "a.b+tag@mail.example.org"]);
        for bad in [
            "@example.com",
            "a@",
            "a@-x.com",
            "a b@example.com",
            "a@exa_mple.com",
            ".a@example.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn channel_names_are_checked() {
        let err = spec(serde_json::json!({"name":"ops sns","type":"email","to":["a@example.com"]}))
            .unwrap_err();
        assert_eq!(err.field, "name");
    }
}
