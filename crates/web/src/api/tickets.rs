use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_domain::audit::AuditRecord;
use opsdesk_domain::validation::{NewComment, NewLink, NewTicket, TicketPatch};
use opsdesk_domain::{Comment, Kind, Severity, Status, Ticket, TicketLink};
use opsdesk_store::{Cursor, SortKey, TicketFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_ticket, list_tickets))
        .routes(routes!(create_tickets_batch))
        .routes(routes!(get_ticket, update_ticket))
        .routes(routes!(add_comment, list_comments))
        .routes(routes!(add_link, list_links))
        .routes(routes!(remove_link))
        .routes(routes!(ticket_history))
        .routes(routes!(ticket_sla))
}

/// Reads `{id}`: a number or a key such as `OPS-42`.
pub(crate) fn ticket_id(raw: &str) -> Result<i64, ApiError> {
    Ticket::parse_ref(raw).ok_or_else(|| {
        ApiError::NotFound(format!(
            "ticket {raw:?} (use an id or a key such as OPS-42)"
        ))
    })
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, ticket: Ticket) -> Response {
    let tag = etag(ticket.version);
    let mut res = (status, Json(ticket)).into_response();
    res.headers_mut().insert(header::ETAG, tag);
    res
}

/// Reads `If-Match`: `"3"`, `W/"3"` or `3` name version 3; `*` means any version.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("If-Match", "must be the ticket's ETag, such as \"3\"");
    let s = raw.to_str().map_err(|_| bad())?.trim();
    if s == "*" {
        return Ok(None);
    }
    let s = s.strip_prefix("W/").unwrap_or(s);
    let s = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    s.parse::<i64>().map(Some).map_err(|_| bad())
}

/// Create a ticket. A requester sends only `title`, `kind`, `severity`, `workload` and
/// `description` and is the ticket's requester; any other field is refused with 422 naming it.
#[utoipa::path(
    post,
    path = "/api/v1/tickets",
    tag = "tickets",
    request_body = NewTicket,
    responses(
        (status = 201, description = "Created; `Location` and `ETag` are set", body = Ticket),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `field` names it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_ticket(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<NewTicket>,
) -> Result<Response, ApiError> {
    let ticket = state.desk.create_ticket(&actor, input).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/tickets/{}", ticket.id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut res = with_etag(StatusCode::CREATED, ticket);
    res.headers_mut().insert(header::LOCATION, location);
    Ok(res)
}

/// The ids of tickets created together.
#[derive(Debug, Serialize, ToSchema)]
struct BatchCreated {
    ids: Vec<i64>,
}

/// Create up to 1,000 tickets in one transaction: all or none.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/batch",
    tag = "tickets",
    request_body = Vec<NewTicket>,
    responses(
        (status = 201, description = "All created", body = BatchCreated),
        (status = 422, description = "An entry is invalid; `field` is `[index].field`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_tickets_batch(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(inputs): ApiJson<Vec<NewTicket>, true>,
) -> Result<(StatusCode, Json<BatchCreated>), ApiError> {
    if inputs.len() > 1000 {
        return Err(ApiError::invalid("", "at most 1,000 tickets per batch"));
    }
    let ids = state.desk.create_tickets(&actor, inputs).await?;
    Ok((StatusCode::CREATED, Json(BatchCreated { ids })))
}

/// Filters for the ticket list. Lists take comma-separated values (`status=new,acknowledged`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Statuses, comma-separated.
    #[param(value_type = Option<Vec<Status>>, style = Form, explode = false)]
    pub(crate) status: Option<String>,
    /// Severities (SEV1..SEV5), comma-separated.
    #[param(value_type = Option<Vec<Severity>>, style = Form, explode = false)]
    pub(crate) severity: Option<String>,
    /// Kinds, comma-separated.
    #[param(value_type = Option<Vec<Kind>>, style = Form, explode = false)]
    pub(crate) kind: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) team: Option<String>,
    pub(crate) assignee: Option<String>,
    pub(crate) requester: Option<String>,
    pub(crate) workload: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) dedup_key: Option<String>,
    /// Full-text search over title, description and comments; every word must match;
    /// `word*` matches a prefix.
    pub(crate) q: Option<String>,
    /// `-created` (default), `created`, `-updated`, `updated`, `severity` (SEV1 first, oldest
    /// first), `-severity`.
    #[param(pattern = r"^(-?created|-?updated|-?severity)?$")]
    pub(crate) sort: Option<String>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    pub(crate) limit: Option<u32>,
}

/// One page of tickets.
#[derive(Debug, Serialize, ToSchema)]
struct TicketList {
    items: Vec<Ticket>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

fn parse_list<T: Copy>(
    field: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Option<T>,
    names: fn() -> String,
) -> Result<Vec<T>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse(s).ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("unknown {field} {s:?}; expected one of: {}", names()),
                )
            })
        })
        .collect()
}

pub(crate) fn filter_from(p: ListParams) -> Result<TicketFilter, ApiError> {
    let sort = match p.sort.as_deref() {
        None | Some("") => SortKey::default(),
        Some(s) => SortKey::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "sort",
                format!("unknown sort {s:?}; expected one of: {}", SortKey::NAMES),
            )
        })?,
    };
    let cursor = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Cursor::decode(c, sort).ok_or_else(|| {
            ApiError::invalid("cursor", "not a cursor from this list with this sort")
        })?),
    };
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 200"));
    }
    let text = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    Ok(TicketFilter {
        statuses: parse_list("status", p.status.as_deref(), Status::parse, Status::names)?,
        severities: parse_list(
            "severity",
            p.severity.as_deref(),
            |s| Severity::parse(&s.to_ascii_uppercase()),
            Severity::names,
        )?,
        kinds: parse_list("kind", p.kind.as_deref(), Kind::parse, Kind::names)?,
        source: text(p.source),
        team: text(p.team),
        assignee: text(p.assignee),
        requester: text(p.requester),
        workload: text(p.workload),
        tag: text(p.tag),
        dedup_key: text(p.dedup_key),
        q: text(p.q),
        q_without_comments: false,
        sort,
        cursor,
        limit,
    })
}

