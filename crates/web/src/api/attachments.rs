//! Files on tickets: upload (`multipart/form-data`), list, download and choose for the AWS
//! Support case.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_core::attachments::AttachOptions;
use opsdesk_domain::attachment::{served_type, Attachment};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tickets::ticket_id;
use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    // Uploads are measured file by file as they are read (see `upload::read`).
    let uploads = OpenApiRouter::new()
        .routes(routes!(upload, list_attachments))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(download, change_attachment))
        .merge(uploads)
}

/// An upload: one or more `file` parts and the options.
#[allow(dead_code)]
#[derive(ToSchema)]
struct UploadBody {
    /// The files (repeat the part for several, at most 10).
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
    /// Whether the requester sees them (default true; a requester's files are always public).
    public: Option<bool>,
    /// The comment of this ticket they belong to.
    comment_id: Option<i64>,
    /// Send them with the ticket's AWS Support case (staff only; default false).
    to_case: Option<bool>,
}

/// Adds files to a ticket. Each file's type is what its bytes show, checked against the part's
/// `Content-Type` and the desk's allowed types and size; one refused file refuses them all.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/attachments",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key")),
    request_body(content = UploadBody, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The files as recorded", body = Vec<Attachment>),
        (status = 400, description = "The form cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket or comment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This desk keeps no files", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A file is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not multipart/form-data", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A file's type is refused or does not match its content", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn upload(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> Result<(StatusCode, Json<Vec<Attachment>>), ApiError> {
    let id = ticket_id(&id)?;
    let form = crate::upload::read(&state, req).await?;
    let comment_id = match form.field("comment_id").map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
            ApiError::Malformed(format!("comment_id: `{raw}` is not a comment id"))
        })?),
    };
    let options = AttachOptions {
        comment_id,
        public: form.flag("public", true)?,
        to_case: form.flag("to_case", false)?,
    };
    let files = state.desk.attach(&actor, id, form.files, options).await?;
    Ok((StatusCode::CREATED, Json(files)))
}

/// A ticket's files, oldest first (a requester sees the public ones).
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/attachments",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key")),
    responses((status = 200, description = "The files", body = Vec<Attachment>))
)]
async fn list_attachments(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<Attachment>>, ApiError> {
    Ok(Json(state.desk.attachments(&actor, ticket_id(&id)?).await?))
}

/// One file's bytes, always as a download (`Content-Disposition: attachment`,
/// `X-Content-Type-Options: nosniff`, never served as a page). Each download is audited.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/attachments/{attachment_id}",
    tag = "tickets",
    params(
        ("id" = String, Path, description = "Ticket id or key"),
        ("attachment_id" = i64, Path, description = "The file's id"),
    ),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such file on a ticket the caller sees", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn download(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (file, bytes) = state
        .desk
        .download(&actor, ticket_id(&id)?, file_id(&attachment_id)?)
        .await?;
    Ok(file_response(&file, bytes))
}

fn file_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("file {raw:?} (use the file's id)")))
}

/// A file as a download: the stored type made safe, the name in `filename*` (RFC 6266).
pub(crate) fn file_response(file: &Attachment, bytes: Vec<u8>) -> Response {
    let ascii: String = file
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(&file.name, percent_encoding::NON_ALPHANUMERIC);
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    let mut res = bytes.into_response();
    let headers = res.headers_mut();
    let content_type = HeaderValue::from_str(&served_type(&file.content_type))
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    } else {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", file.sha256)) {
        headers.insert(header::ETAG, etag);
    }
    res
}

/// What may change on a file.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentChange {
    /// Send the file with the ticket's AWS Support case.
    pub to_case: bool,
}

/// Chooses whether a file goes with the ticket's AWS Support case: chosen files are sent when
/// the case is opened, or added to an open case at its next sync.
#[utoipa::path(
    patch,
    path = "/api/v1/tickets/{id}/attachments/{attachment_id}",
    tag = "tickets",
    params(
        ("id" = String, Path, description = "Ticket id or key"),
        ("attachment_id" = i64, Path, description = "The file's id"),
    ),
    request_body = AttachmentChange,
    responses(
        (status = 200, description = "The file", body = Attachment),
        (status = 404, description = "No such file", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn change_attachment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, attachment_id)): Path<(String, String)>,
    ApiJson(change): ApiJson<AttachmentChange>,
) -> Result<Json<Attachment>, ApiError> {
    Ok(Json(
        state
            .desk
            .set_attachment_to_case(
                &actor,
                ticket_id(&id)?,
                file_id(&attachment_id)?,
                change.to_case,
            )
            .await?,
    ))
}
