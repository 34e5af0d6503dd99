//! The PagerDuty channel type: alert events to PagerDuty's Events API v2, so that a team's
//! routing rules can page its on-call.
//!
//! One ticket is one PagerDuty alert: the `dedup_key` is the ticket key (`OPS-12`). A ticket
//! that is created, escalated, changes severity or misses its SLA sends `trigger` (PagerDuty
//! adds a repeat to the open alert); `acknowledged` sends `acknowledge`; `resolved` sends
//! `resolve`; `reopened` triggers a new alert. A ticket this channel was told about is
//! followed: its `acknowledged`, `resolved` and `reopened` reach the channel even when no routing rule picks them (the rule's severity no
//! longer matching, say), so an alert is not left open. A KPI is its own alert (`kpi:<title>`): breached triggers it, recovered
//! resolves it. A test message is a change event (`/v2/change/enqueue`): it shows on the
//! service's timeline and pages no one. Readiness events and trend reports are work and
//! documents, not alerts: they are not sent.
//!
//! ```toml
//! [[notify.channels]]
//! name = "payments-oncall"
//! type = "pagerduty"
//! routing_key = "R0123456789ABCDEF0123456789ABCDE"   # the integration key, kept secret
//! # url = "https://events.eu.pagerduty.com/v2/enqueue"   # EU service region
//! ```
//!
//! Severity: SEV1 `critical`, SEV2 `error`, SEV3 `warning`, SEV4 and SEV5 `info`.
//! PagerDuty answers 202 to an event it took, 400 to one it refuses (not retried), 429 when
//! too many events come (retried later) and 5xx when it cannot take events now (retried).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::spec::{Attempt, ChannelType, FormField, Input, Outgoing, Post};
use super::{truncate, Notification, NotificationEvent};
use crate::validation::FieldError;
use crate::Severity;

/// PagerDuty's Events API v2 endpoint (US service region).
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// Events API v2 limits.
pub const SUMMARY_MAX: usize = 1024;
pub const DEDUP_KEY_MAX: usize = 255;
pub const ROUTING_KEY_LEN: usize = 32;

const REDACTED: &str = crate::credentials::REDACTED;

/// A PagerDuty service's Events API v2 integration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyTarget {
    /// The 32-character integration key of an Events API v2 integration on a service (or of
    /// an event ruleset). Kept secret: shown as `<redacted>`.
    pub routing_key: String,
    /// The Events API endpoint. Default `https://events.pagerduty.com/v2/enqueue`; accounts
    /// in the EU service region use `https://events.eu.pagerduty.com/v2/enqueue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl std::fmt::Debug for PagerDutyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutyTarget")
            .field("routing_key", &REDACTED)
            .field("url", &self.url.as_deref().map(crate::credentials::masked_url))
            .finish()
    }
}

impl PagerDutyTarget {
    /// Where alert events go.
    pub fn events_url(&self) -> &str {
        self.url.as_deref().unwrap_or(EVENTS_URL)
    }

    /// Where change events go: beside the alert events' endpoint (`.../v2/change/enqueue`).
    pub fn change_url(&self) -> String {
        let events = self.events_url();
        match events.strip_suffix("/enqueue") {
            Some(base) => format!("{base}/change/enqueue"),
            None => events.to_owned(),
        }
    }
}

/// The PagerDuty channel type.
pub struct PagerDuty;

