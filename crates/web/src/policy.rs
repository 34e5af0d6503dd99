//! The access policy of every route, in one table. The access layer looks each request's
//! route up here: a route missing from the table is refused to everyone, so a new route can
//! never be open by accident, and a test walks every route against every role.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opsdesk_domain::Permission;

use crate::{auth, ApiError, AppState};

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token: health, readiness, metrics, the sign-in page.
    Public,
    /// Anyone signed in or with a valid token, whatever their role (but `ingest`).
    SignedIn,
    /// A valid token whose role holds the permission.
    Needs(Permission),
}

/// The policy of `method route`, where `route` is the router's pattern (`/api/v1/tickets/{id}`).
pub fn access(method: &Method, route: &str) -> Option<Access> {
    use Access::{Needs, Public, SignedIn};
    use Permission::*;
    let m = method.as_str();
    Some(match (m, route) {
        ("GET", "/healthz" | "/readyz" | "/metrics") => Public,
        ("GET" | "POST", "/login") => Public,
        // Only on a new database, and only with the first admin API token (checked there).
        ("GET" | "POST", "/setup") => Public,
        ("GET", "/auth/oidc/start" | "/auth/oidc/callback") => Public,
        ("GET", "/assets/{file}") => Public,
        ("GET", "/") => SignedIn,
        ("GET", "/tickets" | "/tickets/{id}" | "/tickets/similar") => Needs(ReadTickets),
        // Saved views are the caller's own.
        ("POST", "/tickets/views" | "/tickets/views/{id}/delete") => Needs(ReadTickets),
        ("GET" | "POST", "/tickets/new") => Needs(CreateTickets),
        ("POST", "/tickets/{id}/comments") => Needs(CreateTickets),
        (
            "POST",
            "/tickets/{id}/change"
            | "/tickets/{id}/escalate"
            | "/tickets/bulk"
            | "/tickets/{id}/links"
            | "/tickets/{id}/external"
            | "/tickets/{id}/links/{link}/delete",
        ) => Needs(WriteTickets),
        ("GET", "/reports") => Needs(ReadInventory),
        ("GET", "/admin") => Needs(Administer),
        ("POST", "/admin/channels/{name}/test") => Needs(Administer),
        (
            "POST",
            "/admin/users"
            | "/admin/users/role"
            | "/admin/users/{email}/disable"
            | "/admin/users/{email}/enable"
            | "/admin/teams"
            | "/admin/teams/members"
            | "/admin/tokens"
            | "/admin/tokens/{name}/revoke"
            | "/admin/workloads"
            | "/admin/workloads/{name}/delete"
            | "/admin/channels"
            | "/admin/channels/{name}/delete"
            | "/admin/routing-rules"
            | "/admin/routing-rules/{name}/delete"
            | "/admin/kpis"
            | "/admin/kpis/{name}/delete"
            | "/admin/aws-accounts"
            | "/admin/aws-accounts/{id}/delete",
        ) => Needs(Administer),
        (
            "GET",
            "/readiness"
            | "/workloads/{name}/readiness"
            | "/reviews/{id}"
            | "/reviews/{id}/report"
            | "/reviews/{id}/report.md"
            | "/reviews/{id}/incident"
            | "/admin/lenses/{id}/export",
        ) => Needs(ReadInventory),
        (
            "POST",
            "/readiness"
            | "/workloads/{name}/readiness/schedules"
            | "/review-schedules/{id}/delete"
            | "/reviews/{id}/answers/{question}"
            | "/reviews/{id}/milestones"
            | "/reviews/{id}/action-items"
            | "/action-items/{id}/verify"
            | "/reviews/{id}/incident"
            | "/reviews/{id}/incident/complete",
        ) => Needs(WriteTickets),
        ("POST", "/reviews/{id}/incident/proposal") => Needs(Administer),
        ("GET" | "POST", "/admin/lenses") => Needs(Administer),
        ("GET", "/admin/audit") => Needs(ReadAudit),
        ("POST", "/admin/audit/verify") => Needs(ReadAudit),
        ("POST", "/logout") => SignedIn,
        ("GET", "/api/v1/me") => SignedIn,
        ("GET" | "PUT", "/api/v1/me/receipts") => Needs(CreateTickets),
        ("GET", "/api/v1/mail") => Needs(WriteTickets),
        ("POST", "/api/v1/me/totp" | "/api/v1/me/totp/confirm") => SignedIn,
        ("GET", "/api/v1/openapi.json") => Needs(ReadTickets),
        ("GET", "/api/v1/tickets" | "/api/v1/tickets/{id}") => Needs(ReadTickets),
        ("POST", "/api/v1/tickets") => Needs(CreateTickets),
        ("POST", "/api/v1/tickets/batch") => Needs(WriteTickets),
        ("PATCH", "/api/v1/tickets/{id}") => Needs(WriteTickets),
        ("GET", "/api/v1/tickets/{id}/comments") => Needs(ReadTickets),
        ("POST", "/api/v1/tickets/{id}/comments") => Needs(CreateTickets),
        ("GET", "/api/v1/tickets/{id}/links") => Needs(ReadTickets),
        ("POST", "/api/v1/tickets/{id}/links") => Needs(WriteTickets),
        ("DELETE", "/api/v1/tickets/{id}/links/{link_id}") => Needs(WriteTickets),
        ("GET", "/api/v1/tickets/{id}/history") => Needs(ReadTickets),
        (
            "GET",
            "/api/v1/tickets/{id}/attachments" | "/api/v1/tickets/{id}/attachments/{attachment_id}",
        ) => Needs(ReadTickets),
        ("POST", "/api/v1/tickets/{id}/attachments") => Needs(CreateTickets),
        ("GET", "/api/v1/mail/templates") => Needs(Administer),
        ("POST", "/api/v1/mail/{id}/release") => Needs(WriteTickets),
        ("PUT" | "DELETE", "/api/v1/mail/templates/{kind}") => Needs(Administer),
        ("POST", "/admin/letters/{kind}" | "/admin/letters/{kind}/reset") => Needs(Administer),
        ("PATCH", "/api/v1/tickets/{id}/attachments/{attachment_id}") => Needs(WriteTickets),
        ("GET", "/api/v1/connectors" | "/api/v1/tickets/{id}/external") => Needs(ReadInventory),
        ("POST", "/api/v1/tickets/{id}/external") => Needs(WriteTickets),
        ("GET", "/api/v1/tickets/{id}/sla") => Needs(ReadTickets),
        ("POST", "/api/v1/tickets/{id}/escalate") => Needs(WriteTickets),
        ("GET", "/api/v1/tickets/{id}/escalation") => Needs(ReadInventory),
        ("GET" | "POST", "/api/v1/tokens") => Needs(Administer),
        ("DELETE", "/api/v1/tokens/{name}") => Needs(Administer),
        ("GET", "/api/v1/audit" | "/api/v1/audit/verify") => Needs(ReadAudit),
        ("GET" | "POST", "/api/v1/users") => Needs(Administer),
        ("GET" | "PATCH", "/api/v1/users/{email}") => Needs(Administer),
        ("GET", "/api/v1/teams") => Needs(ReadInventory),
        ("POST", "/api/v1/teams") => Needs(Administer),
        ("POST", "/api/v1/teams/{name}/members") => Needs(ManageTeam),
        ("DELETE", "/api/v1/teams/{name}/members/{email}") => Needs(ManageTeam),
        ("POST", "/api/v1/events" | "/api/v1/ingest/alertmanager" | "/api/v1/ingest/{source}") => {
            Needs(Ingest)
        }
        // The alert sender may put its token in the body (`routing_key`); the handler checks it.
        ("POST", "/api/v1/alerts") => Public,
        // SNS cannot send a token; every message's signature is checked instead.
        ("POST", "/api/v1/ingest/sns") => Public,
        // Other ticketing systems call with the connector's secret (a header, or Jira's HMAC
        // signature of the body); the handler checks it.
        ("POST", "/api/v1/connectors/{name}/webhook") => Public,
        ("GET", "/api/v1/signals") => Needs(WriteTickets),
        ("GET", "/api/v1/tickets/{id}/signals") => Needs(ReadInventory),
        ("GET", "/api/v1/workloads" | "/api/v1/workloads/{name}") => Needs(ReadInventory),
        // What a new ticket may name, for the request form: names only.
        ("GET", "/api/v1/workload-names") => Needs(CreateTickets),
        ("POST", "/api/v1/workloads") => Needs(Administer),
        ("PUT" | "DELETE", "/api/v1/workloads/{name}") => Needs(Administer),
        ("GET", "/api/v1/maintenance") => Needs(ReadInventory),
        ("POST", "/api/v1/maintenance") => Needs(WriteTickets),
        ("DELETE", "/api/v1/maintenance/{id}") => Needs(WriteTickets),
        ("GET" | "POST", "/api/v1/channels") => Needs(Administer),
        ("DELETE", "/api/v1/channels/{name}") => Needs(Administer),
        ("POST", "/api/v1/channels/{name}/test") => Needs(Administer),
        ("GET", "/api/v1/routing-rules") => Needs(WriteTickets),
        ("POST", "/api/v1/routing-rules") => Needs(Administer),
        ("DELETE", "/api/v1/routing-rules/{name}") => Needs(Administer),
        ("POST", "/api/v1/routing-rules/check") => Needs(WriteTickets),
        ("GET", "/api/v1/deliveries" | "/api/v1/deliveries/{id}") => Needs(WriteTickets),
        ("POST", "/api/v1/deliveries/{id}/retry") => Needs(WriteTickets),
        ("GET", "/api/v1/tickets/{id}/deliveries") => Needs(WriteTickets),
        ("GET", "/api/v1/aws-accounts" | "/api/v1/aws-accounts/{id}") => Needs(ReadInventory),
        ("POST", "/api/v1/aws-accounts") => Needs(Administer),
        ("PUT" | "DELETE", "/api/v1/aws-accounts/{id}") => Needs(Administer),
        ("GET", "/api/v1/support-plans" | "/api/v1/support-plans/advice") => Needs(ReadInventory),
        ("GET", "/api/v1/kpis" | "/api/v1/kpis/{name}" | "/api/v1/kpis/{name}/series") => {
            Needs(ReadInventory)
        }
        ("GET", "/api/v1/kpi-definitions" | "/api/v1/reports/trends") => Needs(ReadInventory),
        ("POST", "/api/v1/kpis") => Needs(Administer),
        ("DELETE", "/api/v1/kpis/{name}") => Needs(Administer),
        ("GET", "/api/v1/lenses" | "/api/v1/lenses/{id}") => Needs(ReadInventory),
        ("POST", "/api/v1/lenses") => Needs(Administer),
        (
            "GET",
            "/api/v1/reviews" | "/api/v1/reviews/{id}" | "/api/v1/reviews/{id}/milestones/{number}",
        ) => Needs(ReadInventory),
        (
            "POST",
            "/api/v1/reviews" | "/api/v1/reviews/{id}/milestones" | "/api/v1/reviews/{id}/upgrade",
        ) => Needs(WriteTickets),
        ("PUT", "/api/v1/reviews/{id}/answers/{question_id}") => Needs(WriteTickets),
        (
            "GET",
            "/api/v1/review-schedules"
            | "/api/v1/reviews/{id}/incident"
            | "/api/v1/action-items"
            | "/api/v1/action-items/{id}",
        ) => Needs(ReadInventory),
        (
            "POST",
            "/api/v1/review-schedules"
            | "/api/v1/reviews/{id}/incident/complete"
            | "/api/v1/reviews/{id}/action-items"
            | "/api/v1/action-items/{id}/verify",
        ) => Needs(WriteTickets),
        ("PUT", "/api/v1/reviews/{id}/incident") => Needs(WriteTickets),
        ("DELETE", "/api/v1/review-schedules/{id}") => Needs(WriteTickets),
        ("POST", "/api/v1/reviews/{id}/incident/proposal") => Needs(Administer),
        _ => return None,
    })
}