/// List and search tickets, newest first unless `sort` says otherwise.
#[utoipa::path(
    get,
    path = "/api/v1/tickets",
    tag = "tickets",
    params(ListParams),
    responses(
        (status = 200, description = "A page of tickets", body = TicketList),
        (status = 422, description = "A filter is invalid; `field` names it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_tickets(
    State(state): State<AppState>,
    Auth(actor): Auth,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<TicketList>, ApiError> {
    let Query(params) = params.map_err(|e| {
        let text = e.body_text();
        let field = text
            .split('`')
            .nth(1)
            .map(str::to_owned)
            .unwrap_or_else(|| "query".to_owned());
        ApiError::invalid(field, text)
    })?;
    let page = state.desk.tickets(&actor, &filter_from(params)?).await?;
    Ok(Json(TicketList {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Read a ticket by id or key. The `ETag` header carries its version.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key, e.g. 42 or OPS-42")),
    responses(
        (status = 200, description = "The ticket", body = Ticket),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_ticket(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ticket = state.desk.ticket(&actor, ticket_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, ticket))
}

/// Change a ticket. Send `If-Match` with the ETag you read: if the ticket changed since, the
/// answer is 412 and nothing is written. Fields not sent stay as they are; `null` clears one.
#[utoipa::path(
    patch,
    path = "/api/v1/tickets/{id}",
    tag = "tickets",
    params(
        ("id" = String, Path, description = "Ticket id or key"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version the change is based on"),
    ),
    request_body = TicketPatch,
    responses(
        (status = 200, description = "The changed ticket", body = Ticket),
        (status = 409, description = "The status cannot change that way", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The ticket changed since the ETag sent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_ticket(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<TicketPatch>,
) -> Result<Response, ApiError> {
    let id = ticket_id(&id)?;
    let expected = if_match(&headers)?;
    let ticket = state
        .desk
        .update_ticket(&actor, id, expected, patch)
        .await?;
    Ok(with_etag(StatusCode::OK, ticket))
}

/// Comment on a ticket.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/comments",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key")),
    request_body = NewComment,
    responses(
        (status = 201, description = "The comment", body = Comment),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body is empty or too long", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_comment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NewComment>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let comment = state
        .desk
        .add_comment(&actor, ticket_id(&id)?, input)
        .await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

/// A ticket's comments, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/comments",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key")),
    responses((status = 200, description = "The comments", body = Vec<Comment>))
)]
async fn list_comments(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<Comment>>, ApiError> {
    Ok(Json(state.desk.comments(&actor, ticket_id(&id)?).await?))
}

/// Link this ticket to another: it `relates_to`, `duplicates` or is `caused_by` the target.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/links",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key")),
    request_body = NewLink,
    responses(
        (status = 201, description = "The link", body = TicketLink),
        (status = 409, description = "The same link exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The target is not a ticket", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_link(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NewLink>,
) -> Result<(StatusCode, Json<TicketLink>), ApiError> {
    let link = state.desk.add_link(&actor, ticket_id(&id)?, input).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// Links from and to a ticket.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/links",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key")),
    responses((status = 200, description = "The links", body = Vec<TicketLink>))
)]
async fn list_links(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<TicketLink>>, ApiError> {
    Ok(Json(state.desk.links(&actor, ticket_id(&id)?).await?))
}

/// Remove a link from or to this ticket.
#[utoipa::path(
    delete,
    path = "/api/v1/tickets/{id}/links/{link_id}",
    tag = "tickets",
    params(
        ("id" = String, Path, description = "Ticket id or key"),
        ("link_id" = i64, Path, description = "Link id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such link on this ticket", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn remove_link(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, link_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let link_id: i64 = link_id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("link {link_id:?}")))?;
    state
        .desk
        .remove_link(&actor, ticket_id(&id)?, link_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A ticket's audit entries, oldest first: who changed what, when, with the hash chain.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/history",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key")),
    responses((status = 200, description = "The entries", body = Vec<AuditRecord>))
)]
async fn ticket_history(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    Ok(Json(state.desk.history(&actor, ticket_id(&id)?).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SlaQuery {
    /// The moment to read the clocks at (RFC 3339), from the ticket's creation to a year
    /// after now; now when absent.
    at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A ticket's SLA clocks: the policy and calendar that apply, first-response and resolution
/// due times (moved on by the business time spent `pending`), warning times, and for each
/// clock whether it is running, paused, met or breached, with the business time elapsed and
/// left.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/sla",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key"), SlaQuery),
    responses(
        (status = 200, description = "The clocks", body = opsdesk_domain::SlaClock),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`at` is not a time, is before the ticket was created or more than a year ahead", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ticket_sla(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    q: Result<Query<SlaQuery>, QueryRejection>,
) -> Result<Json<opsdesk_domain::SlaClock>, ApiError> {
    let Query(q) = q.map_err(|_| {
        ApiError::invalid(
            "at",
            "must be an RFC 3339 time such as 2026-11-24T09:00:00Z",
        )
    })?;
    Ok(Json(
        state.desk.ticket_sla(&actor, ticket_id(&id)?, q.at).await?,
    ))
}
