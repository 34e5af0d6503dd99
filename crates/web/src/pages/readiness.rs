//! Readiness in the browser: every workload's standing, a workload's readiness (reviews, risk
//! per pillar over time, open findings, action items, schedules), a review answered question by
//! question (htmx: the risk updates as the answer is saved), the post-incident review with its
//! timeline, the printable report (HTML and Markdown) and, for admins, lens import and export.
//! Each form runs the use case the API runs; a refusal is shown on the page it came from.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use opsdesk_core::readiness::{
    review_markdown, ActionItem, ActionItemQuery, AnswerInput, IncidentReview, ItemState,
    LensSummary, NewActionItem, NewMilestone, NewReview, NewSchedule, ProposalDecision,
    ProposalState, QuestionView, Review, ReviewQuery, RiskCounts, Schedule, VerificationNote,
    BUILTIN_LENS_ID,
};
use opsdesk_domain::readiness::incident::{
    IncidentReport, Practice, ProposedQuestion, TimelineEntry, TimelineSource,
};
use opsdesk_domain::readiness::schedule::ScheduleState;
use opsdesk_domain::readiness::Risk;
use opsdesk_domain::{FieldError, Severity};
use serde::Deserialize;

use super::ticket::Choice;
use super::{iso, message, render, seg, when, Fields, PageError, Shell, Visit};
use crate::{ApiError, AppState};

/// The reviews of a workload its page reads (newest first).
const REVIEWS_SHOWN: usize = 12;

fn stamp(t: &DateTime<Utc>) -> (String, String) {
    (iso(t), when(t))
}

fn risk_class(r: Risk) -> &'static str {
    match r {
        Risk::High => "risk-high",
        Risk::Medium => "risk-medium",
        Risk::None => "risk-none",
        Risk::Unanswered => "risk-unanswered",
        Risk::NotApplicable => "risk-na",
    }
}

fn item_state(s: ItemState) -> &'static str {
    match s {
        ItemState::Open => "open",
        ItemState::Resolved => "resolved: to verify",
        ItemState::Verified => "verified",
    }
}

fn source_name(s: TimelineSource) -> &'static str {
    match s {
        TimelineSource::Ticket => "ticket",
        TimelineSource::Signal => "signal",
        TimelineSource::Notification => "notification",
        TimelineSource::Escalation => "escalation",
        TimelineSource::AwsCase => "aws_case",
        TimelineSource::Comment => "comment",
        TimelineSource::Person => "person",
    }
}

fn source_of(s: &str) -> Option<TimelineSource> {
    Some(match s {
        "ticket" => TimelineSource::Ticket,
        "signal" => TimelineSource::Signal,
        "notification" => TimelineSource::Notification,
        "escalation" => TimelineSource::Escalation,
        "aws_case" => TimelineSource::AwsCase,
        "comment" => TimelineSource::Comment,
        "person" => TimelineSource::Person,
        _ => return None,
    })
}

/// Where a form sends the person back to: a page of opsdesk's own, never another site.
fn back_to(fields: &Fields, fallback: String) -> String {
    let back = fields.one("back");
    // Browsers drop tabs and line breaks from an address and read `\` as `/`: refuse them all.
    let plain = !back
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\');
    if plain && back.starts_with('/') && !back.starts_with("//") {
        back
    } else {
        fallback
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn lens_choices(lenses: &[LensSummary], chosen: &str) -> Vec<Choice> {
    lenses
        .iter()
        .map(|l| Choice {
            value: l.id.clone(),
            label: format!("{} (version {})", l.name, l.latest.version),
            selected: l.id == chosen,
        })
        .collect()
}

fn optional(text: String) -> Option<String> {
    Some(text).filter(|t| !t.is_empty())
}

fn number<T: std::str::FromStr>(field: &str, raw: &str) -> Result<Option<T>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse()
        .map(Some)
        .map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a whole number")))
}

fn date(field: &str, raw: &str) -> Result<Option<NaiveDate>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse()
        .map(Some)
        .map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a date (YYYY-MM-DD)")))
}

// ---- every workload's standing ----

