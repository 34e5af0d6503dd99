//! The web app: pages rendered on the server (askama) with htmx for partial updates. Every page
//! runs the same use cases as the API, under the same access policy ([`crate::policy`]); forms
//! carry the session's CSRF token, checked by the access layer before a handler runs.

mod admin;
mod assets;
mod charts;
mod dashboard;
mod manage;
mod markdown;
mod queue;
mod readiness;
mod reports;
mod ticket;

use askama::Template;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use opsdesk_core::Actor;
use opsdesk_domain::Permission;

use crate::auth::SessionCsrf;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::home))
        .route("/assets/{file}", get(assets::asset))
        .route("/tickets", get(queue::queue))
        .route("/tickets/bulk", post(queue::bulk))
        .route("/tickets/similar", get(queue::similar))
        .route("/tickets/views", post(queue::save_view))
        .route("/tickets/views/{id}/delete", post(queue::delete_view))
        // Forms with files are measured file by file as they are read (`upload::read`).
        .route(
            "/tickets/new",
            get(ticket::new_form)
                .post(ticket::create)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/tickets/{id}", get(ticket::show))
        .route("/tickets/{id}/change", post(ticket::change))
        .route(
            "/tickets/{id}/comments",
            post(ticket::comment).layer(DefaultBodyLimit::disable()),
        )
        .route("/tickets/{id}/escalate", post(ticket::escalate))
        .route("/tickets/{id}/links", post(ticket::add_link))
        .route("/tickets/{id}/external", post(ticket::push_external))
        .route(
            "/tickets/{id}/links/{link}/delete",
            post(ticket::remove_link),
        )
        .route("/reports", get(reports::report))
        .route("/admin", get(admin::index))
        .route("/admin/channels/{name}/test", post(admin::test_channel))
        .route("/admin/users", post(manage::add_person))
        .route("/admin/users/role", post(manage::set_role))
        .route("/admin/users/{email}/disable", post(manage::disable_person))
        .route("/admin/users/{email}/enable", post(manage::enable_person))
        .route("/admin/teams", post(manage::add_team))
        .route("/admin/teams/members", post(manage::team_member))
        .route("/admin/tokens", post(manage::create_token))
        .route("/admin/tokens/{name}/revoke", post(manage::revoke_token))
        .route("/admin/workloads", post(manage::save_workload))
        .route(
            "/admin/workloads/{name}/delete",
            post(manage::delete_workload),
        )
        .route("/admin/channels", post(manage::save_channel))
        .route(
            "/admin/channels/{name}/delete",
            post(manage::delete_channel),
        )
        .route("/admin/routing-rules", post(manage::save_rule))
        .route(
            "/admin/routing-rules/{name}/delete",
            post(manage::delete_rule),
        )
        .route("/admin/letters/{kind}", post(manage::save_letter))
        .route("/admin/letters/{kind}/reset", post(manage::reset_letter))
        .route("/admin/kpis", post(manage::save_kpi))
        .route("/admin/kpis/{name}/delete", post(manage::delete_kpi))
        .route("/admin/aws-accounts", post(manage::save_account))
        .route(
            "/admin/aws-accounts/{id}/delete",
            post(manage::delete_account),
        )
        .route(
            "/readiness",
            get(readiness::overview).post(readiness::start),
        )
        .route("/workloads/{name}/readiness", get(readiness::workload))
        .route(
            "/workloads/{name}/readiness/schedules",
            post(readiness::add_schedule),
        )
        .route(
            "/review-schedules/{id}/delete",
            post(readiness::delete_schedule),
        )
        .route("/reviews/{id}", get(readiness::review))
        .route("/reviews/{id}/answers/{question}", post(readiness::answer))
        .route("/reviews/{id}/milestones", post(readiness::milestone))
        .route("/reviews/{id}/report", get(readiness::report))
        .route("/reviews/{id}/report.md", get(readiness::report_markdown))
        .route("/reviews/{id}/action-items", post(readiness::make_task))
        .route("/action-items/{id}/verify", post(readiness::verify))
        .route(
            "/reviews/{id}/incident",
            get(readiness::incident).post(readiness::save_incident),
        )
        .route(
            "/reviews/{id}/incident/complete",
            post(readiness::complete_incident),
        )
        .route("/reviews/{id}/incident/proposal", post(readiness::decide))
        .route(
            "/admin/lenses",
            get(readiness::lenses).post(readiness::import_lens),
        )
        .route("/admin/lenses/{id}/export", get(readiness::export_lens))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/audit/verify", post(admin::verify_audit))
}

