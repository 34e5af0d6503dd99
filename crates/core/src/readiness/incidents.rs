//! Post-incident reviews: opened when an incident of the configured severities on a workload
//! is resolved, written in the Correction of Error shape, with a timeline drawn from the
//! ticket's history, signals and notifications until people edit it, and a proposed question
//! that an admin may add to a lens.

use chrono::{DateTime, Duration, Utc};
use opsdesk_domain::audit::{AuditEntry, Changes, FieldChange};
use opsdesk_domain::readiness::incident::{self, IncidentReport, TimelineEntry, TimelineSource};
use opsdesk_domain::readiness::Lens;
use opsdesk_domain::{FieldError, Kind, Permission, Severity, Status, Ticket};
use opsdesk_store::{IncidentReviewRecord, NewReviewRecord, OutboxFilter, SignalFilter};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::actions::ActionItem;
use super::{summary_of, ReviewKind, ReviewSummary, BUILTIN_LENS_ID};
use crate::audit::{record, whole};
use crate::{Actor, Desk, Error, Result};

/// Incidents resolved longer ago than this get no post-incident review of their own accord.
const LOOKBACK_DAYS: i64 = 30;
/// Incidents looked at in one pass.
const PASS_LIMIT: i64 = 50;
/// Signals and notifications read for a timeline.
const TIMELINE_READ: i64 = 2_000;

/// The incident a post-incident review follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentRef {
    pub id: i64,
    pub key: String,
    pub title: String,
    pub severity: Severity,
    pub status: Status,
    pub workload: Option<String>,
    pub team: Option<String>,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Figures opsdesk measured of the incident.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Measured {
    /// From the ticket's creation to its acknowledgement.
    pub seconds_to_acknowledge: Option<i64>,
    /// From the ticket's creation to its resolution.
    pub seconds_to_resolve: Option<i64>,
    /// Signals the ticket received.
    pub signals: usize,
    /// Notifications queued for it.
    pub notifications: usize,
    /// Escalations (tiers and AWS Support).
    pub escalations: usize,
    /// The AWS Support case, when one was opened: its display id and severity.
    pub aws_case: Option<String>,
}

/// What happened to the proposed question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    Approved,
    Rejected,
}

/// A post-incident review: the review, its incident and its report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentReview {
    pub review: ReviewSummary,
    pub incident: IncidentRef,
    pub report: IncidentReport,
    /// The report's timeline once people edited it; until then the one drawn from the ticket's
    /// history, signals, notifications, escalations and AWS case messages.
    pub timeline: Vec<TimelineEntry>,
    /// True while `timeline` is drawn from the records (not yet edited).
    pub timeline_generated: bool,
    pub measured: Measured,
    /// Complete it by this time (the incident's resolution plus the configured days).
    pub due_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
    pub proposal_state: Option<ProposalState>,
    /// Where an approved question went.
    pub proposal_lens: Option<String>,
    pub proposal_version: Option<i64>,
    pub action_items: Vec<ActionItem>,
    /// Names the report as it is now: send it back (`If-Match`) so that a save made on top of
    /// someone else's is refused rather than undoing it.
    pub report_version: String,
    pub report_updated_by: String,
    pub report_updated_at: DateTime<Utc>,
}

/// What to do with the proposed question.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalDecision {
    pub approve: bool,
    /// The lens to add it to (approval only); default the review's lens. The built-in lens
    /// changes only with opsdesk.
    #[serde(default)]
    pub lens: Option<String>,
}

fn incident_ref(t: &Ticket) -> IncidentRef {
    IncidentRef {
        id: t.id,
        key: t.key.clone(),
        title: t.title.clone(),
        severity: t.severity,
        status: t.status,
        workload: t.workload.clone(),
        team: t.team.clone(),
        created_at: t.created_at,
        acknowledged_at: t.acknowledged_at,
        resolved_at: t.resolved_at,
    }
}

fn read_report(r: &IncidentReviewRecord) -> Result<IncidentReport> {
    serde_json::from_str(&r.report).map_err(|e| {
        Error::Internal(format!(
            "unreadable report of post-incident review {}: {e}",
            r.review_id
        ))
    })
}

