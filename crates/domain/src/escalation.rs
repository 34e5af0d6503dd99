//! Escalation: the tiers a ticket climbs when nobody acknowledges it in time, ending at AWS
//! Support, and the rule that sends production emergencies to AWS Support at once.
//!
//! A policy applies to the tickets it matches (the first matching policy wins). A new ticket
//! starts at the first tier; while it stays `new` (unacknowledged) past the tier's
//! `ack_timeout_minutes`, it moves to the next tier, which hands it to that tier's team. A tier
//! with `aws = true` opens an AWS Support case instead.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::routing::glob_any;
use crate::signal::workload::Environment;
use crate::validation::{FieldError, Validated};
use crate::{Kind, Severity, Ticket};

/// Longest policy or tier name.
const NAME_MAX: usize = 100;
/// A week: a longer acknowledgement timeout is a typo more often than a plan.
const ACK_TIMEOUT_MAX: u32 = 7 * 24 * 60;

/// One step of an escalation policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// e.g. `L1`, `L2`, `engineering`, `aws`.
    pub name: String,
    /// The team the ticket is handed to on reaching this tier.
    #[serde(default)]
    pub team: Option<String>,
    /// Reaching this tier opens an AWS Support case (only the last tier may).
    #[serde(default)]
    pub aws: bool,
    /// Minutes the ticket may stay unacknowledged at this tier before it moves up. Every tier
    /// but the last needs one.
    #[serde(default)]
    pub ack_timeout_minutes: Option<u32>,
}

/// Which tickets climb which tiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    pub name: String,
    /// Empty = any severity.
    #[serde(default)]
    pub severities: Vec<Severity>,
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// Workload names; `*` wildcards allowed.
    #[serde(default)]
    pub workloads: Vec<String>,
    #[serde(default)]
    pub environments: Vec<Environment>,
    /// The ticket's team when it was opened.
    #[serde(default)]
    pub teams: Vec<String>,
    pub tiers: Vec<Tier>,
}

impl EscalationPolicy {
    pub fn matches(&self, t: &Ticket, environment: Option<Environment>) -> bool {
        (self.severities.is_empty() || self.severities.contains(&t.severity))
            && (self.kinds.is_empty() || self.kinds.contains(&t.kind))
            && (self.workloads.is_empty() || glob_any(&self.workloads, t.workload.as_deref()))
            && (self.environments.is_empty()
                || environment.is_some_and(|e| self.environments.contains(&e)))
            && (self.teams.is_empty() || t.team.as_ref().is_some_and(|x| self.teams.contains(x)))
    }

