//! Workloads: named systems with an environment. A signal's workload decides its team and
//! whether production is affected.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wildmatch::WildMatch;

use super::Signal;
use crate::ticket::named_enum;
use crate::validation::{FieldError, Validated, NAME_MAX};

named_enum! {
    Environment {
        Production => "production",
        Staging => "staging",
        Development => "development",
    }
}

const LIST_MAX: usize = 200;

/// A workload as a client sends it (create or replace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkload {
    /// Unique; 1 to 200 letters, digits, `-`, `_` and `.`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,200}$")]
    pub name: String,
    pub environment: Environment,
    /// The owning team.
    #[serde(default)]
    pub team: Option<String>,
    /// AWS account ids (12 digits). Empty: any account.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// AWS regions. Empty: any region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Resource ARN patterns, `*` and `?` as wildcards.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Tag selector: every pair must be on the signal.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A stored workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Workload {
    pub id: i64,
    pub name: String,
    pub environment: Environment,
    pub team: Option<String>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub resources: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn list(
    field: &str,
    items: Vec<String>,
    check: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>, FieldError> {
    if items.len() > LIST_MAX {
        return Err(FieldError::new(
            field,
            format!("at most {LIST_MAX} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let item = item.trim().to_owned();
        if !check(&item) {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                format!("`{item}` is not {what}"),
            ));
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

impl Validated for NewWorkload {
    fn validate(mut self) -> Result<Self, FieldError> {
        self.name = self.name.trim().to_owned();
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.chars().count() <= NAME_MAX
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !name_ok(&self.name) {
            return Err(FieldError::new(
                "name",
                "must be 1 to 200 letters, digits, `-`, `_` or `.`",
            ));
        }
        self.team = self
            .team
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        self.accounts = list(
            "accounts",
            self.accounts,
            |a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()),
            "a 12-digit AWS account id",
        )?;
        self.regions = list(
            "regions",
            self.regions,
            |r| {
                !r.is_empty()
                    && r.len() <= 32
                    && r.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            },
            "an AWS region name such as eu-west-1",
        )?;
        self.resources = list(
            "resources",
            self.resources,
            |p| !p.is_empty() && p.len() <= 2048,
            "a resource pattern",
        )?;
        if self.tags.len() > LIST_MAX {
            return Err(FieldError::new(
                "tags",
                format!("at most {LIST_MAX} entries"),
            ));
        }
        if let Some(k) = self.tags.keys().find(|k| k.trim().is_empty()) {
            return Err(FieldError::new(
                format!("tags.{k}"),
                "tag keys must not be empty",
            ));
        }
        Ok(self)
    }
}

impl Workload {
    /// How well this workload claims the signal; `None` when it does not.
    fn claim(&self, s: &Signal) -> Option<u32> {
        let mut score = 0;
        if !self.accounts.is_empty() {
            let account = s.account.as_deref()?;
            if !self.accounts.iter().any(|a| a == account) {
                return None;
            }
            score += 1;
        }
        if !self.regions.is_empty() {
            if let Some(region) = s.region.as_deref() {
                if !self.regions.iter().any(|r| r == region) {
                    return None;
                }
                score += 1;
            }
        }
        if !self.resources.is_empty() || !self.tags.is_empty() {
            let by_resource = self.resources.iter().any(|p| {
                let pattern = WildMatch::new(p);
                s.resources.iter().any(|r| pattern.matches(r))
            });
            let by_tags =
                !self.tags.is_empty() && self.tags.iter().all(|(k, v)| s.tags.get(k) == Some(v));
            if !by_resource && !by_tags {
                return None;
            }
            score += 4;
        }
        (score > 0).then_some(score)
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
}

/// The workload a signal belongs to: the one that claims it most specifically (resources or
/// tags over accounts over regions); production first on a tie, then by name.
pub fn match_workload<'a>(workloads: &'a [Workload], s: &Signal) -> Option<&'a Workload> {
    workloads
        .iter()
        .filter_map(|w| w.claim(s).map(|score| (score, w)))
        .max_by(|(a, wa), (b, wb)| {
            a.cmp(b)
                .then(wa.is_production().cmp(&wb.is_production()))
                .then(wb.name.cmp(&wa.name))
        })
        .map(|(_, w)| w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{Signal, SignalState};

    fn workload(name: &str, env: Environment, accounts: &[&str], resources: &[&str]) -> Workload {
        Workload {
            id: 1,
            name: name.into(),
            environment: env,
            team: None,
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            regions: vec![],
            resources: resources.iter().map(|s| s.to_string()).collect(),
            tags: BTreeMap::new(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn signal(account: &str, resources: &[&str]) -> Signal {
        Signal {
            source: "aws.health".into(),
            receipt_key: String::new(),
            dedup_key: String::new(),
            state: SignalState::Firing,
            kind: "issue".into(),
            category: None,
            severity: None,
            account: Some(account.into()),
            region: Some("eu-west-1".into()),
            service: None,
            resources: resources.iter().map(|s| s.to_string()).collect(),
            tags: BTreeMap::new(),
            title: String::new(),
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
    fn resource_patterns_beat_account_matches() {
        let ws = vec![
            workload("shared", Environment::Staging, &["111111111111"], &[]),
            workload(
                "shop",
                Environment::Production,
                &["111111111111"],
                &["arn:aws:ec2:*:instance/i-shop*"],
            ),
        ];
        let s = signal(
            "111111111111",
            &["arn:aws:ec2:eu-west-1:111111111111:instance/i-shop1"],
        );
        assert_eq!(match_workload(&ws, &s).unwrap().name, "shop");
        let other = signal(
            "111111111111",
            &["arn:aws:ec2:eu-west-1:111111111111:instance/i-x"],
        );
        assert_eq!(match_workload(&ws, &other).unwrap().name, "shared");
        assert!(match_workload(&ws, &signal("222222222222", &[])).is_none());
    }

    #[test]
    fn validation_names_the_field() {
        let w = NewWorkload {
            name: "shop".into(),
            environment: Environment::Production,
            team: None,
            accounts: vec!["12".into()],
            regions: vec![],
            resources: vec![],
            tags: BTreeMap::new(),
        };
        assert_eq!(w.validate().unwrap_err().field, "accounts[0]");
    }
}