/// The version of a stored report: the start of its digest.
fn version_of(stored: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(stored.as_bytes())[..8])
}

fn write_report(r: &IncidentReport) -> Result<String> {
    serde_json::to_string(r).map_err(|e| Error::Internal(e.to_string()))
}

fn proposal_state(s: Option<&str>) -> Option<ProposalState> {
    match s {
        Some("approved") => Some(ProposalState::Approved),
        Some("rejected") => Some(ProposalState::Rejected),
        _ => None,
    }
}

/// True for an incident the settings give a post-incident review.
fn calls_for_review(t: &Ticket, severities: &[Severity]) -> bool {
    t.kind == Kind::Incident
        && matches!(t.status, Status::Resolved | Status::Closed)
        && t.workload.is_some()
        && severities.contains(&t.severity)
}

impl Desk {
    /// Opens the post-incident reviews that resolved incidents call for: of `only` these
    /// tickets, or of every incident resolved in the last 30 days. The ids of the reviews opened.
    pub async fn open_incident_reviews(&self, only: Option<&[i64]>) -> Result<Vec<i64>> {
        let severities = self.settings.readiness.post_incident_severities.clone();
        if severities.is_empty() {
            return Ok(Vec::new());
        }
        let ids = match only {
            Some(ids) => ids.to_vec(),
            None => {
                let names: Vec<String> = severities.iter().map(|s| s.as_str().to_owned()).collect();
                let since = self.now() - Duration::days(LOOKBACK_DAYS);
                self.db()
                    .incidents_to_review(&names, since, PASS_LIMIT)
                    .await?
            }
        };
        // An incident resolved longer ago than the look-back gets no review of its own accord,
        // whichever way it is found (an edit of an old incident opens none).
        let since = self.now() - Duration::days(LOOKBACK_DAYS);
        let mut opened = Vec::new();
        for id in ids {
            let Some(t) = self.db().get_ticket(id).await? else {
                continue;
            };
            if !calls_for_review(&t, &severities) || t.resolved_at.is_none_or(|r| r < since) {
                continue;
            }
            let Some(workload) = t.workload.clone() else {
                continue;
            };
            // The workload's scheduled lens, else the built-in one.
            let lens_id = self
                .db()
                .review_schedules(Some(&workload))
                .await?
                .first()
                .map(|s| s.lens_id.clone())
                .unwrap_or_else(|| BUILTIN_LENS_ID.to_owned());
            let severities = severities.clone();
            let review = self
                .change(move |tx, now| {
                    Box::pin(async move {
                        let Some(t) = tx.ticket_for_update(id).await? else {
                            return Ok(None);
                        };
                        if !calls_for_review(&t, &severities) || tx.incident_reviewed(id).await? {
                            return Ok(None);
                        }
                        let v = tx.latest_lens_version(&lens_id).await?.ok_or_else(|| {
                            Error::Internal(format!("lens {lens_id} has no version"))
                        })?;
                        let r = tx
                            .insert_review(
                                &NewReviewRecord {
                                    workload: workload.clone(),
                                    lens_id: lens_id.clone(),
                                    lens_digest: v.digest.clone(),
                                    kind: ReviewKind::PostIncident.as_str().into(),
                                    ticket_id: Some(id),
                                    created_by: "system".into(),
                                },
                                now,
                            )
                            .await?;
                        tx.insert_incident_review(&IncidentReviewRecord {
                            review_id: r.id,
                            ticket_id: id,
                            report: write_report(&IncidentReport::default())?,
                            proposal_state: None,
                            proposal_lens: None,
                            proposal_version: None,
                            completed_at: None,
                            completed_by: None,
                            updated_by: "system".into(),
                            updated_at: now,
                        })
                        .await?;
                        tx.append_audit(AuditEntry {
                            at: now,
                            actor: "system".into(),
                            action: "review.started".into(),
                            ticket_id: Some(id),
                            changes: whole(
                                "review",
                                Value::Null,
                                json!(summary_of(&r, v.version)?),
                            ),
                        })
                        .await?;
                        Ok(Some(r.id))
                    })
                })
                .await?;
            opened.extend(review);
        }
        Ok(opened)
    }

