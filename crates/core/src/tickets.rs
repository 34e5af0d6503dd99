use chrono::{DateTime, Utc};
use opsdesk_domain::audit::{one_change, AuditEntry, AuditRecord, Changes};
use opsdesk_domain::intake::{admit_new_ticket, Intake};
use opsdesk_domain::ticket::reply_reopens;
use opsdesk_domain::validation::{NewComment, NewLink, NewTicket, TicketPatch};
use opsdesk_domain::{Comment, Ticket, TicketLink, Validated};
use opsdesk_store::{TicketFilter, TicketPage, Tx};
use serde_json::{json, Value};

use opsdesk_domain::Permission;

use crate::attachments::{record_files, FileUse, Upload};
use crate::outbox::Routing;
use crate::{Actor, Desk, Error, Result};
use opsdesk_domain::attachment::AttachmentSource;

fn not_found(id: i64) -> Error {
    Error::NotFound(format!("ticket {}", Ticket::key_for(id)))
}

/// Marks the ticket changed and records why, inside `tx`: for changes that live beside the
/// ticket (comments, links) but are part of its history.
async fn touch_and_record(
    tx: &mut Tx,
    actor: &Actor,
    current: &Ticket,
    now: DateTime<Utc>,
    action: &str,
    changes: Changes,
) -> Result<()> {
    let mut next = current.clone();
    next.touch(now);
    tx.update_ticket(&next, current).await?;
    tx.append_audit(AuditEntry {
        at: now,
        actor: actor.name.clone(),
        action: action.to_owned(),
        ticket_id: Some(current.id),
        changes,
    })
    .await?;
    Ok(())
}

/// Stores a new ticket with its audit entry, inside `tx`.
pub(crate) async fn insert_ticket(
    tx: &mut Tx,
    routing: &Routing,
    actor: &Actor,
    input: NewTicket,
    now: DateTime<Utc>,
) -> Result<Ticket> {
    insert_ticket_answering(tx, routing, actor, input, now, None).await
}

/// [`insert_ticket`] for a ticket raised by the logged message `mail`: the message is tied to
/// the ticket before the receipt is written, so the receipt answers it.
pub(crate) async fn insert_ticket_answering(
    tx: &mut Tx,
    routing: &Routing,
    actor: &Actor,
    input: NewTicket,
    now: DateTime<Utc>,
    mail: Option<i64>,
) -> Result<Ticket> {
    let mut ticket = Ticket::open(input, now);
    ticket.id = tx.insert_ticket(&ticket).await?;
    ticket.key = Ticket::key_for(ticket.id);
    if let Some(mail) = mail {
        tx.settle_mail(mail, "ticket", Some(ticket.id), None, None)
            .await?;
    }
    tx.append_audit(AuditEntry {
        at: now,
        actor: actor.name.clone(),
        action: "ticket.created".into(),
        ticket_id: Some(ticket.id),
        changes: ticket.creation_changes(),
    })
    .await?;
    routing.announce(tx, None, &ticket, now).await?;
    Ok(ticket)
}

/// A comment as it is written, and the message it came in, if it came by email.
pub(crate) struct NewCommentIn<'a> {
    pub body: &'a str,
    pub public: bool,
    pub email: Option<&'a str>,
}

/// Writes a comment on `current` with its audit entry, writes to the requester when it is a
/// public answer from someone else, and when `reopen` (the requester answered their resolved
/// ticket in time) opens the ticket again, inside `tx`.
pub(crate) async fn comment_on(
    tx: &mut Tx,
    routing: &Routing,
    actor: &Actor,
    current: &Ticket,
    input: NewCommentIn<'_>,
    reopen: bool,
    now: DateTime<Utc>,
) -> Result<Comment> {
    let comment = tx
        .insert_comment(current.id, input.body, &actor.name, input.public, now)
        .await?;
    let mut change = json!({ "id": comment.id, "public": comment.public, "body": comment.body });
    if let Some(message_id) = input.email {
        change["email"] = json!(message_id);
    }
    touch_and_record(
        tx,
        actor,
        current,
        now,
        "ticket.commented",
        one_change("comment", Value::Null, change),
    )
    .await?;
    routing
        .letter_for_comment(tx, current, &comment, actor, now)
        .await?;
    if reopen {
        let touched = locked_ticket(tx, current.id).await?;
        let patch = TicketPatch {
            status: Some(opsdesk_domain::Status::InProgress),
            ..TicketPatch::default()
        }
        .validate()?;
        let (next, changes) = touched.patched(patch, now)?;
        tx.update_ticket(&next, &touched).await?;
        tx.append_audit(AuditEntry {
            at: now,
            actor: actor.name.clone(),
            action: "ticket.reopened".into(),
            ticket_id: Some(current.id),
            changes,
        })
        .await?;
        routing.announce(tx, Some(&touched), &next, now).await?;
    }
    Ok(comment)
}

async fn locked_ticket(tx: &mut Tx, id: i64) -> Result<Ticket> {
    tx.ticket_for_update(id).await?.ok_or_else(|| not_found(id))
}

