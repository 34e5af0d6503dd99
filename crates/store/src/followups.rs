//! Readiness follow-up: review schedules, post-incident reviews, action items and the
//! readiness events announced once.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{on_read, on_tx, Db, Result, Ts, Tx};

/// When a workload is to be reviewed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    pub id: i64,
    pub workload: String,
    pub lens_id: String,
    pub every_days: Option<i64>,
    /// `YYYY-MM-DD`.
    pub review_by: Option<String>,
    pub days_before: Option<i64>,
    pub notice_days: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// The document of a post-incident review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentReviewRecord {
    pub review_id: i64,
    pub ticket_id: i64,
    /// JSON written by the use case.
    pub report: String,
    pub proposal_state: Option<String>,
    pub proposal_lens: Option<String>,
    pub proposal_version: Option<i64>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// A finding or lesson that became a task ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionItemRecord {
    pub id: i64,
    pub review_id: i64,
    pub question_id: Option<String>,
    pub ticket_id: i64,
    pub incident_id: Option<i64>,
    pub due_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub verified_by: Option<String>,
    pub verification: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Which action items to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionItemFilter {
    pub review_id: Option<i64>,
    pub ticket_id: Option<i64>,
    pub incident_id: Option<i64>,
    /// Only those not verified.
    pub open: bool,
}

/// What the readiness KPIs read of one post-incident review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentReviewFact {
    pub workload: String,
    pub team: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub opened_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

const SCHEDULE_COLUMNS: &str = "id, workload, lens_id, every_days, review_by, days_before, \
                                notice_days, created_by, created_at";
const INCIDENT_COLUMNS: &str = "review_id, ticket_id, report, proposal_state, proposal_lens, \
                                proposal_version, completed_at, completed_by, updated_by, \
                                updated_at";
const ITEM_COLUMNS: &str = "id, review_id, question_id, ticket_id, incident_id, due_at, \
                            verified_at, verified_by, verification, created_by, created_at";

macro_rules! schedule_from {
    ($row:expr) => {
        ScheduleRecord {
            id: $row.try_get("id")?,
            workload: $row.try_get("workload")?,
            lens_id: $row.try_get("lens_id")?,
            every_days: $row.try_get("every_days")?,
            review_by: $row.try_get("review_by")?,
            days_before: $row.try_get("days_before")?,
            notice_days: $row.try_get("notice_days")?,
            created_by: $row.try_get("created_by")?,
            created_at: $row.try_get::<Ts, _>("created_at")?.0,
        }
    };
}

macro_rules! incident_from {
    ($row:expr) => {
        IncidentReviewRecord {
            review_id: $row.try_get("review_id")?,
            ticket_id: $row.try_get("ticket_id")?,
            report: $row.try_get("report")?,
            proposal_state: $row.try_get("proposal_state")?,
            proposal_lens: $row.try_get("proposal_lens")?,
            proposal_version: $row.try_get("proposal_version")?,
            completed_at: $row.try_get::<Option<Ts>, _>("completed_at")?.map(|t| t.0),
            completed_by: $row.try_get("completed_by")?,
            updated_by: $row.try_get("updated_by")?,
            updated_at: $row.try_get::<Ts, _>("updated_at")?.0,
        }
    };
}

macro_rules! item_from {
    ($row:expr) => {
        ActionItemRecord {
            id: $row.try_get("id")?,
            review_id: $row.try_get("review_id")?,
            question_id: $row.try_get("question_id")?,
            ticket_id: $row.try_get("ticket_id")?,
            incident_id: $row.try_get("incident_id")?,
            due_at: $row.try_get::<Option<Ts>, _>("due_at")?.map(|t| t.0),
            verified_at: $row.try_get::<Option<Ts>, _>("verified_at")?.map(|t| t.0),
            verified_by: $row.try_get("verified_by")?,
            verification: $row.try_get("verification")?,
            created_by: $row.try_get("created_by")?,
            created_at: $row.try_get::<Ts, _>("created_at")?.0,
        }
    };
}

