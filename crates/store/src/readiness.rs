//! Readiness: lenses and their versions, reviews, their answers and milestones.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{on_read, on_tx, Db, Result, StoreError, Ts, Tx};

/// A lens kept by opsdesk: imported, or the built-in one seeded at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LensRecord {
    pub id: String,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// One version of a lens: the document as imported and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LensVersionRecord {
    pub lens_id: String,
    pub version: i64,
    pub digest: String,
    pub document: String,
    pub imported_by: String,
    pub imported_at: DateTime<Utc>,
}

/// A review: one version of a lens applied to one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRecord {
    pub id: i64,
    pub workload: String,
    pub lens_id: String,
    pub lens_digest: String,
    pub kind: String,
    pub ticket_id: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A review to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReviewRecord {
    pub workload: String,
    pub lens_id: String,
    pub lens_digest: String,
    pub kind: String,
    pub ticket_id: Option<i64>,
    pub created_by: String,
}

/// The answer to one question of a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRecord {
    pub question_id: String,
    pub choices: Vec<String>,
    pub notes: Option<String>,
    pub not_applicable: Option<String>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// A milestone: a review's answers and risks frozen under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilestoneRecord {
    pub review_id: i64,
    pub number: i64,
    pub name: String,
    pub lens_digest: String,
    /// JSON written by the use case that froze it.
    pub frozen: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Which reviews to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewFilter {
    pub workload: Option<String>,
    pub kind: Option<String>,
    pub ticket_id: Option<i64>,
}

const LENS_COLUMNS: &str = "id, name, created_by, created_at";
const VERSION_COLUMNS: &str = "lens_id, version, digest, document, imported_by, imported_at";
const REVIEW_COLUMNS: &str = "id, workload, lens_id, lens_digest, kind, ticket_id, created_by, \
                              created_at, updated_at";
const ANSWER_COLUMNS: &str = "question_id, choices, notes, not_applicable, updated_by, updated_at";
const MILESTONE_COLUMNS: &str =
    "review_id, number, name, lens_digest, frozen, created_by, created_at";

macro_rules! lens_from {
    ($row:expr) => {
        LensRecord {
            id: $row.try_get("id")?,
            name: $row.try_get("name")?,
            created_by: $row.try_get("created_by")?,
            created_at: $row.try_get::<Ts, _>("created_at")?.0,
        }
    };
}

macro_rules! version_from {
    ($row:expr) => {
        LensVersionRecord {
            lens_id: $row.try_get("lens_id")?,
            version: $row.try_get("version")?,
            digest: $row.try_get("digest")?,
            document: $row.try_get("document")?,
            imported_by: $row.try_get("imported_by")?,
            imported_at: $row.try_get::<Ts, _>("imported_at")?.0,
        }
    };
}

macro_rules! review_from {
    ($row:expr) => {
        ReviewRecord {
            id: $row.try_get("id")?,
            workload: $row.try_get("workload")?,
            lens_id: $row.try_get("lens_id")?,
            lens_digest: $row.try_get("lens_digest")?,
            kind: $row.try_get("kind")?,
            ticket_id: $row.try_get("ticket_id")?,
            created_by: $row.try_get("created_by")?,
            created_at: $row.try_get::<Ts, _>("created_at")?.0,
            updated_at: $row.try_get::<Ts, _>("updated_at")?.0,
        }
    };
}

macro_rules! answer_from {
    ($row:expr) => {
        AnswerRecord {
            question_id: $row.try_get("question_id")?,
            choices: choice_list(&$row.try_get::<String, _>("choices")?)?,
            notes: $row.try_get("notes")?,
            not_applicable: $row.try_get("not_applicable")?,
            updated_by: $row.try_get("updated_by")?,
            updated_at: $row.try_get::<Ts, _>("updated_at")?.0,
        }
    };
}

macro_rules! milestone_from {
    ($row:expr) => {
        MilestoneRecord {
            review_id: $row.try_get("review_id")?,
            number: $row.try_get("number")?,
            name: $row.try_get("name")?,
            lens_digest: $row.try_get("lens_digest")?,
            frozen: $row.try_get("frozen")?,
            created_by: $row.try_get("created_by")?,
            created_at: $row.try_get::<Ts, _>("created_at")?.0,
        }
    };
}

fn choice_list(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("unreadable choices of an answer: {e}")))
}

fn choice_text(choices: &[String]) -> Result<String> {
    serde_json::to_string(choices)
        .map_err(|e| StoreError::Corrupt(format!("choices not writable: {e}")))
}

