//! Notification channels: what one notification says, and where a channel sends it.
//!
//! A [`Notification`] is written to the outbox as JSON when a change commits and rendered for
//! each channel when it is sent: [`Notification::subject`], [`Notification::text`] and
//! [`Notification::html`] for people, [`Notification::facts`] for chat cards.
//!
//! A [`ChannelSpec`] names one destination of one channel type; each type is a file of its
//! own ([`webhook`], [`email`], [`sns`], [`pagerduty`]) listed in [`TYPES`]. See
//! [`spec`] for what a type says about itself.

pub mod spec;

/// Declares each channel type's module and lists the type in [`TYPES`]: adding a channel
/// type is its file and its entry here.
macro_rules! channel_types {
    ($($module:ident :: $kind:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every channel type opsdesk has, in the order the admin page offers them.
        pub static TYPES: &[&dyn AnyChannelType] = &[$(&spec::Registered::<$module::$kind>::NEW),*];
    };
}

channel_types!(
    webhook::Webhook,
    email::Email,
    sns::Sns,
    pagerduty::PagerDuty,
);

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::signal::workload::Environment;
use crate::ticket::{named_enum, Severity};

pub use email::{is_email, EmailTarget};
pub use sns::{SnsTarget, TopicArn};
pub use spec::{channel_type, AnyChannelType, Attempt, ChannelSpec, ChannelType, Outgoing};
pub use webhook::{WebhookFormat, WebhookTarget};

named_enum! {
    /// What happened, as the notification tells it.
    NotificationEvent {
        /// A ticket was opened.
        Created => "created",
        /// A ticket was acknowledged: someone took it up (its first move out of `new`).
        Acknowledged => "acknowledged",
        /// A resolved or closed ticket was opened again.
        Reopened => "reopened",
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
            NotificationEvent::Acknowledged => "acknowledged",
            NotificationEvent::Reopened => "reopened",
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
pub fn one_line(s: &str) -> String {
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
}
