//! Who is calling. The access layer ([`crate::policy`]) authenticates every request to a route
//! that needs it and checks the route's permission before any handler runs; handlers take
//! [`Auth`] to learn who the caller is.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap};
use opsdesk_core::{Actor, Desk};

use crate::{ApiError, AppState};

/// The caller, as authenticated by the access layer.
pub struct Auth(pub Actor);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(Auth)
            .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <token>".into()))
    }
}

/// Finds the actor behind the request's bearer token.
pub async fn authenticate(desk: &Desk, headers: &HeaderMap) -> Result<Actor, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <token>".into()))?;
    let secret = header
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be: Bearer <token>".into())
        })?;
    desk.authenticate(secret)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the token is not valid or has been revoked".into()))
}
