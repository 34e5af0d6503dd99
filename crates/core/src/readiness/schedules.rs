//! Review schedules per workload, and the pass that keeps readiness moving: it opens the
//! reviews schedules and incidents call for and announces `review_due`, `review_overdue` and
//! `action_item_overdue` through the routing rules, each once whichever node sees it first.

use chrono::{DateTime, NaiveDate, Utc};
use opsdesk_domain::channel::{Notification, NotificationEvent};
use opsdesk_domain::readiness::schedule::{Cadence, ScheduleSpec, ScheduleState};
use opsdesk_domain::{FieldError, Permission, Severity};
use opsdesk_store::{NewReviewRecord, ScheduleRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{summary_of, ReviewKind, BUILTIN_LENS_ID};
use crate::audit::{record, whole};
use crate::{Actor, Desk, Error, Result};

/// What the readiness work of opsdesk is set to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessSettings {
    /// Incidents of these severities on a workload get a post-incident review when resolved.
    pub post_incident_severities: Vec<Severity>,
    /// A post-incident review is due this many days after its incident was resolved.
    pub post_incident_days: u32,
    /// An action item given no due date is due this many days after it is made.
    pub action_item_days: u32,
}

impl Default for ReadinessSettings {
    fn default() -> Self {
        ReadinessSettings {
            post_incident_severities: vec![Severity::Sev1, Severity::Sev2],
            post_incident_days: 14,
            action_item_days: 30,
        }
    }
}

/// A schedule to add: `every_days`, or `review_by` with `days_before`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,200}$")]
    pub workload: String,
    /// The lens the scheduled reviews use; default `opsdesk-readiness`.
    #[serde(default)]
    pub lens: Option<String>,
    /// Review again this many days after the last review (1 to 3650).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub every_days: Option<u32>,
    /// A date to be ready by (a launch, a peak), `YYYY-MM-DD`.
    #[serde(default)]
    pub review_by: Option<NaiveDate>,
    /// With `review_by`: due this many days before it (0 to 3650, default 0).
    #[serde(default)]
    #[schema(maximum = 3650)]
    pub days_before: Option<u32>,
    /// `review_due` is announced this many days ahead (0 to 3650, default 14).
    #[serde(default)]
    #[schema(maximum = 3650)]
    pub notice_days: Option<u32>,
}

/// A schedule with where it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    pub id: i64,
    pub workload: String,
    pub lens: String,
    pub every_days: Option<u32>,
    pub review_by: Option<NaiveDate>,
    pub days_before: Option<u32>,
    pub notice_days: u32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// When the workload's newest milestone was made, if ever.
    pub last_reviewed_at: Option<DateTime<Utc>>,
    pub due_at: DateTime<Utc>,
    pub state: ScheduleState,
}

/// What one readiness pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadinessPass {
    pub incident_reviews_opened: Vec<i64>,
    pub reviews_opened: Vec<i64>,
    pub announced: Vec<String>,
}

fn days_u32(v: Option<i64>) -> Option<u32> {
    v.and_then(|d| u32::try_from(d).ok())
}

fn cadence_of(s: &ScheduleRecord) -> Result<(Cadence, u32)> {
    let spec = ScheduleSpec {
        every_days: days_u32(s.every_days),
        review_by: s
            .review_by
            .as_deref()
            .map(|d| {
                d.parse::<NaiveDate>()
                    .map_err(|e| Error::Internal(format!("stored schedule {} date: {e}", s.id)))
            })
            .transpose()?,
        days_before: days_u32(s.days_before),
        notice_days: days_u32(Some(s.notice_days)),
    };
    spec.check()
        .map_err(|e| Error::Internal(format!("stored schedule {} does not check: {e}", s.id)))
}