impl Db {
    /// Schedules, of one workload or all, oldest first.
    pub async fn review_schedules(&self, workload: Option<&str>) -> Result<Vec<ScheduleRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {SCHEDULE_COLUMNS} FROM review_schedules \
                 WHERE ($1 IS NULL OR workload = $1) ORDER BY id"
            ))
            .bind(workload)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(schedule_from!(row))).collect()
        })
    }

    /// When each workload's newest milestone was made: when it was last reviewed.
    pub async fn last_reviewed(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT r.workload, MAX(m.created_at) AS at FROM review_milestones m \
                 JOIN reviews r ON r.id = m.review_id GROUP BY r.workload ORDER BY r.workload",
            )
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("workload")?, row.try_get::<Ts, _>("at")?.0)))
                .collect()
        })
    }

    /// Resolved or closed incidents of these severities on a workload, resolved since `since`,
    /// that have no post-incident review yet; oldest first, at most `limit`.
    pub async fn incidents_to_review(
        &self,
        severities: &[String],
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<i64>> {
        let list = serde_json::to_string(severities).unwrap_or_else(|_| "[]".into());
        on_read!(self, p, b => {
            let within = match b {
                crate::db::Backend::Sqlite => "t.severity IN (SELECT value FROM json_each($1))",
                crate::db::Backend::Postgres => {
                    "t.severity IN (SELECT jsonb_array_elements_text($1::jsonb))"
                }
            };
            let rows = sqlx::query(&format!(
                "SELECT t.id FROM tickets t LEFT JOIN incident_reviews i ON i.ticket_id = t.id \
                 WHERE t.kind = 'incident' AND t.status IN ('resolved', 'closed') \
                   AND t.workload IS NOT NULL AND t.resolved_at >= $2 AND i.review_id IS NULL \
                   AND {within} \
                 ORDER BY t.resolved_at, t.id LIMIT $3"
            ))
            .bind(&list)
            .bind(Ts(since))
            .bind(limit)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
        })
    }

    pub async fn incident_review(&self, review_id: i64) -> Result<Option<IncidentReviewRecord>> {
        on_read!(self, p, _b => {
            let row = sqlx::query(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incident_reviews WHERE review_id = $1"
            ))
            .bind(review_id)
            .fetch_optional(p)
            .await?;
            row.map(|row| Ok(incident_from!(row))).transpose()
        })
    }

    /// Post-incident reviews opened since `since`, with their incident's workload, team and
    /// resolution time.
    pub async fn incident_review_facts(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<IncidentReviewFact>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT r.workload, t.team, t.resolved_at, r.created_at, i.completed_at \
                 FROM incident_reviews i JOIN reviews r ON r.id = i.review_id \
                 JOIN tickets t ON t.id = i.ticket_id WHERE r.created_at >= $1",
            )
            .bind(Ts(since))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(IncidentReviewFact {
                        workload: row.try_get("workload")?,
                        team: row.try_get("team")?,
                        resolved_at: row.try_get::<Option<Ts>, _>("resolved_at")?.map(|t| t.0),
                        opened_at: row.try_get::<Ts, _>("created_at")?.0,
                        completed_at: row.try_get::<Option<Ts>, _>("completed_at")?.map(|t| t.0),
                    })
                })
                .collect()
        })
    }

    pub async fn action_item(&self, id: i64) -> Result<Option<ActionItemRecord>> {
        on_read!(self, p, _b => {
            let row = sqlx::query(&format!("SELECT {ITEM_COLUMNS} FROM action_items WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?;
            row.map(|row| Ok(item_from!(row))).transpose()
        })
    }

    /// Action items the filter keeps, oldest first.
    pub async fn action_items(&self, f: &ActionItemFilter) -> Result<Vec<ActionItemRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {ITEM_COLUMNS} FROM action_items \
                 WHERE ($1 IS NULL OR review_id = $1) AND ($2 IS NULL OR ticket_id = $2) \
                   AND ($3 IS NULL OR incident_id = $3) AND ($4 = FALSE OR verified_at IS NULL) \
                 ORDER BY id"
            ))
            .bind(f.review_id)
            .bind(f.ticket_id)
            .bind(f.incident_id)
            .bind(f.open)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(item_from!(row))).collect()
        })
    }

    /// Items not verified whose due time has passed.
    pub async fn overdue_action_items(&self, now: DateTime<Utc>) -> Result<Vec<ActionItemRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {ITEM_COLUMNS} FROM action_items \
                 WHERE verified_at IS NULL AND due_at IS NOT NULL AND due_at <= $1 ORDER BY id"
            ))
            .bind(Ts(now))
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(item_from!(row))).collect()
        })
    }
}

