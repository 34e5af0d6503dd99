//! Connectors: opsdesk tickets kept in step with tickets in another ticketing system.
//!
//! A link records what both sides held at the last sync (title, status, severity), the newest
//! opsdesk comment sent and the newest remote change taken. A pass of the connector:
//! 1. links the new tickets `create_for` asks for;
//! 2. asks the other side which of its tickets changed since it last looked (with an overlap),
//!    hurries their links and, with `import_new`, brings in tickets made there;
//! 3. syncs each due link: creates the remote ticket (or finds the one an interrupted pass
//!    made, by the key in its subject), takes the remote changes after the cursor in the same
//!    transaction that moves the cursor (so each is taken once), then sends opsdesk's field
//!    changes and comments.
//!
//! A change opsdesk made over there is recognised by its author (the connector's user) and not
//! taken back. A field is overwritten only on a side that still holds the value last synced;
//! when both sides changed it, the ticket gets an internal note and the link says so. Nothing
//! is lost while the other side is down: what is to be sent is read from the ticket itself,
//! and the link is tried again with a growing wait (or when the other side says, on 429).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use opsdesk_domain::audit::AuditEntry;
use opsdesk_domain::channel::truncate;
use opsdesk_domain::connector::{title_from_subject, ConnectorSpec};
use opsdesk_domain::validation::{DESCRIPTION_MAX, TITLE_MAX};
use opsdesk_domain::{
    FieldError, NewTicket, Permission, Role, Severity, Status, Ticket, TicketPatch, Validated,
};
use opsdesk_store::{ExternalLink, NewExternalLink, Tx};
use serde_json::{json, Value};

use crate::audit::whole;
use crate::outbox::Routing;
use crate::tickets::{comment_on, insert_ticket, NewCommentIn};
use crate::{Actor, Desk, Error, Result};

/// A ticket of the other system as opsdesk reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTicket {
    pub id: String,
    /// Where people open it.
    pub url: String,
    pub subject: String,
    pub status: String,
    pub priority: i64,
    /// Made by the user opsdesk acts as.
    pub by_us: bool,
    /// In the connector's queue or one its `team_map` names (tickets elsewhere are not
    /// imported).
    pub in_queue: bool,
    /// Where it is over there, as `team_map` names places: RT's queue, Jira's project key,
    /// ServiceNow's assignment group; empty when unknown.
    pub place: String,
    /// Its Jira issue type or ServiceNow category, as `kind_map` names them; empty for RT.
    pub category: String,
    /// Who changed it last over there, where the system says (the author of changes read
    /// from the ticket's state).
    pub updated_by: String,
}

/// How a ticket made in the other system began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Where its creation stands in the system's change stream (compared with the first
    /// look's position: only tickets made after it are imported).
    pub at: i64,
    /// The link's change cursor that takes everything after the creation.
    pub cursor: i64,
    pub description: String,
}

/// What one remote change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteChangeKind {
    /// Correspondence (public) or a comment (internal).
    Message {
        public: bool,
        body: String,
    },
    Status(String),
    Subject(String),
    Priority(i64),
    /// Anything opsdesk does not mirror.
    Other,
}

/// One change of a remote ticket, in the order the other system made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteChange {
    /// Grows with each change (RT: the transaction id).
    pub id: i64,
    /// Made by the user opsdesk acts as: opsdesk's own change, not taken back.
    pub by_us: bool,
    /// Who made it over there.
    pub author: String,
    pub kind: RemoteChangeKind,
}

/// A remote ticket's history, as an import reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHistory {
    pub created_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub description: String,
    /// Correspondence and comments after the creation, oldest first.
    pub messages: Vec<crate::import::ImportedMessage>,
    /// The newest change read: the link's cursor.
    pub cursor: i64,
    /// When its status last changed (for a resolved one: when it was resolved).
    pub status_changed_at: Option<DateTime<Utc>>,
}

/// A ticket for the other system to create.
#[derive(Debug, Clone)]
pub struct RemoteNew {
    pub subject: String,
    pub description: String,
    pub status: String,
    pub priority: i64,
    /// The `team_map` place for the ticket's team; `None` creates it in the connector's
    /// queue (ServiceNow: with no assignment group).
    pub place: Option<String>,
    /// The `kind_map` issue type or category for the ticket's kind.
    pub category: Option<String>,
}

/// Fields to change on a remote ticket; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteFields {
    pub subject: Option<String>,
    pub status: Option<String>,
    pub priority: Option<i64>,
}

