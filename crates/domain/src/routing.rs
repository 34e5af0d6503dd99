//! Routing rules: which ticket events go to which channels.
//!
//! Rules are tried in order. A rule matches when every condition it sets holds (a condition
//! left empty holds for any ticket); a matching rule sends to all its channels, and with
//! `stop = true` no later rule is tried. A channel named by several matching rules gets the
//! event once.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wildmatch::WildMatch;

use crate::channel::NotificationEvent;
use crate::signal::workload::Environment;
use crate::ticket::named_enum;
use crate::validation::{FieldError, Validated};
use crate::{Kind, Severity, Ticket};

/// Longest rule or channel name.
const NAME_MAX: usize = 100;

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    pub name: String,
    /// Ticket events this rule takes; empty = every event but `acknowledged` and `reopened`,
    /// which a rule takes only when it names them (rules written before they existed send
    /// what they sent).
    #[serde(default)]
    pub events: Vec<NotificationEvent>,
    #[serde(default)]
    pub severities: Vec<Severity>,
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// Ticket sources (`api`, `aws.health`, `aws.cloudwatch`, ...); `*` wildcards allowed.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Workload names; `*` wildcards allowed.
    #[serde(default)]
    pub workloads: Vec<String>,
    #[serde(default)]
    pub environments: Vec<Environment>,
    #[serde(default)]
    pub teams: Vec<String>,
    /// The ticket carries at least one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Channel names to send to.
    pub channels: Vec<String>,
    /// People the event is also for, looked up when it happens: email channels mail them
    /// beside their own addresses, other channels carry them in the message.
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    /// Try no later rule when this one matches.
    #[serde(default)]
    pub stop: bool,
}

named_enum! {
    /// Who, besides a channel's own addresses, an event is for.
    Recipient {
        /// Every active member of the ticket's team.
        OwningTeam => "owning_team",
        /// Whoever holds the ticket now: its assignee, or while unassigned the lead of its team.
        OnCall => "on_call",
        /// The AWS account team of the ticket's AWS account (`account_team_emails`).
        AccountTeam => "account_team",
    }
}

/// A channel an event goes to, and the recipients the matching rules add for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub channel: String,
    pub recipients: Vec<Recipient>,
}

/// What routing looks at: a ticket event and the ticket as it is after the change.
#[derive(Debug, Clone, Copy)]
pub struct Routed<'a> {
    pub event: NotificationEvent,
    pub ticket: &'a Ticket,
    /// The environment of the ticket's workload, when the workload is known.
    pub environment: Option<Environment>,
}

/// How one rule judged one event, for `opsdesk rules check`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RuleCheck {
    pub rule: String,
    pub matched: bool,
    /// Why it did not match: the first condition that failed.
    pub reason: Option<String>,
    /// Whether the rule was reached (an earlier matching rule with `stop` ends the list).
    pub reached: bool,
}

pub(crate) fn glob_any(patterns: &[String], value: Option<&str>) -> bool {
    let value = value.unwrap_or_default();
    patterns.iter().any(|p| WildMatch::new(p).matches(value))
}

impl RoutingRule {
    /// Whether the rule takes `event`: one it names, or with no events named, any event but
    /// `acknowledged` and `reopened`.
    pub fn takes(&self, event: NotificationEvent) -> bool {
        if self.events.is_empty() {
            !matches!(
                event,
                NotificationEvent::Acknowledged | NotificationEvent::Reopened
            )
        } else {
            self.events.contains(&event)
        }
    }

    /// `None` when the rule matches, else the condition that failed.
    pub fn mismatch(&self, r: &Routed<'_>) -> Option<String> {
        let t = r.ticket;
        if !self.takes(r.event) {
            return Some(if self.events.is_empty() {
                format!("event {} goes only to rules that name it", r.event)
            } else {
                format!("event {} is not one of the rule's events", r.event)
            });
        }
        if !self.severities.is_empty() && !self.severities.contains(&t.severity) {
            return Some(format!("severity {} is not one of the rule's", t.severity));
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&t.kind) {
            return Some(format!("kind {} is not one of the rule's", t.kind));
        }
        if !self.sources.is_empty() && !glob_any(&self.sources, Some(&t.source)) {
            return Some(format!("source {} matches none of the rule's", t.source));
        }
        if !self.workloads.is_empty() && !glob_any(&self.workloads, t.workload.as_deref()) {
            return Some(format!(
                "workload {} matches none of the rule's",
                t.workload.as_deref().unwrap_or("(none)")
            ));
        }
        if !self.environments.is_empty()
            && !r
                .environment
                .is_some_and(|e| self.environments.contains(&e))
        {
            return Some(format!(
                "environment {} is not one of the rule's",
                r.environment.map_or("(none)", |e| e.as_str())
            ));
        }
        if !self.teams.is_empty() && !t.team.as_ref().is_some_and(|x| self.teams.contains(x)) {
            return Some(format!(
                "team {} is not one of the rule's",
                t.team.as_deref().unwrap_or("(none)")
            ));
        }
        if !self.tags.is_empty() && !t.tags.iter().any(|x| self.tags.contains(x)) {
            return Some("the ticket has none of the rule's tags".into());
        }
        None
    }
}

