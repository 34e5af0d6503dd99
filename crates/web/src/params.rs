//! Path and query extractors whose refusals are problem documents like every other error:
//! a query parameter that does not parse is a 422 naming it; a path segment that does not
//! parse names nothing, so it is a 404.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Query parameters; a bad one is answered 422 with `field` naming it.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(query_problem)
    }
}

/// The 422 for a query string that does not parse, naming the parameter when serde does.
pub fn query_problem(e: QueryRejection) -> ApiError {
    let text = e.body_text();
    // serde says "unknown field `x`" or, through serde_urlencoded, "x: invalid digit".
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    // "x: unknown variant `v`" names x, not the value in backticks.
    let prefixed = detail
        .split(": ")
        .next()
        .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .filter(|f| *f != detail);
    let named = prefixed.or_else(|| detail.split('`').nth(1));
    let field = named.unwrap_or("query").to_owned();
    ApiError::invalid(field, text)
}

/// Path parameters; a segment of the wrong type is answered 404.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|e| ApiError::NotFound(format!("nothing at this path: {}", e.body_text())))
    }
}
