//! Action items: a review's finding (a HIGH or MEDIUM question) or a post-incident lesson
//! made into a task ticket, linked to the review and to the incident. Resolving the ticket
//! shows the item as done but unverified; only a verification note closes it. Items past their
//! due date raise `action_item_overdue` once.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use opsdesk_domain::audit::AuditEntry;
use opsdesk_domain::channel::NotificationEvent;
use opsdesk_domain::readiness::Risk;
use opsdesk_domain::validation::{NewTicket, TicketPatch};
use opsdesk_domain::{FieldError, Kind, LinkKind, Permission, Severity, Status, Ticket, Validated};
use opsdesk_store::{ActionItemFilter, ActionItemRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::schedules::ReadinessPass;
use crate::audit::whole;
use crate::{Actor, Desk, Error, Result};

/// The longest verification note.
pub const VERIFICATION_MAX: usize = 4000;

/// An action item to make: of a finding (`question`) or a lesson (`title`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActionItem {
    /// The question of a HIGH or MEDIUM finding of the review. Left out for a lesson.
    #[serde(default)]
    pub question: Option<String>,
    /// The task's title; for a finding, default "Readiness: <question> (<workload>)".
    #[serde(default)]
    pub title: Option<String>,
    /// More on the task (Markdown); a finding's improvement plans are added below it.
    #[serde(default)]
    pub description: Option<String>,
    /// Who owns it (the ticket's assignee).
    #[serde(default)]
    pub owner: Option<String>,
    /// The team; default the workload's.
    #[serde(default)]
    pub team: Option<String>,
    /// Due by the end of this day (UTC); default 30 days from now (`[readiness] action_item_days`).
    #[serde(default)]
    pub due: Option<NaiveDate>,
    /// The task's priority; default SEV3 for a HIGH finding or a lesson, SEV4 for MEDIUM.
    #[serde(default)]
    pub severity: Option<Severity>,
}

/// A verification that closes an item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationNote {
    /// How the fix was checked, 1 to 4000 characters.
    pub note: String,
}

/// Where an action item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Its ticket is open.
    Open,
    /// Its ticket is resolved; it waits for a verification note.
    Resolved,
    /// Verified: closed.
    Verified,
}

/// Which action items to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActionItemQuery {
    pub review: Option<i64>,
    /// Items following this incident.
    pub incident: Option<i64>,
    /// Only items not verified.
    #[serde(default)]
    pub open: bool,
}

/// An action item with its ticket as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActionItem {
    pub id: i64,
    pub review: i64,
    pub workload: String,
    /// The question of a finding; absent for a lesson.
    pub question: Option<String>,
    /// The incident a post-incident item follows.
    pub incident: Option<String>,
    /// The task ticket's key, title, status, owner and team.
    pub ticket: i64,
    pub ticket_key: String,
    pub title: String,
    pub status: Status,
    pub severity: Severity,
    pub owner: Option<String>,
    pub team: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub state: ItemState,
    /// Past its due time and not verified.
    pub overdue: bool,
    pub verified_at: Option<DateTime<Utc>>,
    pub verified_by: Option<String>,
    pub verification: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

fn state_of(a: &ActionItemRecord, t: &Ticket) -> ItemState {
    if a.verified_at.is_some() {
        ItemState::Verified
    } else if matches!(t.status, Status::Resolved | Status::Closed) {
        ItemState::Resolved
    } else {
        ItemState::Open
    }
}

fn item_view(a: &ActionItemRecord, t: &Ticket, workload: &str, now: DateTime<Utc>) -> ActionItem {
    let state = state_of(a, t);
    ActionItem {
        id: a.id,
        review: a.review_id,
        workload: workload.to_owned(),
        question: a.question_id.clone(),
        incident: a.incident_id.map(Ticket::key_for),
        ticket: t.id,
        ticket_key: t.key.clone(),
        title: t.title.clone(),
        status: t.status,
        severity: t.severity,
        owner: t.assignee.clone(),
        team: t.team.clone(),
        due_at: a.due_at,
        state,
        overdue: state != ItemState::Verified && a.due_at.is_some_and(|d| d <= now),
        verified_at: a.verified_at,
        verified_by: a.verified_by.clone(),
        verification: a.verification.clone(),
        created_by: a.created_by.clone(),
        created_at: a.created_at,
    }
}