/// The fields of a posted form in their order, repeated names kept (ticked boxes).
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn read(body: &[u8]) -> Result<Fields, ApiError> {
        serde_urlencoded::from_bytes(body)
            .map(Fields)
            .map_err(|e| ApiError::Malformed(format!("the form could not be read: {e}")))
    }

    /// The first value of a field as typed (a text area's lines kept), empty when absent.
    pub fn raw(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The first value of a field, trimmed; empty when absent.
    pub fn one(&self, name: &str) -> String {
        self.raw(name).trim().to_owned()
    }

    /// The first value of a field, trimmed; `None` when absent or empty.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.one(name)).filter(|v| !v.is_empty())
    }

    /// Every non-empty value of a field, trimmed.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// What every page of the app shows around its content: who is signed in, what they may
/// reach, and the CSRF token their forms send.
pub struct Shell {
    pub who: String,
    pub role: &'static str,
    pub csrf: String,
    /// The navigation entry of the page: `dashboard`, `tickets`, `new`, `admin`, `audit`.
    pub section: &'static str,
    /// A requester sees the portal: their own tickets and the new request form.
    pub portal: bool,
    pub can_write: bool,
    pub can_admin: bool,
    pub can_audit: bool,
    pub can_create: bool,
}

impl Shell {
    fn of(actor: &Actor, csrf: String) -> Shell {
        Shell {
            who: actor.identity().to_owned(),
            role: actor.role.as_str(),
            csrf,
            section: "",
            portal: !actor.role.allows(Permission::ReadInventory),
            can_write: actor.role.allows(Permission::WriteTickets),
            can_admin: actor.role.allows(Permission::Administer),
            can_audit: actor.role.allows(Permission::ReadAudit),
            can_create: actor.role.allows(Permission::CreateTickets),
        }
    }

    /// `aria-current="page"` for the navigation entry of this page.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// A page request: the caller (checked by the access layer) and the page's shell.
pub struct Visit {
    pub actor: Actor,
    pub shell: Shell,
}

impl Visit {
    fn at(mut self, section: &'static str) -> Visit {
        self.shell.section = section;
        self
    }
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, PageError> {
        let actor = parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or_else(|| PageError(ApiError::Unauthorized("sign in".into())))?;
        let csrf = parts
            .extensions
            .get::<SessionCsrf>()
            .map(|c| c.0.clone())
            .unwrap_or_default();
        let shell = Shell::of(&actor, csrf);
        Ok(Visit { actor, shell })
    }
}

/// A page that could not be shown: rendered as an HTML page with the reason.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    detail: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let ApiError::Unauthorized(_) = self.0 {
            return Redirect::to("/login").into_response();
        }
        let (status, detail) = message(&self.0);
        let title = status.canonical_reason().unwrap_or("Error");
        render(
            status,
            ErrorPage {
                status: status.as_u16(),
                title,
                detail: &detail,
            },
        )
    }
}

/// The status of a refusal and the sentence a person reads about it (naming the field at
/// fault, when there is one).
pub fn message(e: &ApiError) -> (StatusCode, String) {
    match e {
        ApiError::Invalid { .. } => (e.status_and_detail().0, e.to_string()),
        other => other.status_and_detail(),
    }
}

/// Renders a page; a template that fails is logged and answered with a plain 500.
pub fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// The Content-Security-Policy of every answer: scripts and styles from opsdesk's own assets
/// only (no inline script or style), no framing, forms posting back to opsdesk only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the browser security headers to every answer.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // A stricter policy set by the answer itself (a downloaded file's sandbox) stays.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages and answers hold people's data (a new token's secret, once): keep them out of
    // caches. The built-in assets say otherwise themselves.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A value as one segment of a path: every character but letters and digits percent-encoded,
/// so an email or a name cannot reach another route or another row.
pub fn seg(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A value as a query string parameter.
pub fn query_value(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|pair| pair.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// A time as pages show it (UTC; the browser turns it into local time).
pub fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A time as a `datetime` attribute.
pub fn iso(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A duration in seconds as people read it: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn span(seconds: f64) -> String {
    let s = seconds.abs().round() as i64;
    let sign = if seconds < 0.0 { "-" } else { "" };
    let text = if s < 60 {
        format!("{s} s")
    } else if s < 3_600 {
        format!("{} min", s / 60)
    } else if s < 86_400 {
        match (s / 3_600, (s % 3_600) / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        }
    } else {
        match (s / 86_400, (s % 86_400) / 3_600) {
            (d, 0) => format!("{d} d"),
            (d, h) => format!("{d} d {h} h"),
        }
    };
    format!("{sign}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_addresses_stay_in_their_place() {
        assert_eq!(seg("%61lice@corp.com"), "%2561lice%40corp%2Ecom");
        assert_eq!(seg("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(query_value("sre & ops"), "sre+%26+ops");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(span(0.0), "0 s");
        assert_eq!(span(59.4), "59 s");
        assert_eq!(span(720.0), "12 min");
        assert_eq!(span(3_600.0), "1 h");
        assert_eq!(span(11_100.0), "3 h 5 min");
        assert_eq!(span(187_200.0), "2 d 4 h");
        assert_eq!(span(-90.0), "-1 min");
    }
}
