//! AWS accounts with their support plan, and which plan each account's workloads call for.
//!
//! Accounts come from two places: the configuration file (`[[aws.accounts]]`), which is their
//! only source and cannot be changed through the API, and the API, whose accounts are stored.

use std::sync::Arc;

use opsdesk_domain::sla::default_policies;
use opsdesk_domain::support::advise;
use opsdesk_domain::{
    Advice, AdviceInput, AwsAccount, CaseCounts, Environment, Permission, Severity, Validated,
};
use opsdesk_store::AwsAccountRecord;
use serde_json::{json, Value};

use crate::audit::{record, whole};
use crate::{Actor, Desk, Error, Result};

impl Desk {
    /// Uses these accounts of the configuration file; they must be valid already.
    pub fn with_aws_accounts(mut self, accounts: Vec<AwsAccount>) -> Desk {
        self.aws_accounts = Arc::new(accounts);
        self
    }

    fn configured_account(&self, id: &str) -> Option<&AwsAccount> {
        self.aws_accounts.iter().find(|a| a.id == id)
    }

    /// Every account: the configured ones in their order, then those added through the API by
    /// id. Where both hold an id, the configuration wins.
    pub async fn aws_accounts(&self, actor: &Actor) -> Result<Vec<AwsAccountRecord>> {
        actor.require(Permission::ReadTickets)?;
        let mut all: Vec<AwsAccountRecord> = self
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
        actor.require(Permission::ReadTickets)?;
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
    /// [`Desk::aws_accounts`].
    ///
    /// Two inputs are not known yet and are given as such:
    /// - the SLA need is taken from the built-in policies (`sla::default_policies()`), not the
    ///   configured `[sla]` ones: an account with a production workload needs the fastest
    ///   first response of SEV1 and SEV2 (15 minutes); other accounts need none;
    /// - AWS Support cases are not stored yet, so every account counts no cases in the last
    ///   90 days.
    pub async fn support_plan_advice(&self, actor: &Actor) -> Result<Vec<Advice>> {
        let accounts = self.aws_accounts(actor).await?;
        let workloads = self.db().workloads().await?;
        let production_need = default_policies()
            .iter()
            .filter(|p| matches!(p.severity, Severity::Sev1 | Severity::Sev2))
            .map(|p| p.first_response_minutes)
            .min();
        Ok(accounts
            .iter()
            .map(|a| {
                let environments: Vec<Environment> = workloads
                    .iter()
                    .filter(|w| w.accounts.contains(&a.id))
                    .map(|w| w.environment)
                    .collect();
                let production = environments.contains(&Environment::Production);
                advise(&AdviceInput {
                    account: a.account(),
                    workload_environments: environments,
                    sla_first_response_minutes: production_need.filter(|_| production),
                    cases_90_days: CaseCounts::default(),
                })
            })
            .collect())
    }
}