    /// The post-incident review of review `review_id` (staff).
    pub async fn incident_review(&self, actor: &Actor, review_id: i64) -> Result<IncidentReview> {
        actor.require(Permission::ReadInventory)?;
        let r = self
            .db()
            .review(review_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("review {review_id}")))?;
        let doc = self.db().incident_review(review_id).await?.ok_or_else(|| {
            Error::NotFound(format!("review {review_id} is not a post-incident review"))
        })?;
        let t = self
            .db()
            .get_ticket(doc.ticket_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("incident {} is gone", doc.ticket_id)))?;
        let version = self
            .db()
            .lens_version(&r.lens_id, &r.lens_digest)
            .await?
            .map(|v| v.version)
            .unwrap_or_default();
        let report = read_report(&doc)?;
        let (generated, measured) = self.drawn_timeline(&t).await?;
        let timeline_generated = report.timeline.is_empty();
        let timeline = if timeline_generated {
            generated
        } else {
            report.timeline.clone()
        };
        let days = i64::from(self.settings.readiness.post_incident_days);
        Ok(IncidentReview {
            review: summary_of(&r, version)?,
            incident: incident_ref(&t),
            timeline,
            timeline_generated,
            measured,
            due_at: t.resolved_at.map(|at| at + Duration::days(days)),
            completed_at: doc.completed_at,
            completed_by: doc.completed_by.clone(),
            proposal_state: proposal_state(doc.proposal_state.as_deref()),
            proposal_lens: doc.proposal_lens.clone(),
            proposal_version: doc.proposal_version,
            action_items: self.review_items(review_id).await?,
            report,
            report_version: version_of(&doc.report),
            report_updated_by: doc.updated_by.clone(),
            report_updated_at: doc.updated_at,
        })
    }

    /// The timeline drawn from the ticket's records, and the figures measured on the way.
    async fn drawn_timeline(&self, t: &Ticket) -> Result<(Vec<TimelineEntry>, Measured)> {
        let audit = self.db().audit_for_ticket(t.id).await?;
        let signals = self
            .db()
            .signals(&SignalFilter {
                ticket_id: Some(t.id),
                limit: TIMELINE_READ,
                ..SignalFilter::default()
            })
            .await?;
        let sent = self
            .db()
            .outbox(&OutboxFilter {
                state: None,
                ticket_id: Some(t.id),
                limit: TIMELINE_READ,
            })
            .await?;
        let case = self.db().support_case(t.id).await?;
        let mut entries: Vec<TimelineEntry> =
            audit.iter().filter_map(incident::from_audit).collect();
        let escalations = entries
            .iter()
            .filter(|e| e.source == TimelineSource::Escalation)
            .count();
        entries.extend(signals.iter().map(|s| TimelineEntry {
            at: s.received_at,
            source: TimelineSource::Signal,
            text: format!("{} {} ({}): {}", s.source, s.state, s.kind, s.title),
            actor: None,
        }));
        entries.extend(sent.iter().map(|o| {
            let outcome = match (o.state.as_str(), o.delivered_at) {
                ("delivered", Some(at)) => format!("delivered {}", at.format("%H:%M:%S")),
                ("dead", _) => format!(
                    "not delivered: {}",
                    o.last_error.as_deref().unwrap_or("refused")
                ),
                (state, _) => state.to_owned(),
            };
            TimelineEntry {
                at: o.created_at,
                source: TimelineSource::Notification,
                text: format!("{} sent to {}: {outcome}", o.event, o.channel),
                actor: None,
            }
        }));
        let seconds = |to: Option<DateTime<Utc>>| to.map(|at| (at - t.created_at).num_seconds());
        let measured = Measured {
            seconds_to_acknowledge: seconds(t.acknowledged_at),
            seconds_to_resolve: seconds(t.resolved_at),
            signals: signals.len(),
            notifications: sent.len(),
            escalations,
            aws_case: case.filter(|c| c.case_id.is_some()).map(|c| {
                format!(
                    "{} ({})",
                    c.display_id.or(c.case_id).unwrap_or_default(),
                    c.severity.unwrap_or(c.requested_severity)
                )
            }),
        };
        Ok((incident::timeline(entries), measured))
    }

    /// Writes the report of a post-incident review (agents and up). A completed review can
    /// still be corrected; an approved question cannot be changed. With `based_on` (the
    /// `report_version` read), a report changed since is refused, not overwritten.
    pub async fn save_incident_report(
        &self,
        actor: &Actor,
        review_id: i64,
        report: IncidentReport,
        based_on: Option<String>,
    ) -> Result<IncidentReview> {
        actor.require(Permission::WriteTickets)?;
        report.check()?;
        let who = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let mut doc = tx
                    .incident_review_for_update(review_id)
                    .await?
                    .ok_or_else(|| not_incident_review(review_id))?;
                if let Some(read) = based_on.as_deref() {
                    if read != version_of(&doc.report) {
                        return Err(Error::Conflict(format!(
                            "the report was changed by {} at {} since it was read; read it again and make the change there",
                            doc.updated_by,
                            doc.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
                        )));
                    }
                }
                let before = read_report(&doc)?;
                if doc.proposal_state.as_deref() == Some("approved")
                    && before.proposal != report.proposal
                {
                    return Err(FieldError::new(
                        "proposal",
                        "was approved into a lens and is kept as it was; propose another question in a later review",
                    )
                    .into());
                }
                if doc.proposal_state.as_deref() == Some("rejected")
                    && before.proposal != report.proposal
                {
                    doc.proposal_state = None;
                }
                let changes = report_changes(&before, &report);
                if changes.is_empty() {
                    return Ok(());
                }
                doc.report = write_report(&report)?;
                doc.updated_by = who.name.clone();
                doc.updated_at = now;
                tx.save_incident_review(&doc).await?;
                tx.touch_review(review_id, now).await?;
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: who.name.clone(),
                    action: "review.incident_report".into(),
                    ticket_id: Some(doc.ticket_id),
                    changes,
                })
                .await?;
                Ok(())
            })
        })
        .await?;
        self.incident_review(actor, review_id).await
    }

    /// Marks a post-incident review complete (agents and up): it needs what happened, the
    /// impact, and at least one why or contributing factor and one lesson.
    pub async fn complete_incident_review(
        &self,
        actor: &Actor,
        review_id: i64,
    ) -> Result<IncidentReview> {
        actor.require(Permission::WriteTickets)?;
        let who = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let mut doc = tx
                    .incident_review_for_update(review_id)
                    .await?
                    .ok_or_else(|| not_incident_review(review_id))?;
                if doc.completed_at.is_some() {
                    return Ok(());
                }
                let report = read_report(&doc)?;
                for (field, empty) in [
                    ("what_happened", report.what_happened.trim().is_empty()),
                    ("impact", report.impact.trim().is_empty()),
                    (
                        "whys",
                        report.whys.is_empty() && report.contributing_factors.is_empty(),
                    ),
                    ("lessons", report.lessons.is_empty()),
                ] {
                    if empty {
                        return Err(FieldError::new(
                            field,
                            "is needed before the review is complete",
                        )
                        .into());
                    }
                }
                doc.completed_at = Some(now);
                doc.completed_by = Some(who.name.clone());
                doc.updated_by = who.name.clone();
                doc.updated_at = now;
                tx.save_incident_review(&doc).await?;
                tx.touch_review(review_id, now).await?;
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: who.name.clone(),
                    action: "review.incident_completed".into(),
                    ticket_id: Some(doc.ticket_id),
                    changes: whole("completed_at", Value::Null, json!(now)),
                })
                .await?;
                Ok(())
            })
        })
        .await?;
        self.incident_review(actor, review_id).await
    }

    /// Approves the proposed question into a lens (a new version of it) or rejects it (admins).
    pub async fn decide_proposal(
        &self,
        actor: &Actor,
        review_id: i64,
        decision: ProposalDecision,
    ) -> Result<IncidentReview> {
        actor.require_admin()?;
        let r = self
            .db()
            .review(review_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("review {review_id}")))?;
        let doc = self
            .db()
            .incident_review(review_id)
            .await?
            .ok_or_else(|| not_incident_review(review_id))?;
        let report = read_report(&doc)?;
        let Some(proposal) = report.proposal.clone() else {
            return Err(FieldError::new("proposal", "the review proposes no question").into());
        };
        if doc.proposal_state.is_some() {
            return Err(Error::Conflict(format!(
                "the proposed question was {} already",
                doc.proposal_state.as_deref().unwrap_or_default()
            )));
        }
        let key = Ticket::key_for(doc.ticket_id);
        let url = self
            .notify_settings()
            .base_url
            .as_ref()
            .map(|b| format!("{}/tickets/{key}", b.trim_end_matches('/')));
        let target = if decision.approve {
            let lens_id = decision.lens.clone().unwrap_or(r.lens_id.clone());
            if lens_id == BUILTIN_LENS_ID {
                return Err(FieldError::new(
                    "lens",
                    "the built-in lens changes only with opsdesk: import a lens of your team's (it may start as an export of the built-in one) and add the question there",
                )
                .into());
            }
            let versions = self.db().lens_versions(&lens_id).await?;
            let latest = versions.last().ok_or_else(|| {
                FieldError::new("lens", format!("no lens has the id `{lens_id}`"))
            })?;
            let lens = self.caches.lenses.get(latest)?;
            let next: Lens = incident::with_question(&lens, &proposal, &key, url.as_deref())
                .map_err(super::lens_error)?;
            Some((lens_id, latest.digest.clone(), next))
        } else {
            None
        };
        let who = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let mut doc = tx
                    .incident_review_for_update(review_id)
                    .await?
                    .ok_or_else(|| not_incident_review(review_id))?;
                if doc.proposal_state.is_some() || read_report(&doc)?.proposal != Some(proposal) {
                    return Err(Error::Conflict(
                        "the proposal changed meanwhile; read the review again".into(),
                    ));
                }
                match target {
                    Some((lens_id, based_on, next)) => {
                        let newest = tx.latest_lens_version(&lens_id).await?;
                        if newest.map(|v| v.digest) != Some(based_on) {
                            return Err(Error::Conflict(format!(
                                "lens {lens_id} got a new version meanwhile; approve again"
                            )));
                        }
                        let v = tx
                            .insert_lens_version(
                                &lens_id,
                                next.digest(),
                                &next.export_pretty(),
                                &who.name,
                                now,
                            )
                            .await?
                            .ok_or_else(|| {
                                Error::Conflict("the lens holds this question already".into())
                            })?;
                        record(
                            tx,
                            &who,
                            now,
                            "lens.imported",
                            whole(
                                "lens",
                                Value::Null,
                                json!({
                                    "id": lens_id,
                                    "version": v.version,
                                    "digest": v.digest,
                                    "from_incident": key,
                                }),
                            ),
                        )
                        .await?;
                        doc.proposal_state = Some("approved".into());
                        doc.proposal_lens = Some(lens_id);
                        doc.proposal_version = Some(v.version);
                    }
                    None => doc.proposal_state = Some("rejected".into()),
                }
                doc.updated_by = who.name.clone();
                doc.updated_at = now;
                tx.save_incident_review(&doc).await?;
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: who.name.clone(),
                    action: "review.proposal_decided".into(),
                    ticket_id: Some(doc.ticket_id),
                    changes: whole(
                        "proposal",
                        Value::Null,
                        json!({
                            "review": review_id,
                            "state": doc.proposal_state,
                            "lens": doc.proposal_lens,
                            "version": doc.proposal_version,
                        }),
                    ),
                })
                .await?;
                Ok(())
            })
        })
        .await?;
        self.incident_review(actor, review_id).await
    }
}

fn not_incident_review(review_id: i64) -> Error {
    Error::NotFound(format!("review {review_id} is not a post-incident review"))
}

/// The report's top-level fields that changed, before and after.
fn report_changes(before: &IncidentReport, after: &IncidentReport) -> Changes {
    let (Value::Object(b), Value::Object(a)) = (json!(before), json!(after)) else {
        return Changes::new();
    };
    let mut out = Changes::new();
    for (field, after) in a {
        let before = b.get(&field).cloned().unwrap_or(Value::Null);
        if before != after {
            out.insert(field, FieldChange { before, after });
        }
    }
    out
}