/// The end of a day, UTC.
fn end_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(23, 59, 59)
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Desk {
    pub(super) async fn items_of(&self, records: Vec<ActionItemRecord>) -> Result<Vec<ActionItem>> {
        let ids: Vec<i64> = records.iter().map(|a| a.ticket_id).collect();
        let tickets = self.db().get_tickets(&ids).await?;
        let now = self.now();
        let mut out = Vec::with_capacity(records.len());
        for a in &records {
            let Some(t) = tickets.iter().find(|t| t.id == a.ticket_id) else {
                continue;
            };
            let workload = match self.db().review(a.review_id).await? {
                Some(r) => r.workload,
                None => String::new(),
            };
            out.push(item_view(a, t, &workload, now));
        }
        Ok(out)
    }

    pub(crate) async fn review_items(&self, review_id: i64) -> Result<Vec<ActionItem>> {
        let records = self
            .db()
            .action_items(&ActionItemFilter {
                review_id: Some(review_id),
                ..ActionItemFilter::default()
            })
            .await?;
        self.items_of(records).await
    }

    /// Action items the query keeps (staff).
    pub async fn action_items(
        &self,
        actor: &Actor,
        query: &ActionItemQuery,
    ) -> Result<Vec<ActionItem>> {
        actor.require(Permission::ReadInventory)?;
        let records = self
            .db()
            .action_items(&ActionItemFilter {
                review_id: query.review,
                ticket_id: None,
                incident_id: query.incident,
                open: query.open,
            })
            .await?;
        self.items_of(records).await
    }

    pub async fn action_item(&self, actor: &Actor, id: i64) -> Result<ActionItem> {
        actor.require(Permission::ReadInventory)?;
        let a = self
            .db()
            .action_item(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("action item {id}")))?;
        self.items_of(vec![a])
            .await?
            .pop()
            .ok_or_else(|| Error::Internal(format!("the ticket of action item {id} is gone")))
    }

    /// Makes a finding or a lesson of review `review_id` into a task ticket (agents and up).
    /// A finding already made into an item gives that item back (`false`: nothing made).
    pub async fn create_action_item(
        &self,
        actor: &Actor,
        review_id: i64,
        input: NewActionItem,
    ) -> Result<(ActionItem, bool)> {
        actor.require(Permission::WriteTickets)?;
        let review = self.read_review(review_id).await?;
        let workload = self.db().workload(&review.workload).await?;
        let base_url = self.notify_settings().base_url.clone();
        let review_link = match &base_url {
            Some(b) => format!("{}/reviews/{review_id}", b.trim_end_matches('/')),
            None => format!("review {review_id}"),
        };
        let (title, mut description, severity, question) = match &input.question {
            Some(qid) => {
                let q = review
                    .pillars
                    .iter()
                    .flat_map(|p| p.questions.iter())
                    .find(|q| &q.id == qid)
                    .ok_or_else(|| {
                        FieldError::new("question", format!("the review has no question {qid}"))
                    })?;
                if !q.risk.needs_improvement() {
                    return Err(FieldError::new(
                        "question",
                        format!(
                            "is {} in this review; only a HIGH or MEDIUM answer is a finding",
                            q.risk.as_str()
                        ),
                    )
                    .into());
                }
                let mut text = format!(
                    "Finding of readiness review {review_id} ({}) on {}: **{}** is {}.\n\nImprovement plans:\n",
                    review.lens_name, review.workload, q.title, q.risk.as_str()
                );
                for p in &q.improvement_plans {
                    text.push_str(&format!("\n- {}: {}", p.choice_title, p.display_text));
                    if let Some(u) = &p.url {
                        text.push_str(&format!(" ({u})"));
                    }
                }
                text.push_str(&format!("\n\nReview: {review_link}"));
                let severity = if q.risk == Risk::High {
                    Severity::Sev3
                } else {
                    Severity::Sev4
                };
                let title = format!("Readiness: {} ({})", q.title, review.workload);
                (title, text, severity, Some(qid.clone()))
            }
            None => {
                let title = input.title.clone().unwrap_or_default();
                if title.trim().is_empty() {
                    return Err(FieldError::new(
                        "title",
                        "a lesson needs a title (or name a finding's question)",
                    )
                    .into());
                }
                let what = match review.ticket {
                    Some(t) => format!(
                        "Action item of the post-incident review of {} ({review_link}).",
                        Ticket::key_for(t)
                    ),
                    None => format!("Action item of readiness review {review_id} ({review_link})."),
                };
                (title, what, Severity::Sev3, None)
            }
        };
        if let Some(more) = input.description.as_ref().filter(|d| !d.trim().is_empty()) {
            description = format!("{more}\n\n{description}");
        }
        let title = match (&input.title, &question) {
            (Some(t), Some(_)) if !t.trim().is_empty() => t.clone(),
            _ => title,
        };
        if let Some(day) = input.due {
            if !opsdesk_domain::validation::YEARS.contains(&chrono::Datelike::year(&day)) {
                return Err(FieldError::new("due", "is out of range").into());
            }
        }
        let due_at = Some(match input.due {
            Some(day) => end_of(day),
            None => {
                self.now() + Duration::days(i64::from(self.settings.readiness.action_item_days))
            }
        });
        let new_ticket = NewTicket {
            title,
            description,
            kind: Kind::Task,
            severity: input.severity.unwrap_or(severity),
            requester: None,
            assignee: input.owner.clone(),
            team: input
                .team
                .clone()
                .or_else(|| workload.as_ref().and_then(|w| w.team.clone())),
            workload: Some(review.workload.clone()),
            tags: vec!["readiness".into(), "action-item".into()],
            source: Some("readiness".into()),
            dedup_key: None,
        }
        .validate()?;
        let incident = review.ticket;
        let routing = self.routing().await?;
        let who = actor.clone();
        let (record, made) = self
            .change(move |tx, now| {
                Box::pin(async move {
                    tx.review_for_update(review_id)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("review {review_id}")))?;
                    if let Some(qid) = &question {
                        if let Some(existing) = tx.finding_item(review_id, qid).await? {
                            return Ok((existing, false));
                        }
                    }
                    let ticket =
                        crate::tickets::insert_ticket(tx, &routing, &who, new_ticket, now).await?;
                    let item = tx
                        .insert_action_item(&ActionItemRecord {
                            id: 0,
                            review_id,
                            question_id: question.clone(),
                            ticket_id: ticket.id,
                            incident_id: incident,
                            due_at,
                            verified_at: None,
                            verified_by: None,
                            verification: None,
                            created_by: who.name.clone(),
                            created_at: now,
                        })
                        .await?;
                    if let Some(incident) = incident {
                        if tx.ticket_exists(incident).await? {
                            tx.insert_link(
                                ticket.id,
                                incident,
                                LinkKind::RelatesTo,
                                &who.name,
                                now,
                            )
                            .await?;
                        }
                    }
                    tx.append_audit(AuditEntry {
                        at: now,
                        actor: who.name.clone(),
                        action: "review.action_item".into(),
                        ticket_id: Some(ticket.id),
                        changes: whole(
                            "action_item",
                            Value::Null,
                            json!({
                                "id": item.id,
                                "review": review_id,
                                "question": question,
                                "incident": incident.map(Ticket::key_for),
                                "due_at": due_at,
                            }),
                        ),
                    })
                    .await?;
                    Ok((item, true))
                })
            })
            .await?;
        let view = self
            .items_of(vec![record])
            .await?
            .pop()
            .ok_or_else(|| Error::Internal("the action item's ticket is gone".into()))?;
        Ok((view, made))
    }

    /// Closes an action item with a note saying how the fix was checked (agents and up); its
    /// ticket is resolved too when it is still open.
    pub async fn verify_action_item(
        &self,
        actor: &Actor,
        id: i64,
        input: VerificationNote,
    ) -> Result<ActionItem> {
        actor.require(Permission::WriteTickets)?;
        let note = input.note.trim().to_owned();
        if note.is_empty() || note.chars().count() > VERIFICATION_MAX {
            return Err(FieldError::new(
                "note",
                format!("must be 1 to {VERIFICATION_MAX} characters: say how the fix was checked"),
            )
            .into());
        }
        if note
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            return Err(FieldError::new("note", "must not hold control characters").into());
        }
        let routing = self.routing().await?;
        let who = actor.clone();
        let record = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let item = tx
                        .action_item_for_update(id)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("action item {id}")))?;
                    if item.verified_at.is_some() {
                        return Err(Error::Conflict(format!(
                            "action item {id} was verified already"
                        )));
                    }
                    let current = tx.ticket_for_update(item.ticket_id).await?.ok_or_else(|| {
                        Error::Internal(format!("the ticket of action item {id} is gone"))
                    })?;
                    tx.verify_action_item(id, &who.name, &note, now).await?;
                    let comment = tx
                        .insert_comment(
                            current.id,
                            &format!("Verified: {note}"),
                            &who.name,
                            false,
                            now,
                        )
                        .await?;
                    if current.status.is_open() {
                        let patch = TicketPatch {
                            status: Some(Status::Resolved),
                            ..TicketPatch::default()
                        };
                        let (next, changes) = current.patched(patch, now)?;
                        tx.update_ticket(&next, &current).await?;
                        tx.append_audit(AuditEntry {
                            at: now,
                            actor: who.name.clone(),
                            action: "ticket.updated".into(),
                            ticket_id: Some(current.id),
                            changes,
                        })
                        .await?;
                        routing.announce(tx, Some(&current), &next, now).await?;
                    } else {
                        let mut touched = current.clone();
                        touched.touch(now);
                        tx.update_ticket(&touched, &current).await?;
                    }
                    tx.append_audit(AuditEntry {
                        at: now,
                        actor: who.name.clone(),
                        action: "review.action_item_verified".into(),
                        ticket_id: Some(item.ticket_id),
                        changes: whole(
                            "verification",
                            Value::Null,
                            json!({ "item": id, "note": note, "comment": comment.id }),
                        ),
                    })
                    .await?;
                    tx.action_item_for_update(id)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("action item {id}")))
                })
            })
            .await?;
        self.items_of(vec![record])
            .await?
            .pop()
            .ok_or_else(|| Error::Internal(format!("the ticket of action item {id} is gone")))
    }

    /// Announces `action_item_overdue` once per item and due time, on the item's ticket.
    pub(crate) async fn announce_overdue_items(&self, pass: &mut ReadinessPass) -> Result<()> {
        let now = self.now();
        for item in self.db().overdue_action_items(now).await? {
            let Some(due) = item.due_at else { continue };
            let key = format!("action_item_overdue:{}:{}", item.id, due.timestamp());
            let routing = self.routing().await?;
            let told = self
                .change(move |tx, now| {
                    Box::pin(async move {
                        let Some(t) = tx.ticket_for_update(item.ticket_id).await? else {
                            return Ok(false);
                        };
                        if !tx.claim_readiness_event(&key, now).await? {
                            return Ok(false);
                        }
                        let items = routing
                            .items_with(
                                tx,
                                NotificationEvent::ActionItemOverdue,
                                &t,
                                now,
                                Some(&format!("item{}-{}", item.id, due.timestamp())),
                                &[],
                            )
                            .await?;
                        tx.enqueue(&items, now).await?;
                        tx.append_audit(AuditEntry {
                            at: now,
                            actor: "system".into(),
                            action: "review.action_item_overdue".into(),
                            ticket_id: Some(t.id),
                            changes: whole(
                                "action_item",
                                Value::Null,
                                json!({ "id": item.id, "review": item.review_id, "due_at": due }),
                            ),
                        })
                        .await?;
                        Ok(true)
                    })
                })
                .await?;
            if told {
                pass.announced
                    .push(format!("action_item_overdue:{}", item.id));
            }
        }
        Ok(())
    }
}
