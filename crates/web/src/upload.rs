//! Reading `multipart/form-data` forms that carry files: the API's uploads and the pages'
//! request and reply forms. The whole body is bounded by [`body_limit`] and each file by the
//! desk's per-file limit as the bytes arrive, so an oversized upload is refused before it is
//! all read, whoever sends it.

use std::collections::HashMap;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use opsdesk_core::attachments::Upload;

use crate::{ApiError, AppState};

/// The most files one request carries.
pub const FILES_MAX: usize = 10;
/// The most bytes one text field of a form carries (a comment is at most 100,000 characters).
const FIELD_MAX: usize = 512 * 1024;
/// The most parts one form carries, files, fields and empty file inputs together.
const PARTS_MAX: usize = 64;

/// The routes that take files; only these may send a body over the usual limit.
pub const FILE_ROUTES: &[&str] = &[
    "/api/v1/tickets/{id}/attachments",
    "/tickets/new",
    "/tickets/{id}/comments",
];

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

fn content_type(req: &Request) -> Option<String> {
    req.headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|t| t.to_ascii_lowercase().starts_with("multipart/form-data"))
        .map(str::to_owned)
}

fn broken(e: multer::Error) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { limit }
        | multer::Error::FieldSizeExceeded { limit, .. } => ApiError::TooLarge {
            max: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        multer::Error::StreamReadFailed(e)
            if e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<OutsideParts>()) =>
        {
            ApiError::TooLarge {
                max: HEADERS_MAX as usize,
            }
        }
        other => ApiError::Malformed(format!("the form cannot be read: {other}")),
    }
}

/// Reads a `multipart/form-data` request: parts with a file name are files (an empty file
/// input, as a browser sends when none was chosen, is skipped); the others are text fields.
/// A body that is not `multipart/form-data` is 415.
pub async fn read(state: &AppState, req: Request) -> Result<UploadForm, ApiError> {
    let content_type = content_type(&req).ok_or_else(|| {
        ApiError::UnsupportedMediaType("send multipart/form-data with `file` parts".into())
    })?;
    let boundary = multer::parse_boundary(&content_type)
        .map_err(|e| ApiError::Malformed(format!("the form cannot be read: {e}")))?;
    let per_file = state.desk.attachment_settings().policy.max_bytes;
    let limits = multer::SizeLimit::new()
        .whole_stream(body_limit(state) as u64)
        // Above the limits checked below, so that those answer first and read on to the end.
        .per_field((per_file.max(FIELD_MAX) + DRAIN_MAX) as u64);
    // Between parts (a preamble, a part's headers) at most HEADERS_MAX bytes may arrive: the
    // parser looks through all it holds for the next boundary each time more comes.
    let in_part = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = guarded(req.into_body().into_data_stream(), in_part.clone());
    let mut form = multer::Multipart::with_constraints(
        body,
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut out = UploadForm::default();
    let mut parts = 0;
    while let Some(mut field) = form.next_field().await.map_err(broken)? {
        parts += 1;
        if parts > PARTS_MAX {
            return Err(ApiError::Malformed(format!(
                "send at most {PARTS_MAX} parts in one form"
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        if name.len() > NAME_MAX || file_name.as_ref().is_some_and(|f| f.len() > NAME_MAX) {
            return Err(ApiError::Malformed(format!(
                "a part's name or file name is over {NAME_MAX} bytes"
            )));
        }
        let declared = field.content_type().map(ToString::to_string);
        let limit = if file_name.is_some() {
            per_file
        } else {
            FIELD_MAX
        };
        let mut bytes = Vec::new();
        in_part.store(true, std::sync::atomic::Ordering::Relaxed);
        while let Some(chunk) = field.chunk().await.map_err(broken)? {
            if bytes.len() + chunk.len() > limit {
                drain(field, &mut form).await;
                return Err(ApiError::TooLarge { max: limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        in_part.store(false, std::sync::atomic::Ordering::Relaxed);
        match file_name {
            Some(file_name) => {
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
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::Malformed(format!("the field `{name}` is not UTF-8 text"))
                })?;
                out.fields.insert(name, text);
            }
        }
    }
    Ok(out)
}

/// The most of a refused form read on to its end, so that a sender slightly over the limit
/// gets the answer instead of a connection closed while it was still sending.
const DRAIN_MAX: usize = 2 * 1024 * 1024;
/// How long reading on may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads on to the end of a form refused for its size, at most [`DRAIN_MAX`] bytes in
/// [`DRAIN_TIME`]; a larger or slower one is cut off.
async fn drain<'r>(mut field: multer::Field<'r>, form: &mut multer::Multipart<'r>) {
    let read_on = async {
        let mut read = 0usize;
        loop {
            while let Ok(Some(chunk)) = field.chunk().await {
                read += chunk.len();
                if read > DRAIN_MAX {
                    return;
                }
            }
            match form.next_field().await {
                Ok(Some(next)) => field = next,
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read_on).await;
}

/// The `csrf` field of a buffered multipart body, for the session check that runs before the
/// handler. The pages put it first; it is looked for among the first few parts only.
pub async fn csrf_field(content_type: &str, body: axum::body::Bytes) -> Option<String> {
    let boundary = multer::parse_boundary(content_type).ok()?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    for _ in 0..CSRF_PARTS {
        let field = parts.next_field().await.ok()??;
        if field.file_name().is_none() && field.name() == Some("csrf") {
            return field.text().await.ok();
        }
    }
    None
}

/// More than [`HEADERS_MAX`] bytes came between a form's parts.
#[derive(Debug, thiserror::Error)]
#[error("more than {HEADERS_MAX} bytes arrived outside the form's parts")]
struct OutsideParts;

/// The parts among which a form's `csrf` field is looked for.
const CSRF_PARTS: usize = 8;
/// The most bytes that may arrive outside a part's content: a preamble, a part's headers.
const HEADERS_MAX: u64 = 64 * 1024;
/// The longest part name or file name taken.
const NAME_MAX: usize = 1024;

/// `body`, refused once more than [`HEADERS_MAX`] bytes have arrived while no part's content
/// is being read (`in_part` is false) and still more comes.
fn guarded(
    body: axum::body::BodyDataStream,
    in_part: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    use futures::StreamExt;
    let mut outside: u64 = 0;
    body.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if in_part.load(std::sync::atomic::Ordering::Relaxed) {
            outside = 0;
        } else {
            // A chunk may carry a part's headers and the start of its content together: only
            // what came before it counts against the limit.
            if outside > HEADERS_MAX {
                return Err(std::io::Error::other(OutsideParts));
            }
            outside += chunk.len() as u64;
        }
        Ok(chunk)
    })
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
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if content_type(&req).is_none() {
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
        let read = read(state, req)
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
