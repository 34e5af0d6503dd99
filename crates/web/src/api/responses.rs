//! The error answers the document lists for every operation without each handler repeating
//! them: what an operation takes (a token, a body, path or query parameters, headers) decides
//! which problems it can answer, the same way the extractors and the access layer decide it.
//! An operation that describes a status itself keeps its own description.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, PartialSchema};

use crate::error::Problem;

/// The usual problems, by status: the component name and when it is answered.
const USUAL: &[(&str, &str, &str)] = &[
    ("400", "MalformedRequest", "The body is not valid JSON"),
    (
        "401",
        "Unauthorized",
        "No token, or one that is unknown, revoked or expired",
    ),
    ("403", "Forbidden", "The token's role does not allow this"),
    ("404", "NotFound", "Nothing by that name or id"),
    ("413", "BodyTooLarge", "The body is over 1 MiB"),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not sent as `Content-Type: application/json`",
    ),
    (
        "422",
        "InvalidField",
        "A field or parameter is invalid; `field` names it",
    ),
    (
        "500",
        "InternalError",
        "The server failed; the cause is in its log, not in the answer",
    ),
];

/// Adds the usual problem answers to every operation, and each of them once to the components.
pub struct UsualErrors;

impl Modify for UsualErrors {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .entry("Problem".to_owned())
            .or_insert_with(Problem::schema);
        for (_, name, description) in USUAL {
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content(
                            "application/problem+json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("Problem")))
                                .build(),
                        )
                        .build(),
                ),
            );
        }
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                for status in answers(op) {
                    let Some((_, name, _)) = USUAL.iter().find(|(s, ..)| *s == status) else {
                        continue;
                    };
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                        });
                }
            }
        }
    }
}

/// The problem statuses `op` can answer, from what it takes.
fn answers(op: &Operation) -> Vec<&'static str> {
    let mut statuses = vec!["500"];
    // `security(())` marks the one route that takes no token (SNS signs its messages instead).
    let open = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| *r == SecurityRequirement::default()));
    if !open {
        statuses.extend(["401", "403"]);
    }
    let params = op.parameters.as_deref().unwrap_or_default();
    if params.iter().any(|p| p.parameter_in == ParameterIn::Path) {
        statuses.push("404");
    }
    if params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Header))
    {
        statuses.push("422");
    }
    if op.request_body.is_some() {
        statuses.extend(["400", "413", "415", "422"]);
    }
    statuses
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation lists the problems its extractors and the access layer can answer.
    #[test]
    fn every_operation_lists_the_usual_problems() {
        let doc = crate::openapi();
        let mut checked = 0;
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("patch", &item.patch),
            ] {
                let Some(op) = op else { continue };
                let listed = &op.responses.responses;
                for status in answers(op) {
                    assert!(listed.contains_key(status), "{method} {path}: no {status}");
                }
                assert!(listed.contains_key("500"), "{method} {path}");
                if op.request_body.is_some() {
                    for status in ["400", "413", "415", "422"] {
                        assert!(listed.contains_key(status), "{method} {path}: no {status}");
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 60, "only {checked} operations");
    }
}
