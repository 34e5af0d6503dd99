//! Readiness reviews: lenses kept with their versions, reviews of a workload against one
//! version of a lens, answers scored by the lens's risk rules, milestones that freeze a review,
//! and upgrades of a review to a newer version of its lens.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::{Changes, FieldChange};
use opsdesk_domain::readiness::{self, builtin, Answer, AnswerError, Lens, LensError, Risk};
use opsdesk_domain::{FieldError, Permission};
use opsdesk_store::{
    AnswerRecord, LensRecord, LensVersionRecord, MilestoneRecord, NewReviewRecord, ReviewFilter,
    ReviewRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{record, whole};
use crate::{Actor, Desk, Error, Result};

mod actions;
mod incidents;
mod measures;
mod schedules;

pub use actions::{
    ActionItem, ActionItemQuery, ItemState, NewActionItem, VerificationNote, VERIFICATION_MAX,
};
pub use incidents::{IncidentRef, IncidentReview, Measured, ProposalDecision, ProposalState};
pub use schedules::{NewSchedule, ReadinessPass, ReadinessSettings, Schedule};

/// The id of the lens opsdesk ships with.
pub const BUILTIN_LENS_ID: &str = "opsdesk-readiness";
/// Who is named as having imported the built-in lens.
const BUILTIN_IMPORTER: &str = "opsdesk";
/// The Well-Architected Tool's limit on an answer's notes.
pub const NOTES_MAX: usize = 2084;
/// The limit on the reason a question does not apply.
pub const REASON_MAX: usize = 2084;
/// The Well-Architected Tool's limit on a milestone's name.
pub const MILESTONE_NAME_MAX: usize = 100;

static BUILTIN: LazyLock<Result<Lens, LensError>> = LazyLock::new(builtin::opsdesk_readiness);

fn builtin_lens() -> Result<&'static Lens> {
    BUILTIN
        .as_ref()
        .map_err(|e| Error::Internal(format!("the built-in lens does not check: {e}")))
}

/// Checked lenses by digest: a version never changes, so it is read once.
#[derive(Default)]
pub(crate) struct LensCache {
    by_digest: Mutex<HashMap<String, Arc<Lens>>>,
}

impl LensCache {
    const MAX: usize = 64;

    fn get(&self, version: &LensVersionRecord) -> Result<Arc<Lens>> {
        if let Some(l) = self
            .by_digest
            .lock()
            .ok()
            .and_then(|m| m.get(&version.digest).cloned())
        {
            return Ok(l);
        }
        let lens = Arc::new(Lens::parse(&version.document).map_err(|e| {
            Error::Internal(format!(
                "stored lens {} version {} does not check: {e}",
                version.lens_id, version.version
            ))
        })?);
        if let Ok(mut m) = self.by_digest.lock() {
            if m.len() >= Self::MAX {
                m.clear();
            }
            m.insert(version.digest.clone(), lens.clone());
        }
        Ok(lens)
    }
}

/// What a review was started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    /// On a schedule.
    Periodic,
    /// Started by hand.
    Manual,
    /// After a resolved incident.
    PostIncident,
}

impl ReviewKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewKind::Periodic => "periodic",
            ReviewKind::Manual => "manual",
            ReviewKind::PostIncident => "post_incident",
        }
    }

    fn parse(s: &str) -> Result<ReviewKind> {
        match s {
            "periodic" => Ok(ReviewKind::Periodic),
            "manual" => Ok(ReviewKind::Manual),
            "post_incident" => Ok(ReviewKind::PostIncident),
            other => Err(Error::Internal(format!("stored review kind {other:?}"))),
        }
    }
}

/// One version of a lens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LensVersion {
    /// 1, 2, ... in the order imported.
    pub version: i64,
    /// SHA-256 of the exported document.
    pub digest: String,
    pub imported_by: String,
    pub imported_at: DateTime<Utc>,
}

impl From<&LensVersionRecord> for LensVersion {
    fn from(v: &LensVersionRecord) -> Self {
        LensVersion {
            version: v.version,
            digest: v.digest.clone(),
            imported_by: v.imported_by.clone(),
            imported_at: v.imported_at,
        }
    }
}

/// A lens with its versions; what its newest version holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LensSummary {
    pub id: String,
    pub name: String,
    /// The newest version's description.
    pub description: String,
    /// True for the lens opsdesk ships with.
    pub builtin: bool,
    /// Pillars and questions of the newest version.
    pub pillars: usize,
    pub questions: usize,
    pub latest: LensVersion,
    /// Oldest first.
    pub versions: Vec<LensVersion>,
}

/// What importing a lens did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LensImported {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub digest: String,
    /// False when this exact document was imported before (nothing was stored).
    pub new_version: bool,
}