    /// The acknowledgement timeout of tier `i` in minutes, when it has a next tier to go to.
    pub fn timeout_at(&self, i: usize) -> Option<u32> {
        if i + 1 >= self.tiers.len() {
            return None;
        }
        self.tiers.get(i).and_then(|t| t.ack_timeout_minutes)
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= NAME_MAX
}

impl Validated for EscalationPolicy {
    fn validate(mut self) -> Result<Self, FieldError> {
        self.name = self.name.trim().to_owned();
        if !name_ok(&self.name) {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {NAME_MAX} characters"),
            ));
        }
        if self.tiers.is_empty() {
            return Err(FieldError::new("tiers", "name at least one tier"));
        }
        let last = self.tiers.len() - 1;
        let mut names: Vec<String> = Vec::with_capacity(self.tiers.len());
        for (i, tier) in self.tiers.iter_mut().enumerate() {
            let at = |f: &str| format!("tiers[{i}].{f}");
            tier.name = tier.name.trim().to_owned();
            if !name_ok(&tier.name) {
                return Err(FieldError::new(
                    at("name"),
                    format!("must be 1 to {NAME_MAX} characters"),
                ));
            }
            if names.contains(&tier.name) {
                return Err(FieldError::new(
                    at("name"),
                    format!("{} is used by an earlier tier", tier.name),
                ));
            }
            names.push(tier.name.clone());
            if let Some(team) = &mut tier.team {
                *team = team.trim().to_owned();
                if !name_ok(team) {
                    return Err(FieldError::new(
                        at("team"),
                        format!("must be 1 to {NAME_MAX} characters"),
                    ));
                }
            }
            if tier.aws && i != last {
                return Err(FieldError::new(
                    at("aws"),
                    "only the last tier may open an AWS Support case",
                ));
            }
            if !tier.aws && tier.team.is_none() {
                return Err(FieldError::new(
                    at("team"),
                    "a tier hands the ticket to a team, or opens an AWS case (aws = true)",
                ));
            }
            match tier.ack_timeout_minutes {
                None if i != last => {
                    return Err(FieldError::new(
                        at("ack_timeout_minutes"),
                        "every tier but the last needs one",
                    ))
                }
                Some(m) if m == 0 || m > ACK_TIMEOUT_MAX => {
                    return Err(FieldError::new(
                        at("ack_timeout_minutes"),
                        format!("must be 1 to {ACK_TIMEOUT_MAX}"),
                    ))
                }
                _ => {}
            }
        }
        for (field, list) in [("workloads", &self.workloads), ("teams", &self.teams)] {
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

/// Checks a list of policies: each valid, names unique. The error names the policy by index.
pub fn check_policies(
    policies: Vec<EscalationPolicy>,
) -> Result<Vec<EscalationPolicy>, FieldError> {
    let mut out: Vec<EscalationPolicy> = Vec::with_capacity(policies.len());
    for (i, p) in policies.into_iter().enumerate() {
        let p = p
            .validate()
            .map_err(|e| FieldError::new(format!("[{i}].{}", e.field), e.message))?;
        if out.iter().any(|o| o.name == p.name) {
            return Err(FieldError::new(
                format!("[{i}].name"),
                format!("{} is used twice", p.name),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// The first policy that matches the ticket.
pub fn select_escalation<'a>(
    policies: &'a [EscalationPolicy],
    t: &Ticket,
    environment: Option<Environment>,
) -> Option<&'a EscalationPolicy> {
    policies.iter().find(|p| p.matches(t, environment))
}

/// How an AWS service name (as signals carry it: `EC2`, `RDS`, `LAMBDA`) maps to the
/// `serviceCode` and `categoryCode` of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceMapping {
    pub aws_service: String,
    pub service_code: String,
    pub category_code: String,
}

/// Going to AWS Support (`[escalation.aws]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AwsEscalation {
    /// Open an AWS Support case as soon as a ticket matching `severities` and `environments`
    /// is opened (or raised to such a severity), without waiting for the tiers.
    pub auto: bool,
    pub severities: Vec<Severity>,
    pub environments: Vec<Environment>,
    /// Case codes per AWS service, tried before DescribeServices is asked.
    pub services: Vec<ServiceMapping>,
    /// The codes used when nothing else matches.
    pub default_service_code: String,
    pub default_category_code: String,
    /// Channels told of every escalation to AWS Support (the development team's SNS topic,
    /// say), whatever the routing rules say.
    pub notify_channels: Vec<String>,
    /// An email channel that also mails the account's AWS account team on every escalation to
    /// AWS Support, and instead of the case when the plan cannot open one.
    pub account_team_channel: Option<String>,
}

impl Default for AwsEscalation {
    fn default() -> Self {
        AwsEscalation {
            auto: true,
            severities: vec![Severity::Sev1, Severity::Sev2],
            environments: vec![Environment::Production],
            services: Vec::new(),
            default_service_code: "general-info".to_owned(),
            default_category_code: "using-aws".to_owned(),
            notify_channels: Vec::new(),
            account_team_channel: None,
        }
    }
}

impl AwsEscalation {
    /// Whether the automatic rule sends this ticket to AWS Support.
    pub fn auto_applies(&self, t: &Ticket, environment: Option<Environment>) -> bool {
        self.auto
            && t.status.is_open()
            && self.severities.contains(&t.severity)
            && environment.is_some_and(|e| self.environments.contains(&e))
    }

    /// The configured codes for an AWS service, if any (case-insensitive).
    pub fn mapped(&self, service: &str) -> Option<&ServiceMapping> {
        self.services
            .iter()
            .find(|m| m.aws_service.eq_ignore_ascii_case(service))
    }
}

impl Validated for AwsEscalation {
    fn validate(self) -> Result<Self, FieldError> {
        if self.auto && self.severities.is_empty() {
            return Err(FieldError::new(
                "severities",
                "name the severities the automatic rule takes, or set auto = false",
            ));
        }
        for (field, v) in [
            ("default_service_code", &self.default_service_code),
            ("default_category_code", &self.default_category_code),
        ] {
            if v.trim().is_empty() {
                return Err(FieldError::new(field, "must not be empty"));
            }
        }
        for (i, m) in self.services.iter().enumerate() {
            for (field, v) in [
                ("aws_service", &m.aws_service),
                ("service_code", &m.service_code),
                ("category_code", &m.category_code),
            ] {
                if v.trim().is_empty() {
                    return Err(FieldError::new(
                        format!("services[{i}].{field}"),
                        "must not be empty",
                    ));
                }
            }
        }
        Ok(self)
    }
}

/// Where a manual escalation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalateTo {
    /// The next tier of the ticket's escalation policy.
    Next,
    /// Straight to AWS Support.
    Aws,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewTicket, Status};
    use chrono::TimeZone;

    fn ticket(sev: Severity) -> Ticket {
        Ticket::open(
            NewTicket {
                title: "t".into(),
                description: String::new(),
                kind: Kind::Incident,
                severity: sev,
                requester: None,
                assignee: None,
                team: Some("payments".into()),
                workload: Some("checkout".into()),
                tags: vec![],
                source: None,
                dedup_key: None,
            },
            chrono::Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
        )
    }

    fn policy(tiers: serde_json::Value) -> Result<EscalationPolicy, FieldError> {
        serde_json::from_value::<EscalationPolicy>(serde_json::json!({
            "name": "standard",
            "severities": ["SEV1", "SEV2"],
            "tiers": tiers,
        }))
        .unwrap()
        .validate()
    }

    #[test]
    fn tiers_are_checked_with_the_field_named() {
        let ok = policy(serde_json::json!([
            {"name": "L1", "team": "l1", "ack_timeout_minutes": 15},
            {"name": "L2", "team": "l2", "ack_timeout_minutes": 30},
            {"name": "aws", "aws": true},
        ]))
        .unwrap();
        assert_eq!(ok.timeout_at(0), Some(15));
        assert_eq!(ok.timeout_at(1), Some(30));
        assert_eq!(ok.timeout_at(2), None);

        let err = |tiers| policy(tiers).unwrap_err().field;
        assert_eq!(
            err(serde_json::json!([{"name": "L1", "team": "l1"}, {"name": "L2", "team": "l2"}])),
            "tiers[0].ack_timeout_minutes"
        );
        assert_eq!(
            err(
                serde_json::json!([{"name": "aws", "aws": true, "ack_timeout_minutes": 5}, {"name": "L2", "team": "l2"}])
            ),
            "tiers[0].aws"
        );
        assert_eq!(
            err(
                serde_json::json!([{"name": "L1", "ack_timeout_minutes": 5}, {"name": "L2", "team": "x"}])
            ),
            "tiers[0].team"
        );
        assert_eq!(
            err(
                serde_json::json!([{"name": "L1", "team": "a", "ack_timeout_minutes": 0}, {"name": "x", "team": "b"}])
            ),
            "tiers[0].ack_timeout_minutes"
        );
        assert_eq!(
            err(
                serde_json::json!([{"name": "L1", "team": "a", "ack_timeout_minutes": 5}, {"name": "L1", "team": "b"}])
            ),
            "tiers[1].name"
        );
        assert_eq!(err(serde_json::json!([])), "tiers");
        let twice = check_policies(vec![ok.clone(), ok]).unwrap_err();
        assert_eq!(twice.field, "[1].name");
    }

    #[test]
    fn first_matching_policy_wins() {
        let a = policy(serde_json::json!([{"name": "aws", "aws": true}])).unwrap();
        let mut b = a.clone();
        b.name = "anything".into();
        b.severities.clear();
        let policies = vec![a, b];
        assert_eq!(
            select_escalation(&policies, &ticket(Severity::Sev1), None).map(|p| &p.name[..]),
            Some("standard")
        );
        assert_eq!(
            select_escalation(&policies, &ticket(Severity::Sev4), None).map(|p| &p.name[..]),
            Some("anything")
        );
    }

    #[test]
    fn automatic_aws_rule_takes_open_production_emergencies_only() {
        let rule = AwsEscalation::default();
        let prod = Some(Environment::Production);
        assert!(rule.auto_applies(&ticket(Severity::Sev1), prod));
        assert!(rule.auto_applies(&ticket(Severity::Sev2), prod));
        assert!(!rule.auto_applies(&ticket(Severity::Sev3), prod));
        assert!(!rule.auto_applies(&ticket(Severity::Sev1), Some(Environment::Staging)));
        assert!(!rule.auto_applies(&ticket(Severity::Sev1), None));
        let mut resolved = ticket(Severity::Sev1);
        resolved.status = Status::Resolved;
        assert!(!rule.auto_applies(&resolved, prod));
        let off = AwsEscalation {
            auto: false,
            ..AwsEscalation::default()
        };
        assert!(!off.auto_applies(&ticket(Severity::Sev1), prod));
    }
}
