//! The ticket queue: filters, full-text search, sorting, cursor paging that stays fast on a
//! million tickets, and bulk actions for agents. Also the "similar requests" hint of the new
//! request form.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use opsdesk_domain::validation::TicketPatch;
use opsdesk_domain::{Kind, Severity, Status, Ticket};
use opsdesk_store::{SortKey, TicketFilter};
use serde::Deserialize;

use super::{iso, message, render, when, PageError, Shell, Visit};
use crate::api::tickets::{filter_from, ListParams};
use crate::{ApiError, AppState};

/// A ticket as a list shows it.
pub struct Row {
    pub key: String,
    pub title: String,
    pub severity: String,
    pub status: String,
    pub kind: String,
    pub team: String,
    pub assignee: String,
    pub workload: String,
    pub source: String,
    pub created_iso: String,
    pub created: String,
}

impl Row {
    pub fn of(t: &Ticket) -> Row {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
        Row {
            key: t.key.clone(),
            title: t.title.clone(),
            severity: t.severity.as_str().to_owned(),
            status: t.status.as_str().to_owned(),
            kind: t.kind.as_str().replace('_', " "),
            team: dash(&t.team),
            assignee: dash(&t.assignee),
            workload: dash(&t.workload),
            source: t.source.clone(),
            created_iso: iso(&t.created_at),
            created: when(&t.created_at),
        }
    }
}

/// An option of a filter's select.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn options(current: Option<&str>, any: &str, values: &[(&str, &str)]) -> Vec<Opt> {
    let current = current.unwrap_or("");
    let mut out = vec![Opt {
        value: String::new(),
        label: any.to_owned(),
        selected: current.is_empty(),
    }];
    out.extend(values.iter().map(|(v, label)| Opt {
        value: (*v).to_owned(),
        label: (*label).to_owned(),
        selected: *v == current,
    }));
    // A value from a saved view or an address that no option names (`new,acknowledged`)
    // stays chosen, so applying the form keeps it.
    if !current.is_empty() && !values.iter().any(|(v, _)| *v == current) {
        out.push(Opt {
            value: current.to_owned(),
            label: current.to_owned(),
            selected: true,
        });
    }
    out
}

/// The statuses a ticket is open in, as one filter value.
const OPEN: &str = "new,acknowledged,in_progress,pending";

/// A saved view, as the queue lists it.
pub struct ViewLink {
    pub id: i64,
    pub name: String,
    pub query: String,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    shell: Shell,
    error: Option<String>,
    rows: Vec<Row>,
    p: ListParams,
    statuses: Vec<Opt>,
    severities: Vec<Opt>,
    kinds: Vec<Opt>,
    sorts: Vec<Opt>,
    /// The query string of this page, to come back to after a bulk action.
    here: String,
    /// This page's filters and sort, without the paging: what "save this view" keeps.
    view_query: String,
    views: Vec<ViewLink>,
    next: Option<String>,
    first: Option<String>,
}

pub async fn queue(
    State(state): State<AppState>,
    visit: Visit,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let (p, error) = match params {
        Ok(Query(p)) => (p, None),
        Err(e) => (ListParams::default(), Some(e.body_text())),
    };
    let (rows, next, error, status) = match filter_from(p.clone()) {
        Ok(filter) => match state.desk.tickets(&visit.actor, &filter).await {
            Ok(page) => (
                page.items.iter().map(Row::of).collect(),
                page.next_cursor,
                error,
                StatusCode::OK,
            ),
            Err(e) => {
                let (status, text) = message(&e.into());
                (Vec::new(), None, Some(text), status)
            }
        },
        Err(e) => {
            let (status, text) = message(&e);
            (Vec::new(), None, Some(text), status)
        }
    };
    let query = |cursor: Option<String>| {
        let mut q = p.clone();
        q.cursor = cursor;
        serde_urlencoded::to_string(&q).unwrap_or_default()
    };
    let views = state
        .desk
        .saved_views(&visit.actor)
        .await?
        .into_iter()
        .map(|v| ViewLink {
            id: v.id,
            name: v.name,
            query: v.query,
        })
        .collect();
    let statuses: Vec<(&str, &str)> = std::iter::once((OPEN, "open"))
        .chain(Status::ALL.iter().map(|s| (s.as_str(), s.as_str())))
        .collect();
    let severities: Vec<(&str, &str)> = Severity::ALL
        .iter()
        .map(|s| (s.as_str(), s.as_str()))
        .collect();
    let kinds: Vec<(&str, &str)> = Kind::ALL.iter().map(|k| (k.as_str(), k.as_str())).collect();
    let sorts = [
        ("-created", "newest first"),
        ("created", "oldest first"),
        ("-updated", "recently updated"),
        ("updated", "least recently updated"),
        ("severity", "most severe first"),
        ("-severity", "least severe first"),
    ];
    let page = QueuePage {
        error,
        rows,
        statuses: options(p.status.as_deref(), "any status", &statuses),
        severities: options(p.severity.as_deref(), "any severity", &severities),
        kinds: options(p.kind.as_deref(), "any kind", &kinds),
        sorts: options(p.sort.as_deref(), "newest first", &sorts[1..])
            .into_iter()
            .map(|mut o| {
                if o.value.is_empty() {
                    o.value = sorts[0].0.to_owned();
                }
                o
            })
            .collect(),
        here: query(p.cursor.clone()),
        view_query: query(None),
        views,
        next: next.map(|c| query(Some(c))),
        first: p.cursor.is_some().then(|| query(None)),
        p,
        shell: visit.at("tickets").shell,
    };
    Ok(render(status, page))
}

