//! Every error answer is RFC 9457 problem+json with a clear `detail` and, for bad input, the
//! offending `field`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opsdesk_core::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` says which problem it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// A stable, machine-readable name of the problem.
    pub code: &'static str,
    /// The input field at fault, when there is one (`title`, `tags[2]`, `If-Match`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The ticket's current version, on a 412.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

/// An answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Malformed(String),
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Refused by the route's access policy, before anything else was looked at.
    #[error("{0}")]
    RoleNotAllowed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{detail}")]
    PreconditionFailed { detail: String, current: i64 },
    #[error("{0}")]
    TooManyRequests(String),
    #[error("the request body is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Another service opsdesk needed did not answer as it should.
    #[error("{0}")]
    Upstream(String),
    /// The database cannot be reached for now: try again shortly.
    #[error("the database cannot take requests right now; try again shortly")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_request"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::RoleNotAllowed(_) => (StatusCode::FORBIDDEN, "role_not_allowed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PreconditionFailed { .. } => {
                (StatusCode::PRECONDITION_FAILED, "stale_version")
            }
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl ApiError {
    /// The answer's status and what it tells the caller. An internal error's cause goes to
    /// the log, not to the caller.
    pub fn status_and_detail(&self) -> (StatusCode, String) {
        let detail = match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "request failed");
                "the server failed to handle the request; it has been logged".to_owned()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "the database cannot take requests");
                self.to_string()
            }
            ApiError::Invalid { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        (self.parts().0, detail)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            Error::Invalid(f) => ApiError::Invalid {
                field: f.field,
                detail: f.message,
            },
            e @ Error::Transition(_) => ApiError::Conflict(e.to_string()),
            Error::Conflict(msg) => ApiError::Conflict(msg),
            e @ Error::StaleVersion { current, .. } => ApiError::PreconditionFailed {
                detail: e.to_string(),
                current,
            },
            Error::Forbidden(msg) => ApiError::Forbidden(msg),
            Error::Unauthorized(msg) => ApiError::Unauthorized(msg),
            Error::Throttled(msg) => ApiError::TooManyRequests(msg),
            Error::Store(e) if e.is_unavailable() => ApiError::Unavailable(e.to_string()),
            Error::Store(e) => ApiError::Internal(e.to_string()),
            Error::Internal(cause) | Error::Files(cause) | Error::FileLost(cause) => {
                ApiError::Internal(cause)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = self.status_and_detail();
        let code = self.parts().1;
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
            field: match &self {
                ApiError::Invalid { field, .. } => Some(field.clone()),
                _ => None,
            },
            current_version: match &self {
                ApiError::PreconditionFailed { current, .. } => Some(*current),
                _ => None,
            },
        };
        let mut res = (status, axum::Json(problem)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body may be left unread and the connection closed after the
            // answer: the client is told not to send another request on it.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}