/// A review to start: a workload by name and a lens by id (the built-in one when left out).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    pub workload: String,
    /// A lens id; default `opsdesk-readiness`. The review starts on the lens's newest version.
    #[serde(default)]
    pub lens: Option<String>,
}

/// The answer to one question, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerInput {
    /// Selected choice ids. A "None of these" choice (id ending in `_no`) goes alone.
    #[serde(default)]
    pub choices: Vec<String>,
    /// Up to 2084 characters.
    #[serde(default)]
    pub notes: Option<String>,
    /// Why the question does not apply to the workload (up to 2084 characters, not blank);
    /// `null` when it applies.
    #[serde(default)]
    pub not_applicable: Option<String>,
}

/// A milestone to create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMilestone {
    /// 1 to 100 characters, unique in the review.
    pub name: String,
}

/// Which version to upgrade a review to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// A version number of the review's lens, newer than the review's; default the newest.
    #[serde(default)]
    pub version: Option<i64>,
}

/// Which reviews to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// Reviews of this workload.
    pub workload: Option<String>,
    pub kind: Option<ReviewKind>,
    /// Post-incident reviews of this ticket.
    pub ticket: Option<i64>,
}

/// The count of each risk, zeros included, in the Well-Architected Tool's words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RiskCounts {
    #[serde(rename = "HIGH")]
    pub high: usize,
    #[serde(rename = "MEDIUM")]
    pub medium: usize,
    #[serde(rename = "NONE")]
    pub none: usize,
    #[serde(rename = "UNANSWERED")]
    pub unanswered: usize,
    #[serde(rename = "NOT_APPLICABLE")]
    pub not_applicable: usize,
}

impl RiskCounts {
    fn of(risks: impl IntoIterator<Item = Risk>) -> RiskCounts {
        let counts = readiness::risk_counts(risks);
        let n = |r| counts.get(&r).copied().unwrap_or(0);
        RiskCounts {
            high: n(Risk::High),
            medium: n(Risk::Medium),
            none: n(Risk::None),
            unanswered: n(Risk::Unanswered),
            not_applicable: n(Risk::NotApplicable),
        }
    }
}

/// A review in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewSummary {
    pub id: i64,
    pub workload: String,
    /// The lens id.
    pub lens: String,
    /// The version of the lens the review is on, and its digest.
    pub lens_version: i64,
    pub lens_digest: String,
    pub kind: ReviewKind,
    /// The incident a post-incident review follows.
    pub ticket: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A link to read more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanLink {
    pub display_text: String,
    pub url: String,
}

/// The improvement plan of a choice not selected in a HIGH or MEDIUM answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImprovementPlan {
    pub choice_id: String,
    pub choice_title: String,
    pub display_text: String,
    pub url: Option<String>,
    /// Further improvement links of the choice.
    pub more: Vec<PlanLink>,
}

/// A choice of a question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChoiceView {
    pub id: String,
    pub title: String,
    /// True for the "None of these" choice.
    pub none_of_these: bool,
}

/// What was answered to a question, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoredAnswer {
    pub choices: Vec<String>,
    pub notes: Option<String>,
    pub not_applicable: Option<String>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// A question of a review with its answer and risk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuestionView {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub choices: Vec<ChoiceView>,
    /// Absent until the question is answered.
    pub answer: Option<StoredAnswer>,
    pub risk: Risk,
    /// For a HIGH or MEDIUM risk: the plans of the choices not selected, in lens order.
    pub improvement_plans: Vec<ImprovementPlan>,
}

/// A pillar of a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PillarView {
    pub id: String,
    pub name: String,
    pub risk_counts: RiskCounts,
    pub questions: Vec<QuestionView>,
}

/// A milestone in a review's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MilestoneSummary {
    pub number: i64,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A review with every question of its lens version, the answers, risks and counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Review {
    pub id: i64,
    pub workload: String,
    pub lens: String,
    pub lens_name: String,
    pub lens_version: i64,
    pub lens_digest: String,
    pub kind: ReviewKind,
    pub ticket: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Over every question of the lens.
    pub risk_counts: RiskCounts,
    pub pillars: Vec<PillarView>,
    pub milestones: Vec<MilestoneSummary>,
}

/// An answer as saved, with its risk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AnswerView {
    pub review: i64,
    pub question_id: String,
    pub choices: Vec<String>,
    pub notes: Option<String>,
    pub not_applicable: Option<String>,
    pub risk: Risk,
    pub improvement_plans: Vec<ImprovementPlan>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// One question of a milestone: its answer and risk as they were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FrozenAnswer {
    pub pillar_id: String,
    pub question_id: String,
    pub choices: Vec<String>,
    pub notes: Option<String>,
    pub not_applicable: Option<String>,
    pub risk: Risk,
}

/// What a milestone keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Frozen {
    risk_counts: RiskCounts,
    answers: Vec<FrozenAnswer>,
}

