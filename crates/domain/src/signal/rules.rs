//! Severity rules: ordered, first match wins. The configured rules are tried before the
//! defaults, which are documented in docs/signals.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wildmatch::WildMatch;

use super::workload::Environment;
use super::Signal;
use crate::ticket::Severity;

/// One rule. Every condition given must hold; text conditions take `*` and `?` wildcards and
/// ignore case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverityRule {
    /// Signal source, e.g. `aws.health`.
    #[serde(default)]
    pub source: Option<String>,
    /// Health event category, Trusted Advisor status, CloudWatch state, alert severity.
    #[serde(default)]
    pub kind: Option<String>,
    /// Trusted Advisor category or Health event type code.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    /// The signal title, e.g. a CloudWatch alarm name: `CloudWatch alarm prod-* is ALARM`.
    #[serde(default)]
    pub title: Option<String>,
    /// AWS Health actionability: `ACTION_REQUIRED`, `ACTION_MAY_BE_REQUIRED`,
    /// `INFORMATIONAL`.
    #[serde(default)]
    pub actionability: Option<String>,
    /// AWS Health personas (`OPERATIONS`, `SECURITY`, `BILLING`) that must all be on the
    /// signal.
    #[serde(default)]
    pub personas: Vec<String>,
    /// The environment of the matched workload.
    #[serde(default)]
    pub environment: Option<Environment>,
    /// Tags (labels) that must all be on the signal.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The severity to give; without it the source's own severity, else SEV3.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Whether a firing signal opens a ticket; without it, yes for known sources, no for
    /// unclassified events.
    #[serde(default)]
    pub ticket: Option<bool>,
}

/// What the rules decided for a signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub severity: Severity,
    pub ticket: bool,
    /// `rule 2` for a configured rule, `default rule 5` for a built-in one, or `no rule`.
    pub rule: String,
}

fn text_matches(pattern: &Option<String>, value: Option<&str>) -> bool {
    match pattern {
        None => true,
        Some(p) => {
            value.is_some_and(|v| WildMatch::new(&p.to_lowercase()).matches(&v.to_lowercase()))
        }
    }
}

impl SeverityRule {
    fn matches(&self, s: &Signal, environment: Option<Environment>) -> bool {
        text_matches(&self.source, Some(&s.source))
            && text_matches(&self.kind, Some(&s.kind))
            && text_matches(&self.category, s.category.as_deref())
            && text_matches(&self.service, s.service.as_deref())
            && text_matches(&self.title, Some(&s.title))
            && text_matches(&self.actionability, s.actionability.as_deref())
            && self
                .personas
                .iter()
                .all(|p| s.personas.iter().any(|q| q.eq_ignore_ascii_case(p)))
            && self.environment.is_none_or(|e| Some(e) == environment)
            && self.tags.iter().all(|(k, v)| s.tags.get(k) == Some(v))
    }
}

fn rule(
    source: &str,
    kind: &str,
    category: Option<&str>,
    environment: Option<Environment>,
    severity: Severity,
    ticket: Option<bool>,
) -> SeverityRule {
    SeverityRule {
        source: Some(source.to_owned()),
        kind: Some(kind.to_owned()),
        category: category.map(str::to_owned),
        environment,
        severity: Some(severity),
        ticket,
        ..SeverityRule::default()
    }
}