impl Validated for RoutingRule {
    fn validate(mut self) -> Result<Self, FieldError> {
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() || self.name.chars().count() > NAME_MAX {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {NAME_MAX} characters"),
            ));
        }
        if self.channels.is_empty() {
            return Err(FieldError::new("channels", "name at least one channel"));
        }
        for (i, c) in self.channels.iter_mut().enumerate() {
            *c = c.trim().to_owned();
            if c.is_empty() || c.chars().count() > NAME_MAX {
                return Err(FieldError::new(
                    format!("channels[{i}]"),
                    format!("must be 1 to {NAME_MAX} characters"),
                ));
            }
        }
        for (field, list) in [
            ("sources", &self.sources),
            ("workloads", &self.workloads),
            ("teams", &self.teams),
            ("tags", &self.tags),
        ] {
            if let Some(i) = list.iter().position(|v| v.trim().is_empty()) {
                return Err(FieldError::new(
                    format!("{field}[{i}]"),
                    "must not be empty",
                ));
            }
        }
        Ok(self)
    }
}

/// What an event about no ticket offers routing (a KPI's, or a workload's readiness review's):
/// the team, workload and severity it is about, when it is about one, and the workload's
/// environment.
#[derive(Debug, Clone, Copy)]
pub struct KpiRouted<'a> {
    pub event: NotificationEvent,
    pub team: Option<&'a str>,
    pub workload: Option<&'a str>,
    pub severity: Option<Severity>,
    pub environment: Option<Environment>,
}

impl RoutingRule {
    /// Whether the rule takes an event about no ticket. Conditions on teams, workloads,
    /// severities and environments hold for an event about that team, workload (of that
    /// environment) or severity; conditions only a ticket can meet (kinds, sources, tags) never
    /// hold.
    pub fn matches_kpi(&self, r: &KpiRouted<'_>) -> bool {
        self.takes(r.event)
            && (self.severities.is_empty()
                || r.severity.is_some_and(|s| self.severities.contains(&s)))
            && (self.teams.is_empty() || r.team.is_some_and(|t| self.teams.iter().any(|x| x == t)))
            && (self.workloads.is_empty()
                || (r.workload.is_some() && glob_any(&self.workloads, r.workload)))
            && (self.environments.is_empty()
                || r.environment
                    .is_some_and(|e| self.environments.contains(&e)))
            && self.kinds.is_empty()
            && self.sources.is_empty()
            && self.tags.is_empty()
    }
}

/// The channels a KPI event goes to, each once in the order the rules name them, with the
/// recipients of the matching rules.
pub fn kpi_routes(rules: &[RoutingRule], r: &KpiRouted<'_>) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    for rule in rules {
        if !rule.matches_kpi(r) {
            continue;
        }
        for c in &rule.channels {
            match out.iter_mut().find(|x| &x.channel == c) {
                Some(x) => x.recipients.extend(rule.recipients.iter().copied()),
                None => out.push(Route {
                    channel: c.clone(),
                    recipients: rule.recipients.clone(),
                }),
            }
        }
        if rule.stop {
            break;
        }
    }
    out
}

/// The channels an event goes to, each once, in the order the rules name them.
pub fn route(rules: &[RoutingRule], r: &Routed<'_>) -> Vec<String> {
    routes(rules, r).into_iter().map(|x| x.channel).collect()
}