/// A review's state frozen under a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Milestone {
    pub review: i64,
    pub number: i64,
    pub name: String,
    pub lens_digest: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub risk_counts: RiskCounts,
    /// Every question of the lens version, answered or not.
    pub answers: Vec<FrozenAnswer>,
}

/// A selection dropped by an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DroppedChoice {
    pub question_id: String,
    pub choice_id: String,
}

/// What upgrading a review to a newer version of its lens did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Upgrade {
    pub from_version: i64,
    pub to_version: i64,
    /// Answered questions the new version no longer has; their answers are gone.
    pub dropped_questions: Vec<String>,
    /// Selected choices the new version's questions no longer have.
    pub dropped_choices: Vec<DroppedChoice>,
    pub review: Review,
}

/// A lens id made from its name: lower-case letters, digits and `-`.
fn lens_id_for(name: &str, digest: &str) -> String {
    let mut id = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
        if id.len() >= 64 {
            break;
        }
    }
    let id = id.trim_end_matches('-');
    if id.len() < 3 {
        format!("lens-{}", digest.get(..12).unwrap_or(digest))
    } else {
        id.to_owned()
    }
}

pub(crate) fn lens_error(e: LensError) -> Error {
    let field = e
        .issues
        .first()
        .map(|i| i.field.clone())
        .unwrap_or_default();
    let message = e
        .issues
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    Error::Invalid(FieldError::new(field, message))
}

fn answer_error(e: AnswerError) -> Error {
    let field = match e {
        AnswerError::EmptyReason => "not_applicable",
        AnswerError::UnknownChoices { .. } | AnswerError::NoneWithOthers { .. } => "choices",
    };
    Error::Invalid(FieldError::new(field, e.to_string()))
}

fn domain_answer(a: &AnswerRecord) -> Answer {
    Answer {
        choices: a.choices.iter().cloned().collect(),
        notes: a.notes.clone(),
        not_applicable: a.not_applicable.clone(),
    }
}

fn plans(
    question: &readiness::lens::Question,
    answer: &Answer,
    risk: Risk,
) -> Vec<ImprovementPlan> {
    readiness::improvements(question, answer, risk)
        .into_iter()
        .map(|i| ImprovementPlan {
            choice_id: i.choice_id.to_owned(),
            choice_title: i.choice_title.to_owned(),
            display_text: i.plan.display_text.clone(),
            url: i.plan.url.clone(),
            more: i
                .more
                .into_iter()
                .map(|l| PlanLink {
                    display_text: l.display_text.clone(),
                    url: l.url.clone(),
                })
                .collect(),
        })
        .collect()
}

/// The risk of a stored answer; an answer the lens no longer accepts counts as unanswered.
fn risk_of(q: readiness::QuestionRef<'_>, answer: Option<&Answer>) -> Risk {
    match answer {
        Some(a) => readiness::assess(q, a).unwrap_or(Risk::Unanswered),
        None => Risk::Unanswered,
    }
}

fn frozen_answers(lens: &Lens, answers: &[AnswerRecord]) -> Frozen {
    let by_id: BTreeMap<&str, &AnswerRecord> = answers
        .iter()
        .map(|a| (a.question_id.as_str(), a))
        .collect();
    let mut out = Vec::new();
    for q in lens.questions() {
        let stored = by_id.get(q.question.id.as_str());
        let answer = stored.map(|a| domain_answer(a));
        out.push(FrozenAnswer {
            pillar_id: q.pillar.id.clone(),
            question_id: q.question.id.clone(),
            choices: stored.map(|a| a.choices.clone()).unwrap_or_default(),
            notes: stored.and_then(|a| a.notes.clone()),
            not_applicable: stored.and_then(|a| a.not_applicable.clone()),
            risk: risk_of(q, answer.as_ref()),
        });
    }
    Frozen {
        risk_counts: RiskCounts::of(out.iter().map(|a| a.risk)),
        answers: out,
    }
}

fn check_text(field: &str, text: Option<String>, max: usize) -> Result<Option<String>> {
    let Some(t) = text else { return Ok(None) };
    if t.chars().count() > max {
        return Err(FieldError::new(field, format!("must be at most {max} characters")).into());
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(FieldError::new(field, "must not hold control characters").into());
    }
    Ok(Some(t))
}

