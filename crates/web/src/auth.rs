//! Who is calling. The access layer ([`crate::policy`]) authenticates every request to a route
//! that needs it and checks the route's permission before any handler runs; handlers take
//! [`Auth`] to learn who the caller is.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::http::{header, request::Parts, HeaderMap, Method};
use axum_extra::extract::cookie::CookieJar;
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

/// The token a request carries: `Authorization: Bearer <token>`, or `x-api-key: <token>` as
/// EventBridge API destinations can send it. `Err` for an Authorization header of another kind.
pub fn token_in_headers(headers: &HeaderMap) -> Option<Result<&str, ApiError>> {
    if let Some(header) = headers.get(header::AUTHORIZATION) {
        return Some(
            header
                .to_str()
                .ok()
                .and_then(|v| {
                    let (scheme, rest) = v.split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                })
                .ok_or_else(|| {
                    ApiError::Unauthorized(
                        "the Authorization header must be: Bearer <token>".into(),
                    )
                }),
        );
    }
    headers.get("x-api-key").map(|v| {
        v.to_str()
            .map(str::trim)
            .map_err(|_| ApiError::Unauthorized("the x-api-key header is not a token".into()))
    })
}

/// Finds the actor behind the request's token.
pub async fn authenticate(desk: &Desk, headers: &HeaderMap) -> Result<Actor, ApiError> {
    let secret = token_in_headers(headers)
        .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <token>".into()))??;
    authenticate_secret(desk, secret).await
}

/// Finds the actor behind a token's secret. A revoked token is answered 403, not 401: senders
/// such as EventBridge API destinations retry a 401 for up to 24 hours, but not a 403.
pub async fn authenticate_secret(desk: &Desk, secret: &str) -> Result<Actor, ApiError> {
    if let Some(actor) = desk.authenticate(secret).await? {
        return Ok(actor);
    }
    if desk.token_revoked(secret).await? {
        return Err(ApiError::Forbidden(
            "the token has been revoked; an admin can create a new one".into(),
        ));
    }
    Err(ApiError::Unauthorized("the token is not valid".into()))
}

/// The CSRF token of the session a request came with, for pages to put in their forms.
#[derive(Debug, Clone)]
pub struct SessionCsrf(pub String);

/// Finds who sent a request: a bearer token, or else a session cookie. A state-changing
/// request on a session must come from opsdesk's own pages (not cross-site) and carry the
/// session's CSRF token, in the `X-CSRF-Token` header or a form's `csrf` field.
pub async fn credentials(state: &AppState, req: Request) -> Result<(Request, Actor), ApiError> {
    if token_in_headers(req.headers()).is_some() {
        let actor = authenticate(&state.desk, req.headers()).await?;
        return Ok((req, actor));
    }
    let jar = CookieJar::from_headers(req.headers());
    let Some(cookie) = jar.get(crate::ui::SESSION_COOKIE) else {
        return Err(ApiError::Unauthorized(
            "send Authorization: Bearer <token>, or sign in".into(),
        ));
    };
    let session = state
        .desk
        .session(cookie.value())
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the session has ended; sign in again".into()))?;
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut req = req;
    if !safe {
        if crate::ui::cross_site(req.headers()) {
            return Err(ApiError::Forbidden(
                "cross-site requests are refused".into(),
            ));
        }
        let sent = match req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
        {
            Some(token) => token.to_owned(),
            None => {
                let (parts, body) = req.into_parts();
                // A form with files (to the routes that take them) is larger than others.
                let takes_files = parts
                    .extensions
                    .get::<axum::extract::MatchedPath>()
                    .is_some_and(|p| crate::upload::FILE_ROUTES.contains(&p.as_str()));
                let multipart = parts
                    .headers
                    .get(axum::http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .filter(|t| t.to_ascii_lowercase().starts_with("multipart/form-data"))
                    .map(str::to_owned);
                let max = match multipart {
                    Some(_) if takes_files => crate::upload::body_limit(state),
                    _ => crate::MAX_BODY_BYTES,
                };
                let bytes = axum::body::to_bytes(body, max)
                    .await
                    .map_err(|_| ApiError::TooLarge { max })?;
                let token = match &multipart {
                    Some(content_type) => crate::upload::csrf_field(content_type, bytes.clone())
                        .await
                        .unwrap_or_default(),
                    None => serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                        .ok()
                        .and_then(|fields| {
                            fields
                                .into_iter()
                                .find(|(k, _)| k == "csrf")
                                .map(|(_, v)| v)
                        })
                        .unwrap_or_default(),
                };
                req = Request::from_parts(parts, Body::from(bytes));
                token
            }
        };
        if sent.is_empty() || !crate::ui::same_secret(&sent, &session.csrf_token) {
            return Err(ApiError::Forbidden(
                "the CSRF token is missing or wrong".into(),
            ));
        }
    }
    req.extensions_mut().insert(SessionCsrf(session.csrf_token));
    Ok((req, session.actor))
}