impl Db {
    /// Every lens, by name.
    pub async fn lenses(&self) -> Result<Vec<LensRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!("SELECT {LENS_COLUMNS} FROM lenses ORDER BY name"))
                .fetch_all(p)
                .await?;
            rows.iter().map(|row| Ok(lens_from!(row))).collect()
        })
    }

    pub async fn lens(&self, id: &str) -> Result<Option<LensRecord>> {
        on_read!(self, p, _b => {
            let row = sqlx::query(&format!("SELECT {LENS_COLUMNS} FROM lenses WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?;
            row.map(|row| Ok(lens_from!(row))).transpose()
        })
    }

    /// The versions of a lens, oldest first.
    pub async fn lens_versions(&self, lens_id: &str) -> Result<Vec<LensVersionRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {VERSION_COLUMNS} FROM lens_versions WHERE lens_id = $1 ORDER BY version"
            ))
            .bind(lens_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(version_from!(row))).collect()
        })
    }

    pub async fn lens_version(
        &self,
        lens_id: &str,
        digest: &str,
    ) -> Result<Option<LensVersionRecord>> {
        on_read!(self, p, _b => {
            let row = sqlx::query(&format!(
                "SELECT {VERSION_COLUMNS} FROM lens_versions WHERE lens_id = $1 AND digest = $2"
            ))
            .bind(lens_id)
            .bind(digest)
            .fetch_optional(p)
            .await?;
            row.map(|row| Ok(version_from!(row))).transpose()
        })
    }

    pub async fn review(&self, id: i64) -> Result<Option<ReviewRecord>> {
        on_read!(self, p, _b => {
            let row = sqlx::query(&format!("SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?;
            row.map(|row| Ok(review_from!(row))).transpose()
        })
    }

    /// Reviews the filter keeps, newest first.
    pub async fn reviews(&self, filter: &ReviewFilter) -> Result<Vec<ReviewRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {REVIEW_COLUMNS} FROM reviews \
                 WHERE ($1 IS NULL OR workload = $1) AND ($2 IS NULL OR kind = $2) \
                   AND ($3 IS NULL OR ticket_id = $3) \
                 ORDER BY id DESC"
            ))
            .bind(filter.workload.as_deref())
            .bind(filter.kind.as_deref())
            .bind(filter.ticket_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(review_from!(row))).collect()
        })
    }

    /// The answers of a review, by question id.
    pub async fn review_answers(&self, review_id: i64) -> Result<Vec<AnswerRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {ANSWER_COLUMNS} FROM review_answers WHERE review_id = $1 \
                 ORDER BY question_id"
            ))
            .bind(review_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(answer_from!(row))).collect()
        })
    }

    /// The milestones of a review, oldest first.
    pub async fn review_milestones(&self, review_id: i64) -> Result<Vec<MilestoneRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {MILESTONE_COLUMNS} FROM review_milestones WHERE review_id = $1 \
                 ORDER BY number"
            ))
            .bind(review_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(milestone_from!(row))).collect()
        })
    }
}