impl Desk {
    /// Keeps the built-in lens's current version in the database, so reviews can start on it
    /// and keep it when a later opsdesk ships a changed one.
    pub async fn seed_readiness(&self) -> Result<()> {
        let lens = builtin_lens()?;
        self.change(move |tx, now| {
            Box::pin(async move {
                let taken = tx
                    .lens_by_name(lens.name())
                    .await?
                    .is_some_and(|l| l.id != BUILTIN_LENS_ID);
                if taken {
                    return Ok(());
                }
                tx.insert_lens(&LensRecord {
                    id: BUILTIN_LENS_ID.into(),
                    name: lens.name().into(),
                    created_by: BUILTIN_IMPORTER.into(),
                    created_at: now,
                })
                .await?;
                if tx
                    .lens_version_in_tx(BUILTIN_LENS_ID, lens.digest())
                    .await?
                    .is_none()
                {
                    tx.insert_lens_version(
                        BUILTIN_LENS_ID,
                        lens.digest(),
                        &lens.export_pretty(),
                        BUILTIN_IMPORTER,
                        now,
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Imports a lens document (admin): a lens of a name not seen yet is a new lens, the same
    /// name with other content is its next version, the same content changes nothing.
    pub async fn import_lens(&self, actor: &Actor, document: &str) -> Result<LensImported> {
        actor.require_admin()?;
        let lens = Lens::parse(document).map_err(lens_error)?;
        let (actor, document) = (actor.clone(), document.to_owned());
        self.change(move |tx, now| {
            Box::pin(async move {
                let name = lens.name().to_owned();
                let digest = lens.digest().to_owned();
                let id = match tx.lens_by_name(&name).await? {
                    Some(l) => l.id,
                    None => {
                        let mut id = lens_id_for(&name, &digest);
                        if tx.lens_exists(&id).await? {
                            id = format!("{id}-{}", digest.get(..8).unwrap_or(&digest));
                        }
                        if !tx
                            .insert_lens(&LensRecord {
                                id: id.clone(),
                                name: name.clone(),
                                created_by: actor.name.clone(),
                                created_at: now,
                            })
                            .await?
                        {
                            return Err(Error::Conflict(format!(
                                "a lens with id {id} exists; rename the lens and import again"
                            )));
                        }
                        id
                    }
                };
                if let Some(v) = tx.lens_version_in_tx(&id, &digest).await? {
                    return Ok(LensImported {
                        id,
                        name,
                        version: v.version,
                        digest,
                        new_version: false,
                    });
                }
                let v = tx
                    .insert_lens_version(&id, &digest, &document, &actor.name, now)
                    .await?
                    .ok_or_else(|| Error::Conflict("the lens changed meanwhile; retry".into()))?;
                let out = LensImported {
                    id,
                    name,
                    version: v.version,
                    digest,
                    new_version: true,
                };
                record(
                    tx,
                    &actor,
                    now,
                    "lens.imported",
                    whole("lens", Value::Null, json!(out)),
                )
                .await?;
                Ok(out)
            })
        })
        .await
    }

    async fn lens_summary(&self, l: &LensRecord) -> Result<LensSummary> {
        let versions = self.db().lens_versions(&l.id).await?;
        let last = versions
            .last()
            .ok_or_else(|| Error::Internal(format!("lens {} has no version", l.id)))?;
        let lens = self.caches.lenses.get(last)?;
        Ok(LensSummary {
            id: l.id.clone(),
            name: l.name.clone(),
            description: lens.document().description.clone(),
            builtin: l.id == BUILTIN_LENS_ID,
            pillars: lens.document().pillars.len(),
            questions: lens.questions().count(),
            latest: last.into(),
            versions: versions.iter().map(LensVersion::from).collect(),
        })
    }

    /// Every lens with its versions (staff).
    pub async fn list_lenses(&self, actor: &Actor) -> Result<Vec<LensSummary>> {
        actor.require(Permission::ReadInventory)?;
        let mut out = Vec::new();
        for l in self.db().lenses().await? {
            out.push(self.lens_summary(&l).await?);
        }
        Ok(out)
    }

    pub async fn get_lens(&self, actor: &Actor, id: &str) -> Result<LensSummary> {
        actor.require(Permission::ReadInventory)?;
        let l = self
            .db()
            .lens(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("lens {id}")))?;
        self.lens_summary(&l).await
    }

    /// A version of a lens (the newest when `version` is left out) as an exportable document.
    pub async fn export_lens(
        &self,
        actor: &Actor,
        id: &str,
        version: Option<i64>,
    ) -> Result<String> {
        actor.require(Permission::ReadInventory)?;
        let versions = self.db().lens_versions(id).await?;
        let v = match version {
            None => versions.last(),
            Some(n) => versions.iter().find(|v| v.version == n),
        }
        .ok_or_else(|| match version {
            Some(n) if !versions.is_empty() => Error::NotFound(format!("version {n} of lens {id}")),
            _ => Error::NotFound(format!("lens {id}")),
        })?;
        Ok(self.caches.lenses.get(v)?.export_pretty())
    }

    /// Starts a review of a workload on the newest version of a lens.
    pub async fn start_review(&self, actor: &Actor, input: NewReview) -> Result<Review> {
        actor.require(Permission::WriteTickets)?;
        let workload = input.workload.trim().to_owned();
        if self.db().workload(&workload).await?.is_none() {
            return Err(
                FieldError::new("workload", format!("no workload is named `{workload}`")).into(),
            );
        }
        let lens_id = input.lens.unwrap_or_else(|| BUILTIN_LENS_ID.to_owned());
        let actor = actor.clone();
        let review = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let v = tx.latest_lens_version(&lens_id).await?.ok_or_else(|| {
                        FieldError::new("lens", format!("no lens has the id `{lens_id}`"))
                    })?;
                    let review = tx
                        .insert_review(
                            &NewReviewRecord {
                                workload,
                                lens_id,
                                lens_digest: v.digest.clone(),
                                kind: ReviewKind::Manual.as_str().into(),
                                ticket_id: None,
                                created_by: actor.name.clone(),
                            },
                            now,
                        )
                        .await?;
                    let summary = summary_of(&review, v.version)?;
                    record(
                        tx,
                        &actor,
                        now,
                        "review.started",
                        whole("review", Value::Null, json!(summary)),
                    )
                    .await?;
                    Ok(review.id)
                })
            })
            .await?;
        self.read_review(review).await
    }

    /// Reviews the query keeps, newest first (staff).
    pub async fn list_reviews(
        &self,
        actor: &Actor,
        query: &ReviewQuery,
    ) -> Result<Vec<ReviewSummary>> {
        actor.require(Permission::ReadInventory)?;
        let reviews = self
            .db()
            .reviews(&ReviewFilter {
                workload: query.workload.clone(),
                kind: query.kind.map(|k| k.as_str().to_owned()),
                ticket_id: query.ticket,
            })
            .await?;
        let mut versions: HashMap<String, Vec<LensVersionRecord>> = HashMap::new();
        let mut out = Vec::with_capacity(reviews.len());
        for r in &reviews {
            if !versions.contains_key(&r.lens_id) {
                let v = self.db().lens_versions(&r.lens_id).await?;
                versions.insert(r.lens_id.clone(), v);
            }
            let n = versions
                .get(&r.lens_id)
                .and_then(|vs| vs.iter().find(|v| v.digest == r.lens_digest))
                .map(|v| v.version)
                .unwrap_or_default();
            out.push(summary_of(r, n)?);
        }
        Ok(out)
    }

    /// A review with every question, its answer, risk and improvement plans (staff).
    pub async fn review(&self, actor: &Actor, id: i64) -> Result<Review> {
        actor.require(Permission::ReadInventory)?;
        self.read_review(id).await
    }

    async fn review_version(&self, r: &ReviewRecord) -> Result<(LensVersionRecord, Arc<Lens>)> {
        let v = self
            .db()
            .lens_version(&r.lens_id, &r.lens_digest)
            .await?
            .ok_or_else(|| {
                Error::Internal(format!("review {} names a lens version not kept", r.id))
            })?;
        let lens = self.caches.lenses.get(&v)?;
        Ok((v, lens))
    }

    pub(crate) async fn read_review(&self, id: i64) -> Result<Review> {
        let r = self
            .db()
            .review(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("review {id}")))?;
        let (v, lens) = self.review_version(&r).await?;
        let answers = self.db().review_answers(id).await?;
        let milestones = self.db().review_milestones(id).await?;
        let by_id: BTreeMap<&str, &AnswerRecord> = answers
            .iter()
            .map(|a| (a.question_id.as_str(), a))
            .collect();
        let mut pillars = Vec::new();
        let mut all = Vec::new();
        for p in &lens.document().pillars {
            let mut questions = Vec::new();
            for q in lens.questions().filter(|q| q.pillar.id == p.id) {
                let stored = by_id.get(q.question.id.as_str()).copied();
                let answer = stored.map(domain_answer);
                let risk = risk_of(q, answer.as_ref());
                questions.push(QuestionView {
                    id: q.question.id.clone(),
                    title: q.question.title.clone(),
                    description: q.question.description.clone(),
                    choices: q
                        .question
                        .choices
                        .iter()
                        .map(|c| ChoiceView {
                            id: c.id.clone(),
                            title: c.title.clone(),
                            none_of_these: c.is_none_of_these(),
                        })
                        .collect(),
                    answer: stored.map(|a| StoredAnswer {
                        choices: a.choices.clone(),
                        notes: a.notes.clone(),
                        not_applicable: a.not_applicable.clone(),
                        updated_by: a.updated_by.clone(),
                        updated_at: a.updated_at,
                    }),
                    risk,
                    improvement_plans: answer
                        .as_ref()
                        .map(|a| plans(q.question, a, risk))
                        .unwrap_or_default(),
                });
            }
            all.extend(questions.iter().map(|q| q.risk));
            pillars.push(PillarView {
                id: p.id.clone(),
                name: p.name.clone(),
                risk_counts: RiskCounts::of(questions.iter().map(|q| q.risk)),
                questions,
            });
        }
        Ok(Review {
            id: r.id,
            workload: r.workload.clone(),
            lens: r.lens_id.clone(),
            lens_name: lens.name().to_owned(),
            lens_version: v.version,
            lens_digest: r.lens_digest.clone(),
            kind: ReviewKind::parse(&r.kind)?,
            ticket: r.ticket_id,
            created_by: r.created_by.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            risk_counts: RiskCounts::of(all),
            pillars,
            milestones: milestones
                .iter()
                .map(|m| MilestoneSummary {
                    number: m.number,
                    name: m.name.clone(),
                    created_by: m.created_by.clone(),
                    created_at: m.created_at,
                })
                .collect(),
        })
    }

    /// Answers one question of a review; the answer comes back with its risk.
    pub async fn answer_question(
        &self,
        actor: &Actor,
        review_id: i64,
        question_id: &str,
        input: AnswerInput,
    ) -> Result<AnswerView> {
        actor.require(Permission::WriteTickets)?;
        let r = self
            .db()
            .review(review_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("review {review_id}")))?;
        let (_, lens) = self.review_version(&r).await?;
        let notes = check_text("notes", input.notes, NOTES_MAX)?.filter(|n| !n.trim().is_empty());
        let not_applicable = check_text("not_applicable", input.not_applicable, REASON_MAX)?;
        let answer = Answer {
            choices: input.choices.into_iter().collect::<BTreeSet<_>>(),
            notes,
            not_applicable,
        };
        let q = lens.question(question_id).ok_or_else(|| {
            Error::NotFound(format!("question {question_id} in review {review_id}"))
        })?;
        let risk = readiness::assess(q, &answer).map_err(answer_error)?;
        let improvement_plans = plans(q.question, &answer, risk);
        let (actor, question_id, digest) =
            (actor.clone(), question_id.to_owned(), r.lens_digest.clone());
        let saved = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let current = tx
                        .review_for_update(review_id)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("review {review_id}")))?;
                    if current.lens_digest != digest {
                        return Err(Error::Conflict(
                            "the review moved to another lens version meanwhile; read it again"
                                .into(),
                        ));
                    }
                    let before = tx
                        .review_answers_in_tx(review_id)
                        .await?
                        .into_iter()
                        .find(|a| a.question_id == question_id);
                    let saved = AnswerRecord {
                        question_id: question_id.clone(),
                        choices: answer.choices.iter().cloned().collect(),
                        notes: answer.notes.clone(),
                        not_applicable: answer.not_applicable.clone(),
                        updated_by: actor.name.clone(),
                        updated_at: now,
                    };
                    tx.save_answer(review_id, &saved).await?;
                    tx.touch_review(review_id, now).await?;
                    let shown = |a: &AnswerRecord| {
                        json!({
                            "review": review_id,
                            "question": a.question_id,
                            "choices": a.choices,
                            "notes": a.notes,
                            "not_applicable": a.not_applicable,
                        })
                    };
                    let mut after = shown(&saved);
                    after["risk"] = json!(risk);
                    let mut c = Changes::new();
                    c.insert(
                        "answer".into(),
                        FieldChange {
                            before: before.as_ref().map(shown).unwrap_or(Value::Null),
                            after,
                        },
                    );
                    record(tx, &actor, now, "review.answered", c).await?;
                    Ok(saved)
                })
            })
            .await?;
        Ok(AnswerView {
            review: review_id,
            question_id: saved.question_id,
            choices: saved.choices,
            notes: saved.notes,
            not_applicable: saved.not_applicable,
            risk,
            improvement_plans,
            updated_by: saved.updated_by,
            updated_at: saved.updated_at,
        })
    }

    /// Freezes a review's answers and risks under a name.
    pub async fn create_milestone(
        &self,
        actor: &Actor,
        review_id: i64,
        input: NewMilestone,
    ) -> Result<Milestone> {
        actor.require(Permission::WriteTickets)?;
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MILESTONE_NAME_MAX {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {MILESTONE_NAME_MAX} characters"),
            )
            .into());
        }
        check_text("name", Some(name.clone()), MILESTONE_NAME_MAX)?;
        let r = self
            .db()
            .review(review_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("review {review_id}")))?;
        let (_, lens) = self.review_version(&r).await?;
        let actor = actor.clone();
        let digest = r.lens_digest;
        let (m, frozen) = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let current = tx
                        .review_for_update(review_id)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("review {review_id}")))?;
                    if current.lens_digest != digest {
                        return Err(Error::Conflict(
                            "the review moved to another lens version meanwhile; retry".into(),
                        ));
                    }
                    let answers = tx.review_answers_in_tx(review_id).await?;
                    let frozen = frozen_answers(&lens, &answers);
                    let text = serde_json::to_string(&frozen)
                        .map_err(|e| Error::Internal(e.to_string()))?;
                    let m = tx
                        .insert_milestone(review_id, &name, &digest, &text, &actor.name, now)
                        .await
                        .map_err(|e| {
                            if e.is_unique_violation() {
                                Error::Conflict(format!(
                                    "review {review_id} has a milestone named {name:?}"
                                ))
                            } else {
                                e.into()
                            }
                        })?;
                    record(
                        tx,
                        &actor,
                        now,
                        "review.milestone",
                        whole(
                            "milestone",
                            Value::Null,
                            json!({
                                "review": review_id,
                                "number": m.number,
                                "name": m.name,
                                "lens_digest": m.lens_digest,
                                "risk_counts": frozen.risk_counts,
                            }),
                        ),
                    )
                    .await?;
                    Ok((m, frozen))
                })
            })
            .await?;
        Ok(milestone_of(m, frozen))
    }

    /// One milestone of a review, as frozen (staff).
    pub async fn milestone(&self, actor: &Actor, review_id: i64, number: i64) -> Result<Milestone> {
        actor.require(Permission::ReadInventory)?;
        let m = self
            .db()
            .review_milestones(review_id)
            .await?
            .into_iter()
            .find(|m| m.number == number)
            .ok_or_else(|| Error::NotFound(format!("milestone {number} of review {review_id}")))?;
        let frozen: Frozen = serde_json::from_str(&m.frozen)
            .map_err(|e| Error::Internal(format!("unreadable milestone: {e}")))?;
        Ok(milestone_of(m, frozen))
    }

    /// Moves a review to a newer version of its lens, carrying answers over by question and
    /// choice id; says what could not be carried.
    pub async fn upgrade_review(
        &self,
        actor: &Actor,
        review_id: i64,
        input: UpgradeRequest,
    ) -> Result<Upgrade> {
        actor.require(Permission::WriteTickets)?;
        let r = self
            .db()
            .review(review_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("review {review_id}")))?;
        let versions = self.db().lens_versions(&r.lens_id).await?;
        let from = versions
            .iter()
            .find(|v| v.digest == r.lens_digest)
            .ok_or_else(|| Error::Internal(format!("review {review_id} has no lens version")))?
            .clone();
        let to = match input.version {
            None => versions.last().cloned(),
            Some(n) => versions.iter().find(|v| v.version == n).cloned(),
        }
        .ok_or_else(|| {
            FieldError::new(
                "version",
                format!("lens {} has no version {:?}", r.lens_id, input.version),
            )
        })?;
        if to.version < from.version {
            return Err(FieldError::new(
                "version",
                format!(
                    "must be newer than the review's version {}; start a new review for an older one",
                    from.version
                ),
            )
            .into());
        }
        if to.version == from.version {
            let review = self.read_review(review_id).await?;
            return Ok(Upgrade {
                from_version: from.version,
                to_version: to.version,
                dropped_questions: Vec::new(),
                dropped_choices: Vec::new(),
                review,
            });
        }
        let new_lens = self.caches.lenses.get(&to)?;
        let actor = actor.clone();
        let (from_version, to_version) = (from.version, to.version);
        let carried = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let current = tx
                        .review_for_update(review_id)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("review {review_id}")))?;
                    if current.lens_digest != from.digest {
                        return Err(Error::Conflict(
                            "the review moved to another lens version meanwhile; read it again"
                                .into(),
                        ));
                    }
                    let answers = tx.review_answers_in_tx(review_id).await?;
                    let old: BTreeMap<String, Answer> = answers
                        .iter()
                        .map(|a| (a.question_id.clone(), domain_answer(a)))
                        .collect();
                    let carried = readiness::carry_over(&new_lens, &old);
                    tx.clear_answers(review_id).await?;
                    for (qid, a) in &carried.answers {
                        let prior = answers.iter().find(|p| &p.question_id == qid);
                        tx.save_answer(
                            review_id,
                            &AnswerRecord {
                                question_id: qid.clone(),
                                choices: a.choices.iter().cloned().collect(),
                                notes: a.notes.clone(),
                                not_applicable: a.not_applicable.clone(),
                                updated_by: prior
                                    .map(|p| p.updated_by.clone())
                                    .unwrap_or_else(|| actor.name.clone()),
                                updated_at: prior.map(|p| p.updated_at).unwrap_or(now),
                            },
                        )
                        .await?;
                    }
                    tx.set_review_version(review_id, &to.digest, now).await?;
                    let dropped_choices: Vec<DroppedChoice> = carried
                        .dropped_choices
                        .iter()
                        .map(|(q, c)| DroppedChoice {
                            question_id: q.clone(),
                            choice_id: c.clone(),
                        })
                        .collect();
                    record(
                        tx,
                        &actor,
                        now,
                        "review.upgraded",
                        whole(
                            "lens_version",
                            json!({ "review": review_id, "version": from.version, "digest": from.digest }),
                            json!({
                                "review": review_id,
                                "version": to.version,
                                "digest": to.digest,
                                "dropped_questions": carried.dropped_questions,
                                "dropped_choices": dropped_choices,
                            }),
                        ),
                    )
                    .await?;
                    Ok((carried.dropped_questions, dropped_choices))
                })
            })
            .await?;
        let review = self.read_review(review_id).await?;
        Ok(Upgrade {
            from_version,
            to_version,
            dropped_questions: carried.0,
            dropped_choices: carried.1,
            review,
        })
    }
}