struct StandingRow {
    name: String,
    environment: &'static str,
    review: Option<i64>,
    reviewed: Option<(String, String)>,
    counts: Option<RiskCounts>,
    open_items: usize,
    overdue_items: usize,
    due: Option<(String, String, &'static str)>,
}

#[derive(Template)]
#[template(path = "readiness.html")]
struct OverviewPage {
    shell: Shell,
    error: Option<String>,
    rows: Vec<StandingRow>,
    workloads: Vec<Choice>,
    lenses: Vec<Choice>,
}

async fn overview_page(
    state: &AppState,
    visit: Visit,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, PageError> {
    let desk = &state.desk;
    let actor = &visit.actor;
    let workloads = desk.workloads(actor).await?;
    let reviews = desk.list_reviews(actor, &ReviewQuery::default()).await?;
    let items = desk
        .action_items(
            actor,
            &ActionItemQuery {
                open: true,
                ..ActionItemQuery::default()
            },
        )
        .await?;
    let schedules = desk.schedules(actor, None).await?;
    let lenses = desk.list_lenses(actor).await?;
    let mut rows = Vec::with_capacity(workloads.len());
    for w in &workloads {
        // The newest review of the workload; the list is newest first.
        let newest = reviews.iter().find(|r| r.workload == w.name);
        let counts = match newest {
            Some(r) => Some(desk.review(actor, r.id).await?.risk_counts),
            None => None,
        };
        let mine = items.iter().filter(|i| i.workload == w.name);
        let due = schedules
            .iter()
            .filter(|s| s.workload == w.name && s.state != ScheduleState::Done)
            .min_by_key(|s| s.due_at)
            .map(|s| (iso(&s.due_at), when(&s.due_at), s.state.as_str()));
        rows.push(StandingRow {
            name: w.name.clone(),
            environment: w.environment.as_str(),
            review: newest.map(|r| r.id),
            reviewed: newest.map(|r| stamp(&r.updated_at)),
            counts,
            open_items: mine.clone().count(),
            overdue_items: mine.filter(|i| i.overdue).count(),
            due,
        });
    }
    let page = OverviewPage {
        shell: visit.at("readiness").shell,
        error,
        workloads: workloads
            .iter()
            .map(|w| Choice {
                value: w.name.clone(),
                label: w.name.clone(),
                selected: false,
            })
            .collect(),
        lenses: lens_choices(&lenses, BUILTIN_LENS_ID),
        rows,
    };
    Ok(render(status, page))
}

pub async fn overview(State(state): State<AppState>, visit: Visit) -> Result<Response, PageError> {
    overview_page(&state, visit, StatusCode::OK, None).await
}

/// Starts a review of a workload and opens it.
pub async fn start(
    State(state): State<AppState>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    let input = NewReview {
        workload: fields.one("workload"),
        lens: fields.opt("lens"),
    };
    match state.desk.start_review(&visit.actor, input).await {
        Ok(r) => Ok(see_other(&format!("/reviews/{}", r.id))),
        Err(e) => {
            let (status, text) = message(&e.into());
            overview_page(&state, visit, status, Some(text)).await
        }
    }
}

// ---- one workload's readiness ----

struct ReviewRow {
    id: i64,
    kind: &'static str,
    lens: String,
    lens_version: i64,
    incident: Option<String>,
    started: (String, String),
    counts: RiskCounts,
}

/// High and medium risks of one pillar at one moment.
struct PillarCell {
    high: usize,
    medium: usize,
    present: bool,
}

/// A review's risks at one moment: a milestone, or now; each question's pillar and risk.
struct Moment {
    at: DateTime<Utc>,
    review: i64,
    label: String,
    risks: Vec<(String, Risk)>,
}

struct HistoryRow {
    review: i64,
    label: String,
    at: (String, String),
    cells: Vec<PillarCell>,
}

struct PlanView {
    text: String,
    url: Option<String>,
}

struct FindingView {
    review: i64,
    question: String,
    title: String,
    pillar: String,
    risk: &'static str,
    class: &'static str,
    plans: Vec<PlanView>,
    task: Option<String>,
}

struct ItemRow {
    id: i64,
    review: i64,
    ticket_key: String,
    title: String,
    state: &'static str,
    verifiable: bool,
    owner: String,
    due: Option<(String, String)>,
    overdue: bool,
    verification: Option<String>,
    incident: Option<String>,
}

fn item_row(i: &ActionItem) -> ItemRow {
    ItemRow {
        id: i.id,
        review: i.review,
        ticket_key: i.ticket_key.clone(),
        title: i.title.clone(),
        state: item_state(i.state),
        verifiable: i.state != ItemState::Verified,
        owner: i.owner.clone().unwrap_or_else(|| "—".into()),
        due: i.due_at.as_ref().map(stamp),
        overdue: i.overdue,
        verification: i.verification.clone(),
        incident: i.incident.clone(),
    }
}

struct ScheduleRow {
    id: i64,
    lens: String,
    rule: String,
    due: (String, String),
    state: &'static str,
}

fn schedule_row(s: &Schedule) -> ScheduleRow {
    let rule = match (s.every_days, s.review_by) {
        (Some(days), _) => format!("every {days} days after the last review"),
        (None, Some(by)) => match s.days_before.unwrap_or(0) {
            0 => format!("by {by}"),
            d => format!("{d} days before {by}"),
        },
        (None, None) => "—".into(),
    };
    ScheduleRow {
        id: s.id,
        lens: s.lens.clone(),
        rule,
        due: stamp(&s.due_at),
        state: s.state.as_str(),
    }
}

fn plans_of(q: &QuestionView) -> Vec<PlanView> {
    q.improvement_plans
        .iter()
        .map(|p| PlanView {
            text: format!("{}: {}", p.choice_title, p.display_text),
            url: p.url.clone(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "workload_readiness.html")]
struct WorkloadPage {
    shell: Shell,
    error: Option<String>,
    name: String,
    environment: &'static str,
    team: String,
    reviews: Vec<ReviewRow>,
    pillars: Vec<String>,
    history: Vec<HistoryRow>,
    findings_from: Option<i64>,
    findings: Vec<FindingView>,
    items: Vec<ItemRow>,
    schedules: Vec<ScheduleRow>,
    lenses: Vec<Choice>,
    back: String,
}

/// Adds a moment's high and medium risks per pillar to the history, naming pillars in the
/// order they first appear.
fn history_row(
    pillars: &mut Vec<String>,
    review: i64,
    label: String,
    at: &DateTime<Utc>,
    risks: &[(String, Risk)],
) -> HistoryRow {
    let mut per: BTreeMap<usize, PillarCell> = BTreeMap::new();
    for (pillar, risk) in risks {
        let index = match pillars.iter().position(|p| p == pillar) {
            Some(i) => i,
            None => {
                pillars.push(pillar.clone());
                pillars.len() - 1
            }
        };
        let cell = per.entry(index).or_insert(PillarCell {
            high: 0,
            medium: 0,
            present: true,
        });
        match risk {
            Risk::High => cell.high += 1,
            Risk::Medium => cell.medium += 1,
            _ => {}
        }
    }
    HistoryRow {
        review,
        label,
        at: stamp(at),
        cells: (0..per.keys().next_back().map_or(0, |k| k + 1))
            .map(|i| {
                per.remove(&i).unwrap_or(PillarCell {
                    high: 0,
                    medium: 0,
                    present: false,
                })
            })
            .collect(),
    }
}

async fn workload_page(
    state: &AppState,
    visit: Visit,
    name: &str,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, PageError> {
    let desk = &state.desk;
    let actor = &visit.actor;
    let w = desk.workload(actor, name).await?;
    let summaries = desk
        .list_reviews(
            actor,
            &ReviewQuery {
                workload: Some(w.name.clone()),
                ..ReviewQuery::default()
            },
        )
        .await?;
    let mut reviews = Vec::new();
    let mut full: Vec<Review> = Vec::new();
    for s in summaries.iter().take(REVIEWS_SHOWN) {
        let r = desk.review(actor, s.id).await?;
        reviews.push(ReviewRow {
            id: r.id,
            kind: r.kind.as_str(),
            lens: r.lens_name.clone(),
            lens_version: r.lens_version,
            incident: r.ticket.map(opsdesk_domain::Ticket::key_for),
            started: stamp(&r.created_at),
            counts: r.risk_counts,
        });
        full.push(r);
    }

    // Risk per pillar over time: each milestone as frozen, and each review as it is now,
    // oldest first.
    let mut moments: Vec<Moment> = Vec::new();
    for r in &full {
        let names: HashMap<&str, &str> = r
            .pillars
            .iter()
            .map(|p| (p.id.as_str(), p.name.as_str()))
            .collect();
        for m in &r.milestones {
            let frozen = desk.milestone(actor, r.id, m.number).await?;
            let risks = frozen
                .answers
                .iter()
                .map(|a| {
                    let pillar = names.get(a.pillar_id.as_str()).copied();
                    (pillar.unwrap_or(&a.pillar_id).to_owned(), a.risk)
                })
                .collect();
            let label = format!("Review {} · milestone “{}”", r.id, m.name);
            moments.push(Moment {
                at: m.created_at,
                review: r.id,
                label,
                risks,
            });
        }
        let risks = r
            .pillars
            .iter()
            .flat_map(|p| p.questions.iter().map(|q| (p.name.clone(), q.risk)))
            .collect();
        moments.push(Moment {
            at: r.updated_at,
            review: r.id,
            label: format!("Review {} · now", r.id),
            risks,
        });
    }
    moments.sort_by_key(|m| m.at);
    let mut pillars = Vec::new();
    let mut history: Vec<HistoryRow> = moments
        .iter()
        .map(|m| history_row(&mut pillars, m.review, m.label.clone(), &m.at, &m.risks))
        .collect();
    for row in &mut history {
        while row.cells.len() < pillars.len() {
            row.cells.push(PillarCell {
                high: 0,
                medium: 0,
                present: false,
            });
        }
    }

    // Open findings: the HIGH and MEDIUM answers of the newest review anyone has answered.
    let answered = full.iter().find(|r| {
        r.pillars
            .iter()
            .any(|p| p.questions.iter().any(|q| q.answer.is_some()))
    });
    // Every review's items, the older reviews' too: an item stays until verified.
    let mut items = Vec::new();
    for r in &summaries {
        let query = ActionItemQuery {
            review: Some(r.id),
            ..ActionItemQuery::default()
        };
        items.extend(desk.action_items(actor, &query).await?);
    }
    let mut findings = Vec::new();
    if let Some(r) = answered {
        for p in &r.pillars {
            for q in p.questions.iter().filter(|q| q.risk.needs_improvement()) {
                let task = items
                    .iter()
                    .find(|i| i.review == r.id && i.question.as_deref() == Some(q.id.as_str()))
                    .map(|i| i.ticket_key.clone());
                findings.push(FindingView {
                    review: r.id,
                    question: q.id.clone(),
                    title: q.title.clone(),
                    pillar: p.name.clone(),
                    risk: q.risk.as_str(),
                    class: risk_class(q.risk),
                    plans: plans_of(q),
                    task,
                });
            }
        }
    }
    // Open items first, the soonest due first.
    items.sort_by_key(|i| (i.state == ItemState::Verified, i.due_at, i.id));
    let schedules = desk.schedules(actor, Some(&w.name)).await?;
    let lenses = desk.list_lenses(actor).await?;
    let page = WorkloadPage {
        shell: visit.at("readiness").shell,
        error,
        back: format!("/workloads/{}/readiness", seg(&w.name)),
        environment: w.environment.as_str(),
        team: w.team.clone().unwrap_or_else(|| "—".into()),
        name: w.name,
        reviews,
        pillars,
        history,
        findings_from: answered.map(|r| r.id),
        findings,
        items: items.iter().map(item_row).collect(),
        schedules: schedules.iter().map(schedule_row).collect(),
        lenses: lens_choices(&lenses, BUILTIN_LENS_ID),
    };
    Ok(render(status, page))
}

pub async fn workload(
    State(state): State<AppState>,
    visit: Visit,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    workload_page(&state, visit, &name, StatusCode::OK, None).await
}

/// Adds a review schedule to a workload.
pub async fn add_schedule(
    State(state): State<AppState>,
    visit: Visit,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    let result = async {
        let input = NewSchedule {
            workload: name.clone(),
            lens: fields.opt("lens"),
            every_days: number("every_days", &fields.one("every_days"))?,
            review_by: date("review_by", &fields.one("review_by"))?,
            days_before: number("days_before", &fields.one("days_before"))?,
            notice_days: number("notice_days", &fields.one("notice_days"))?,
        };
        Ok::<_, ApiError>(state.desk.create_schedule(&visit.actor, input).await?)
    }
    .await;
    match result {
        Ok(_) => Ok(see_other(&format!("/workloads/{}/readiness", seg(&name)))),
        Err(e) => {
            let (status, text) = message(&e);
            workload_page(&state, visit, &name, status, Some(text)).await
        }
    }
}

/// Removes a review schedule.
pub async fn delete_schedule(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    state.desk.delete_schedule(&visit.actor, id).await?;
    Ok(see_other(&back_to(&fields, "/readiness".into())))
}

// ---- a review, answered question by question ----

struct ChoiceBox {
    id: String,
    title: String,
    checked: bool,
    none: bool,
}

struct QuestionBlock {
    review: i64,
    id: String,
    title: String,
    description: String,
    choices: Vec<ChoiceBox>,
    notes: String,
    not_applicable: String,
    risk: &'static str,
    class: &'static str,
    plans: Vec<PlanView>,
    task: Option<String>,
    answered: Option<(String, String, String)>,
    can_write: bool,
    error: Option<String>,
}

fn question_block(
    review: i64,
    q: &QuestionView,
    task: Option<String>,
    can_write: bool,
) -> QuestionBlock {
    let answer = q.answer.as_ref();
    QuestionBlock {
        review,
        id: q.id.clone(),
        title: q.title.clone(),
        description: q.description.clone().unwrap_or_default(),
        choices: q
            .choices
            .iter()
            .map(|c| ChoiceBox {
                id: c.id.clone(),
                title: c.title.clone(),
                checked: answer.is_some_and(|a| a.choices.contains(&c.id)),
                none: c.none_of_these,
            })
            .collect(),
        notes: answer.and_then(|a| a.notes.clone()).unwrap_or_default(),
        not_applicable: answer
            .and_then(|a| a.not_applicable.clone())
            .unwrap_or_default(),
        risk: q.risk.as_str(),
        class: risk_class(q.risk),
        plans: plans_of(q),
        task,
        answered: answer.map(|a| {
            let (i, w) = stamp(&a.updated_at);
            (a.updated_by.clone(), i, w)
        }),
        can_write,
        error: None,
    }
}

struct PillarBlock {
    id: String,
    name: String,
    counts: RiskCounts,
    questions: Vec<QuestionBlock>,
}

/// The review's pillars as the page shows them; `tasks` are the task keys by question.
fn pillar_blocks(r: &Review, tasks: &HashMap<String, String>, can_write: bool) -> Vec<PillarBlock> {
    r.pillars
        .iter()
        .map(|p| PillarBlock {
            id: p.id.clone(),
            name: p.name.clone(),
            counts: p.risk_counts,
            questions: p
                .questions
                .iter()
                .map(|q| question_block(r.id, q, tasks.get(&q.id).cloned(), can_write))
                .collect(),
        })
        .collect()
}

struct MilestoneRow {
    number: i64,
    name: String,
    by: String,
    at: (String, String),
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    shell: Shell,
    error: Option<String>,
    id: i64,
    workload: String,
    workload_seg: String,
    lens: String,
    lens_version: i64,
    kind: &'static str,
    incident: Option<String>,
    started: (String, String),
    by: String,
    counts: RiskCounts,
    pillars: Vec<PillarBlock>,
    milestones: Vec<MilestoneRow>,
    /// False: the counts are part of the page, not swapped in out of band.
    oob: bool,
}

/// What the htmx answer swaps in: the question, and the counts it changed.
#[derive(Template)]
#[template(path = "review_answer.html")]
struct AnswerFragment {
    shell: Shell,
    oob: bool,
    q: QuestionBlock,
    pillar_id: String,
    pillar_counts: RiskCounts,
    counts: RiskCounts,
}

async fn tasks_by_question(
    state: &AppState,
    visit: &Visit,
    review: i64,
) -> Result<HashMap<String, String>, PageError> {
    let query = ActionItemQuery {
        review: Some(review),
        ..ActionItemQuery::default()
    };
    Ok(state
        .desk
        .action_items(&visit.actor, &query)
        .await?
        .into_iter()
        .filter_map(|i| i.question.map(|q| (q, i.ticket_key)))
        .collect())
}

async fn review_page(
    state: &AppState,
    visit: Visit,
    id: i64,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, PageError> {
    let r = state.desk.review(&visit.actor, id).await?;
    let tasks = tasks_by_question(state, &visit, id).await?;
    let can_write = visit.shell.can_write;
    let page = ReviewPage {
        shell: visit.at("readiness").shell,
        error,
        id: r.id,
        workload_seg: seg(&r.workload),
        workload: r.workload.clone(),
        lens: r.lens_name.clone(),
        lens_version: r.lens_version,
        kind: r.kind.as_str(),
        incident: r.ticket.map(opsdesk_domain::Ticket::key_for),
        started: stamp(&r.created_at),
        by: r.created_by.clone(),
        counts: r.risk_counts,
        pillars: pillar_blocks(&r, &tasks, can_write),
        milestones: r
            .milestones
            .iter()
            .map(|m| MilestoneRow {
                number: m.number,
                name: m.name.clone(),
                by: m.created_by.clone(),
                at: stamp(&m.created_at),
            })
            .collect(),
        oob: false,
    };
    Ok(render(status, page))
}

pub async fn review(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    review_page(&state, visit, id, StatusCode::OK, None).await
}

/// Saves one answer. From htmx: the question again with its new risk, and the counts; from a
/// plain form: the review page at the question.
pub async fn answer(
    State(state): State<AppState>,
    visit: Visit,
    Path((id, question)): Path<(i64, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    let input = AnswerInput {
        choices: fields.all("choice"),
        notes: fields.opt("notes"),
        not_applicable: fields.opt("not_applicable"),
    };
    let saved = state
        .desk
        .answer_question(&visit.actor, id, &question, input.clone())
        .await;
    let htmx = headers.contains_key("hx-request");
    if !htmx {
        return match saved {
            // Saved: the id is one of the lens's, letters, digits, `_` and `-` only.
            Ok(_) => Ok(see_other(&format!("/reviews/{id}#q-{question}"))),
            Err(e) => {
                let (status, text) = message(&e.into());
                review_page(
                    &state,
                    visit,
                    id,
                    status,
                    Some(format!("{question}: {text}")),
                )
                .await
            }
        };
    }
    let r = state.desk.review(&visit.actor, id).await?;
    let tasks = tasks_by_question(&state, &visit, id).await?;
    let (pillar, q) = r
        .pillars
        .iter()
        .find_map(|p| {
            p.questions
                .iter()
                .find(|q| q.id == question)
                .map(|q| (p, q))
        })
        .ok_or_else(|| ApiError::NotFound(format!("question {question} of review {id}")))?;
    let mut block = question_block(id, q, tasks.get(&q.id).cloned(), visit.shell.can_write);
    // A refused answer: the question shows what was sent and why it was refused. htmx swaps
    // only 2xx answers in, so the refusal goes out as 200 with the reason in the fragment.
    if let Err(e) = saved {
        let (_, text) = message(&e.into());
        block.error = Some(text);
        for c in &mut block.choices {
            c.checked = input.choices.contains(&c.id);
        }
        block.notes = input.notes.unwrap_or_default();
        block.not_applicable = input.not_applicable.unwrap_or_default();
    }
    let fragment = AnswerFragment {
        shell: visit.shell,
        oob: true,
        pillar_id: pillar.id.clone(),
        pillar_counts: pillar.risk_counts,
        counts: r.risk_counts,
        q: block,
    };
    Ok(render(StatusCode::OK, fragment))
}

/// Freezes the review under a name.
pub async fn milestone(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    let input = NewMilestone {
        name: fields.one("name"),
    };
    match state.desk.create_milestone(&visit.actor, id, input).await {
        Ok(_) => Ok(see_other(&format!("/reviews/{id}#milestones"))),
        Err(e) => {
            let (status, text) = message(&e.into());
            review_page(&state, visit, id, status, Some(text)).await
        }
    }
}

// ---- the printable report ----

#[derive(Template)]
#[template(path = "review_report.html")]
struct ReportPage {
    r: Review,
    incident: Option<String>,
    started: (String, String),
    updated: (String, String),
    pillars: Vec<PillarBlock>,
}

/// The review as a page to print or save.
pub async fn report(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let r = state.desk.review(&visit.actor, id).await?;
    let tasks = tasks_by_question(&state, &visit, id).await?;
    let pillars = pillar_blocks(&r, &tasks, false);
    let page = ReportPage {
        incident: r.ticket.map(opsdesk_domain::Ticket::key_for),
        started: stamp(&r.created_at),
        updated: stamp(&r.updated_at),
        pillars,
        r,
    };
    Ok(render(StatusCode::OK, page))
}

/// The review as Markdown, to keep beside the workload's code or paste into a wiki.
pub async fn report_markdown(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let r = state.desk.review(&visit.actor, id).await?;
    let disposition = format!("inline; filename=\"review-{id}.md\"");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/markdown; charset=utf-8".to_owned(),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        review_markdown(&r),
    )
        .into_response())
}

// ---- findings and lessons become tasks; verification closes them ----

/// Makes a task of a finding (`question`) or of a lesson (`title`), then goes back.
pub async fn make_task(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    let back = back_to(&fields, format!("/reviews/{id}"));
    let result = async {
        let severity = match fields.one("severity").as_str() {
            "" => None,
            s => Some(Severity::parse(s).ok_or_else(|| {
                ApiError::invalid("severity", format!("expected one of {}", Severity::names()))
            })?),
        };
        let input = NewActionItem {
            question: fields.opt("question"),
            title: fields.opt("title"),
            description: fields.opt("description"),
            owner: fields.opt("owner"),
            team: fields.opt("team"),
            due: date("due", &fields.one("due"))?,
            severity,
        };
        Ok::<_, ApiError>(
            state
                .desk
                .create_action_item(&visit.actor, id, input)
                .await?,
        )
    }
    .await;
    match result {
        Ok(_) => Ok(see_other(&back)),
        Err(e) => refused_on(&state, visit, &back, id, e).await,
    }
}

/// Shows the page a form came from with the reason it was refused.
async fn refused_on(
    state: &AppState,
    visit: Visit,
    back: &str,
    review: i64,
    e: ApiError,
) -> Result<Response, PageError> {
    let (status, text) = message(&e);
    if back.ends_with("/incident") {
        incident_page(state, visit, review, status, Some(text), None).await
    } else if let Some(name) = back
        .strip_prefix("/workloads/")
        .and_then(|rest| rest.strip_suffix("/readiness"))
    {
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8_lossy()
            .into_owned();
        workload_page(state, visit, &name, status, Some(text)).await
    } else {
        review_page(state, visit, review, status, Some(text)).await
    }
}

/// Closes an action item with its verification note.
pub async fn verify(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    let input = VerificationNote {
        note: fields.one("note"),
    };
    match state.desk.verify_action_item(&visit.actor, id, input).await {
        Ok(item) => Ok(see_other(&back_to(
            &fields,
            format!("/reviews/{}", item.review),
        ))),
        Err(e) => {
            let item = state.desk.action_item(&visit.actor, id).await?;
            let back = back_to(&fields, format!("/reviews/{}", item.review));
            refused_on(&state, visit, &back, item.review, e.into()).await
        }
    }
}

// ---- the post-incident review ----

struct TimelineRow {
    at: (String, String),
    source: &'static str,
    actor: String,
    text: String,
}

/// The report as the form shows it: lists one item a line.
#[derive(Default)]
struct ReportForm {
    what_happened: String,
    impact: String,
    timeline: String,
    metrics: String,
    whys: String,
    contributing_factors: String,
    went_well: String,
    lessons: String,
    caught_by: String,
    proposal_pillar: String,
    proposal_title: String,
    proposal_description: String,
    practices: String,
}

/// A timeline entry as one line of the form: `time | source | actor | what happened`.
fn timeline_line(e: &TimelineEntry) -> String {
    format!(
        "{} | {} | {} | {}",
        e.at.format("%Y-%m-%d %H:%M:%S"),
        source_name(e.source),
        e.actor.as_deref().unwrap_or("-"),
        e.text.replace('\n', " ")
    )
}

fn report_form(pir: &IncidentReview) -> ReportForm {
    let r = &pir.report;
    let proposal = r.proposal.as_ref();
    ReportForm {
        what_happened: r.what_happened.clone(),
        impact: r.impact.clone(),
        timeline: pir
            .timeline
            .iter()
            .map(timeline_line)
            .collect::<Vec<_>>()
            .join("\n"),
        metrics: r.metrics.clone(),
        whys: r.whys.join("\n"),
        contributing_factors: r.contributing_factors.join("\n"),
        went_well: r.went_well.join("\n"),
        lessons: r.lessons.join("\n"),
        caught_by: r.caught_by.clone().unwrap_or_default(),
        proposal_pillar: proposal.and_then(|p| p.pillar.clone()).unwrap_or_default(),
        proposal_title: proposal.map(|p| p.title.clone()).unwrap_or_default(),
        proposal_description: proposal
            .and_then(|p| p.description.clone())
            .unwrap_or_default(),
        practices: proposal
            .map(|p| {
                p.practices
                    .iter()
                    .map(|x| format!("{} | {}", x.title, x.improvement_plan))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default(),
    }
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn moment(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim().trim_end_matches("UTC").trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
    .map(|t| t.and_utc())
}

/// Reads the timeline the form sends, one entry a line: `time | what happened`,
/// `time | source | what happened` or `time | source | actor | what happened` (UTC times).
fn read_timeline(text: &str) -> Result<Vec<TimelineEntry>, FieldError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at_line = |why: String| FieldError::new("timeline", format!("line {}: {why}", n + 1));
        let parts: Vec<&str> = line.splitn(4, '|').map(str::trim).collect();
        let at = moment(parts[0]).ok_or_else(|| {
            at_line(format!(
                "{:?} is not a time (YYYY-MM-DD HH:MM[:SS], UTC)",
                parts[0]
            ))
        })?;
        let (source, actor, text) = match parts.as_slice() {
            [_, text] => (TimelineSource::Person, None, *text),
            [_, source, text] => (
                source_of(source).ok_or_else(|| at_line(format!("unknown source {source:?}")))?,
                None,
                *text,
            ),
            [_, source, actor, text] => (
                source_of(source).ok_or_else(|| at_line(format!("unknown source {source:?}")))?,
                Some(actor.to_string()).filter(|a| !a.is_empty() && a != "-"),
                *text,
            ),
            _ => return Err(at_line("write: time | what happened".into())),
        };
        out.push(TimelineEntry {
            at,
            source,
            text: text.to_owned(),
            actor,
        });
    }
    Ok(out)
}

/// The report form as posted, kept as typed so a refusal shows it again.
fn posted_form(fields: &Fields) -> ReportForm {
    // Browsers end a text area's lines with CR LF.
    let text = |name: &str| fields.raw(name).replace("\r\n", "\n");
    ReportForm {
        what_happened: text("what_happened"),
        impact: text("impact"),
        timeline: text("timeline"),
        metrics: text("metrics"),
        whys: text("whys"),
        contributing_factors: text("contributing_factors"),
        went_well: text("went_well"),
        lessons: text("lessons"),
        caught_by: fields.one("caught_by"),
        proposal_pillar: fields.one("proposal_pillar"),
        proposal_title: fields.one("proposal_title"),
        proposal_description: text("proposal_description"),
        practices: text("practices"),
    }
}

/// The report the form says; `generated` is the timeline as the page drew it.
fn read_report(form: &ReportForm, generated: &str) -> Result<IncidentReport, ApiError> {
    // Left as drawn from the records, the timeline stays generated (and keeps growing).
    let timeline = if !generated.is_empty() && lines_of(&form.timeline) == lines_of(generated) {
        Vec::new()
    } else {
        read_timeline(&form.timeline).map_err(|e| ApiError::invalid(e.field, e.message))?
    };
    let practices = lines_of(&form.practices)
        .iter()
        .enumerate()
        .map(|(n, line)| match line.split_once('|') {
            Some((title, plan)) => Ok(Practice {
                title: title.trim().to_owned(),
                improvement_plan: plan.trim().to_owned(),
            }),
            None => Err(ApiError::invalid(
                "practices",
                format!("line {}: write: practice | improvement plan", n + 1),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let proposal = if form.proposal_title.is_empty() && practices.is_empty() {
        None
    } else {
        Some(ProposedQuestion {
            pillar: optional(form.proposal_pillar.clone()),
            title: form.proposal_title.clone(),
            description: optional(form.proposal_description.trim().to_owned()),
            practices,
        })
    };
    let report = IncidentReport {
        what_happened: form.what_happened.trim().to_owned(),
        impact: form.impact.trim().to_owned(),
        timeline,
        metrics: form.metrics.trim().to_owned(),
        whys: lines_of(&form.whys),
        contributing_factors: lines_of(&form.contributing_factors),
        went_well: lines_of(&form.went_well),
        lessons: lines_of(&form.lessons),
        caught_by: optional(form.caught_by.clone()),
        proposal,
    };
    Ok(report)
}

#[derive(Template)]
#[template(path = "incident_review.html")]
struct IncidentPage {
    shell: Shell,
    error: Option<String>,
    notice: Option<String>,
    id: i64,
    workload: String,
    workload_seg: String,
    key: String,
    title: String,
    severity: &'static str,
    status: &'static str,
    opened: (String, String),
    resolved: Option<(String, String)>,
    measured: Vec<(&'static str, String)>,
    timeline: Vec<TimelineRow>,
    generated: bool,
    form: ReportForm,
    /// The timeline drawn from the records as the form shows it, while not settled.
    drawn: Option<String>,
    /// The report's version the form was drawn from (a save over another is refused).
    report_version: String,
    report_updated: (String, String, String),
    due: Option<(String, String)>,
    completed: Option<(String, String, String)>,
    proposal: Option<&'static str>,
    proposal_lens: Option<String>,
    pillars: Vec<Choice>,
    lenses: Vec<Choice>,
    items: Vec<ItemRow>,
    severities: Vec<Choice>,
    back: String,
}

fn measured_rows(pir: &IncidentReview) -> Vec<(&'static str, String)> {
    let m = &pir.measured;
    let secs = |s: Option<i64>| s.map_or("—".to_owned(), |s| super::span(s as f64));
    vec![
        ("Time to acknowledge", secs(m.seconds_to_acknowledge)),
        ("Time to resolve", secs(m.seconds_to_resolve)),
        ("Signals", m.signals.to_string()),
        ("Notifications", m.notifications.to_string()),
        ("Escalations", m.escalations.to_string()),
        (
            "AWS Support case",
            m.aws_case.clone().unwrap_or_else(|| "—".into()),
        ),
    ]
}

async fn incident_page(
    state: &AppState,
    visit: Visit,
    id: i64,
    status: StatusCode,
    error: Option<String>,
    posted: Option<ReportForm>,
) -> Result<Response, PageError> {
    let desk = &state.desk;
    let pir = desk.incident_review(&visit.actor, id).await?;
    let review = desk.review(&visit.actor, id).await?;
    let lenses = desk.list_lenses(&visit.actor).await?;
    let form = posted.unwrap_or_else(|| report_form(&pir));
    let chosen_pillar = form.proposal_pillar.clone();
    let i = &pir.incident;
    let page = IncidentPage {
        shell: visit.at("readiness").shell,
        error,
        notice: None,
        id,
        workload_seg: seg(&pir.review.workload),
        workload: pir.review.workload.clone(),
        key: i.key.clone(),
        title: i.title.clone(),
        severity: i.severity.as_str(),
        status: i.status.as_str(),
        opened: stamp(&i.created_at),
        resolved: i.resolved_at.as_ref().map(stamp),
        measured: measured_rows(&pir),
        timeline: pir
            .timeline
            .iter()
            .map(|e| TimelineRow {
                at: stamp(&e.at),
                source: source_name(e.source),
                actor: e.actor.clone().unwrap_or_default(),
                text: e.text.clone(),
            })
            .collect(),
        generated: pir.timeline_generated,
        drawn: pir.timeline_generated.then(|| report_form(&pir).timeline),
        report_version: pir.report_version.clone(),
        report_updated: {
            let (i, w) = stamp(&pir.report_updated_at);
            (pir.report_updated_by.clone(), i, w)
        },
        due: pir.due_at.as_ref().map(stamp),
        completed: pir.completed_at.as_ref().map(|t| {
            let (i, w) = stamp(t);
            (pir.completed_by.clone().unwrap_or_default(), i, w)
        }),
        proposal: pir.proposal_state.map(|s| match s {
            ProposalState::Approved => "approved",
            ProposalState::Rejected => "rejected",
        }),
        proposal_lens: pir
            .proposal_lens
            .as_ref()
            .map(|l| format!("{l} version {}", pir.proposal_version.unwrap_or_default())),
        pillars: review
            .pillars
            .iter()
            .map(|p| Choice {
                value: p.id.clone(),
                label: p.name.clone(),
                selected: p.id == chosen_pillar,
            })
            .collect(),
        lenses: lens_choices(
            &lenses
                .into_iter()
                .filter(|l| !l.builtin)
                .collect::<Vec<_>>(),
            &pir.review.lens,
        ),
        items: pir.action_items.iter().map(item_row).collect(),
        severities: super::ticket::severity_choices(None),
        back: format!("/reviews/{id}/incident"),
        form,
    };
    Ok(render(status, page))
}

pub async fn incident(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    incident_page(&state, visit, id, StatusCode::OK, None, None).await
}

/// Saves the post-incident report.
pub async fn save_incident(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    let pir = state.desk.incident_review(&visit.actor, id).await?;
    // The timeline as the page drew it, sent back beside the text area: left as it was, the
    // timeline stays drawn from the records (which may have grown since the page was shown).
    let generated = if pir.timeline_generated {
        fields.raw("timeline_drawn").replace("\r\n", "\n")
    } else {
        String::new()
    };
    let form = posted_form(&fields);
    let report = match read_report(&form, &generated) {
        Ok(report) => report,
        Err(e) => {
            let (status, text) = message(&e);
            return incident_page(&state, visit, id, status, Some(text), Some(form)).await;
        }
    };
    match state
        .desk
        .save_incident_report(&visit.actor, id, report, fields.opt("report_version"))
        .await
    {
        Ok(_) => Ok(see_other(&format!("/reviews/{id}/incident"))),
        Err(e) => {
            let (status, text) = message(&e.into());
            incident_page(&state, visit, id, status, Some(text), Some(form)).await
        }
    }
}

/// Marks the post-incident review complete.
pub async fn complete_incident(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    match state.desk.complete_incident_review(&visit.actor, id).await {
        Ok(_) => Ok(see_other(&format!("/reviews/{id}/incident"))),
        Err(e) => {
            let (status, text) = message(&e.into());
            incident_page(&state, visit, id, status, Some(text), None).await
        }
    }
}

/// Approves (adding the question to a lens) or rejects the proposed question.
pub async fn decide(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    let decision = ProposalDecision {
        approve: fields.one("decision") == "approve",
        lens: fields.opt("lens"),
    };
    match state.desk.decide_proposal(&visit.actor, id, decision).await {
        Ok(_) => Ok(see_other(&format!("/reviews/{id}/incident"))),
        Err(e) => {
            let (status, text) = message(&e.into());
            incident_page(&state, visit, id, status, Some(text), None).await
        }
    }
}

// ---- lenses, for admins ----

struct LensRow {
    id: String,
    id_seg: String,
    name: String,
    description: String,
    builtin: bool,
    pillars: usize,
    questions: usize,
    versions: Vec<(i64, String, String, (String, String))>,
}

#[derive(Template)]
#[template(path = "lenses.html")]
struct LensesPage {
    shell: Shell,
    error: Option<String>,
    notice: Option<String>,
    lenses: Vec<LensRow>,
    document: String,
}

async fn lenses_page(
    state: &AppState,
    visit: Visit,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    document: String,
) -> Result<Response, PageError> {
    let lenses = state.desk.list_lenses(&visit.actor).await?;
    let page = LensesPage {
        shell: visit.at("admin").shell,
        error,
        notice,
        document,
        lenses: lenses
            .into_iter()
            .map(|l| LensRow {
                id_seg: seg(&l.id),
                versions: l
                    .versions
                    .iter()
                    .rev()
                    .map(|v| {
                        (
                            v.version,
                            v.digest.chars().take(12).collect(),
                            v.imported_by.clone(),
                            stamp(&v.imported_at),
                        )
                    })
                    .collect(),
                id: l.id,
                name: l.name,
                description: l.description,
                builtin: l.builtin,
                pillars: l.pillars,
                questions: l.questions,
            })
            .collect(),
    };
    Ok(render(status, page))
}

pub async fn lenses(State(state): State<AppState>, visit: Visit) -> Result<Response, PageError> {
    lenses_page(&state, visit, StatusCode::OK, None, None, String::new()).await
}

/// Imports a lens document pasted (or read from a file by the page's script) into the form.
pub async fn import_lens(
    State(state): State<AppState>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::read(&body)?;
    let document = fields.raw("document");
    match state.desk.import_lens(&visit.actor, &document).await {
        Ok(l) if l.new_version => {
            let notice = format!("Imported {} ({}) as version {}.", l.name, l.id, l.version);
            lenses_page(
                &state,
                visit,
                StatusCode::OK,
                Some(notice),
                None,
                String::new(),
            )
            .await
        }
        Ok(l) => {
            let notice = format!(
                "{} ({}) already has this document as version {}; nothing changed.",
                l.name, l.id, l.version
            );
            lenses_page(
                &state,
                visit,
                StatusCode::OK,
                Some(notice),
                None,
                String::new(),
            )
            .await
        }
        Err(e) => {
            let (status, text) = message(&e.into());
            lenses_page(&state, visit, status, None, Some(text), document).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    version: Option<i64>,
}

/// A lens version as a file in the Well-Architected custom lens format.
pub async fn export_lens(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, PageError> {
    let doc = state.desk.export_lens(&visit.actor, &id, q.version).await?;
    // The id is lower-case letters, digits and `-` (made by opsdesk), safe in a file name.
    let file: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let disposition = match q.version {
        Some(v) => format!("attachment; filename=\"{file}-v{v}.json\""),
        None => format!("attachment; filename=\"{file}.json\""),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        doc,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_reads_back_as_it_was_written() {
        let entry = TimelineEntry {
            at: "2026-12-01T10:05:00Z".parse().unwrap(),
            source: TimelineSource::Signal,
            text: "CloudWatch alarm api-5xx | ALARM".into(),
            actor: None,
        };
        let line = timeline_line(&entry);
        assert_eq!(
            line,
            "2026-12-01 10:05:00 | signal | - | CloudWatch alarm api-5xx | ALARM"
        );
        assert_eq!(read_timeline(&line).unwrap(), vec![entry]);
        let short = read_timeline("2026-12-01 10:07 | Paged the DBA\n\n").unwrap();
        assert_eq!(short[0].source, TimelineSource::Person);
        assert_eq!(short[0].text, "Paged the DBA");
        assert_eq!(short[0].at.to_rfc3339(), "2026-12-01T10:07:00+00:00");
    }

    #[test]
    fn a_bad_timeline_line_is_named() {
        let e = read_timeline("2026-12-01 10:05 | ok\nyesterday | lost").unwrap_err();
        assert_eq!(e.field, "timeline");
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = read_timeline("2026-12-01 10:05 | radio | heard it").unwrap_err();
        assert!(e.message.contains("unknown source"), "{}", e.message);
    }

    #[test]
    fn forms_send_people_back_only_to_opsdesk_pages() {
        let f = |back: &str| Fields(vec![("back".into(), back.into())]);
        assert_eq!(back_to(&f("/reviews/3"), "/x".into()), "/reviews/3");
        for evil in ["//evil.example", "https://evil.example", "/\\evil", ""] {
            assert_eq!(back_to(&f(evil), "/x".into()), "/x", "{evil}");
        }
    }
}