impl Tx {
    pub async fn insert_schedule(
        &mut self,
        s: &ScheduleRecord,
        now: DateTime<Utc>,
    ) -> Result<ScheduleRecord> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "INSERT INTO review_schedules \
                   (workload, lens_id, every_days, review_by, days_before, notice_days, \
                    created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {SCHEDULE_COLUMNS}"
            ))
            .bind(&s.workload)
            .bind(&s.lens_id)
            .bind(s.every_days)
            .bind(s.review_by.as_deref())
            .bind(s.days_before)
            .bind(s.notice_days)
            .bind(&s.created_by)
            .bind(Ts(now))
            .fetch_one(&mut *c)
            .await?;
            Ok(schedule_from!(row))
        })
    }

    /// Removes a schedule; the one removed, if it existed.
    pub async fn delete_schedule(&mut self, id: i64) -> Result<Option<ScheduleRecord>> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "DELETE FROM review_schedules WHERE id = $1 RETURNING {SCHEDULE_COLUMNS}"
            ))
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|row| Ok(schedule_from!(row))).transpose()
        })
    }

    /// Records that the event `key` was announced; false when it was already.
    pub async fn claim_readiness_event(&mut self, key: &str, now: DateTime<Utc>) -> Result<bool> {
        self.note_write();
        on_tx!(self, c, _b => {
            let n = sqlx::query(
                "INSERT INTO readiness_events (key, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(key)
            .bind(Ts(now))
            .execute(&mut *c)
            .await?
            .rows_affected();
            Ok(n > 0)
        })
    }

    /// The newest review, by hand or on a schedule (not after an incident), of a workload and
    /// lens started at or after `since`.
    pub async fn review_started_since(
        &mut self,
        workload: &str,
        lens_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        on_tx!(self, c, _b => {
            let id: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(id) FROM reviews WHERE workload = $1 AND lens_id = $2 \
                 AND kind <> 'post_incident' AND created_at >= $3",
            )
            .bind(workload)
            .bind(lens_id)
            .bind(Ts(since))
            .fetch_one(&mut *c)
            .await?;
            Ok(id)
        })
    }

    /// Adds the document of a post-incident review; false when the incident has one already.
    pub async fn insert_incident_review(&mut self, r: &IncidentReviewRecord) -> Result<bool> {
        self.note_write();
        on_tx!(self, c, _b => {
            let n = sqlx::query(
                "INSERT INTO incident_reviews (review_id, ticket_id, report, updated_by, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(r.review_id)
            .bind(r.ticket_id)
            .bind(&r.report)
            .bind(&r.updated_by)
            .bind(Ts(r.updated_at))
            .execute(&mut *c)
            .await?
            .rows_affected();
            Ok(n > 0)
        })
    }

    /// True when the incident has a post-incident review.
    pub async fn incident_reviewed(&mut self, ticket_id: i64) -> Result<bool> {
        on_tx!(self, c, _b => {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM incident_reviews WHERE ticket_id = $1")
                    .bind(ticket_id)
                    .fetch_one(&mut *c)
                    .await?;
            Ok(n > 0)
        })
    }

    pub async fn incident_review_for_update(
        &mut self,
        review_id: i64,
    ) -> Result<Option<IncidentReviewRecord>> {
        on_tx!(self, c, b => {
            let row = sqlx::query(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incident_reviews WHERE review_id = $1{}",
                b.for_update()
            ))
            .bind(review_id)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|row| Ok(incident_from!(row))).transpose()
        })
    }

    /// Writes back every field of a post-incident review.
    pub async fn save_incident_review(&mut self, r: &IncidentReviewRecord) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "UPDATE incident_reviews SET report = $2, proposal_state = $3, \
                   proposal_lens = $4, proposal_version = $5, completed_at = $6, \
                   completed_by = $7, updated_by = $8, updated_at = $9 \
                 WHERE review_id = $1",
            )
            .bind(r.review_id)
            .bind(&r.report)
            .bind(r.proposal_state.as_deref())
            .bind(r.proposal_lens.as_deref())
            .bind(r.proposal_version)
            .bind(r.completed_at.map(Ts))
            .bind(r.completed_by.as_deref())
            .bind(&r.updated_by)
            .bind(Ts(r.updated_at))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// The item made of a review's finding on a question, if one was.
    pub async fn finding_item(
        &mut self,
        review_id: i64,
        question_id: &str,
    ) -> Result<Option<ActionItemRecord>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "SELECT {ITEM_COLUMNS} FROM action_items WHERE review_id = $1 AND question_id = $2"
            ))
            .bind(review_id)
            .bind(question_id)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|row| Ok(item_from!(row))).transpose()
        })
    }

    pub async fn insert_action_item(&mut self, a: &ActionItemRecord) -> Result<ActionItemRecord> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "INSERT INTO action_items \
                   (review_id, question_id, ticket_id, incident_id, due_at, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ITEM_COLUMNS}"
            ))
            .bind(a.review_id)
            .bind(a.question_id.as_deref())
            .bind(a.ticket_id)
            .bind(a.incident_id)
            .bind(a.due_at.map(Ts))
            .bind(&a.created_by)
            .bind(Ts(a.created_at))
            .fetch_one(&mut *c)
            .await?;
            Ok(item_from!(row))
        })
    }

    pub async fn action_item_for_update(&mut self, id: i64) -> Result<Option<ActionItemRecord>> {
        on_tx!(self, c, b => {
            let row = sqlx::query(&format!(
                "SELECT {ITEM_COLUMNS} FROM action_items WHERE id = $1{}",
                b.for_update()
            ))
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|row| Ok(item_from!(row))).transpose()
        })
    }

    /// Marks an item verified with the note that says how.
    pub async fn verify_action_item(
        &mut self,
        id: i64,
        by: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "UPDATE action_items SET verified_at = $2, verified_by = $3, verification = $4 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(Ts(now))
            .bind(by)
            .bind(note)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }
}
