//! Bearer tokens. Every /api/v1 route takes [`Auth`] (any role) or [`Writer`] (a role that may
//! change tickets), so no route is reachable without a token.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use opsdesk_core::Actor;

use crate::{ApiError, AppState};

/// A caller with a valid token.
pub struct Auth(pub Actor);

/// A caller whose role may change tickets; others get 403 before their input is read.
pub struct Writer(pub Actor);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
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
        match state.desk.authenticate(secret).await? {
            Some(actor) => Ok(Auth(actor)),
            None => Err(ApiError::Unauthorized(
                "the token is not valid or has been revoked".into(),
            )),
        }
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Auth(actor) = Auth::from_request_parts(parts, state).await?;
        if !actor.role.can_write_tickets() {
            return Err(ApiError::Forbidden(format!(
                "the {} role cannot change tickets",
                actor.role
            )));
        }
        Ok(Writer(actor))
    }
}

/// A caller with an admin token; others get 403 before their input is read.
pub struct Admin(pub Actor);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Auth(actor) = Auth::from_request_parts(parts, state).await?;
        if !actor.role.can_administer() {
            return Err(ApiError::Forbidden(format!(
                "the {} role cannot do this; it takes an admin token",
                actor.role
            )));
        }
        Ok(Admin(actor))
    }
}