impl RemoteFields {
    fn is_empty(&self) -> bool {
        *self == RemoteFields::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The other side is down, slow or answered 5xx: try again later.
    #[error("{0}")]
    Unavailable(String),
    /// 429: try again after this long.
    #[error("asked to wait {} s before trying again", .0.num_seconds())]
    RateLimited(Duration),
    /// The other side refused the request (4xx): a setting or the data is wrong.
    #[error("{0}")]
    Refused(String),
}

/// The other system, as a connector uses it.
#[async_trait::async_trait]
pub trait RemoteSystem: Send + Sync {
    fn spec(&self) -> &ConnectorSpec;
    /// The ticket opsdesk made for `key` earlier, found by the key in its subject.
    async fn find(&self, key: &str) -> std::result::Result<Option<RemoteTicket>, RemoteError>;
    async fn create(&self, t: &RemoteNew) -> std::result::Result<RemoteTicket, RemoteError>;
    async fn ticket(&self, id: &str) -> std::result::Result<RemoteTicket, RemoteError>;
    async fn update(&self, id: &str, f: &RemoteFields) -> std::result::Result<(), RemoteError>;
    /// Correspondence when `public`, an internal comment otherwise.
    async fn message(
        &self,
        id: &str,
        body: &str,
        public: bool,
    ) -> std::result::Result<(), RemoteError>;
    /// The ticket's changes after change `after`, oldest first.
    async fn changes(
        &self,
        id: &str,
        after: i64,
    ) -> std::result::Result<Vec<RemoteChange>, RemoteError>;
    /// How the ticket began: where in the change stream, and its description.
    async fn created(&self, id: &str) -> std::result::Result<Option<Created>, RemoteError>;
    /// A page of the tickets a query in the system's own language finds (RT: TicketSQL),
    /// oldest first, and whether there are more after it: `page` counts from 1.
    async fn search(
        &self,
        query: &str,
        page: usize,
    ) -> std::result::Result<(Vec<RemoteTicket>, bool), RemoteError> {
        let _ = (query, page);
        Err(RemoteError::Refused(format!(
            "importing from {} is not built; use a CSV export and opsdesk import csv",
            self.spec().kind.label()
        )))
    }
    /// The ticket's whole history, for an import.
    async fn history(&self, id: &str) -> std::result::Result<RemoteHistory, RemoteError> {
        let _ = id;
        Err(RemoteError::Refused(format!(
            "importing from {} is not built",
            self.spec().kind.label()
        )))
    }
    /// Whether title, status and priority are read from the ticket as it is (compared with
    /// what was last synced) rather than from `changes`, which then brings messages only.
    fn fields_by_state(&self) -> bool {
        false
    }
    /// The remote tickets a call to opsdesk's webhook for this connector is about, once its
    /// authenticity is checked against `webhook_secret` (`header` reads the call's headers by
    /// lower-case name). The call only hurries their sync: what changed is read through the
    /// API, so a call sent twice, late or forged with a stale body changes nothing.
    fn webhook(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> std::result::Result<Vec<String>, RemoteError>;
    /// The newest change the other system has made to any ticket (the first look starts
    /// there).
    async fn newest_change(&self) -> std::result::Result<i64, RemoteError>;
    /// The tickets changed after change `after` (a bounded number of changes), and the newest
    /// change looked at.
    async fn changed_after(
        &self,
        after: i64,
    ) -> std::result::Result<(Vec<String>, i64), RemoteError>;
}

/// How long a link is leased to one node's pass.
const LEASE: Duration = Duration::minutes(5);
/// How long a push by hand waits for the remote ticket to be made before it answers with the
/// link as it is (the sync goes on).
const PUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
/// Links synced per pass at most.
const PASS_LINKS: usize = 200;
/// A link with nothing new is looked at again after this many poll intervals anyway.
const RECONCILE_POLLS: i32 = 30;

/// The wait before the next try after `attempts` failures in a row: 30 s doubling, at most an
/// hour.
fn retry_wait(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    Duration::seconds(30 * 2_i64.pow(doublings)).min(Duration::hours(1))
}

/// The name comments and audit entries of a connector carry: `rt:alice` for a change alice
/// made in the connector `rt`.
fn author(connector: &str, who: &str) -> String {
    format!("{connector}:{who}")
}

fn connector_actor(connector: &str) -> Actor {
    Actor::new(format!("connector:{connector}"), Role::Agent)
}

/// Whether a comment came from the connector's side (mirrored in, so not sent back).
fn came_from(connector: &str, comment_author: &str) -> bool {
    comment_author
        .strip_prefix(connector)
        .is_some_and(|rest| rest.starts_with(':'))
}

impl Desk {
    /// Uses these connectors (from `[[connectors]]`), each with its system's client.
    pub fn with_connectors(mut self, remotes: Vec<Arc<dyn RemoteSystem>>) -> Desk {
        self.settings.connectors = Arc::new(remotes);
        self
    }

    /// The clients of the configured connectors, for their loops.
    pub fn connector_remotes(&self) -> Vec<Arc<dyn RemoteSystem>> {
        self.settings.connectors.iter().cloned().collect()
    }

    /// The configured connectors, secrets masked.
    pub fn connectors(&self, actor: &Actor) -> Result<Vec<ConnectorSpec>> {
        actor.require(Permission::ReadInventory)?;
        Ok(self
            .settings
            .connectors
            .iter()
            .map(|r| r.spec().redacted())
            .collect())
    }

    /// The client of the connector named `name`.
    pub fn connector_remote(&self, name: &str) -> Result<Arc<dyn RemoteSystem>> {
        self.settings
            .connectors
            .iter()
            .find(|r| r.spec().name == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .settings
                    .connectors
                    .iter()
                    .map(|r| r.spec().name.as_str())
                    .collect();
                Error::Invalid(FieldError::new(
                    "connector",
                    if known.is_empty() {
                        format!("no connector {name:?}: none is configured ([[connectors]])")
                    } else {
                        format!("no connector {name:?}; configured: {}", known.join(", "))
                    },
                ))
            })
    }

    /// The ticket's links with other systems.
    pub async fn external_links(&self, actor: &Actor, ticket_id: i64) -> Result<Vec<ExternalLink>> {
        actor.require(Permission::ReadInventory)?;
        self.ticket(actor, ticket_id).await?;
        Ok(self.db().external_links(ticket_id).await?)
    }