pub(crate) fn summary_of(r: &ReviewRecord, version: i64) -> Result<ReviewSummary> {
    Ok(ReviewSummary {
        id: r.id,
        workload: r.workload.clone(),
        lens: r.lens_id.clone(),
        lens_version: version,
        lens_digest: r.lens_digest.clone(),
        kind: ReviewKind::parse(&r.kind)?,
        ticket: r.ticket_id,
        created_by: r.created_by.clone(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn milestone_of(m: MilestoneRecord, frozen: Frozen) -> Milestone {
    Milestone {
        review: m.review_id,
        number: m.number,
        name: m.name,
        lens_digest: m.lens_digest,
        created_by: m.created_by,
        created_at: m.created_at,
        risk_counts: frozen.risk_counts,
        answers: frozen.answers,
    }
}

fn counts_line(c: &RiskCounts) -> String {
    format!(
        "HIGH {} · MEDIUM {} · NONE {} · UNANSWERED {} · NOT_APPLICABLE {}",
        c.high, c.medium, c.none, c.unanswered, c.not_applicable
    )
}

/// Escapes text for one line of Markdown.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The review as a Markdown report: per pillar the questions, answers, risks and improvement
/// plans, with the risk counts.
pub fn review_markdown(r: &Review) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Readiness review {}: {}\n", r.id, md(&r.workload));
    let _ = writeln!(
        s,
        "Lens: {} ({}, version {}) · kind {} · started by {} at {} · updated {}\n",
        md(&r.lens_name),
        md(&r.lens),
        r.lens_version,
        r.kind.as_str(),
        md(&r.created_by),
        r.created_at.to_rfc3339(),
        r.updated_at.to_rfc3339()
    );
    let _ = writeln!(s, "Risks: {}\n", counts_line(&r.risk_counts));
    for p in &r.pillars {
        let _ = writeln!(s, "## {}\n", md(&p.name));
        let _ = writeln!(s, "Risks: {}\n", counts_line(&p.risk_counts));
        for q in &p.questions {
            let _ = writeln!(s, "### {} ({})\n", md(&q.title), q.risk.as_str());
            match &q.answer {
                None => {
                    let _ = writeln!(s, "Not answered.\n");
                }
                Some(a) => {
                    if let Some(reason) = &a.not_applicable {
                        let _ = writeln!(s, "Not applicable: {}\n", md(reason));
                    }
                    let titles: Vec<String> = q
                        .choices
                        .iter()
                        .filter(|c| a.choices.contains(&c.id))
                        .map(|c| format!("- {}", md(&c.title)))
                        .collect();
                    if !titles.is_empty() {
                        let _ = writeln!(s, "Selected:\n\n{}\n", titles.join("\n"));
                    }
                    if let Some(notes) = &a.notes {
                        let _ = writeln!(s, "Notes: {}\n", md(notes));
                    }
                }
            }
            if !q.improvement_plans.is_empty() {
                let _ = writeln!(s, "Improvement plans:\n");
                for plan in &q.improvement_plans {
                    let link = plan
                        .url
                        .as_deref()
                        .map(|u| format!(" <{}>", u.replace('>', "%3E")))
                        .unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "- {}: {}{}",
                        md(&plan.choice_title),
                        md(&plan.display_text),
                        link
                    );
                }
                s.push('\n');
            }
        }
    }
    if !r.milestones.is_empty() {
        let _ = writeln!(s, "## Milestones\n");
        for m in &r.milestones {
            let _ = writeln!(
                s,
                "- {} {} ({}, by {})",
                m.number,
                md(&m.name),
                m.created_at.to_rfc3339(),
                md(&m.created_by)
            );
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lens_ids_come_from_names() {
        assert_eq!(
            lens_id_for("ORR Lens v1.3", "abcdef0123456789"),
            "orr-lens-v1-3"
        );
        assert_eq!(lens_id_for("  --Ops!!", "abcdef0123456789"), "ops");
        assert_eq!(lens_id_for("é!", "abcdef0123456789"), "lens-abcdef012345");
        assert!(lens_id_for(&"x".repeat(200), "d").len() <= 64);
    }

    #[test]
    fn the_builtin_lens_checks() {
        assert!(builtin_lens().is_ok());
    }

    #[test]
    fn markdown_escapes_what_people_typed() {
        assert_eq!(md("a|b\n# c"), "a\\|b \\# c");
    }
}
