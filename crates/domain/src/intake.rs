//! What a new ticket takes from the person who raises it. A requester says what is wrong; who
//! works on it, where it is routed, how it is tagged and where it came from are the desk's to
//! decide. Decided here once, for the API, the new request form and the batch path alike.

use crate::access::{Permission, Role};
use crate::validation::{FieldError, NewTicket};

/// The way a new ticket comes in. It fills in what the sender leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// The API: the source is `manual` and the requester whoever the sender names.
    Api,
    /// The new request form: the source is `web` and whoever fills the form in is asking.
    Form,
}

impl Intake {
    /// The source of the tickets that come in this way.
    pub fn source(self) -> &'static str {
        match self {
            Intake::Api => "manual",
            Intake::Form => "web",
        }
    }
}

/// The fields of a new ticket that a role without [`Permission::WriteTickets`] may set.
pub const REPORTER_FIELDS: [&str; 5] = ["title", "kind", "severity", "workload", "description"];

/// The new ticket as taken from `sender`, whose role is `role`, or the first field they may
/// not set. A role that works tickets sets any field. Any other role (a requester) sets only
/// the [`REPORTER_FIELDS`]: naming a requester, an assignee, a team, tags, a source or a
/// de-duplication key is refused, never silently dropped, so a client learns at once that the
/// value was not taken. A blank text or an empty list counts as not sent, as validation has it.
/// The requester of such a ticket is always its sender.
pub fn admit_new_ticket(
    role: Role,
    sender: &str,
    intake: Intake,
    mut ticket: NewTicket,
) -> Result<NewTicket, FieldError> {
    let sent = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if role.allows(Permission::WriteTickets) {
        if intake == Intake::Form && !sent(&ticket.requester) {
            ticket.requester = Some(sender.to_owned());
        }
        if !sent(&ticket.source) {
            ticket.source = Some(intake.source().to_owned());
        }
        return Ok(ticket);
    }
    let staff_only = [
        ("requester", sent(&ticket.requester)),
        ("assignee", sent(&ticket.assignee)),
        ("team", sent(&ticket.team)),
        ("tags", !ticket.tags.is_empty()),
        ("source", sent(&ticket.source)),
        ("dedup_key", sent(&ticket.dedup_key)),
    ];
    if let Some((field, _)) = staff_only.into_iter().find(|(_, set)| *set) {
        return Err(FieldError::new(
            field,
            format!(
                "the {role} role cannot set {field}; a new ticket takes only {} from a {role}",
                REPORTER_FIELDS.join(", ")
            ),
        ));
    }
    ticket.requester = Some(sender.to_owned());
    ticket.assignee = None;
    ticket.team = None;
    ticket.source = Some(intake.source().to_owned());
    ticket.dedup_key = None;
    Ok(ticket)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ticket::{Kind, Severity};

    fn report() -> NewTicket {
        NewTicket {
            title: "VPN down".into(),
            description: "since 9".into(),
            kind: Kind::Incident,
            severity: Severity::Sev2,
            requester: None,
            assignee: None,
            team: None,
            workload: Some("checkout".into()),
            tags: Vec::new(),
            source: None,
            dedup_key: None,
        }
    }

    #[test]
    fn a_requester_reports_and_is_the_requester() {
        let t =
            admit_new_ticket(Role::Requester, "rita@example.com", Intake::Api, report()).unwrap();
        assert_eq!(t.requester.as_deref(), Some("rita@example.com"));
        assert_eq!(t.source.as_deref(), Some("manual"));
        assert_eq!(t.workload.as_deref(), Some("checkout"));
        let t =
            admit_new_ticket(Role::Requester, "rita@example.com", Intake::Form, report()).unwrap();
        assert_eq!(t.source.as_deref(), Some("web"));
    }

    #[test]
    fn each_staff_field_from_a_requester_is_refused_by_name() {
        type Set = fn(&mut NewTicket);
        let cases: [(&str, Set); 6] = [
            ("requester", |t| {
                t.requester = Some("rita@example.com".into())
            }),
            ("assignee", |t| t.assignee = Some("root".into())),
            ("team", |t| t.team = Some("payments".into())),
            ("tags", |t| t.tags = vec!["vip".into()]),
            ("source", |t| t.source = Some("aws.health".into())),
            ("dedup_key", |t| t.dedup_key = Some("k".into())),
        ];
        for (field, set) in cases {
            let mut t = report();
            set(&mut t);
            let err =
                admit_new_ticket(Role::Requester, "rita", Intake::Api, t.clone()).expect_err(field);
            assert_eq!(err.field, field);
            assert!(err.message.contains("title, kind, severity"), "{err}");
            // A role that works tickets sets it.
            let mut expected = t.clone();
            expected.source.get_or_insert_with(|| "manual".into());
            assert_eq!(
                admit_new_ticket(Role::Agent, "ana", Intake::Api, t).unwrap(),
                expected
            );
        }
        let mut blank = report();
        blank.assignee = Some("  ".into());
        blank.team = Some(String::new());
        assert!(admit_new_ticket(Role::Requester, "rita", Intake::Api, blank).is_ok());
    }

    #[test]
    fn staff_keep_what_they_send_and_the_form_fills_in_the_rest() {
        let mut t = report();
        t.assignee = Some("root".into());
        t.team = Some("payments".into());
        t.source = Some("aws.health".into());
        let kept = admit_new_ticket(Role::Admin, "cli", Intake::Api, t.clone()).unwrap();
        assert_eq!(kept, t);
        let api = admit_new_ticket(Role::Agent, "ana", Intake::Api, report()).unwrap();
        assert_eq!(api.requester, None);
        assert_eq!(api.source.as_deref(), Some("manual"));
        let form = admit_new_ticket(Role::Agent, "ana", Intake::Form, report()).unwrap();
        assert_eq!(form.requester.as_deref(), Some("ana"));
        assert_eq!(form.source.as_deref(), Some("web"));
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        prop::option::of("[ a-z]{0,6}")
    }

    proptest! {
        /// Whatever a requester sends, what is taken carries nothing but their report.
        #[test]
        fn a_requester_never_sets_a_staff_field(
            requester in text(), assignee in text(), team in text(), source in text(),
            dedup_key in text(), tags in prop::collection::vec("[a-z]{1,4}", 0..3),
            intake in prop::sample::select(vec![Intake::Api, Intake::Form]),
        ) {
            let mut t = report();
            t.requester = requester;
            t.assignee = assignee;
            t.team = team;
            t.source = source;
            t.dedup_key = dedup_key;
            t.tags = tags;
            if let Ok(taken) = admit_new_ticket(Role::Requester, "rita", intake, t) {
                prop_assert_eq!(taken.requester.as_deref(), Some("rita"));
                prop_assert_eq!(taken.assignee, None);
                prop_assert_eq!(taken.team, None);
                prop_assert!(taken.tags.is_empty());
                prop_assert_eq!(taken.source.as_deref(), Some(intake.source()));
                prop_assert_eq!(taken.dedup_key, None);
                prop_assert_eq!(taken.workload.as_deref(), Some("checkout"));
            }
        }
    }
}
