//! Saved views of the ticket queue: each person's named filters and sorts.

use opsdesk_domain::{FieldError, Permission};
use opsdesk_store::SavedView;

use crate::{Actor, Desk, Error, Result};

/// The most views one person keeps.
pub const MAX_VIEWS: i64 = 50;

impl Desk {
    /// The views the actor saved, by name.
    pub async fn saved_views(&self, actor: &Actor) -> Result<Vec<SavedView>> {
        actor.require(Permission::ReadTickets)?;
        Ok(self.db().saved_views(actor.identity()).await?)
    }

    /// Saves the queue's `query` under `name` for the actor, replacing their view of that name.
    pub async fn save_view(&self, actor: &Actor, name: &str, query: &str) -> Result<()> {
        actor.require(Permission::ReadTickets)?;
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(FieldError::new("name", "must be 1 to 60 characters").into());
        }
        if query.len() > 2_000 {
            return Err(FieldError::new("query", "must be at most 2,000 characters").into());
        }
        let owner = actor.identity().to_owned();
        let query = query.to_owned();
        self.change(move |tx, now| {
            Box::pin(async move {
                if tx.count_views(&owner, &name).await? >= MAX_VIEWS {
                    return Err(Error::Conflict(format!(
                        "you have {MAX_VIEWS} saved views; delete one first"
                    )));
                }
                tx.save_view(&owner, &name, &query, now).await?;
                Ok(())
            })
        })
        .await
    }

    /// Deletes one of the actor's views.
    pub async fn delete_view(&self, actor: &Actor, id: i64) -> Result<()> {
        actor.require(Permission::ReadTickets)?;
        let owner = actor.identity().to_owned();
        let gone = self
            .change(move |tx, _| Box::pin(async move { Ok(tx.delete_view(&owner, id).await?) }))
            .await?;
        if gone {
            Ok(())
        } else {
            Err(Error::NotFound(format!("saved view {id}")))
        }
    }
}