impl Tx {
    pub async fn lens_by_name(&mut self, name: &str) -> Result<Option<LensRecord>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!("SELECT {LENS_COLUMNS} FROM lenses WHERE name = $1"))
                .bind(name)
                .fetch_optional(&mut *c)
                .await?;
            row.map(|row| Ok(lens_from!(row))).transpose()
        })
    }

    /// True when a lens has this id.
    pub async fn lens_exists(&mut self, id: &str) -> Result<bool> {
        on_tx!(self, c, _b => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lenses WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *c)
                .await?;
            Ok(n > 0)
        })
    }

    /// Adds a lens; nothing when one with this id or name exists (true when added).
    pub async fn insert_lens(&mut self, lens: &LensRecord) -> Result<bool> {
        self.note_write();
        on_tx!(self, c, _b => {
            let added = sqlx::query(
                "INSERT INTO lenses (id, name, created_by, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&lens.id)
            .bind(&lens.name)
            .bind(&lens.created_by)
            .bind(Ts(lens.created_at))
            .execute(&mut *c)
            .await?
            .rows_affected();
            Ok(added > 0)
        })
    }

    pub async fn lens_version_in_tx(
        &mut self,
        lens_id: &str,
        digest: &str,
    ) -> Result<Option<LensVersionRecord>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "SELECT {VERSION_COLUMNS} FROM lens_versions WHERE lens_id = $1 AND digest = $2"
            ))
            .bind(lens_id)
            .bind(digest)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|row| Ok(version_from!(row))).transpose()
        })
    }

    /// The newest version of a lens.
    pub async fn latest_lens_version(
        &mut self,
        lens_id: &str,
    ) -> Result<Option<LensVersionRecord>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "SELECT {VERSION_COLUMNS} FROM lens_versions WHERE lens_id = $1 \
                 ORDER BY version DESC LIMIT 1"
            ))
            .bind(lens_id)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|row| Ok(version_from!(row))).transpose()
        })
    }

    /// Adds a version after the lens's newest one; `None` when this digest is already kept.
    pub async fn insert_lens_version(
        &mut self,
        lens_id: &str,
        digest: &str,
        document: &str,
        imported_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<LensVersionRecord>> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "INSERT INTO lens_versions \
                   (lens_id, version, digest, document, imported_by, imported_at) \
                 SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5 \
                   FROM lens_versions WHERE lens_id = $1 \
                 ON CONFLICT DO NOTHING RETURNING {VERSION_COLUMNS}"
            ))
            .bind(lens_id)
            .bind(digest)
            .bind(document)
            .bind(imported_by)
            .bind(Ts(now))
            .fetch_optional(&mut *c)
            .await?;
            row.map(|row| Ok(version_from!(row))).transpose()
        })
    }

    pub async fn insert_review(
        &mut self,
        review: &NewReviewRecord,
        now: DateTime<Utc>,
    ) -> Result<ReviewRecord> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "INSERT INTO reviews \
                   (workload, lens_id, lens_digest, kind, ticket_id, created_by, created_at, \
                    updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {REVIEW_COLUMNS}"
            ))
            .bind(&review.workload)
            .bind(&review.lens_id)
            .bind(&review.lens_digest)
            .bind(&review.kind)
            .bind(review.ticket_id)
            .bind(&review.created_by)
            .bind(Ts(now))
            .fetch_one(&mut *c)
            .await?;
            Ok(review_from!(row))
        })
    }

    /// A review, locked for a change.
    pub async fn review_for_update(&mut self, id: i64) -> Result<Option<ReviewRecord>> {
        on_tx!(self, c, b => {
            let row = sqlx::query(&format!(
                "SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = $1{}",
                b.for_update()
            ))
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|row| Ok(review_from!(row))).transpose()
        })
    }

    /// Moves a review to another version of its lens and marks it changed.
    pub async fn set_review_version(
        &mut self,
        id: i64,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE reviews SET lens_digest = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(digest)
                .bind(Ts(now))
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Marks a review changed.
    pub async fn touch_review(&mut self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE reviews SET updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(Ts(now))
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    pub async fn review_answers_in_tx(&mut self, review_id: i64) -> Result<Vec<AnswerRecord>> {
        on_tx!(self, c, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {ANSWER_COLUMNS} FROM review_answers WHERE review_id = $1 \
                 ORDER BY question_id"
            ))
            .bind(review_id)
            .fetch_all(&mut *c)
            .await?;
            rows.iter().map(|row| Ok(answer_from!(row))).collect()
        })
    }

    /// Saves the answer to one question, replacing the one before.
    pub async fn save_answer(&mut self, review_id: i64, answer: &AnswerRecord) -> Result<()> {
        self.note_write();
        let choices = choice_text(&answer.choices)?;
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO review_answers \
                   (review_id, question_id, choices, notes, not_applicable, updated_by, \
                    updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (review_id, question_id) DO UPDATE SET \
                   choices = excluded.choices, notes = excluded.notes, \
                   not_applicable = excluded.not_applicable, updated_by = excluded.updated_by, \
                   updated_at = excluded.updated_at",
            )
            .bind(review_id)
            .bind(&answer.question_id)
            .bind(&choices)
            .bind(answer.notes.as_deref())
            .bind(answer.not_applicable.as_deref())
            .bind(&answer.updated_by)
            .bind(Ts(answer.updated_at))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Removes every answer of a review.
    pub async fn clear_answers(&mut self, review_id: i64) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("DELETE FROM review_answers WHERE review_id = $1")
                .bind(review_id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Adds a milestone numbered after the review's last one.
    pub async fn insert_milestone(
        &mut self,
        review_id: i64,
        name: &str,
        lens_digest: &str,
        frozen: &str,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<MilestoneRecord> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "INSERT INTO review_milestones \
                   (review_id, number, name, lens_digest, frozen, created_by, created_at) \
                 SELECT $1, COALESCE(MAX(number), 0) + 1, $2, $3, $4, $5, $6 \
                   FROM review_milestones WHERE review_id = $1 \
                 RETURNING {MILESTONE_COLUMNS}"
            ))
            .bind(review_id)
            .bind(name)
            .bind(lens_digest)
            .bind(frozen)
            .bind(created_by)
            .bind(Ts(now))
            .fetch_one(&mut *c)
            .await?;
            Ok(milestone_from!(row))
        })
    }
}