/// The channels an event goes to, each once in the order the rules name them, with the
/// recipients of every matching rule that names the channel.
pub fn routes(rules: &[RoutingRule], r: &Routed<'_>) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    for rule in rules {
        if rule.mismatch(r).is_some() {
            continue;
        }
        for c in &rule.channels {
            let i = match out.iter().position(|x| &x.channel == c) {
                Some(i) => i,
                None => {
                    out.push(Route {
                        channel: c.clone(),
                        recipients: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            for who in &rule.recipients {
                if !out[i].recipients.contains(who) {
                    out[i].recipients.push(*who);
                }
            }
        }
        if rule.stop {
            break;
        }
    }
    out
}

/// How every rule judges an event, in order.
pub fn explain(rules: &[RoutingRule], r: &Routed<'_>) -> Vec<RuleCheck> {
    let mut reached = true;
    rules
        .iter()
        .map(|rule| {
            let reason = rule.mismatch(r);
            let check = RuleCheck {
                rule: rule.name.clone(),
                matched: reason.is_none() && reached,
                reason,
                reached,
            };
            if check.matched && rule.stop {
                reached = false;
            }
            check
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::NewTicket;
    use chrono::TimeZone;

    fn ticket(severity: Severity, workload: Option<&str>, tags: &[&str]) -> Ticket {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap();
        let mut t = Ticket::open(
            NewTicket {
                title: "Checkout errors".into(),
                description: String::new(),
                kind: Kind::Incident,
                severity,
                requester: None,
                assignee: None,
                team: Some("payments".into()),
                workload: workload.map(str::to_owned),
                tags: tags.iter().map(|s| s.to_string()).collect(),
                source: Some("aws.cloudwatch".into()),
                dedup_key: None,
            },
            at,
        );
        t.id = 7;
        t
    }

    fn rule(name: &str, channels: &[&str]) -> RoutingRule {
        RoutingRule {
            name: name.into(),
            events: vec![],
            severities: vec![],
            kinds: vec![],
            sources: vec![],
            workloads: vec![],
            environments: vec![],
            teams: vec![],
            tags: vec![],
            channels: channels.iter().map(|s| s.to_string()).collect(),
            recipients: vec![],
            stop: false,
        }
    }

    #[test]
    fn acknowledged_goes_only_to_rules_that_name_it() {
        let mut rule: RoutingRule =
            serde_json::from_value(serde_json::json!({"name": "all", "channels": ["c"]})).unwrap();
        assert!(rule.takes(NotificationEvent::Created));
        assert!(rule.takes(NotificationEvent::Resolved));
        assert!(!rule.takes(NotificationEvent::Acknowledged));
        assert!(!rule.takes(NotificationEvent::Reopened));
        rule.events = vec![NotificationEvent::Acknowledged, NotificationEvent::Resolved];
        assert!(rule.takes(NotificationEvent::Acknowledged));
        assert!(!rule.takes(NotificationEvent::Created));
    }

    #[test]
    fn every_condition_must_hold() {
        let t = ticket(Severity::Sev1, Some("checkout"), &["production"]);
        let r = Routed {
            event: NotificationEvent::Created,
            ticket: &t,
            environment: Some(Environment::Production),
        };
        let mut sev1 = rule("sev1-prod", &["pager"]);
        sev1.severities = vec![Severity::Sev1, Severity::Sev2];
        sev1.environments = vec![Environment::Production];
        sev1.workloads = vec!["check*".into()];
        sev1.sources = vec!["aws.*".into()];
        sev1.teams = vec!["payments".into()];
        sev1.tags = vec!["production".into(), "other".into()];
        sev1.events = vec![NotificationEvent::Created];
        assert_eq!(sev1.mismatch(&r), None);

        let mut other = sev1.clone();
        other.events = vec![NotificationEvent::Resolved];
        assert!(other.mismatch(&r).unwrap().contains("event created"));
        let mut other = sev1.clone();
        other.environments = vec![Environment::Staging];
        assert!(other
            .mismatch(&r)
            .unwrap()
            .contains("environment production"));
        let mut other = sev1.clone();
        other.teams = vec!["core".into()];
        assert!(other.mismatch(&r).unwrap().contains("team payments"));
        let mut other = sev1.clone();
        other.tags = vec!["flapping".into()];
        assert!(other.mismatch(&r).unwrap().contains("tags"));
        let mut other = sev1;
        other.workloads = vec!["search".into()];
        assert!(other.mismatch(&r).unwrap().contains("workload checkout"));

        let no_env = Routed {
            environment: None,
            ..r
        };
        let mut prod_only = rule("prod", &["x"]);
        prod_only.environments = vec![Environment::Production];
        assert!(prod_only.mismatch(&no_env).is_some());
    }

    #[test]
    fn channels_once_in_rule_order_and_stop_ends_the_list() {
        let t = ticket(Severity::Sev2, None, &[]);
        let r = Routed {
            event: NotificationEvent::Created,
            ticket: &t,
            environment: None,
        };
        let mut first = rule("first", &["email", "sns"]);
        first.severities = vec![Severity::Sev2];
        let second = rule("second", &["sns", "webhook"]);
        let mut quiet = rule("quiet", &["never"]);
        quiet.severities = vec![Severity::Sev5];
        let rules = vec![first.clone(), quiet.clone(), second.clone()];
        assert_eq!(route(&rules, &r), vec!["email", "sns", "webhook"]);

        let mut team = second.clone();
        team.recipients = vec![Recipient::OwningTeam, Recipient::AccountTeam];
        let mut oncall = rule("oncall", &["webhook"]);
        oncall.recipients = vec![Recipient::OnCall, Recipient::OwningTeam];
        assert_eq!(
            routes(&[first.clone(), team, oncall], &r),
            vec![
                Route {
                    channel: "email".into(),
                    recipients: vec![]
                },
                Route {
                    channel: "sns".into(),
                    recipients: vec![Recipient::OwningTeam, Recipient::AccountTeam]
                },
                Route {
                    channel: "webhook".into(),
                    recipients: vec![
                        Recipient::OwningTeam,
                        Recipient::AccountTeam,
                        Recipient::OnCall
                    ]
                },
            ]
        );

        first.stop = true;
        let rules = vec![first, quiet, second];
        assert_eq!(route(&rules, &r), vec!["email", "sns"]);
        let checks = explain(&rules, &r);
        assert_eq!(
            checks
                .iter()
                .map(|c| (c.rule.as_str(), c.matched, c.reached))
                .collect::<Vec<_>>(),
            vec![
                ("first", true, true),
                ("quiet", false, false),
                ("second", false, false)
            ]
        );
        assert!(checks[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("severity SEV2"));
    }

    #[test]
    fn validation_names_the_field() {
        let mut r = rule("  ", &["a"]);
        assert_eq!(r.clone().validate().unwrap_err().field, "name");
        r.name = "ok".into();
        r.channels = vec![];
        assert_eq!(r.clone().validate().unwrap_err().field, "channels");
        r.channels = vec!["a".into(), " ".into()];
        assert_eq!(r.clone().validate().unwrap_err().field, "channels[1]");
        r.channels = vec!["a".into()];
        r.workloads = vec!["x".into(), "".into()];
        assert_eq!(r.clone().validate().unwrap_err().field, "workloads[1]");
        let e = serde_json::from_value::<RoutingRule>(serde_json::json!({
            "name": "x", "channels": ["a"], "severity": ["SEV1"]
        }))
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `severity`"), "{e}");
        let e = serde_json::from_value::<RoutingRule>(serde_json::json!({
            "name": "x", "channels": ["a"], "events": ["exploded"]
        }))
        .unwrap_err();
        assert!(e.to_string().contains("exploded"), "{e}");
    }

    #[test]
    fn kpi_events_follow_rules_on_their_breakdown() {
        let mut any = rule("kpis", &["ops-sns"]);
        any.events = vec![NotificationEvent::KpiBreach];
        let mut team = rule("payments", &["pay-mail"]);
        team.teams = vec!["payments".into()];
        let mut tickets_only = rule("cloudwatch", &["hook"]);
        tickets_only.sources = vec!["aws.cloudwatch".into()];
        let mut production = rule("prod-reviews", &["prod-hook"]);
        production.events = vec![NotificationEvent::ReviewDue];
        production.environments = vec![Environment::Production];
        let rules = [any, team, tickets_only, production];
        let overall = KpiRouted {
            event: NotificationEvent::KpiBreach,
            team: None,
            workload: None,
            severity: None,
            environment: None,
        };
        let chans = |r: KpiRouted<'_>| {
            kpi_routes(&rules, &r)
                .into_iter()
                .map(|x| x.channel)
                .collect::<Vec<_>>()
        };
        assert_eq!(chans(overall), ["ops-sns"]);
        let payments = KpiRouted {
            team: Some("payments"),
            ..overall
        };
        assert_eq!(chans(payments), ["ops-sns", "pay-mail"]);
        let recovered = KpiRouted {
            event: NotificationEvent::KpiRecovered,
            ..payments
        };
        assert_eq!(chans(recovered), ["pay-mail"]);
        // A readiness review's event matches on its workload's environment.
        let due = KpiRouted {
            event: NotificationEvent::ReviewDue,
            team: None,
            workload: Some("checkout"),
            severity: None,
            environment: Some(Environment::Production),
        };
        assert_eq!(chans(due), ["prod-hook"]);
        let staging = KpiRouted {
            environment: Some(Environment::Staging),
            ..due
        };
        assert!(chans(staging).is_empty());
    }
}
