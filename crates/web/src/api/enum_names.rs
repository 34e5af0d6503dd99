//! The document must name enum values as the API sends and reads them: a client generated
//! from it could not read a ticket otherwise.

use std::collections::BTreeMap;

use opsdesk_core::readiness::{ItemState, ProposalState, ReviewKind};
use opsdesk_core::signals::Effect;
use opsdesk_domain::channel::{NotificationEvent, WebhookFormat};
use opsdesk_domain::escalation::EscalateTo;
use opsdesk_domain::kpi::{
    Aggregate, Better, Dimension, Direction, KpiStatus, Over, TicketTime, Unit,
};
use opsdesk_domain::readiness::incident::TimelineSource;
use opsdesk_domain::readiness::schedule::ScheduleState;
use opsdesk_domain::readiness::Risk;
use opsdesk_domain::routing::Recipient;
use opsdesk_domain::sla::ClockState;
use opsdesk_domain::support::{CapSource, CaseSeverity, PlanChange, SupportPlan};
use opsdesk_domain::ticket::LinkKind;
use opsdesk_domain::{Environment, Kind, Role, Severity, SignalState, Status};
use serde::Serialize;
use serde_json::Value;

/// What each value of `T` is sent as.
fn sent<T: Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .map(|v| match serde_json::to_value(v) {
            Ok(Value::String(s)) => s,
            other => panic!("an enum value is sent as {other:?}"),
        })
        .collect()
}

/// Every enum the document holds, by schema name, with the values the API sends for it.
fn enums_sent() -> BTreeMap<&'static str, Vec<String>> {
    BTreeMap::from([
        ("Kind", sent(Kind::ALL)),
        ("Severity", sent(Severity::ALL)),
        ("Status", sent(Status::ALL)),
        ("LinkKind", sent(LinkKind::ALL)),
        ("Role", sent(&Role::ALL)),
        ("Environment", sent(Environment::ALL)),
        ("SignalState", sent(SignalState::ALL)),
        ("NotificationEvent", sent(NotificationEvent::ALL)),
        ("WebhookFormat", sent(WebhookFormat::ALL)),
        ("SupportPlan", sent(SupportPlan::ALL)),
        ("CaseSeverity", sent(CaseSeverity::ALL)),
        ("PlanChange", sent(PlanChange::ALL)),
        ("CapSource", sent(CapSource::ALL)),
        (
            "AttachmentSource",
            sent(opsdesk_domain::attachment::AttachmentSource::ALL),
        ),
        ("LetterKind", sent(opsdesk_domain::mail::LetterKind::ALL)),
        (
            "ConnectorType",
            sent(opsdesk_domain::connector::ConnectorType::ALL),
        ),
        (
            "ReviewKind",
            sent(&[
                ReviewKind::Periodic,
                ReviewKind::Manual,
                ReviewKind::PostIncident,
            ]),
        ),
        (
            "Risk",
            sent(&[
                Risk::High,
                Risk::Medium,
                Risk::None,
                Risk::Unanswered,
                Risk::NotApplicable,
            ]),
        ),
        (
            "ItemState",
            sent(&[ItemState::Open, ItemState::Resolved, ItemState::Verified]),
        ),
        (
            "ProposalState",
            sent(&[ProposalState::Approved, ProposalState::Rejected]),
        ),
        (
            "ScheduleState",
            sent(&[
                ScheduleState::Upcoming,
                ScheduleState::Due,
                ScheduleState::Overdue,
                ScheduleState::Done,
            ]),
        ),
        (
            "TimelineSource",
            sent(&[
                TimelineSource::Ticket,
                TimelineSource::Signal,
                TimelineSource::Notification,
                TimelineSource::Escalation,
                TimelineSource::AwsCase,
                TimelineSource::Comment,
                TimelineSource::Person,
            ]),
        ),
        ("Recipient", sent(Recipient::ALL)),
        ("Better", sent(Better::ALL)),
        ("KpiStatus", sent(KpiStatus::ALL)),
        ("Unit", sent(Unit::ALL)),
        ("Dimension", sent(Dimension::ALL)),
        ("Over", sent(Over::ALL)),
        ("Aggregate", sent(Aggregate::ALL)),
        ("TicketTime", sent(TicketTime::ALL)),
        ("ClockState", sent(ClockState::ALL)),
        (
            "Direction",
            sent(&[
                Direction::Improving,
                Direction::Worsening,
                Direction::Steady,
            ]),
        ),
        ("EscalateTo", sent(&[EscalateTo::Next, EscalateTo::Aws])),
        (
            "Effect",
            sent(&[
                Effect::Created,
                Effect::Occurrence,
                Effect::Acknowledged,
                Effect::Resolved,
                Effect::Reopened,
                Effect::Recorded,
                Effect::Duplicate,
                Effect::Merged,
            ]),
        ),
    ])
}

#[test]
fn document_enums_are_the_values_the_api_sends() {
    let doc = serde_json::to_value(crate::openapi()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let expected = enums_sent();
    let mut seen = 0;
    let mut unknown = Vec::new();
    for (name, schema) in schemas {
        let Some(listed) = schema.get("enum").and_then(Value::as_array) else {
            continue;
        };
        let listed: Vec<&str> = listed.iter().filter_map(Value::as_str).collect();
        let Some(values) = expected.get(name.as_str()) else {
            unknown.push(format!("{name} {listed:?}"));
            continue;
        };
        assert_eq!(
            &listed, values,
            "{name}: the document lists other values than the API sends"
        );
        seen += 1;
    }
    assert!(
        unknown.is_empty(),
        "enums this test does not know (add them): {unknown:#?}"
    );
    for name in expected.keys() {
        if schemas.contains_key(*name) {
            continue;
        }
        panic!("{name} is not in the document any more: remove it from this test");
    }
    assert_eq!(seen, expected.len());
}