impl Desk {
    /// Creates a ticket sent through the API.
    pub async fn create_ticket(&self, actor: &Actor, input: NewTicket) -> Result<Ticket> {
        self.create_ticket_from(actor, Intake::Api, input).await
    }

    /// Creates a ticket that came in through `intake`, taking from the actor only the fields
    /// their role may set ([`admit_new_ticket`]).
    pub async fn create_ticket_from(
        &self,
        actor: &Actor,
        intake: Intake,
        input: NewTicket,
    ) -> Result<Ticket> {
        self.create_ticket_with_files(actor, intake, input, Vec::new())
            .await
    }

    /// [`Desk::create_ticket_from`] with files, public, recorded in the same transaction.
    pub async fn create_ticket_with_files(
        &self,
        actor: &Actor,
        intake: Intake,
        input: NewTicket,
        files: Vec<Upload>,
    ) -> Result<Ticket> {
        actor.require(Permission::CreateTickets)?;
        let input = admit_new_ticket(actor.role, actor.identity(), intake, input)?.validate()?;
        let files = self.store_files(files).await?;
        let actor = actor.clone();
        let routing = self.routing().await?;
        self.change(move |tx, now| {
            Box::pin(async move {
                let ticket = insert_ticket(tx, &routing, &actor, input, now).await?;
                let how = FileUse {
                    comment_id: None,
                    public: true,
                    source: AttachmentSource::Upload,
                    to_case: false,
                };
                record_files(tx, &actor, ticket.id, &files, how, now).await?;
                Ok(ticket)
            })
        })
        .await
    }

    /// Creates many tickets in one transaction, each with its audit entry: all or none.
    pub async fn create_tickets(&self, actor: &Actor, inputs: Vec<NewTicket>) -> Result<Vec<i64>> {
        actor.require_write()?;
        let inputs = inputs
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                admit_new_ticket(actor.role, actor.identity(), Intake::Api, t)
                    .and_then(Validated::validate)
                    .map_err(|e| e.within(i))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let actor = actor.clone();
        let routing = self.routing().await?;
        self.change(move |tx, now| {
            Box::pin(async move {
                let mut ids = Vec::with_capacity(inputs.len());
                for input in inputs {
                    ids.push(insert_ticket(tx, &routing, &actor, input, now).await?.id);
                }
                Ok(ids)
            })
        })
        .await
    }