/// Every route outside the OpenAPI document, for the test that walks them all.
pub const NON_API_ROUTES: &[(&str, &str)] = &[
    ("POST", "/admin/letters/{kind}"),
    ("POST", "/admin/letters/{kind}/reset"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/"),
    ("GET", "/assets/{file}"),
    ("GET", "/tickets"),
    ("GET", "/tickets/similar"),
    ("GET", "/tickets/new"),
    ("POST", "/tickets/new"),
    ("POST", "/tickets/bulk"),
    ("POST", "/tickets/views"),
    ("POST", "/tickets/views/{id}/delete"),
    ("GET", "/tickets/{id}"),
    ("POST", "/tickets/{id}/change"),
    ("POST", "/tickets/{id}/comments"),
    ("POST", "/tickets/{id}/escalate"),
    ("POST", "/tickets/{id}/links"),
    ("POST", "/tickets/{id}/external"),
    ("POST", "/tickets/{id}/links/{link}/delete"),
    ("GET", "/reports"),
    ("GET", "/admin"),
    ("POST", "/admin/channels/{name}/test"),
    ("POST", "/admin/users"),
    ("POST", "/admin/users/role"),
    ("POST", "/admin/users/{email}/disable"),
    ("POST", "/admin/users/{email}/enable"),
    ("POST", "/admin/teams"),
    ("POST", "/admin/teams/members"),
    ("POST", "/admin/tokens"),
    ("POST", "/admin/tokens/{name}/revoke"),
    ("POST", "/admin/workloads"),
    ("POST", "/admin/workloads/{name}/delete"),
    ("POST", "/admin/channels"),
    ("POST", "/admin/channels/{name}/delete"),
    ("POST", "/admin/routing-rules"),
    ("POST", "/admin/routing-rules/{name}/delete"),
    ("POST", "/admin/kpis"),
    ("POST", "/admin/kpis/{name}/delete"),
    ("POST", "/admin/aws-accounts"),
    ("POST", "/admin/aws-accounts/{id}/delete"),
    ("GET", "/admin/audit"),
    ("POST", "/admin/audit/verify"),
    ("GET", "/readiness"),
    ("POST", "/readiness"),
    ("GET", "/workloads/{name}/readiness"),
    ("POST", "/workloads/{name}/readiness/schedules"),
    ("POST", "/review-schedules/{id}/delete"),
    ("GET", "/reviews/{id}"),
    ("POST", "/reviews/{id}/answers/{question}"),
    ("POST", "/reviews/{id}/milestones"),
    ("GET", "/reviews/{id}/report"),
    ("GET", "/reviews/{id}/report.md"),
    ("POST", "/reviews/{id}/action-items"),
    ("POST", "/action-items/{id}/verify"),
    ("GET", "/reviews/{id}/incident"),
    ("POST", "/reviews/{id}/incident"),
    ("POST", "/reviews/{id}/incident/complete"),
    ("POST", "/reviews/{id}/incident/proposal"),
    ("GET", "/admin/lenses"),
    ("POST", "/admin/lenses"),
    ("GET", "/admin/lenses/{id}/export"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/setup"),
    ("POST", "/setup"),
    ("POST", "/logout"),
    ("GET", "/auth/oidc/start"),
    ("GET", "/auth/oidc/callback"),
];

/// The methods `route` has a policy for.
fn allowed_methods(route: &str) -> Vec<&'static str> {
    [
        ("GET", Method::GET),
        ("POST", Method::POST),
        ("PUT", Method::PUT),
        ("PATCH", Method::PATCH),
        ("DELETE", Method::DELETE),
    ]
    .into_iter()
    .filter(|(_, m)| access(m, route).is_some())
    .map(|(name, _)| name)
    .collect()
}

/// The access layer: applies [`access`] to every routed request.
pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let policy = access(req.method(), &route);
    match policy {
        // A method the route does not serve: 405 with the methods it does, as the router
        // would answer.
        None => {
            let allowed = allowed_methods(&route);
            if !allowed.is_empty() {
                let mut res = axum::http::StatusCode::METHOD_NOT_ALLOWED.into_response();
                if let Ok(value) = axum::http::HeaderValue::from_str(&allowed.join(", ")) {
                    res.headers_mut().insert(axum::http::header::ALLOW, value);
                }
                return res;
            }
            tracing::error!(method = %req.method(), route, "route has no access policy; refused");
            ApiError::RoleNotAllowed("this route has no access policy".into()).into_response()
        }
        Some(Access::Public) => next.run(req).await,
        Some(access) => {
            let page = !route.starts_with("/api/");
            // A person in a browser (no token) is answered with pages; an API client with
            // problem documents.
            let browser = page && auth::token_in_headers(req.headers()).is_none();
            let htmx = headers_say_htmx(req.headers());
            let (mut req, actor) = match auth::credentials(&state, req).await {
                Ok(found) => found,
                // A person opening a page is sent to sign in (htmx, which would follow a
                // redirect inside its request, is told to go there); an API client is told why.
                Err(ApiError::Unauthorized(_)) if page => {
                    if htmx {
                        return (
                            axum::http::StatusCode::UNAUTHORIZED,
                            [("hx-redirect", "/login")],
                        )
                            .into_response();
                    }
                    return axum::response::Redirect::to("/login").into_response();
                }
                Err(e) if browser => return crate::pages::PageError(e).into_response(),
                Err(e) => return e.into_response(),
            };
            // Ingest tokens reach the ingest endpoints and nothing else, not even "who am I".
            if access == Access::SignedIn && actor.role == opsdesk_domain::Role::Ingest {
                return ApiError::RoleNotAllowed("an ingest token can only send events".into())
                    .into_response();
            }
            if let Access::Needs(permission) = access {
                if !actor.role.allows(permission) {
                    let refusal =
                        ApiError::RoleNotAllowed(format!("the {} role cannot do this", actor.role));
                    if browser {
                        return crate::pages::PageError(refusal).into_response();
                    }
                    return refusal.into_response();
                }
            }
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
    }
}

/// Whether htmx sent the request (it says so in `HX-Request`).
fn headers_say_htmx(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key("hx-request")
}