impl ChannelType for PagerDuty {
    type Settings = PagerDutyTarget;
    const NAME: &'static str = "pagerduty";
    const LABEL: &'static str = "PagerDuty";
    const FOLLOWS_TICKETS: bool = true;
    const FIELDS: &'static [FormField] = &[
        FormField {
            key: "routing_key",
            label: "Integration key",
            input: Input::Secret,
            hint: "(Events API v2, 32 characters)",
            placeholder: "",
        },
        FormField {
            key: "url",
            label: "Events API URL",
            input: Input::Text { required: false },
            hint: "(default: PagerDuty's US region)",
            placeholder: EVENTS_URL,
        },
    ];

    fn validate(mut t: PagerDutyTarget) -> Result<PagerDutyTarget, FieldError> {
        t.routing_key = t.routing_key.trim().to_owned();
        if t.routing_key == REDACTED {
            return Err(FieldError::new(
                "routing_key",
                "is the redacted form opsdesk shows; send the integration key itself",
            ));
        }
        if t.routing_key.len() != ROUTING_KEY_LEN
            || !t.routing_key.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(FieldError::new(
                "routing_key",
                format!(
                    "must be the {ROUTING_KEY_LEN}-character integration key of an Events API v2 integration"
                ),
            ));
        }
        t.url = t.url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
        if let Some(url) = &t.url {
            if url.len() > super::webhook::WEBHOOK_URL_MAX {
                return Err(FieldError::new(
                    "url",
                    format!(
                        "must be at most {} characters",
                        super::webhook::WEBHOOK_URL_MAX
                    ),
                ));
            }
            if url::Url::parse(url).is_ok_and(|u| u.path() == "/***")
                && crate::credentials::masked_url(url) == *url
            {
                return Err(FieldError::new(
                    "url",
                    "is the masked form opsdesk shows; send the whole URL",
                ));
            }
            let parsed = url::Url::parse(url)
                .map_err(|e| FieldError::new("url", format!("is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https")
                || parsed.host_str().is_none_or(str::is_empty)
            {
                return Err(FieldError::new(
                    "url",
                    "must be an http:// or https:// URL with a host",
                ));
            }
        }
        Ok(t)
    }

    fn redact(t: &mut PagerDutyTarget) {
        t.routing_key = REDACTED.to_owned();
        t.url = t.url.as_deref().map(crate::credentials::masked_url);
    }

    fn summary(t: &PagerDutyTarget) -> String {
        crate::credentials::masked_url(t.events_url())
    }

    fn render(
        t: &PagerDutyTarget,
        n: &Notification,
        attempt: Attempt<'_>,
    ) -> Result<Outgoing, String> {
        let (url, event) = if n.event == NotificationEvent::Test {
            (t.change_url(), change_event(t, n))
        } else {
            match event(t, n, attempt) {
                Some(event) => (t.events_url().to_owned(), event),
                None => {
                    return Ok(Outgoing::Nothing(format!(
                        "PagerDuty takes alerts; a {} is not sent to it",
                        n.event.label()
                    )))
                }
            }
        };
        let body =
            serde_json::to_vec(&event).map_err(|e| format!("cannot encode the event: {e}"))?;
        Ok(Outgoing::Post(Post {
            shown_url: crate::credentials::masked_url(&url),
            url,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body,
            secrets: vec![t.routing_key.clone()],
        }))
    }
}

/// `trigger`, `acknowledge` or `resolve`, or `None` for what is not an alert.
pub fn action(event: NotificationEvent) -> Option<&'static str> {
    use NotificationEvent as E;
    match event {
        E::Created
        | E::SeverityChanged
        | E::SlaWarning
        | E::SlaBreach
        | E::Escalated
        | E::KpiBreach
        | E::Reopened => Some("trigger"),
        E::Acknowledged => Some("acknowledge"),
        E::Resolved | E::KpiRecovered => Some("resolve"),
        E::Test | E::Report | E::ReviewDue | E::ReviewOverdue | E::ActionItemOverdue => None,
    }
}

/// PagerDuty's severity for a ticket's.
pub fn severity(s: Option<Severity>) -> &'static str {
    match s {
        Some(Severity::Sev1) => "critical",
        Some(Severity::Sev2) => "error",
        Some(Severity::Sev3) => "warning",
        Some(Severity::Sev4 | Severity::Sev5) | None => "info",
    }
}

/// The alert a notification is about: its ticket, else its KPI, else the delivery itself.
pub fn dedup_key(n: &Notification, idempotency_key: &str) -> String {
    use NotificationEvent as E;
    let key = match (n.ticket_key.as_deref().map(str::trim), n.event) {
        (Some(key), _) if !key.is_empty() => key.to_owned(),
        (_, E::KpiBreach | E::KpiRecovered) => format!("kpi:{}", n.title.trim()),
        _ => format!("opsdesk:{idempotency_key}"),
    };
    truncate(&key, DEDUP_KEY_MAX)
}

/// A change event (Events API v2, `/v2/change/enqueue`) for a test message: it checks the
/// integration key and the way to PagerDuty without paging anyone.
pub fn change_event(t: &PagerDutyTarget, n: &Notification) -> Value {
    let mut event = json!({
        "routing_key": t.routing_key,
        "payload": {
            "summary": truncate(&n.subject(), SUMMARY_MAX),
            "source": "opsdesk",
            "timestamp": n.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "custom_details": { "summary": n.summary.trim() },
        },
    });
    if let Some(url) = n.link() {
        event["links"] = json!([{ "href": url, "text": "opsdesk" }]);
    }
    event
}