    /// Applies a patch. With `if_match`, refuses to change a ticket that moved past that version.
    pub async fn update_ticket(
        &self,
        actor: &Actor,
        id: i64,
        if_match: Option<i64>,
        patch: TicketPatch,
    ) -> Result<Ticket> {
        actor.require_write()?;
        // A patch that resolves or closes may call for a post-incident review.
        let closes = matches!(
            patch.status,
            Some(opsdesk_domain::Status::Resolved | opsdesk_domain::Status::Closed)
        );
        let patch = patch.validate()?;
        let actor = actor.clone();
        let routing = self.routing().await?;
        let updated = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let current = locked_ticket(tx, id).await?;
                    if let Some(expected) = if_match {
                        if expected != current.version {
                            return Err(Error::StaleVersion {
                                expected,
                                current: current.version,
                            });
                        }
                    }
                    let (next, changes) = current.patched(patch, now)?;
                    if changes.is_empty() {
                        return Ok(current);
                    }
                    tx.update_ticket(&next, &current).await?;
                    tx.append_audit(AuditEntry {
                        at: now,
                        actor: actor.name.clone(),
                        action: "ticket.updated".into(),
                        ticket_id: Some(id),
                        changes,
                    })
                    .await?;
                    routing.announce(tx, Some(&current), &next, now).await?;
                    Ok(next)
                })
            })
            .await?;
        // An incident just resolved that calls for a post-incident review gets it now; the
        // readiness pass opens it later if this fails, and finds those resolved otherwise.
        if closes && !updated.status.is_open() && updated.kind == opsdesk_domain::Kind::Incident {
            if let Err(e) = self.open_incident_reviews(Some(&[updated.id])).await {
                tracing::warn!(ticket = %updated.key, error = %e, "opening the post-incident review failed");
            }
        }
        Ok(updated)
    }

    pub async fn add_comment(&self, actor: &Actor, id: i64, input: NewComment) -> Result<Comment> {
        self.add_comment_with_files(actor, id, input, Vec::new())
            .await
    }

    /// [`Desk::add_comment`] with files, seen by whoever sees the comment, recorded in the
    /// same transaction.
    pub async fn add_comment_with_files(
        &self,
        actor: &Actor,
        id: i64,
        input: NewComment,
        files: Vec<Upload>,
    ) -> Result<Comment> {
        actor.require(Permission::CreateTickets)?;
        let input = input.validate()?;
        let own_only = actor.role.sees_own_tickets_only();
        if own_only && !input.public {
            return Err(Error::Forbidden("a requester's comments are public".into()));
        }
        if !files.is_empty() {
            // Seeing the ticket comes before the files are stored.
            self.ticket(actor, id).await?;
        }
        let files = self.store_files(files).await?;
        let actor = actor.clone();
        let routing = self.routing().await?;
        let reopen_window = self.settings.mail.reopen_window;
        self.change(move |tx, now| {
            Box::pin(async move {
                let current = locked_ticket(tx, id).await?;
                if own_only && current.requester.as_deref() != Some(actor.identity()) {
                    return Err(not_found(id));
                }
                let reopen = current
                    .requester
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(actor.identity()))
                    && reply_reopens(current.status, current.resolved_at, now, reopen_window);
                let comment = comment_on(
                    tx,
                    &routing,
                    &actor,
                    &current,
                    NewCommentIn {
                        body: &input.body,
                        public: input.public,
                        email: None,
                    },
                    reopen,
                    now,
                )
                .await?;
                let how = FileUse {
                    comment_id: Some(comment.id),
                    public: comment.public,
                    source: AttachmentSource::Upload,
                    to_case: false,
                };
                record_files(tx, &actor, id, &files, how, now).await?;
                Ok(comment)
            })
        })
        .await
    }

    pub async fn add_link(&self, actor: &Actor, id: i64, input: NewLink) -> Result<TicketLink> {
        actor.require_write()?;
        let target = Ticket::parse_ref(input.target.trim()).ok_or_else(|| {
            opsdesk_domain::FieldError::new("target", "must be a ticket id or key such as OPS-42")
        })?;
        if target == id {
            return Err(opsdesk_domain::FieldError::new(
                "target",
                "a ticket cannot link to itself",
            )
            .into());
        }
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let current = locked_ticket(tx, id).await?;
                if !tx.ticket_exists(target).await? {
                    return Err(opsdesk_domain::FieldError::new(
                        "target",
                        format!("ticket {} does not exist", Ticket::key_for(target)),
                    )
                    .into());
                }
                let link = tx
                    .insert_link(id, target, input.kind, &actor.name, now)
                    .await?;
                let change =
                    json!({ "id": link.id, "kind": link.kind, "target": Ticket::key_for(target) });
                touch_and_record(
                    tx,
                    &actor,
                    &current,
                    now,
                    "ticket.linked",
                    one_change("link", Value::Null, change),
                )
                .await?;
                Ok(link)
            })
        })
        .await
    }

    pub async fn remove_link(&self, actor: &Actor, id: i64, link_id: i64) -> Result<TicketLink> {
        actor.require_write()?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let current = locked_ticket(tx, id).await?;
                let link = tx.delete_link(id, link_id).await?.ok_or_else(|| {
                    Error::NotFound(format!("link {link_id} on {}", Ticket::key_for(id)))
                })?;
                let change = json!({
                    "id": link.id,
                    "kind": link.kind,
                    "source": Ticket::key_for(link.source_id),
                    "target": Ticket::key_for(link.target_id),
                });
                touch_and_record(
                    tx,
                    &actor,
                    &current,
                    now,
                    "ticket.unlinked",
                    one_change("link", change, Value::Null),
                )
                .await?;
                Ok(link)
            })
        })
        .await
    }

    /// A ticket the actor may see; another's ticket is "not found" to a requester.
    pub async fn ticket(&self, actor: &Actor, id: i64) -> Result<Ticket> {
        actor.require(Permission::ReadTickets)?;
        let ticket = self
            .db()
            .get_ticket(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if actor.role.sees_own_tickets_only()
            && ticket.requester.as_deref() != Some(actor.identity())
        {
            return Err(not_found(id));
        }
        Ok(ticket)
    }

    pub async fn tickets(&self, actor: &Actor, filter: &TicketFilter) -> Result<TicketPage> {
        actor.require(Permission::ReadTickets)?;
        if actor.role.sees_own_tickets_only() {
            let mut own = filter.clone();
            own.requester = Some(actor.identity().to_owned());
            // Internal comments are not theirs to search.
            own.q_without_comments = true;
            return Ok(self.db().list_tickets(&own).await?);
        }
        Ok(self.db().list_tickets(filter).await?)
    }

    /// Comments a requester sees are the public ones.
    pub async fn comments(&self, actor: &Actor, id: i64) -> Result<Vec<Comment>> {
        self.ticket(actor, id).await?;
        let mut comments = self.db().comments(id).await?;
        if actor.role.sees_own_tickets_only() {
            comments.retain(|c| c.public);
        }
        Ok(comments)
    }

    pub async fn links(&self, actor: &Actor, id: i64) -> Result<Vec<TicketLink>> {
        self.ticket(actor, id).await?;
        Ok(self.db().links(id).await?)
    }

    /// The audit entries of a ticket; they hold internal comments, so not for requesters.
    pub async fn history(&self, actor: &Actor, id: i64) -> Result<Vec<AuditRecord>> {
        if actor.role.sees_own_tickets_only() {
            return Err(Error::Forbidden(
                "a requester cannot read a ticket's audit entries".into(),
            ));
        }
        self.ticket(actor, id).await?;
        Ok(self.db().audit_for_ticket(id).await?)
    }
}
