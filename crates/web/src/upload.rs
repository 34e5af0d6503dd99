//! Reading `multipart/form-data` forms that carry files: the API's uploads and the pages'
//! request and reply forms. Files are counted and measured as they arrive, so an oversized
//! upload is refused before it is all read.

use std::collections::HashMap;

use axum::extract::multipart::{Field, Multipart, MultipartError};
use opsdesk_core::attachments::Upload;

use crate::{ApiError, AppState};

/// The most files one request carries.
pub const FILES_MAX: usize = 10;
/// The most bytes one text field of a form carries (a comment is at most 100,000 characters).
const FIELD_MAX: usize = 512 * 1024;
/// The most text fields one form carries.
const FIELDS_MAX: usize = 50;

/// The most bytes a request with files may carry, given the desk's per-file limit.
pub fn body_limit(state: &AppState) -> usize {
    state
        .desk
        .attachment_settings()
        .policy
        .max_bytes
        .saturating_mul(FILES_MAX)
        .saturating_add(2 * 1024 * 1024)
}

/// A form's text fields and files.
#[derive(Debug, Default)]
pub struct UploadForm {
    pub fields: HashMap<String, String>,
    pub files: Vec<Upload>,
}

impl UploadForm {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// A yes/no field: absent is `default`; `true`/`false`, `on`, `1`/`0`, `yes`/`no`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.field(name).map(str::trim) {
            None | Some("") => Ok(default),
            Some("true" | "on" | "1" | "yes") => Ok(true),
            Some("false" | "off" | "0" | "no") => Ok(false),
            Some(other) => Err(ApiError::Malformed(format!(
                "{name}: `{other}` is not true or false"
            ))),
        }
    }
}

fn broken(e: MultipartError) -> ApiError {
    let status = e.status();
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge { max: 0 };
    }
    ApiError::Malformed(format!("the form cannot be read: {}", e.body_text()))
}

async fn read_field(mut field: Field<'_>, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(broken)? {
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { max: limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Reads every part: parts with a file name are files (an empty file input, as a browser
/// sends when none was chosen, is skipped); the others are text fields.
pub async fn read(state: &AppState, mut form: Multipart) -> Result<UploadForm, ApiError> {
    let per_file = state.desk.attachment_settings().policy.max_bytes;
    let mut out = UploadForm::default();
    while let Some(field) = form.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            Some(file_name) => {
                let declared = field.content_type().map(str::to_owned);
                let bytes = read_field(field, per_file).await?;
                if file_name.is_empty() && bytes.is_empty() {
                    continue;
                }
                if out.files.len() == FILES_MAX {
                    return Err(ApiError::Malformed(format!(
                        "send at most {FILES_MAX} files at once"
                    )));
                }
                out.files.push(Upload {
                    name: file_name,
                    declared_type: declared,
                    bytes,
                });
            }
            None => {
                if out.fields.len() == FIELDS_MAX {
                    return Err(ApiError::Malformed(format!(
                        "send at most {FIELDS_MAX} fields at once"
                    )));
                }
                let bytes = read_field(field, FIELD_MAX).await?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::Malformed(format!("the field `{name}` is not UTF-8 text"))
                })?;
                out.fields.insert(name, text);
            }
        }
    }
    Ok(out)
}

/// The `csrf` field of a buffered multipart body (the pages put it first), for the session
/// check that runs before the handler.
pub async fn csrf_field(content_type: &str, body: axum::body::Bytes) -> Option<String> {
    let boundary = multer::parse_boundary(content_type).ok()?;
    let stream = futures_util_once(body);
    let mut parts = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = parts.next_field().await {
        if field.file_name().is_some() {
            continue;
        }
        if field.name() == Some("csrf") {
            return field.text().await.ok();
        }
    }
    None
}

fn futures_util_once(
    body: axum::body::Bytes,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, std::convert::Infallible>> {
    futures::stream::once(async move { Ok(body) })
}

/// A page's form, sent either as `application/x-www-form-urlencoded` or, when it carries
/// files, as `multipart/form-data`.
pub struct FormWithFiles<T> {
    pub form: T,
    pub files: Vec<Upload>,
}

impl<T> axum::extract::FromRequest<AppState> for FormWithFiles<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = axum::response::Response;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let multipart = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("multipart/form-data"));
        if !multipart {
            // This route takes no body limit from the router: the form is measured here.
            let max = crate::MAX_BODY_BYTES;
            let bytes = axum::body::to_bytes(req.into_body(), max)
                .await
                .map_err(|_| ApiError::TooLarge { max }.into_response())?;
            let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
                ApiError::Malformed(format!("the form cannot be read: {e}")).into_response()
            })?;
            return Ok(FormWithFiles {
                form,
                files: Vec::new(),
            });
        }
        let parts = Multipart::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let read = read(state, parts)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = serde_json::Value::Object(
            read.fields
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        );
        let form = serde_json::from_value(fields).map_err(|e| {
            ApiError::Malformed(format!("the form cannot be read: {e}")).into_response()
        })?;
        Ok(FormWithFiles {
            form,
            files: read.files,
        })
    }
}