    /// Links the ticket with `connector` and syncs it at once, so that the answer shows the
    /// remote ticket (when the other side is down, the link says why and the connector keeps
    /// trying). A ticket linked already keeps its link, synced on the connector's next pass
    /// (within a second) even if it was waiting to retry; the bool says whether it is new.
    pub async fn push_ticket(
        &self,
        actor: &Actor,
        ticket_id: i64,
        connector: &str,
    ) -> Result<(ExternalLink, bool)> {
        actor.require(Permission::WriteTickets)?;
        let remote = self.connector_remote(connector)?;
        self.ticket(actor, ticket_id).await?;
        let actor = actor.clone();
        let spec = remote.spec().clone();
        let (link, created) = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let ticket = tx.ticket_for_update(ticket_id).await?.ok_or_else(|| {
                        Error::NotFound(format!("ticket {}", Ticket::key_for(ticket_id)))
                    })?;
                    let linked = link_ticket(tx, &spec, &ticket, &actor.name, now).await?;
                    if !linked.1 {
                        // Pushed again: synced on the next pass, even one that was waiting
                        // to retry.
                        tx.hurry_external_link(&spec.name, ticket_id, now).await?;
                    }
                    Ok(linked)
                })
            })
            .await?;
        if link.remote_id.is_some() {
            return Ok((link, created));
        }
        let name = link.connector.clone();
        let leased = self
            .change(move |tx, now| {
                Box::pin(async move {
                    Ok(tx
                        .lease_external_link(&name, ticket_id, now, now + LEASE)
                        .await?)
                })
            })
            .await?;
        if let Some(leased) = leased {
            // Synced in a task of its own, so that a request given up half way does not stop
            // a sync half done (the task releases the lease); the answer waits a little.
            let desk = self.clone();
            let remote = remote.clone();
            let sync = tokio::spawn(async move { desk.sync_link(remote.as_ref(), leased).await });
            match tokio::time::timeout(PUSH_WAIT, sync).await {
                Ok(Ok(done)) => done?,
                Ok(Err(e)) => return Err(Error::Internal(format!("the sync stopped: {e}"))),
                // Still at work: the link as it is now is the answer.
                Err(_) => {}
            }
        } else {
            // A connector pass is making it right now: its outcome is the answer, if it comes
            // soon.
            let started = tokio::time::Instant::now();
            while started.elapsed() < PUSH_WAIT {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                let now_link = self.link_with(ticket_id, &link.connector).await?;
                if let Some(l) = now_link.filter(|l| l.updated_at > link.updated_at) {
                    return Ok((l, created));
                }
            }
        }
        let now_link = self
            .link_with(ticket_id, &link.connector)
            .await?
            .unwrap_or(link);
        Ok((now_link, created))
    }

    /// The ticket's link with `connector`, as stored now.
    async fn link_with(&self, ticket_id: i64, connector: &str) -> Result<Option<ExternalLink>> {
        Ok(self
            .db()
            .external_links(ticket_id)
            .await?
            .into_iter()
            .find(|l| l.connector == connector))
    }

    /// One pass of a connector (see the module's words); `look` asks the other side what
    /// changed there too. Returns how many links it synced.
    pub async fn sync_connector(&self, remote: &dyn RemoteSystem, look: bool) -> Result<usize> {
        let spec = remote.spec().clone();
        if !look && self.db().connector_idle(&spec.name, self.now()).await? {
            return Ok(0);
        }
        self.link_new_tickets(&spec).await?;
        if look {
            if let Err(e) = self.look_for_remote_changes(remote).await {
                tracing::warn!(connector = %spec.name, error = %e, "asking what changed failed");
            }
        }
        let mut done = 0;
        while done < PASS_LINKS {
            let name = spec.name.clone();
            let claimed = self
                .change(move |tx, now| {
                    Box::pin(async move {
                        Ok(tx.claim_external_links(&name, now, now + LEASE, 1).await?)
                    })
                })
                .await?;
            let Some(link) = claimed.into_iter().next() else {
                break;
            };
            done += 1;
            let key = Ticket::key_for(link.ticket_id);
            if let Err(e) = self.sync_link(remote, link).await {
                tracing::warn!(connector = %spec.name, ticket = %key, error = %e, "syncing a linked ticket failed");
            }
        }
        Ok(done)
    }

    /// Links the tickets made since the last pass that `create_for` asks for.
    async fn link_new_tickets(&self, spec: &ConnectorSpec) -> Result<()> {
        let spec = spec.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let mut cursor = tx.connector_cursor(&spec.name, now).await?;
                let severities: Vec<&str> = spec
                    .create_for
                    .severities
                    .iter()
                    .map(|s| s.as_str())
                    .collect();
                loop {
                    let (ids, last) = tx
                        .tickets_of_severities_after(cursor.last_ticket_id, &severities, 500)
                        .await?;
                    if last == cursor.last_ticket_id {
                        break;
                    }
                    for id in ids {
                        if let Some(ticket) = tx.ticket_for_update(id).await? {
                            let actor = connector_actor(&spec.name);
                            link_ticket(tx, &spec, &ticket, &actor.name, now).await?;
                        }
                    }
                    cursor.last_ticket_id = last;
                }
                tx.save_connector_cursor(&spec.name, &cursor, now).await?;
                Ok(())
            })
        })
        .await
    }

    /// Asks the other side what changed since the last look: hurries those links, and with
    /// `import_new` brings in the tickets made there.
    async fn look_for_remote_changes(&self, remote: &dyn RemoteSystem) -> Result<()> {
        let spec = remote.spec().clone();
        let name = spec.name.clone();
        let cursor = self
            .change(move |tx, now| {
                Box::pin(async move { Ok(tx.connector_cursor(&name, now).await?) })
            })
            .await?;
        let unavailable = |e: RemoteError| Error::Internal(format!("{}: {e}", spec.name));
        // Tickets made after the first look are imported; a failed import is tried again
        // when the ticket next changes.
        let first = cursor.first_cursor.unwrap_or(i64::MAX);
        let (changed, newest) = match cursor.remote_cursor {
            // The first look: from now on.
            None => (
                Vec::new(),
                remote.newest_change().await.map_err(unavailable)?,
            ),
            Some(after) => remote.changed_after(after).await.map_err(unavailable)?,
        };
        let name = spec.name.clone();
        let ids = changed.clone();
        let unlinked = self
            .change(move |tx, now| {
                Box::pin(async move { Ok(tx.hurry_external_links(&name, &ids, now).await?) })
            })
            .await?;
        self.import_unlinked(remote, &unlinked, first).await?;
        let name = spec.name.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let mut cursor = tx.connector_cursor(&name, now).await?;
                cursor.remote_cursor = Some(cursor.remote_cursor.map_or(newest, |c| c.max(newest)));
                cursor.first_cursor = cursor.first_cursor.or(Some(newest));
                tx.save_connector_cursor(&name, &cursor, now).await?;
                Ok(())
            })
        })
        .await
    }

    /// With `import_new`, brings in those of `unlinked` made over there (not by opsdesk) after
    /// the first look's position `first`.
    async fn import_unlinked(
        &self,
        remote: &dyn RemoteSystem,
        unlinked: &[String],
        first: i64,
    ) -> Result<()> {
        let spec = remote.spec();
        if !spec.import_new {
            return Ok(());
        }
        for id in unlinked {
            let t = match remote.ticket(id).await {
                Ok(t) => t,
                // Gone, or not the connector user's to see.
                Err(RemoteError::Refused(_)) => continue,
                Err(e) => return Err(Error::Internal(format!("{}: {e}", spec.name))),
            };
            if t.by_us || !t.in_queue {
                continue;
            }
            // One that cannot be imported does not hold up the rest: it is logged, and
            // looked at again when it next changes.
            if let Err(e) = self.import_remote(remote, &t, first).await {
                tracing::warn!(connector = %spec.name, remote = %t.id, error = %e, "importing a ticket failed");
            }
        }
        Ok(())
    }

    /// A call of the other system to the connector's webhook: once `RemoteSystem::webhook`
    /// has checked it, the linked tickets it names are synced on the connector's next pass
    /// (within a second), and with `import_new` a ticket it names that is not linked yet has
    /// the connector look at the other side at once (which imports it). Nothing here calls
    /// the other system, so a call is answered at once whatever state that system is in.
    /// Returns how many remote tickets it named. Every refusal is the same to the caller
    /// (which connectors exist is not told); the log says why.
    pub async fn connector_webhook(
        &self,
        connector: &str,
        header: &(dyn Fn(&str) -> Option<String> + Sync),
        body: &[u8],
    ) -> Result<usize> {
        let refused = || Error::Forbidden("the call is not one this connector accepts".into());
        let Some(remote) = self
            .settings
            .connectors
            .iter()
            .find(|r| r.spec().name == connector)
            .cloned()
        else {
            tracing::warn!(connector = ?connector, "webhook call for a connector that is not configured");
            return Err(refused());
        };
        let ids = remote.webhook(header, body).map_err(|e| {
            tracing::warn!(connector = ?connector, error = %e, "webhook call refused");
            refused()
        })?;
        let name = connector.to_owned();
        let named = ids.len();
        let unlinked = self
            .change(move |tx, now| {
                Box::pin(async move { Ok(tx.hurry_external_links(&name, &ids, now).await?) })
            })
            .await?;
        if remote.spec().import_new && !unlinked.is_empty() {
            if let Ok(mut looks) = self.caches.connector_looks.lock() {
                looks.insert(connector.to_owned());
            }
        }
        Ok(named)
    }

    /// Whether a webhook call asked the connector to look at the other side now (asked once).
    pub fn take_connector_look(&self, connector: &str) -> bool {
        self.caches
            .connector_looks
            .lock()
            .map(|mut looks| looks.remove(connector))
            .unwrap_or(false)
    }

    /// Makes an opsdesk ticket of a ticket made in the other system after change `after`
    /// (older ones that merely changed are left there), linked to it.
    async fn import_remote(
        &self,
        remote: &dyn RemoteSystem,
        t: &RemoteTicket,
        after: i64,
    ) -> Result<()> {
        let spec = remote.spec().clone();
        let created = remote
            .created(&t.id)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        // From its creation on: replies made since over there are taken by the first sync.
        let Some(Created {
            cursor,
            description,
            ..
        }) = created.filter(|c| c.at > after)
        else {
            return Ok(());
        };
        let mut input = NewTicket {
            title: remote_title(&t.subject),
            description: truncate(&plain(&description), DESCRIPTION_MAX),
            kind: spec.kind_for(&t.category),
            severity: spec.severity(t.priority),
            requester: None,
            assignee: None,
            team: spec.team_for(&t.place),
            workload: None,
            tags: vec![spec.name.clone()],
            source: Some(spec.kind.as_str().into()),
            dedup_key: None,
        };
        if input.title.trim().is_empty() {
            input.title = format!("{} ticket {}", spec.kind.label(), t.id);
        }
        let input = input.validate()?;
        let routing = self.routing().await?;
        let remote_ticket = t.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                if tx
                    .external_link_by_remote(&spec.name, &remote_ticket.id)
                    .await?
                    .is_some()
                {
                    return Ok(());
                }
                let actor = connector_actor(&spec.name);
                let ticket = insert_ticket(tx, &routing, &actor, input, now).await?;
                let (link, _) = tx
                    .insert_external_link(&NewExternalLink {
                        connector: &spec.name,
                        ticket_id: ticket.id,
                        remote: Some((&remote_ticket.id, &remote_ticket.url)),
                        synced_title: &ticket.title,
                        synced_status: ticket.status.as_str(),
                        synced_severity: ticket.severity.as_str(),
                        remote_cursor: cursor,
                        sent_comment_id: 0,
                        created_by: &actor.name,
                        at: now,
                    })
                    .await?;
                audit_link(
                    tx,
                    &actor.name,
                    &ticket,
                    &link,
                    "ticket.external_imported",
                    now,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Syncs one leased link both ways; a failure over there is kept on the link and tried
    /// again later.
    async fn sync_link(&self, remote: &dyn RemoteSystem, link: ExternalLink) -> Result<()> {
        let outcome = self.sync_link_once(remote, &link).await;
        let name = link.connector.clone();
        let ticket_id = link.ticket_id;
        let poll = Duration::seconds(i64::try_from(remote.spec().poll_seconds).unwrap_or(60));
        match outcome {
            Ok(read_at) => {
                self.change(move |tx, now| {
                    Box::pin(async move {
                        let Some(mut l) = tx.external_link(&name, ticket_id).await? else {
                            return Ok(());
                        };
                        l.attempts = 0;
                        l.detail = conflict_part(&l.detail).to_owned();
                        l.last_synced_at = Some(read_at);
                        l.next_sync_at = now + poll * RECONCILE_POLLS;
                        l.updated_at = now;
                        tx.save_external_link(&l).await?;
                        tx.release_external_link(l.id).await?;
                        Ok(())
                    })
                })
                .await
            }
            Err(e) => {
                let why = e.to_string();
                let wait = match &e {
                    SyncError::Remote(RemoteError::RateLimited(after)) => Some(*after),
                    _ => None,
                };
                self.change(move |tx, now| {
                    Box::pin(async move {
                        let Some(mut l) = tx.external_link(&name, ticket_id).await? else {
                            return Ok(());
                        };
                        l.attempts += 1;
                        // A standing conflict stays said (so it is not noted again).
                        l.detail = match conflict_part(&l.detail) {
                            "" => why,
                            conflict => format!("{conflict}{FAILED}{why}"),
                        };
                        l.next_sync_at = now + wait.unwrap_or_else(|| retry_wait(l.attempts));
                        l.updated_at = now;
                        tx.save_external_link(&l).await?;
                        tx.release_external_link(l.id).await?;
                        Ok(())
                    })
                })
                .await?;
                match e {
                    SyncError::Desk(e) => Err(e),
                    SyncError::Remote(_) => Ok(()),
                }
            }
        }
    }

    /// The sync itself; the time of the ticket's last change as read for sending.
    async fn sync_link_once(
        &self,
        remote: &dyn RemoteSystem,
        link: &ExternalLink,
    ) -> std::result::Result<DateTime<Utc>, SyncError> {
        let spec = remote.spec().clone();
        let ticket = self
            .db()
            .get_ticket(link.ticket_id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| {
                Error::NotFound(format!("ticket {}", Ticket::key_for(link.ticket_id)))
            })?;
        let mut link = link.clone();
        if link.remote_id.is_none() {
            link = self.create_remote(remote, &link, &ticket).await?;
        }
        let remote_id = link.remote_id.clone().unwrap_or_default();
        // Theirs first: a change made over there is taken before ours is sent, so that a field
        // both sides changed is seen as such.
        let changes = remote.changes(&remote_id, link.remote_cursor).await?;
        if !changes.is_empty() {
            link = self.take_changes(&spec, &link, changes, false).await?;
        }
        if remote.fields_by_state() {
            // Title, status and priority as the other side holds them now; what equals the
            // value last synced is no change.
            let theirs = remote.ticket(&remote_id).await?;
            let author = theirs.updated_by.clone();
            let state = [
                RemoteChangeKind::Subject(theirs.subject),
                RemoteChangeKind::Status(theirs.status),
                RemoteChangeKind::Priority(theirs.priority),
            ]
            .into_iter()
            .map(|kind| RemoteChange {
                id: 0,
                by_us: false,
                author: author.clone(),
                kind,
            })
            .collect();
            link = self.take_changes(&spec, &link, state, true).await?;
        }
        let ticket = self
            .db()
            .get_ticket(link.ticket_id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| {
                Error::NotFound(format!("ticket {}", Ticket::key_for(link.ticket_id)))
            })?;
        // Changes to the ticket after the one read are newer than this, and make the link
        // due again.
        let read_at = ticket.updated_at;
        self.send_fields(remote, &link, &ticket, &remote_id).await?;
        self.send_comments(remote, &link, &remote_id).await?;
        Ok(read_at)
    }

    /// Creates the remote ticket, or finds the one an interrupted pass created, and records it.
    async fn create_remote(
        &self,
        remote: &dyn RemoteSystem,
        link: &ExternalLink,
        ticket: &Ticket,
    ) -> std::result::Result<ExternalLink, SyncError> {
        let spec = remote.spec().clone();
        let made = match remote.find(&ticket.key).await? {
            Some(found) => found,
            None => {
                remote
                    .create(&RemoteNew {
                        subject: spec.remote_subject(&ticket.key, &ticket.title),
                        description: ticket.description.clone(),
                        status: spec.remote_status(ticket.status),
                        priority: spec.priority(ticket.severity),
                        place: spec.place_for(ticket.team.as_deref()).map(str::to_owned),
                        category: spec.category_for(ticket.kind).map(str::to_owned),
                    })
                    .await?
            }
        };
        // Our own changes that made it are not taken back; what others did after them (to a
        // ticket an interrupted pass made) is.
        let cursor = remote
            .changes(&made.id, 0)
            .await?
            .iter()
            .take_while(|c| c.by_us)
            .map(|c| c.id)
            .last()
            .unwrap_or(0);
        let name = link.connector.clone();
        let ticket_id = link.ticket_id;
        let saved = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let Some(mut l) = tx.external_link(&name, ticket_id).await? else {
                        return Err(Error::NotFound("the link".into()));
                    };
                    if l.remote_id.is_some() {
                        return Ok(l);
                    }
                    let ticket = tx.ticket_for_update(ticket_id).await?.ok_or_else(|| {
                        Error::NotFound(format!("ticket {}", Ticket::key_for(ticket_id)))
                    })?;
                    l.remote_id = Some(made.id.clone());
                    l.remote_url = Some(made.url.clone());
                    l.state = "linked".into();
                    l.synced_title = remote_title(&made.subject);
                    l.synced_status = opsdesk_status_of(&spec, &made.status, ticket.status);
                    l.synced_severity = spec.severity(made.priority).as_str().to_owned();
                    l.remote_cursor = l.remote_cursor.max(cursor);
                    l.updated_at = now;
                    tx.save_external_link(&l).await?;
                    tx.extend_external_link_lease(l.id, now + LEASE).await?;
                    audit_link(
                        tx,
                        &l.created_by.clone(),
                        &ticket,
                        &l,
                        "ticket.external_created",
                        now,
                    )
                    .await?;
                    Ok(l)
                })
            })
            .await?;
        Ok(saved)
    }

    /// Takes remote changes onto the ticket, in one transaction with the cursor (`state`:
    /// the ticket's fields as they are over there, which have no place in the cursor).
    async fn take_changes(
        &self,
        spec: &ConnectorSpec,
        link: &ExternalLink,
        changes: Vec<RemoteChange>,
        state: bool,
    ) -> Result<ExternalLink> {
        let spec = spec.clone();
        let routing = self.routing().await?;
        let ticket_id = link.ticket_id;
        self.change(move |tx, now| {
            Box::pin(async move {
                let Some(mut l) = tx.external_link(&spec.name, ticket_id).await? else {
                    return Err(Error::NotFound("the link".into()));
                };
                for change in changes {
                    if !state {
                        // Another node took it meanwhile.
                        if change.id <= l.remote_cursor {
                            continue;
                        }
                        l.remote_cursor = change.id;
                    }
                    if change.by_us {
                        continue;
                    }
                    take_change(tx, &routing, &spec, &mut l, change, now).await?;
                }
                l.updated_at = now;
                tx.save_external_link(&l).await?;
                tx.extend_external_link_lease(l.id, now + LEASE).await?;
                Ok(l)
            })
        })
        .await
    }

    /// Sends the title, status and severity changed in opsdesk since the last sync, unless
    /// they were changed over there too.
    async fn send_fields(
        &self,
        remote: &dyn RemoteSystem,
        link: &ExternalLink,
        ticket: &Ticket,
        remote_id: &str,
    ) -> std::result::Result<(), SyncError> {
        let spec = remote.spec();
        let title_changed = ticket.title != link.synced_title;
        let status_changed =
            Status::parse(&link.synced_status).is_none_or(|s| !spec.same_remote(s, ticket.status));
        let severity_changed = ticket.severity.as_str() != link.synced_severity;
        if !title_changed && !status_changed && !severity_changed {
            let settled = if link.detail.starts_with("conflict") {
                let theirs = remote.ticket(remote_id).await?;
                remote_title(&theirs.subject) == ticket.title
                    && spec.shows(&theirs.status, ticket.status)
                    && spec.severity(theirs.priority) == ticket.severity
            } else {
                false
            };
            if settled {
                // Settled over there: the other side holds this side's values again.
                let name = link.connector.clone();
                let ticket_id = ticket.id;
                self.change(move |tx, now| {
                    Box::pin(async move {
                        if let Some(mut l) = tx.external_link(&name, ticket_id).await? {
                            l.detail = String::new();
                            l.updated_at = now;
                            tx.save_external_link(&l).await?;
                        }
                        Ok(())
                    })
                })
                .await?;
            }
            return Ok(());
        }
        let theirs = remote.ticket(remote_id).await?;
        // As opsdesk keeps titles, so that it compares with what `take_change` saw.
        let their_title = remote_title(&theirs.subject);
        // The other side still shows the status last synced, or still the first status a new
        // ticket has there (RT's `new`, Jira's `To Do`), which no person chose over opsdesk's.
        let unchanged_there = Status::parse(&link.synced_status)
            .is_some_and(|synced| spec.shows(&theirs.status, synced))
            || (spec.status_from_remote(&theirs.status).is_none()
                && theirs
                    .status
                    .trim()
                    .eq_ignore_ascii_case(spec.kind.default_status(Status::New)));
        let their_severity = spec.severity(theirs.priority);
        let mut fields = RemoteFields::default();
        let mut conflicts = Vec::new();
        if title_changed && their_title != ticket.title {
            if their_title == link.synced_title || link.synced_title.is_empty() {
                fields.subject = Some(spec.remote_subject(&ticket.key, &ticket.title));
            } else {
                conflicts.push(format!(
                    "title (here {:?}, there {their_title:?})",
                    ticket.title
                ));
            }
        }
        if status_changed && !spec.shows(&theirs.status, ticket.status) {
            if unchanged_there {
                fields.status = Some(spec.remote_status(ticket.status));
            } else {
                conflicts.push(format!(
                    "status (here {}, there {})",
                    ticket.status, theirs.status
                ));
            }
        }
        if severity_changed && their_severity != ticket.severity {
            if their_severity.as_str() == link.synced_severity {
                fields.priority = Some(spec.priority(ticket.severity));
            } else {
                conflicts.push(format!(
                    "severity (here {}, there priority {})",
                    ticket.severity, theirs.priority
                ));
            }
        }
        if !fields.is_empty() {
            match remote.update(remote_id, &fields).await {
                Ok(()) => {}
                // Refused over there (a status its lifecycle lacks, open dependencies): kept
                // as it is on both sides and said, like a conflict, while replies still go.
                Err(RemoteError::Refused(why)) => {
                    conflicts.push(format!(
                        "{} refused what opsdesk sent ({why})",
                        remote.spec().kind.label()
                    ));
                    fields = RemoteFields::default();
                }
                Err(e) => return Err(e.into()),
            }
        }
        let name = link.connector.clone();
        let ticket_id = ticket.id;
        let label = remote.spec().kind.label();
        let sent = ticket.clone();
        let (sent_title, sent_status, sent_severity) = (
            fields.subject.is_some() || their_title == ticket.title,
            fields.status.is_some() || spec.shows(&theirs.status, ticket.status),
            fields.priority.is_some() || their_severity == ticket.severity,
        );
        self.change(move |tx, now| {
            Box::pin(async move {
                let Some(mut l) = tx.external_link(&name, ticket_id).await? else {
                    return Ok(());
                };
                if sent_title {
                    l.synced_title = sent.title.clone();
                }
                if sent_status {
                    l.synced_status = sent.status.as_str().to_owned();
                }
                if sent_severity {
                    l.synced_severity = sent.severity.as_str().to_owned();
                }
                if !conflicts.is_empty() {
                    let text = format!(
                        "conflict: changed both here and in {label} since the last sync: {}. \
                         Neither side was overwritten; give both sides the same value to settle it.",
                        conflicts.join("; ")
                    );
                    // Said once: a conflict already said (here or when it was taken) is not
                    // noted again.
                    let said = conflict_part(&l.detail);
                    if conflicts.iter().any(|c| !said.contains(c.as_str())) {
                        note(tx, &sent, &connector_actor(&name), &text, now).await?;
                        l.detail = with_conflict(&l.detail, &text);
                    }
                } else if l.detail.starts_with("conflict")
                    && sent_title
                    && sent_status
                    && sent_severity
                {
                    // Both sides hold the same values again.
                    l.detail = String::new();
                }
                l.updated_at = now;
                tx.save_external_link(&l).await?;
                tx.extend_external_link_lease(l.id, now + LEASE).await?;
                Ok(())
            })
        })
        .await?;
        Ok(())
    }

    /// Sends the ticket's comments after the last one sent, each once: the cursor moves after
    /// each one the other side took.
    async fn send_comments(
        &self,
        remote: &dyn RemoteSystem,
        link: &ExternalLink,
        remote_id: &str,
    ) -> std::result::Result<(), SyncError> {
        let comments = self
            .db()
            .comments(link.ticket_id)
            .await
            .map_err(Error::from)?;
        for c in comments.into_iter().filter(|c| c.id > link.sent_comment_id) {
            if !came_from(&link.connector, &c.author) && !c.author.starts_with("connector:") {
                remote.message(remote_id, &c.body, c.public).await?;
            }
            let name = link.connector.clone();
            let ticket_id = link.ticket_id;
            self.change(move |tx, now| {
                Box::pin(async move {
                    if let Some(mut l) = tx.external_link(&name, ticket_id).await? {
                        l.sent_comment_id = l.sent_comment_id.max(c.id);
                        l.updated_at = now;
                        tx.save_external_link(&l).await?;
                        tx.extend_external_link_lease(l.id, now + LEASE).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        }
        Ok(())
    }
}

/// What a link's `detail` says after a standing conflict when the last sync failed.
const FAILED: &str = "\n\nThe last sync failed: ";

/// The conflict a link's `detail` says, without the last failure after it; empty when none.
fn conflict_part(detail: &str) -> &str {
    if !detail.starts_with("conflict") {
        return "";
    }
    detail.split(FAILED).next().unwrap_or(detail)
}

/// The link's `detail` with one more conflict said: the ones said before stay (each is said
/// once, whichever side of the sync saw it), a failure after them goes.
fn with_conflict(detail: &str, text: &str) -> String {
    match conflict_part(detail) {
        "" => text.to_owned(),
        said => format!("{said}\n{text}"),
    }
}

/// Why a sync stopped: the other side, or opsdesk's own store.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Desk(#[from] Error),
}

/// Text from the other side as opsdesk keeps it: line breaks as `\n`, no other control
/// characters but tabs.
pub(crate) fn plain(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// The title a remote subject carries, as opsdesk keeps titles.
pub(crate) fn remote_title(subject: &str) -> String {
    truncate(
        &plain(title_from_subject(subject)).replace('\n', " "),
        TITLE_MAX,
    )
}

/// The opsdesk status a remote status stands for; one with no meaning here (RT's `new`) stands
/// for the ticket's own.
fn opsdesk_status_of(spec: &ConnectorSpec, remote: &str, own: Status) -> String {
    spec.status_from_remote(remote)
        .filter(|s| !spec.same_remote(*s, own))
        .unwrap_or(own)
        .as_str()
        .to_owned()
}

/// Records a new link for `ticket` (or returns the one it has), with its audit entry.
async fn link_ticket(
    tx: &mut Tx,
    spec: &ConnectorSpec,
    ticket: &Ticket,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(ExternalLink, bool)> {
    let (link, created) = tx
        .insert_external_link(&NewExternalLink {
            connector: &spec.name,
            ticket_id: ticket.id,
            remote: None,
            synced_title: &ticket.title,
            synced_status: ticket.status.as_str(),
            synced_severity: ticket.severity.as_str(),
            remote_cursor: 0,
            sent_comment_id: 0,
            created_by: actor,
            at: now,
        })
        .await?;
    if created {
        audit_link(tx, actor, ticket, &link, "ticket.external_linked", now).await?;
    }
    Ok((link, created))
}

pub(crate) async fn audit_link(
    tx: &mut Tx,
    actor: &str,
    ticket: &Ticket,
    link: &ExternalLink,
    action: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.append_audit(AuditEntry {
        at: now,
        actor: actor.to_owned(),
        action: action.to_owned(),
        ticket_id: Some(ticket.id),
        changes: whole(
            "external_link",
            Value::Null,
            json!({ "connector": link.connector, "remote_id": link.remote_id, "remote_url": link.remote_url }),
        ),
    })
    .await?;
    Ok(())
}

/// An internal note on the ticket, with its audit entry.
async fn note(
    tx: &mut Tx,
    ticket: &Ticket,
    actor: &Actor,
    text: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let c = tx
        .insert_comment(ticket.id, text, &actor.name, false, now)
        .await?;
    let mut next = ticket.clone();
    next.touch(now);
    tx.update_ticket(&next, ticket).await?;
    tx.append_audit(AuditEntry {
        at: now,
        actor: actor.name.clone(),
        action: "ticket.commented".into(),
        ticket_id: Some(ticket.id),
        changes: whole(
            "comment",
            Value::Null,
            json!({ "id": c.id, "public": false, "body": c.body }),
        ),
    })
    .await?;
    Ok(())
}

/// A value both sides hold once a remote change is taken.
enum Synced {
    Title(String),
    Status(String),
    Severity(String),
}

impl Synced {
    fn apply(self, link: &mut ExternalLink) {
        match self {
            Synced::Title(t) => link.synced_title = t,
            Synced::Status(s) => link.synced_status = s,
            Synced::Severity(s) => link.synced_severity = s,
        }
    }
}

/// Takes one remote change onto the ticket, inside `tx`; a move opsdesk's workflow refuses
/// keeps the value last synced (so it is not sent back over RT's), with a note.
async fn take_change(
    tx: &mut Tx,
    routing: &Routing,
    spec: &ConnectorSpec,
    link: &mut ExternalLink,
    change: RemoteChange,
    now: DateTime<Utc>,
) -> Result<()> {
    let who = if change.author.trim().is_empty() {
        "unknown"
    } else {
        change.author.as_str()
    };
    let actor = Actor::new(author(&spec.name, who), Role::Agent);
    let current = tx
        .ticket_for_update(link.ticket_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("ticket {}", Ticket::key_for(link.ticket_id))))?;
    let label = spec.kind.label();
    let mut patch = TicketPatch::default();
    let mut conflict = None;
    let now_synced;
    match change.kind {
        RemoteChangeKind::Message { public, body } => {
            if body.trim().is_empty() {
                return Ok(());
            }
            let body = truncate(&plain(&body), DESCRIPTION_MAX);
            comment_on(
                tx,
                routing,
                &actor,
                &current,
                NewCommentIn {
                    body: &body,
                    public,
                    email: None,
                },
                false,
                now,
            )
            .await?;
            return Ok(());
        }
        RemoteChangeKind::Status(s) => {
            let Some(to) = spec.status_from_remote(&s) else {
                return Ok(());
            };
            let synced = Status::parse(&link.synced_status);
            if synced.is_some_and(|synced| spec.same_remote(synced, to)) {
                // Not a change as far as opsdesk can tell (RT's open after acknowledged).
                return Ok(());
            }
            if !spec.same_remote(to, current.status) {
                if synced.is_some_and(|synced| spec.same_remote(synced, current.status)) {
                    patch.status = Some(to);
                } else {
                    conflict = Some(format!("status (here {}, there {s})", current.status));
                }
            }
            now_synced = Synced::Status(to.as_str().to_owned());
        }
        RemoteChangeKind::Subject(s) => {
            let title = remote_title(&s);
            if title == link.synced_title || title.trim().is_empty() {
                return Ok(());
            }
            if title != current.title {
                if current.title == link.synced_title {
                    patch.title = Some(title.clone());
                } else {
                    conflict = Some(format!("title (here {:?}, there {title:?})", current.title));
                }
            }
            now_synced = Synced::Title(title);
        }
        RemoteChangeKind::Priority(p) => {
            let to: Severity = spec.severity(p);
            if to.as_str() == link.synced_severity {
                return Ok(());
            }
            if to != current.severity {
                if current.severity.as_str() == link.synced_severity {
                    patch.severity = Some(to);
                } else {
                    conflict = Some(format!(
                        "severity (here {}, there priority {p})",
                        current.severity
                    ));
                }
            }
            now_synced = Synced::Severity(to.as_str().to_owned());
        }
        RemoteChangeKind::Other => return Ok(()),
    }
    if let Some(what) = conflict {
        // The value last synced stays, so that neither side is overwritten. Read by state,
        // the same conflict shows at every sync until it is settled: it is said once.
        if !conflict_part(&link.detail).contains(&what) {
            let text = format!(
                "conflict: changed both here and in {label} since the last sync: {what}. \
                 Neither side was overwritten; give both sides the same value to settle it."
            );
            note(tx, &current, &connector_actor(&spec.name), &text, now).await?;
            link.detail = with_conflict(&link.detail, &text);
        }
        return Ok(());
    }
    if patch.is_empty() {
        now_synced.apply(link);
        return Ok(());
    }
    let patch = patch.validate()?;
    match current.patched(patch, now) {
        Ok((next, changes)) => {
            now_synced.apply(link);
            if changes.is_empty() {
                return Ok(());
            }
            tx.update_ticket(&next, &current).await?;
            tx.append_audit(AuditEntry {
                at: now,
                actor: actor.name.clone(),
                action: "ticket.updated".into(),
                ticket_id: Some(current.id),
                changes,
            })
            .await?;
            routing.announce(tx, Some(&current), &next, now).await?;
        }
        Err(e) => {
            // A move opsdesk's workflow does not have (RT's stalled for a new ticket): said
            // on the ticket, once, for a person to make by hand (read by state, the same move
            // shows at every sync).
            let text = format!(
                "conflict: {label} changed the ticket in a way opsdesk cannot follow: {e}. \
                 Make the move by hand, or set the other side back."
            );
            if !conflict_part(&link.detail).contains(&e.to_string()) {
                note(tx, &current, &connector_actor(&spec.name), &text, now).await?;
                link.detail = with_conflict(&link.detail, &text);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stop_at_an_hour() {
        assert_eq!(retry_wait(1), Duration::seconds(30));
        assert_eq!(retry_wait(2), Duration::seconds(60));
        assert_eq!(retry_wait(50), Duration::hours(1));
    }

    #[test]
    fn a_standing_conflict_outlives_a_failed_sync() {
        let title = "conflict: title (here a, there b).";
        let status = "conflict: Jira changed the ticket in a way opsdesk cannot follow.";
        let both = with_conflict(&format!("{title}{FAILED}503"), status);
        assert_eq!(both, format!("{title}\n{status}"));
        assert!(conflict_part(&both).contains("title (here a, there b)"));
        assert_eq!(with_conflict("RT is down", title), title);
        assert_eq!(conflict_part(""), "");
        assert_eq!(conflict_part("RT is down"), "");
        let c = "conflict: changed both here and in Jira since the last sync: title.";
        assert_eq!(conflict_part(c), c);
        assert_eq!(conflict_part(&format!("{c}{FAILED}429")), c);
    }

    #[test]
    fn comments_from_the_other_side_are_known_by_author() {
        assert!(came_from("rt", "rt:alice"));
        assert!(!came_from("rt", "rtx:alice"));
        assert!(!came_from("rt", "user:rt@example.com"));
    }

    #[test]
    fn remote_statuses_without_a_meaning_here_keep_the_tickets() {
        let rt: ConnectorSpec = serde_json::from_value(json!({
            "name": "rt", "type": "request_tracker", "url": "https://rt.example.com",
            "username": "opsdesk", "token": "abc", "queue": "General"
        }))
        .unwrap();
        assert_eq!(
            opsdesk_status_of(&rt, "new", Status::Acknowledged),
            "acknowledged"
        );
        assert_eq!(
            opsdesk_status_of(&rt, "open", Status::Acknowledged),
            "acknowledged"
        );
        assert_eq!(
            opsdesk_status_of(&rt, "resolved", Status::InProgress),
            "resolved"
        );
    }
}
