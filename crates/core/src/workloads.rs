//! Workloads and maintenance windows: what signals are matched against.

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::{Changes, FieldChange};
use opsdesk_domain::validation::{check_time, FieldError};
use opsdesk_domain::{NewWorkload, Permission, Validated, Workload};
use opsdesk_store::{MaintenanceWindow, NewMaintenanceWindow, Tx};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::audit::{record, whole};
use crate::{Actor, Desk, Error, Result};

/// A maintenance window a person plans for a workload: signals of that workload inside it are
/// expected and open no ticket (a resolve still resolves).
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWindow {
    pub workload: String,
    pub title: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

async fn save_one(
    tx: &mut Tx,
    actor: &Actor,
    w: &NewWorkload,
    now: DateTime<Utc>,
) -> Result<Workload> {
    let (saved, before) = tx.save_workload(w, now).await?;
    let action = if before.is_some() {
        "workload.updated"
    } else {
        "workload.created"
    };
    record(
        tx,
        actor,
        now,
        action,
        whole("workload", json!(before), json!(saved)),
    )
    .await?;
    Ok(saved)
}

impl Desk {
    pub async fn workloads(&self, actor: &Actor) -> Result<Vec<Workload>> {
        actor.require(Permission::ReadInventory)?;
        Ok(self.db().workloads().await?)
    }

    /// The names a new ticket may give as its workload, by name: all that someone who raises
    /// tickets learns of the workloads (not their accounts, resources or owners).
    pub async fn workload_names(&self, actor: &Actor) -> Result<Vec<String>> {
        actor.require(Permission::CreateTickets)?;
        Ok(self
            .db()
            .workloads()
            .await?
            .into_iter()
            .map(|w| w.name)
            .collect())
    }

    pub async fn workload(&self, actor: &Actor, name: &str) -> Result<Workload> {
        actor.require(Permission::ReadInventory)?;
        self.db()
            .workload(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("workload {name}")))
    }

    /// Creates the workload, or replaces the one with the same name.
    pub async fn save_workload(&self, actor: &Actor, input: NewWorkload) -> Result<Workload> {
        actor.require_admin()?;
        let input = input.validate()?;
        self.import_workloads(actor, vec![input])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Conflict("the workload was not saved".into()))
    }

    /// Creates or replaces many workloads in one transaction: all or none.
    pub async fn import_workloads(
        &self,
        actor: &Actor,
        inputs: Vec<NewWorkload>,
    ) -> Result<Vec<Workload>> {
        actor.require_admin()?;
        if inputs.is_empty() {
            return Err(FieldError::new("workloads", "no workload given").into());
        }
        let single = inputs.len() == 1;
        let inputs = inputs
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                w.validate()
                    .map_err(|e| if single { e } else { e.within(i) })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let actor = actor.clone();
        let saved = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let mut out = Vec::with_capacity(inputs.len());
                    for w in &inputs {
                        out.push(save_one(tx, &actor, w, now).await?);
                    }
                    Ok(out)
                })
            })
            .await?;
        self.caches.catalog.clear();
        self.caches.routing.clear();
        Ok(saved)
    }

    pub async fn delete_workload(&self, actor: &Actor, name: &str) -> Result<()> {
        actor.require_admin()?;
        let (actor, name) = (actor.clone(), name.to_owned());
        self.change(move |tx, now| {
            Box::pin(async move {
                let gone = tx
                    .delete_workload(&name)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("workload {name}")))?;
                record(
                    tx,
                    &actor,
                    now,
                    "workload.deleted",
                    whole("workload", json!(gone), Value::Null),
                )
                .await
            })
        })
        .await?;
        self.caches.catalog.clear();
        self.caches.routing.clear();
        Ok(())
    }

    /// Maintenance windows overlapping `from..to`: AWS Health scheduled changes and planned
    /// windows.
    pub async fn maintenance(
        &self,
        actor: &Actor,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MaintenanceWindow>> {
        actor.require(Permission::ReadInventory)?;
        let from = check_time("from", from)?;
        let to = check_time("to", to)?;
        if to <= from {
            return Err(FieldError::new("to", "must be after from").into());
        }
        Ok(self.db().maintenance_windows(from, to).await?)
    }

    pub async fn plan_maintenance(
        &self,
        actor: &Actor,
        input: NewWindow,
    ) -> Result<MaintenanceWindow> {
        actor.require(Permission::WriteTickets)?;
        let title = input.title.trim().to_owned();
        if title.is_empty() || title.chars().count() > 300 {
            return Err(FieldError::new("title", "must be 1 to 300 characters").into());
        }
        check_time("start", input.start)?;
        check_time("end", input.end)?;
        if input.end <= input.start {
            return Err(FieldError::new("end", "must be after start").into());
        }
        if self.db().workload(&input.workload).await?.is_none() {
            return Err(FieldError::new(
                "workload",
                format!("no workload is named `{}`", input.workload),
            )
            .into());
        }
        let actor = actor.clone();
        let window = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let w = tx
                        .save_maintenance_window(
                            &NewMaintenanceWindow {
                                origin: "user".into(),
                                dedup_key: None,
                                workload: Some(input.workload),
                                title,
                                service: None,
                                start: input.start,
                                end: Some(input.end),
                                resources: Vec::new(),
                                ticket_id: None,
                                created_by: actor.name.clone(),
                            },
                            now,
                        )
                        .await?;
                    let mut c = Changes::new();
                    c.insert(
                        "window".into(),
                        FieldChange {
                            before: Value::Null,
                            after: json!(w),
                        },
                    );
                    record(tx, &actor, now, "maintenance.planned", c).await?;
                    Ok(w)
                })
            })
            .await?;
        self.caches.catalog.clear();
        Ok(window)
    }

    pub async fn cancel_maintenance(&self, actor: &Actor, id: i64) -> Result<()> {
        actor.require(Permission::WriteTickets)?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let gone = tx
                    .delete_maintenance_window(id)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("planned maintenance window {id}")))?;
                let mut c = Changes::new();
                c.insert(
                    "window".into(),
                    FieldChange {
                        before: json!(gone),
                        after: Value::Null,
                    },
                );
                record(tx, &actor, now, "maintenance.cancelled", c).await
            })
        })
        .await?;
        self.caches.catalog.clear();
        Ok(())
    }
}
