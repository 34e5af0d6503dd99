//! Turning inputs into new ticket states, and recording what changed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::audit::{Changes, FieldChange};
use crate::ticket::{Status, Ticket, TransitionError};
use crate::validation::{NewTicket, TicketPatch};

fn value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn record<T: Serialize + PartialEq>(changes: &mut Changes, field: &str, before: &T, after: &T) {
    if before != after {
        changes.insert(
            field.to_owned(),
            FieldChange {
                before: value(before),
                after: value(after),
            },
        );
    }
}

impl Ticket {
    /// A new ticket from validated input, before the database gives it an id.
    pub fn open(input: NewTicket, at: DateTime<Utc>) -> Ticket {
        Ticket {
            id: 0,
            key: String::new(),
            title: input.title,
            description: input.description,
            kind: input.kind,
            severity: input.severity,
            status: Status::New,
            requester: input.requester,
            assignee: input.assignee,
            team: input.team,
            workload: input.workload,
            tags: input.tags,
            source: input.source.unwrap_or_else(|| "manual".to_owned()),
            dedup_key: input.dedup_key,
            created_at: at,
            updated_at: at,
            acknowledged_at: None,
            resolved_at: None,
            closed_at: None,
            version: 1,
        }
    }

    /// Every field of a new ticket, as changes from nothing.
    pub fn creation_changes(&self) -> Changes {
        let mut c = Changes::new();
        let mut set = |field: &str, after: Value| {
            if !after.is_null() && after != json!([]) && after != json!("") {
                c.insert(
                    field.to_owned(),
                    FieldChange {
                        before: Value::Null,
                        after,
                    },
                );
            }
        };
        set("title", value(&self.title));
        set("description", value(&self.description));
        set("kind", value(&self.kind));
        set("severity", value(&self.severity));
        set("status", value(&self.status));
        set("requester", value(&self.requester));
        set("assignee", value(&self.assignee));
        set("team", value(&self.team));
        set("workload", value(&self.workload));
        set("tags", value(&self.tags));
        set("source", value(&self.source));
        set("dedup_key", value(&self.dedup_key));
        c
    }

    /// The ticket after a validated patch, and the fields that changed. A patch that changes
    /// nothing returns no changes and the ticket as it was.
    pub fn patched(
        &self,
        patch: TicketPatch,
        at: DateTime<Utc>,
    ) -> Result<(Ticket, Changes), TransitionError> {
        let mut next = self.clone();
        if let Some(v) = patch.title {
            next.title = v;
        }
        if let Some(v) = patch.description {
            next.description = v;
        }
        if let Some(v) = patch.kind {
            next.kind = v;
        }
        if let Some(v) = patch.severity {
            next.severity = v;
        }
        if let Some(v) = patch.requester {
            next.requester = v;
        }
        if let Some(v) = patch.assignee {
            next.assignee = v;
        }
        if let Some(v) = patch.team {
            next.team = v;
        }
        if let Some(v) = patch.workload {
            next.workload = v;
        }
        if let Some(v) = patch.tags {
            next.tags = v;
        }
        if let Some(to) = patch.status.filter(|s| *s != self.status) {
            let t = self.status.transition_to(to)?;
            next.apply_transition(t, at);
        }

        let mut c = Changes::new();
        record(&mut c, "title", &self.title, &next.title);
        record(&mut c, "description", &self.description, &next.description);
        record(&mut c, "kind", &self.kind, &next.kind);
        record(&mut c, "severity", &self.severity, &next.severity);
        record(&mut c, "status", &self.status, &next.status);
        record(&mut c, "requester", &self.requester, &next.requester);
        record(&mut c, "assignee", &self.assignee, &next.assignee);
        record(&mut c, "team", &self.team, &next.team);
        record(&mut c, "workload", &self.workload, &next.workload);
        record(&mut c, "tags", &self.tags, &next.tags);
        record(
            &mut c,
            "acknowledged_at",
            &self.acknowledged_at,
            &next.acknowledged_at,
        );
        record(&mut c, "resolved_at", &self.resolved_at, &next.resolved_at);
        record(&mut c, "closed_at", &self.closed_at, &next.closed_at);
        if c.is_empty() {
            return Ok((self.clone(), c));
        }
        next.touch(at);
        Ok((next, c))
    }

    /// Marks the ticket changed at `at`.
    pub fn touch(&mut self, at: DateTime<Utc>) {
        self.updated_at = at;
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::{Kind, Severity};
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn ticket() -> Ticket {
        let mut t = Ticket::open(
            NewTicket {
                title: "Disk full".into(),
                description: String::new(),
                kind: Kind::Incident,
                severity: Severity::Sev2,
                requester: None,
                assignee: None,
                team: None,
                workload: None,
                tags: vec![],
                source: None,
                dedup_key: None,
            },
            at(0),
        );
        t.id = 1;
        t
    }

    #[test]
    fn creation_records_set_fields_only() {
        let c = ticket().creation_changes();
        let keys: Vec<_> = c.keys().map(String::as_str).collect();
        assert_eq!(keys, ["kind", "severity", "source", "status", "title"]);
    }

    #[test]
    fn patch_records_before_and_after() {
        let patch = TicketPatch {
            assignee: Some(Some("ana".into())),
            status: Some(Status::Acknowledged),
            ..TicketPatch::default()
        };
        let (next, c) = ticket().patched(patch, at(60)).unwrap();
        assert_eq!(next.version, 2);
        assert_eq!(next.acknowledged_at, Some(at(60)));
        assert_eq!(c["assignee"].before, Value::Null);
        assert_eq!(c["assignee"].after, json!("ana"));
        assert_eq!(c["status"].after, json!("acknowledged"));
        assert!(c.contains_key("acknowledged_at"));
    }

    #[test]
    fn patch_without_change_keeps_the_version() {
        let patch = TicketPatch {
            title: Some("Disk full".into()),
            status: Some(Status::New),
            ..TicketPatch::default()
        };
        let (next, c) = ticket().patched(patch, at(60)).unwrap();
        assert!(c.is_empty());
        assert_eq!(next.version, 1);
    }

    #[test]
    fn resolve_then_reopen_clears_resolution() {
        let t = ticket();
        let (t, _) = t
            .patched(
                TicketPatch {
                    status: Some(Status::Resolved),
                    ..Default::default()
                },
                at(10),
            )
            .unwrap();
        assert_eq!(t.resolved_at, Some(at(10)));
        assert_eq!(t.acknowledged_at, Some(at(10)));
        let (t, _) = t
            .patched(
                TicketPatch {
                    status: Some(Status::Closed),
                    ..Default::default()
                },
                at(20),
            )
            .unwrap();
        assert_eq!(t.closed_at, Some(at(20)));
        let (t, c) = t
            .patched(
                TicketPatch {
                    status: Some(Status::InProgress),
                    ..Default::default()
                },
                at(30),
            )
            .unwrap();
        assert_eq!((t.resolved_at, t.closed_at), (None, None));
        assert_eq!(c["closed_at"].after, Value::Null);
        let err = t
            .patched(
                TicketPatch {
                    status: Some(Status::New),
                    ..Default::default()
                },
                at(40),
            )
            .unwrap_err();
        assert_eq!(err.to, Status::New);
    }
}