fn view(s: &ScheduleRecord, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<Schedule> {
    let (cadence, notice) = cadence_of(s)?;
    let standing = cadence.standing(notice, s.created_at, last, now);
    Ok(Schedule {
        id: s.id,
        workload: s.workload.clone(),
        lens: s.lens_id.clone(),
        every_days: days_u32(s.every_days),
        review_by: s.review_by.as_deref().and_then(|d| d.parse().ok()),
        days_before: days_u32(s.days_before),
        notice_days: notice,
        created_by: s.created_by.clone(),
        created_at: s.created_at,
        last_reviewed_at: last,
        due_at: standing.due_at,
        state: standing.state,
    })
}

impl Desk {
    /// Uses these readiness settings instead of the defaults.
    pub fn with_readiness_settings(mut self, settings: ReadinessSettings) -> Desk {
        self.settings.readiness = std::sync::Arc::new(settings);
        self
    }

    pub fn readiness_settings(&self) -> &ReadinessSettings {
        &self.settings.readiness
    }

    async fn last_reviewed(&self, workload: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .db()
            .last_reviewed()
            .await?
            .into_iter()
            .find(|(w, _)| w == workload)
            .map(|(_, t)| t))
    }

    /// Schedules, of one workload or all, with where each stands (staff).
    pub async fn schedules(&self, actor: &Actor, workload: Option<&str>) -> Result<Vec<Schedule>> {
        actor.require(Permission::ReadInventory)?;
        let last = self.db().last_reviewed().await?;
        let now = self.now();
        self.db()
            .review_schedules(workload)
            .await?
            .iter()
            .map(|s| {
                let l = last.iter().find(|(w, _)| *w == s.workload).map(|(_, t)| *t);
                view(s, l, now)
            })
            .collect()
    }

    /// Adds a review schedule to a workload (agents and up).
    pub async fn create_schedule(&self, actor: &Actor, input: NewSchedule) -> Result<Schedule> {
        actor.require(Permission::WriteTickets)?;
        let spec = ScheduleSpec {
            every_days: input.every_days,
            review_by: input.review_by,
            days_before: input.days_before,
            notice_days: input.notice_days,
        };
        let (cadence, notice) = spec.check()?;
        let workload = input.workload.trim().to_owned();
        if self.db().workload(&workload).await?.is_none() {
            return Err(
                FieldError::new("workload", format!("no workload is named `{workload}`")).into(),
            );
        }
        let lens_id = input.lens.unwrap_or_else(|| BUILTIN_LENS_ID.to_owned());
        if self.db().lens(&lens_id).await?.is_none() {
            return Err(FieldError::new("lens", format!("no lens has the id `{lens_id}`")).into());
        }
        let (every_days, review_by, days_before) = match cadence {
            Cadence::Every { days } => (Some(i64::from(days)), None, None),
            Cadence::Before { date, days } => (None, Some(date.to_string()), Some(i64::from(days))),
        };
        let actor = actor.clone();
        let record_in = ScheduleRecord {
            id: 0,
            workload,
            lens_id,
            every_days,
            review_by,
            days_before,
            notice_days: i64::from(notice),
            created_by: actor.name.clone(),
            created_at: self.now(),
        };
        let saved = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let saved = tx.insert_schedule(&record_in, now).await?;
                    record(
                        tx,
                        &actor,
                        now,
                        "review_schedule.created",
                        whole("schedule", Value::Null, schedule_json(&saved)),
                    )
                    .await?;
                    Ok(saved)
                })
            })
            .await?;
        let last = self.last_reviewed(&saved.workload).await?;
        view(&saved, last, self.now())
    }

    /// Removes a review schedule (agents and up).
    pub async fn delete_schedule(&self, actor: &Actor, id: i64) -> Result<()> {
        actor.require(Permission::WriteTickets)?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let gone = tx
                    .delete_schedule(id)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("review schedule {id}")))?;
                record(
                    tx,
                    &actor,
                    now,
                    "review_schedule.deleted",
                    whole("schedule", schedule_json(&gone), Value::Null),
                )
                .await
            })
        })
        .await
    }

    /// One pass of the readiness work: post-incident reviews for resolved incidents, reviews
    /// and announcements for schedules that came due, announcements for overdue action items.
    /// Each node may run it; every step is done once.
    pub async fn watch_readiness(&self) -> Result<ReadinessPass> {
        let mut pass = ReadinessPass {
            incident_reviews_opened: self.open_incident_reviews(None).await?,
            ..ReadinessPass::default()
        };
        self.announce_schedules(&mut pass).await?;
        self.announce_overdue_items(&mut pass).await?;
        Ok(pass)
    }

    async fn announce_schedules(&self, pass: &mut ReadinessPass) -> Result<()> {
        let now = self.now();
        let last = self.db().last_reviewed().await?;
        for s in self.db().review_schedules(None).await? {
            let l = last.iter().find(|(w, _)| *w == s.workload).map(|(_, t)| *t);
            let (cadence, notice) = cadence_of(&s)?;
            let standing = cadence.standing(notice, s.created_at, l, now);
            if !matches!(standing.state, ScheduleState::Due | ScheduleState::Overdue) {
                continue;
            }
            let due_day = standing.due_at.format("%Y-%m-%d").to_string();
            let overdue = standing.state == ScheduleState::Overdue;
            // A schedule outlives its workload only until removed: nothing is due of it.
            let Some(workload) = self.db().workload(&s.workload).await? else {
                continue;
            };
            let routing = self.routing().await?;
            let base_url = self.notify_settings().base_url.clone();
            let s2 = s.clone();
            let (opened, told) = self
                .change(move |tx, now| {
                    Box::pin(async move {
                        let mut told = Vec::new();
                        let mut opened = None;
                        let due_key = format!("review_due:{}:{due_day}", s2.id);
                        if tx.claim_readiness_event(&due_key, now).await? {
                            // A review is opened for the due date unless one was started since
                            // the notice began.
                            let started = tx
                                .review_started_since(&s2.workload, &s2.lens_id, standing.notice_at)
                                .await?;
                            let review_id = match started {
                                Some(id) => id,
                                None => {
                                    let v = tx.latest_lens_version(&s2.lens_id).await?.ok_or_else(
                                        || {
                                            Error::Internal(format!(
                                                "lens {} has no version",
                                                s2.lens_id
                                            ))
                                        },
                                    )?;
                                    let r = tx
                                        .insert_review(
                                            &NewReviewRecord {
                                                workload: s2.workload.clone(),
                                                lens_id: s2.lens_id.clone(),
                                                lens_digest: v.digest.clone(),
                                                kind: ReviewKind::Periodic.as_str().into(),
                                                ticket_id: None,
                                                created_by: "system".into(),
                                            },
                                            now,
                                        )
                                        .await?;
                                    let summary = summary_of(&r, v.version)?;
                                    record(
                                        tx,
                                        &crate::Actor::new("system", opsdesk_domain::Role::Admin),
                                        now,
                                        "review.started",
                                        whole("review", Value::Null, json!(summary)),
                                    )
                                    .await?;
                                    opened = Some(r.id);
                                    r.id
                                }
                            };
                            if !overdue {
                                told.push(due_key.clone());
                                let n = review_notice(
                                    NotificationEvent::ReviewDue,
                                    &s2,
                                    Some(&workload),
                                    standing.due_at,
                                    review_id,
                                    base_url.as_deref(),
                                    now,
                                );
                                let items = routing
                                    .kpi_items(tx, NotificationEvent::ReviewDue, &n, &due_key)
                                    .await?;
                                tx.enqueue(&items, now).await?;
                                record_event(tx, now, "review.due", &n).await?;
                            }
                        }
                        let over_key = format!("review_overdue:{}:{due_day}", s2.id);
                        if overdue && tx.claim_readiness_event(&over_key, now).await? {
                            told.push(over_key.clone());
                            let review_id = tx
                                .review_started_since(&s2.workload, &s2.lens_id, standing.notice_at)
                                .await?
                                .unwrap_or_default();
                            let n = review_notice(
                                NotificationEvent::ReviewOverdue,
                                &s2,
                                Some(&workload),
                                standing.due_at,
                                review_id,
                                base_url.as_deref(),
                                now,
                            );
                            let items = routing
                                .kpi_items(tx, NotificationEvent::ReviewOverdue, &n, &over_key)
                                .await?;
                            tx.enqueue(&items, now).await?;
                            record_event(tx, now, "review.overdue", &n).await?;
                        }
                        Ok((opened, told))
                    })
                })
                .await?;
            pass.reviews_opened.extend(opened);
            pass.announced.extend(told);
        }
        Ok(())
    }
}