/// A bulk action on the tickets ticked in the queue.
pub async fn bulk(
    State(state): State<AppState>,
    visit: Visit,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let fields = super::Fields::read(&body)?;
    let field = |name: &str| fields.one(name);
    let ids: Vec<i64> = fields
        .all("id")
        .iter()
        .filter_map(|v| Ticket::parse_ref(v))
        .collect();
    if ids.is_empty() {
        return Err(ApiError::invalid("id", "tick at least one ticket").into());
    }
    let mut patch = TicketPatch::default();
    match field("action").as_str() {
        "assign" => {
            let to = field("assignee");
            patch.assignee = Some(Some(to).filter(|a| !a.is_empty()));
        }
        "status" => {
            let s = field("status");
            patch.status = Some(Status::parse(&s).ok_or_else(|| {
                ApiError::invalid("status", format!("expected one of {}", Status::names()))
            })?);
        }
        other => {
            return Err(ApiError::invalid(
                "action",
                format!("choose assign or status, not {other:?}"),
            )
            .into())
        }
    }
    let mut failed = Vec::new();
    for id in &ids {
        if let Err(e) = state
            .desk
            .update_ticket(&visit.actor, *id, None, patch.clone())
            .await
        {
            failed.push(format!(
                "{}: {}",
                Ticket::key_for(*id),
                message(&e.into()).1
            ));
        }
    }
    // Back to the same queue page: its query string, read and written again as the queue's
    // parameters so nothing else can ride along.
    let back = serde_urlencoded::from_str::<ListParams>(&field("back"))
        .ok()
        .and_then(|p| serde_urlencoded::to_string(&p).ok())
        .unwrap_or_default();
    if failed.is_empty() {
        return Ok(Redirect::to(&format!("/tickets?{back}")).into_response());
    }
    Err(ApiError::Conflict(format!(
        "{} of {} tickets changed; not changed: {}",
        ids.len() - failed.len(),
        ids.len(),
        failed.join("; ")
    ))
    .into())
}

#[derive(Debug, Deserialize)]
pub struct ViewForm {
    #[serde(default)]
    name: String,
    /// The queue's query string; checked as the queue checks it before it is kept.
    #[serde(default)]
    query: String,
}

/// Saves the queue's filters and sort under a name, for the caller only.
pub async fn save_view(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<ViewForm>,
) -> Result<Response, PageError> {
    let mut params: ListParams = serde_urlencoded::from_str(&form.query)
        .map_err(|e| ApiError::invalid("query", format!("not a queue view: {e}")))?;
    params.cursor = None;
    filter_from(params.clone())?;
    let query = serde_urlencoded::to_string(&params)
        .map_err(|e| ApiError::invalid("query", e.to_string()))?;
    state
        .desk
        .save_view(&visit.actor, &form.name, &query)
        .await?;
    Ok(Redirect::to(&format!("/tickets?{query}")).into_response())
}

pub async fn delete_view(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    state.desk.delete_view(&visit.actor, id).await?;
    Ok(Redirect::to("/tickets").into_response())
}

#[derive(Debug, Deserialize)]
pub struct SimilarParams {
    #[serde(default)]
    title: String,
}

#[derive(Template)]
#[template(path = "similar.html")]
struct Similar {
    rows: Vec<Row>,
}

/// Open tickets like the request being typed, found by full-text search on its title's words.
pub async fn similar(
    State(state): State<AppState>,
    visit: Visit,
    Query(p): Query<SimilarParams>,
) -> Result<Response, PageError> {
    let words: Vec<String> = p
        .title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .take(8)
        .map(|w| format!("{}*", w.to_lowercase()))
        .collect();
    if words.is_empty() {
        return Ok(render(StatusCode::OK, Similar { rows: Vec::new() }));
    }
    // Every word must match; try the longer words alone when all of them find nothing.
    let mut rows = Vec::new();
    for q in [words.join(" "), longest(&words, 2).join(" ")] {
        let filter = TicketFilter {
            statuses: Status::ALL
                .iter()
                .copied()
                .filter(|s| s.is_open())
                .collect(),
            q: Some(q),
            sort: SortKey::default(),
            limit: 5,
            ..TicketFilter::default()
        };
        rows = state
            .desk
            .tickets(&visit.actor, &filter)
            .await?
            .items
            .iter()
            .map(Row::of)
            .collect();
        if !rows.is_empty() {
            break;
        }
    }
    Ok(render(StatusCode::OK, Similar { rows }))
}

fn longest(words: &[String], n: usize) -> Vec<String> {
    let mut sorted = words.to_vec();
    sorted.sort_by_key(|w| std::cmp::Reverse(w.len()));
    sorted.truncate(n);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_longest_words_are_kept() {
        let words: Vec<String> = ["db*", "replication*", "lagging*", "on*"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(longest(&words, 2), vec!["replication*", "lagging*"]);
    }
}