/// The built-in rules, tried after the configured ones.
pub fn default_rules() -> Vec<SeverityRule> {
    use Severity::*;
    let prod = Some(Environment::Production);
    let actionable = |kind: &str, actionability: &str, environment, severity| SeverityRule {
        actionability: Some(actionability.to_owned()),
        ..rule("aws.health", kind, None, environment, severity, None)
    };
    vec![
        rule("aws.health", "abuse", None, None, Sev2, Some(true)),
        rule("aws.health", "issue", None, prod, Sev2, None),
        // Whatever its category, AWS asking for action on production is never below SEV3.
        actionable("*", "ACTION_REQUIRED", prod, Sev3),
        rule("aws.health", "issue", None, None, Sev3, None),
        rule("aws.health", "investigation", None, None, Sev3, None),
        rule("aws.health", "scheduledChange", None, None, Sev4, None),
        actionable("accountNotification", "INFORMATIONAL", None, Sev5),
        rule("aws.health", "accountNotification", None, None, Sev5, None),
        rule(
            "aws.trustedadvisor",
            "ERROR",
            Some("security"),
            None,
            Sev3,
            None,
        ),
        rule(
            "aws.trustedadvisor",
            "ERROR",
            Some("fault_tolerance"),
            None,
            Sev3,
            None,
        ),
        rule("aws.trustedadvisor", "ERROR", None, None, Sev4, None),
        rule(
            "aws.trustedadvisor",
            "WARN",
            Some("cost_optimizing"),
            None,
            Sev5,
            None,
        ),
        rule("aws.trustedadvisor", "WARN", None, None, Sev5, None),
        rule("aws.cloudwatch", "ALARM", None, None, Sev3, None),
        rule(
            "aws.cloudwatch",
            "INSUFFICIENT_DATA",
            None,
            None,
            Sev5,
            Some(false),
        ),
        // "No issue was found": kept, no ticket.
        rule(
            "aws.securityhub",
            "INFORMATIONAL",
            None,
            None,
            Sev5,
            Some(false),
        ),
    ]
}

