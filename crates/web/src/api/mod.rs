//! The REST API under /api/v1.

mod accounts;
mod attachments;
mod audit;
mod channels;
mod connectors;
mod escalation;
mod kpis;
pub(crate) mod mail;
mod people;
mod readiness;
mod responses;
pub mod signals;
pub mod sns;
pub(crate) mod tickets;
mod tokens;
mod workloads;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "opsdesk",
        description = "The support desk for teams that run on AWS. Every route needs `Authorization: Bearer <token>`; errors are `application/problem+json` (RFC 9457).",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "tickets", description = "Tracked requests, their comments, links and history"),
        (name = "tokens", description = "API tokens and their roles (admin)"),
        (name = "audit", description = "The hash-chained audit trail (admin, auditor)"),
        (name = "people", description = "People, their roles and teams"),
        (name = "mail", description = "Email with requesters: the mail log and receipts"),
        (name = "signals", description = "Signals in from AWS and monitors, and what each did"),
        (name = "workloads", description = "Workloads signals are matched to, and maintenance windows"),
        (name = "notify", description = "Channels, routing rules and deliveries of notifications"),
        (name = "aws", description = "AWS accounts, their support plans and plan advice"),
        (name = "kpis", description = "KPIs of the support process and the workloads, their series and trend reports"),
        (name = "readiness", description = "Readiness lenses (Well-Architected custom lenses) and reviews of workloads"),
        (name = "connectors", description = "Links with tickets in other ticketing systems (Request Tracker)"),
    ),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API routes and their OpenAPI document, which lists on every operation the problems
/// it can answer.
pub fn split() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = routes().split_for_parts();
    responses::UsualErrors.modify(&mut doc);
    (router, doc)
}

/// Every API route with its OpenAPI description.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(tickets::routes())
        .merge(attachments::routes())
        .merge(tokens::routes())
        .merge(audit::routes())
        .merge(people::routes())
        .merge(mail::routes())
        .merge(signals::routes())
        .merge(sns::routes())
        .merge(workloads::routes())
        .merge(channels::routes())
        .merge(accounts::routes())
        .merge(escalation::routes())
        .merge(kpis::routes())
        .merge(readiness::routes())
        .merge(connectors::routes())
}

#[cfg(test)]
mod enum_names;