/// The Events API v2 event for `n`, or `None` when `n` is not an alert.
pub fn event(t: &PagerDutyTarget, n: &Notification, attempt: Attempt<'_>) -> Option<Value> {
    let action = action(n.event)?;
    let mut event = json!({
        "routing_key": t.routing_key,
        "event_action": action,
        "dedup_key": dedup_key(n, attempt.idempotency_key),
    });
    if action != "trigger" {
        return Some(event);
    }
    let mut details = Map::new();
    for (name, value) in n.facts() {
        details.insert(name.to_ascii_lowercase(), Value::String(value));
    }
    let summary_text = n.summary.trim();
    if !summary_text.is_empty() {
        details.insert("summary".into(), Value::String(summary_text.to_owned()));
    }
    let mut payload = json!({
        "summary": truncate(&n.subject(), SUMMARY_MAX),
        "source": n.workload.as_deref().map(str::trim).filter(|w| !w.is_empty()).unwrap_or("opsdesk"),
        "severity": severity(n.severity),
        "timestamp": n.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "class": n.event.as_str(),
        "custom_details": details,
    });
    if let Some(team) = n.team.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        payload["group"] = json!(team);
    }
    if let Some(env) = n.environment {
        payload["component"] = json!(env.to_string());
    }
    event["payload"] = payload;
    event["client"] = json!("opsdesk");
    if let Some(url) = n.link() {
        event["client_url"] = json!(url);
        let text = match n
            .ticket_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            Some(key) => format!("Open {key} in opsdesk"),
            None => "Open in opsdesk".to_owned(),
        };
        event["links"] = json!([{ "href": url, "text": text }]);
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::channel::ChannelSpec;
    use crate::Environment;

    const KEY: &str = "R0123456789ABCDEF0123456789ABCDE";

    fn target() -> PagerDutyTarget {
        PagerDutyTarget {
            routing_key: KEY.into(),
            url: None,
        }
    }

    fn notification(event: NotificationEvent) -> Notification {
        Notification {
            event,
            ticket_id: Some(12),
            ticket_key: Some("OPS-12".into()),
            title: "Checkout errors".into(),
            severity: Some(Severity::Sev1),
            status: Some("new".into()),
            workload: Some("checkout".into()),
            environment: Some(Environment::Production),
            team: Some("payments".into()),
            summary: "Error rate above 5%.".into(),
            url: Some("https://desk.example.com/tickets/12".into()),
            at: Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
            recipients: Vec::new(),
            report: None,
        }
    }

    fn attempt() -> Attempt<'static> {
        Attempt {
            idempotency_key: "outbox-7",
            now: Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 1).unwrap(),
        }
    }

    #[test]
    fn a_created_ticket_triggers_an_alert_keyed_by_the_ticket() {
        let e = event(
            &target(),
            &notification(NotificationEvent::Created),
            attempt(),
        )
        .unwrap();
        assert_eq!(e["routing_key"], KEY);
        assert_eq!(e["event_action"], "trigger");
        assert_eq!(e["dedup_key"], "OPS-12");
        assert_eq!(
            e["payload"]["summary"],
            "[SEV1] OPS-12 Checkout errors (created)"
        );
        assert_eq!(e["payload"]["source"], "checkout");
        assert_eq!(e["payload"]["severity"], "critical");
        assert_eq!(e["payload"]["timestamp"], "2026-12-07T10:00:00Z");
        assert_eq!(e["payload"]["group"], "payments");
        assert_eq!(e["payload"]["component"], "production");
        assert_eq!(e["payload"]["custom_details"]["severity"], "SEV1");
        assert_eq!(e["links"][0]["href"], "https://desk.example.com/tickets/12");
        assert_eq!(e["client"], "opsdesk");
    }

    #[test]
    fn acknowledge_and_resolve_carry_only_the_key() {
        for (ev, action) in [
            (NotificationEvent::Acknowledged, "acknowledge"),
            (NotificationEvent::Resolved, "resolve"),
        ] {
            let e = event(&target(), &notification(ev), attempt()).unwrap();
            assert_eq!(
                e,
                json!({"routing_key": KEY, "event_action": action, "dedup_key": "OPS-12"})
            );
        }
    }

    #[test]
    fn kpis_are_alerts_of_their_own_and_reports_are_not_sent() {
        let mut n = notification(NotificationEvent::KpiBreach);
        n.ticket_key = None;
        n.title = "MTTA".into();
        let breach = event(&target(), &n, attempt()).unwrap();
        n.event = NotificationEvent::KpiRecovered;
        let recovered = event(&target(), &n, attempt()).unwrap();
        assert_eq!(breach["dedup_key"], "kpi:MTTA");
        assert_eq!(recovered["dedup_key"], "kpi:MTTA");
        assert_eq!(recovered["event_action"], "resolve");
        for quiet in [
            NotificationEvent::Report,
            NotificationEvent::ReviewDue,
            NotificationEvent::ActionItemOverdue,
        ] {
            n.event = quiet;
            assert!(event(&target(), &n, attempt()).is_none());
            assert!(matches!(
                PagerDuty::render(&target(), &n, attempt()),
                Ok(Outgoing::Nothing(_))
            ));
        }
    }

    #[test]
    fn a_test_message_is_a_change_event_that_pages_no_one() {
        let mut t = target();
        t.url = Some("https://events.eu.pagerduty.com/v2/enqueue".into());
        let n = Notification::test("pd", "ada", None, attempt().now);
        let Ok(Outgoing::Post(post)) = PagerDuty::render(&t, &n, attempt()) else {
            panic!("a test is posted")
        };
        assert_eq!(post.url, "https://events.eu.pagerduty.com/v2/change/enqueue");
        let body: Value = serde_json::from_slice(&post.body).unwrap();
        assert!(body.get("event_action").is_none(), "{body}");
        assert_eq!(body["routing_key"], KEY);
        assert_eq!(body["payload"]["source"], "opsdesk");
        assert_eq!(post.secrets, vec![KEY.to_owned()]);
    }

    #[test]
    fn limits_are_kept() {
        let mut n = notification(NotificationEvent::Created);
        n.title = "t".repeat(3000);
        n.ticket_key = Some("k".repeat(400));
        let e = event(&target(), &n, attempt()).unwrap();
        assert_eq!(
            e["payload"]["summary"].as_str().unwrap().chars().count(),
            SUMMARY_MAX
        );
        assert_eq!(
            e["dedup_key"].as_str().unwrap().chars().count(),
            DEDUP_KEY_MAX
        );
    }

    #[test]
    fn the_routing_key_is_checked_and_never_shown() {
        let spec = |v: Value| {
            serde_json::from_value::<ChannelSpec>(v)
                .map_err(|e| e.to_string())
                .and_then(|s| s.validate().map_err(|e| e.field))
        };
        let ok = spec(json!({"name":"pd","type":"pagerduty","routing_key":KEY})).unwrap();
        assert_eq!(ok.settings::<PagerDuty>().unwrap().events_url(), EVENTS_URL);
        let shown = serde_json::to_string(&ok.redacted()).unwrap();
        assert!(!shown.contains(KEY), "{shown}");
        let proxied = spec(json!({
            "name":"pd","type":"pagerduty","routing_key":KEY,
            "url":"https://proxy.example.com/v2/enqueue?token=SECRETTOKEN"
        }))
        .unwrap();
        let shown = serde_json::to_string(&proxied.redacted()).unwrap();
        assert!(!shown.contains("SECRETTOKEN"), "{shown}");
        assert!(!format!("{proxied:?}").contains("SECRETTOKEN"));
        assert_eq!(
            spec(serde_json::to_value(proxied.redacted()).unwrap()).unwrap_err(),
            "routing_key"
        );
        let mut masked_back = serde_json::to_value(proxied.redacted()).unwrap();
        masked_back["routing_key"] = json!(KEY);
        assert_eq!(spec(masked_back).unwrap_err(), "url");
        assert!(!format!("{ok:?}").contains(KEY));
        let back = serde_json::to_value(ok.redacted()).unwrap();
        assert_eq!(spec(back).unwrap_err(), "routing_key");
        assert_eq!(
            spec(json!({"name":"pd","type":"pagerduty","routing_key":"short"})).unwrap_err(),
            "routing_key"
        );
        assert_eq!(
            spec(json!({"name":"pd","type":"pagerduty","routing_key":KEY,"url":"ftp://x"}))
                .unwrap_err(),
            "url"
        );
        let long = format!("https://events.example.com/{}", "a".repeat(3000));
        assert_eq!(
            spec(json!({"name":"pd","type":"pagerduty","routing_key":KEY,"url":long})).unwrap_err(),
            "url"
        );
        let err = spec(json!({"name":"pd","type":"pagerduty","routing_key":KEY,"service":"x"}))
            .unwrap_err();
        assert!(err.contains("unknown field `service`"), "{err}");
    }
}