/// Decides severity and whether to open a ticket: configured rules, then the defaults.
pub fn decide(
    configured: &[SeverityRule],
    defaults: &[SeverityRule],
    s: &Signal,
    environment: Option<Environment>,
) -> Decision {
    let found = configured
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches(s, environment))
        .map(|(i, r)| (format!("rule {}", i + 1), r))
        .or_else(|| {
            defaults
                .iter()
                .enumerate()
                .find(|(_, r)| r.matches(s, environment))
                .map(|(i, r)| (format!("default rule {}", i + 1), r))
        });
    let fallback = s.severity.unwrap_or(Severity::Sev3);
    match found {
        Some((name, r)) => Decision {
            severity: r.severity.unwrap_or(fallback),
            ticket: r.ticket.unwrap_or(s.classified),
            rule: name,
        },
        None => Decision {
            severity: fallback,
            ticket: s.classified,
            rule: "no rule".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::SignalState;

    fn signal(source: &str, kind: &str, category: Option<&str>) -> Signal {
        Signal {
            source: source.into(),
            receipt_key: String::new(),
            dedup_key: String::new(),
            state: SignalState::Firing,
            kind: kind.into(),
            category: category.map(str::to_owned),
            severity: None,
            account: None,
            region: None,
            service: None,
            resources: vec![],
            tags: BTreeMap::new(),
            title: "CloudWatch alarm prod-api-5xx is ALARM".into(),
            body: String::new(),
            occurred_at: chrono::DateTime::UNIX_EPOCH,
            window: None,
            savings: None,
            actionability: None,
            personas: Vec::new(),
            page: None,
            classified: true,
            raw: serde_json::Value::Null,
        }
    }

    #[test]
    fn defaults_follow_the_documented_table() {
        let d = default_rules();
        let prod = Some(Environment::Production);
        let sev = |s: &Signal, env| decide(&[], &d, s, env).severity;
        assert_eq!(
            sev(&signal("aws.health", "issue", None), prod),
            Severity::Sev2
        );
        assert_eq!(
            sev(&signal("aws.health", "issue", None), None),
            Severity::Sev3
        );
        assert_eq!(
            sev(&signal("aws.health", "scheduledChange", None), prod),
            Severity::Sev4
        );
        assert_eq!(
            sev(&signal("aws.health", "accountNotification", None), prod),
            Severity::Sev5
        );
        assert_eq!(
            sev(
                &signal("aws.trustedadvisor", "ERROR", Some("security")),
                None
            ),
            Severity::Sev3
        );
        assert_eq!(
            sev(
                &signal("aws.trustedadvisor", "WARN", Some("cost_optimizing")),
                None
            ),
            Severity::Sev5
        );
        assert_eq!(
            sev(&signal("aws.cloudwatch", "ALARM", None), None),
            Severity::Sev3
        );
    }

    #[test]
    fn actionability_and_abuse_follow_the_documented_table() {
        let d = default_rules();
        let prod = Some(Environment::Production);
        let health = |kind: &str, actionability: Option<&str>| {
            let mut s = signal("aws.health", kind, None);
            s.actionability = actionability.map(str::to_owned);
            s
        };
        let sev = |s: &Signal, env| decide(&[], &d, s, env).severity;
        // AWS asking for action on production is never below SEV3...
        let change = health("scheduledChange", Some("ACTION_REQUIRED"));
        assert_eq!(sev(&change, prod), Severity::Sev3);
        let notice = health("accountNotification", Some("ACTION_REQUIRED"));
        assert_eq!(sev(&notice, prod), Severity::Sev3);
        // ...and an issue on production stays SEV2.
        let issue = health("issue", Some("ACTION_REQUIRED"));
        assert_eq!(sev(&issue, prod), Severity::Sev2);
        // Elsewhere, or when action only may be required, the category decides.
        assert_eq!(sev(&change, None), Severity::Sev4);
        let maybe = health("scheduledChange", Some("ACTION_MAY_BE_REQUIRED"));
        assert_eq!(sev(&maybe, prod), Severity::Sev4);
        let info = health("accountNotification", Some("INFORMATIONAL"));
        assert_eq!(sev(&info, prod), Severity::Sev5);
        // Abuse reports are SEV2 and always open a ticket.
        let abuse = decide(&[], &d, &health("abuse", None), None);
        assert_eq!((abuse.severity, abuse.ticket), (Severity::Sev2, true));
    }

    #[test]
    fn rules_match_actionability_and_personas() {
        let configured = vec![SeverityRule {
            source: Some("aws.health".into()),
            actionability: Some("action_*".into()),
            personas: vec!["billing".into()],
            severity: Some(Severity::Sev2),
            ..SeverityRule::default()
        }];
        let mut s = signal("aws.health", "accountNotification", None);
        s.actionability = Some("ACTION_REQUIRED".into());
        s.personas = vec!["OPERATIONS".into(), "BILLING".into()];
        let d = decide(&configured, &default_rules(), &s, None);
        assert_eq!((d.severity, d.rule.as_str()), (Severity::Sev2, "rule 1"));
        s.personas = vec!["SECURITY".into()];
        assert_ne!(
            decide(&configured, &default_rules(), &s, None).rule,
            "rule 1"
        );
        s.personas = vec!["BILLING".into()];
        s.actionability = None;
        assert_ne!(
            decide(&configured, &default_rules(), &s, None).rule,
            "rule 1"
        );
        // Rules are read from configuration with the new conditions.
        let r: SeverityRule = serde_json::from_value(serde_json::json!({
            "actionability": "ACTION_REQUIRED", "personas": ["SECURITY"], "severity": "SEV2"
        }))
        .unwrap();
        assert_eq!(r.personas, ["SECURITY"]);
    }

    #[test]
    fn configured_rules_come_first_and_match_titles() {
        let configured = vec![SeverityRule {
            source: Some("aws.cloudwatch".into()),
            title: Some("*prod-*".into()),
            severity: Some(Severity::Sev2),
            ..SeverityRule::default()
        }];
        let s = signal("aws.cloudwatch", "alarm", None);
        let d = decide(&configured, &default_rules(), &s, None);
        assert_eq!((d.severity, d.rule.as_str()), (Severity::Sev2, "rule 1"));
    }

    #[test]
    fn unclassified_events_open_no_ticket_unless_asked() {
        let mut s = signal("com.example", "Deploy failed", None);
        s.classified = false;
        assert!(!decide(&[], &default_rules(), &s, None).ticket);
        let ask = vec![SeverityRule {
            source: Some("com.example".into()),
            ticket: Some(true),
            ..SeverityRule::default()
        }];
        assert!(decide(&ask, &default_rules(), &s, None).ticket);
    }
}
