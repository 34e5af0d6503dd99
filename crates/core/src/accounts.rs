//! AWS accounts with their support plan, and which plan each account's workloads call for.
//!
//! Accounts come from two places: the configuration file (`[[aws.accounts]]`), which is their
//! only source and cannot be changed through the API, and the API, whose accounts are stored.

use std::collections::HashMap;
use std::sync::Arc;

use opsdesk_domain::sla::{default_policies, select_policy};
use opsdesk_domain::support::{advise, plan_mismatch};
use opsdesk_domain::{
    Advice, AdviceInput, AwsAccount, CaseCounts, CaseSeverity, Environment, Kind, Permission,
    Severity, Validated,
};
use opsdesk_store::AwsAccountRecord;
use serde_json::{json, Value};

use crate::audit::{record, whole};
use crate::{Actor, Desk, Error, Result};

impl Desk {
    /// Uses these accounts of the configuration file; they must be valid already.
    pub fn with_aws_accounts(mut self, accounts: Vec<AwsAccount>) -> Desk {
        self.settings.aws_accounts = Arc::new(accounts);
        self
    }

    /// Whether the configuration file lists any AWS account.
    pub fn has_configured_aws_accounts(&self) -> bool {
        !self.settings.aws_accounts.is_empty()
    }

    fn configured_account(&self, id: &str) -> Option<&AwsAccount> {
        self.settings.aws_accounts.iter().find(|a| a.id == id)
    }

    /// Every account: the configured ones in their order, then those added through the API by
    /// id. Where both hold an id, the configuration wins.
    pub async fn aws_accounts(&self, actor: &Actor) -> Result<Vec<AwsAccountRecord>> {
        actor.require(Permission::ReadInventory)?;
        let mut all: Vec<AwsAccountRecord> = self
            .settings
            .aws_accounts
            .iter()
            .map(AwsAccountRecord::configured)
            .collect();
        for stored in self.db().aws_accounts().await? {
            if self.configured_account(&stored.id).is_none() {
                all.push(stored);
            }
        }
        Ok(all)
    }

    pub async fn aws_account(&self, actor: &Actor, id: &str) -> Result<AwsAccountRecord> {
        actor.require(Permission::ReadInventory)?;
        if let Some(a) = self.configured_account(id) {
            return Ok(AwsAccountRecord::configured(a));
        }
        self.db()
            .aws_account(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("AWS account {id}")))
    }

    /// Creates the account, or replaces the one with the same id (admin). Accounts of the
    /// configuration file are refused: the file is their only source.
    pub async fn save_aws_account(
        &self,
        actor: &Actor,
        input: AwsAccount,
    ) -> Result<AwsAccountRecord> {
        actor.require_admin()?;
        let input = input.validate()?;
        self.refuse_configured(&input.id)?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let (saved, before) = tx.save_aws_account(&input, &actor.name, now).await?;
                record(
                    tx,
                    &actor,
                    now,
                    "aws_account.saved",
                    whole("aws_account", json!(before), json!(saved)),
                )
                .await?;
                Ok(saved)
            })
        })
        .await
    }

    /// Deletes an account added through the API (admin).
    pub async fn delete_aws_account(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_admin()?;
        self.refuse_configured(id)?;
        let (actor, id) = (actor.clone(), id.to_owned());
        self.change(move |tx, now| {
            Box::pin(async move {
                let gone = tx
                    .delete_aws_account(&id)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("AWS account {id}")))?;
                record(
                    tx,
                    &actor,
                    now,
                    "aws_account.deleted",
                    whole("aws_account", json!(gone), Value::Null),
                )
                .await
            })
        })
        .await
    }

    fn refuse_configured(&self, id: &str) -> Result<()> {
        match self.configured_account(id.trim()) {
            Some(_) => Err(Error::Conflict(format!(
                "AWS account {} is defined in the configuration file ([[aws.accounts]]); \
                 change it there",
                id.trim()
            ))),
            None => Ok(()),
        }
    }

    /// Which support plan each account's workloads call for (see [`advise`]), in the order of
    /// [`Desk::aws_accounts`]. The inputs:
    /// - the environments of the workloads in the account;
    /// - the fastest first response its SLA policies need: for an account with production
    ///   workloads, the first-response target of the policy (configured, else built-in) that
    ///   applies to a SEV1 or SEV2 incident on each of them; other accounts need none;
    /// - its case history: the AWS Support cases opsdesk was asked to open for it in the last
    ///   90 days, by the severity the ticket asked for (also those its plan could not take).
    pub async fn support_plan_advice(&self, actor: &Actor) -> Result<Vec<Advice>> {
        let accounts = self.aws_accounts(actor).await?;
        let workloads = self.db().workloads().await?;
        let since = self.now() - chrono::Duration::days(90);
        let mut cases: HashMap<String, CaseCounts> = HashMap::new();
        for (account, severity, n) in self.db().case_counts(since).await? {
            let counts = cases.entry(account).or_default();
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            match CaseSeverity::parse(&severity) {
                Some(CaseSeverity::Low) => counts.low += n,
                Some(CaseSeverity::Normal) => counts.normal += n,
                Some(CaseSeverity::High) => counts.high += n,
                Some(CaseSeverity::Urgent) => counts.urgent += n,
                Some(CaseSeverity::Critical) => counts.critical += n,
                None => {}
            }
        }
        let offered: HashMap<String, Vec<CaseSeverity>> = self
            .db()
            .severity_levels()
            .await?
            .into_iter()
            .filter_map(|l| Some((l.account_id, l.levels?)))
            .collect();
        let today = self.now().date_naive();
        let defaults = default_policies();
        let need = |workload: &str| {
            [Severity::Sev1, Severity::Sev2]
                .into_iter()
                .filter_map(|sev| {
                    select_policy(
                        &self.settings.sla.policies,
                        sev,
                        Kind::Incident,
                        Some(workload),
                    )
                    .or_else(|| select_policy(&defaults, sev, Kind::Incident, Some(workload)))
                    .map(|p| p.first_response_minutes)
                })
                .min()
        };
        Ok(accounts
            .iter()
            .map(|a| {
                let mine: Vec<_> = workloads
                    .iter()
                    .filter(|w| w.accounts.contains(&a.id))
                    .collect();
                let sla_first_response_minutes = mine
                    .iter()
                    .filter(|w| w.environment == Environment::Production)
                    .filter_map(|w| need(&w.name))
                    .min();
                let mut advice = advise(
                    &AdviceInput {
                        account: a.account(),
                        workload_environments: mine.iter().map(|w| w.environment).collect(),
                        sla_first_response_minutes,
                        cases_90_days: cases.get(&a.id).copied().unwrap_or_default(),
                    },
                    today,
                );
                advice.aws_mismatch = offered
                    .get(&a.id)
                    .and_then(|o| plan_mismatch(a.support_plan, o, today, a.govcloud));
                if let Some(m) = &advice.aws_mismatch {
                    advice.reasons.push(m.clone());
                }
                advice
            })
            .collect())
    }
}