fn schedule_json(s: &ScheduleRecord) -> Value {
    json!({
        "id": s.id,
        "workload": s.workload,
        "lens": s.lens_id,
        "every_days": s.every_days,
        "review_by": s.review_by,
        "days_before": s.days_before,
        "notice_days": s.notice_days,
    })
}

/// The message of a schedule's event.
fn review_notice(
    event: NotificationEvent,
    s: &ScheduleRecord,
    workload: Option<&opsdesk_domain::Workload>,
    due_at: DateTime<Utc>,
    review_id: i64,
    base_url: Option<&str>,
    now: DateTime<Utc>,
) -> Notification {
    let due = due_at.format("%Y-%m-%d");
    let title = match event {
        NotificationEvent::ReviewOverdue => {
            format!("Readiness review of {} overdue since {due}", s.workload)
        }
        _ => format!("Readiness review of {} due {due}", s.workload),
    };
    let mut summary = vec![title.clone()];
    summary.push(format!(
        "Lens {}; {}.",
        s.lens_id,
        match (s.every_days, &s.review_by) {
            (Some(d), _) => format!("reviewed every {d} days"),
            (None, Some(date)) => format!(
                "to be ready by {date}, {} days before",
                s.days_before.unwrap_or(0)
            ),
            (None, None) => "on a schedule".to_owned(),
        }
    ));
    if review_id > 0 {
        summary.push(format!(
            "Review {review_id} is open for it; a milestone marks it done."
        ));
    }
    Notification {
        event,
        ticket_id: None,
        ticket_key: None,
        title,
        severity: None,
        status: None,
        workload: Some(s.workload.clone()),
        environment: workload.map(|w| w.environment),
        team: workload.and_then(|w| w.team.clone()),
        summary: summary.join("\n"),
        url: base_url.map(|b| {
            if review_id > 0 {
                format!("{}/reviews/{review_id}", b.trim_end_matches('/'))
            } else {
                format!(
                    "{}/workloads/{}/readiness",
                    b.trim_end_matches('/'),
                    s.workload
                )
            }
        }),
        at: now,
        recipients: Vec::new(),
        report: None,
    }
}

async fn record_event(
    tx: &mut opsdesk_store::Tx,
    now: DateTime<Utc>,
    action: &str,
    n: &Notification,
) -> Result<()> {
    record(
        tx,
        &crate::Actor::new("system", opsdesk_domain::Role::Admin),
        now,
        action,
        whole(
            "event",
            Value::Null,
            json!({ "title": n.title, "workload": n.workload, "team": n.team, "url": n.url }),
        ),
    )
    .await
}
