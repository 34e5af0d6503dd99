use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Declares a closed set of names stored and sent as snake_case strings.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted names, for error messages.
            pub fn names() -> String {
                [$($text),+].join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use named_enum;

named_enum! {
    /// What sort of request a ticket is.
    Kind {
        /// Something is broken or degraded.
        Incident => "incident",
        /// Someone asks for something to be provided or changed.
        ServiceRequest => "service_request",
        /// Someone needs an answer.
        Question => "question",
        /// Planned work.
        Task => "task",
    }
}

impl Kind {
    /// What the kind is for, as the new request form explains it.
    pub fn meaning(self) -> &'static str {
        match self {
            Kind::Incident => "Something is broken or degraded",
            Kind::ServiceRequest => "Ask for something to be provided or changed",
            Kind::Question => "You need an answer",
            Kind::Task => "Planned work",
        }
    }
}

named_enum! {
    /// How bad it is. SEV1 is the worst; the order of the variants is the priority order.
    Severity {
        /// Business-critical system down. AWS Support severity `critical`.
        Sev1 => "SEV1",
        /// Production system down or badly impaired. AWS Support severity `urgent`.
        Sev2 => "SEV2",
        /// Production system impaired. AWS Support severity `high`.
        Sev3 => "SEV3",
        /// System impaired, workaround exists. AWS Support severity `normal`.
        Sev4 => "SEV4",
        /// General guidance. AWS Support severity `low`.
        Sev5 => "SEV5",
    }
}

impl Severity {
    /// The AWS Support `severityCode` this severity asks for.
    pub fn aws_support_code(self) -> &'static str {
        match self {
            Severity::Sev1 => "critical",
            Severity::Sev2 => "urgent",
            Severity::Sev3 => "high",
            Severity::Sev4 => "normal",
            Severity::Sev5 => "low",
        }
    }

    /// What the level means, in the words a requester chooses by.
    pub fn meaning(self) -> &'static str {
        match self {
            Severity::Sev1 => "Business-critical system down",
            Severity::Sev2 => "Production system down or badly impaired",
            Severity::Sev3 => "Production system impaired",
            Severity::Sev4 => "System impaired, a workaround exists",
            Severity::Sev5 => "General guidance or a question",
        }
    }

    /// 1 for SEV1 .. 5 for SEV5; lower sorts first.
    pub fn rank(self) -> i64 {
        match self {
            Severity::Sev1 => 1,
            Severity::Sev2 => 2,
            Severity::Sev3 => 3,
            Severity::Sev4 => 4,
            Severity::Sev5 => 5,
        }
    }
}

named_enum! {
    /// Where a ticket is in its life.
    Status {
        New => "new",
        Acknowledged => "acknowledged",
        InProgress => "in_progress",
        Pending => "pending",
        Resolved => "resolved",
        Closed => "closed",
    }
}

named_enum! {
    /// How two tickets relate. Read as "source <kind> target".
    LinkKind {
        RelatesTo => "relates_to",
        Duplicates => "duplicates",
        CausedBy => "caused_by",
    }
}

/// The effect of a status change on a ticket's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a ticket cannot go from {from} to {to}; from {from} it can go to: {allowed}")]
pub struct TransitionError {
    pub from: Status,
    pub to: Status,
    pub allowed: String,
}

impl Status {
    /// The statuses a ticket in this status may move to.
    pub fn next(self) -> &'static [Status] {
        use Status::*;
        match self {
            New => &[Acknowledged, InProgress, Resolved],
            Acknowledged => &[InProgress, Pending, Resolved],
            InProgress => &[Pending, Resolved],
            Pending => &[InProgress, Resolved],
            // Reopening goes back to in_progress.
            Resolved => &[Closed, InProgress],
            Closed => &[InProgress],
        }
    }

    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }

    pub fn transition_to(self, to: Status) -> Result<Transition, TransitionError> {
        if self.next().contains(&to) {
            Ok(Transition { from: self, to })
        } else {
            let allowed = self.next().iter().map(|s| s.as_str()).collect::<Vec<_>>();
            Err(TransitionError {
                from: self,
                to,
                allowed: allowed.join(", "),
            })
        }
    }
}

/// A tracked request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ticket {
    pub id: i64,
    /// `OPS-<id>`.
    pub key: String,
    pub title: String,
    /// Markdown.
    pub description: String,
    pub kind: Kind,
    pub severity: Severity,
    pub status: Status,
    pub requester: Option<String>,
    pub assignee: Option<String>,
    pub team: Option<String>,
    pub workload: Option<String>,
    pub tags: Vec<String>,
    pub source: String,
    pub dedup_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Increases by one on every change; send it back in `If-Match` to update safely.
    pub version: i64,
}

/// Whether the requester answering a ticket in `status`, resolved at `resolved_at`, opens it
/// again: only a resolved ticket (not a closed one), within `window` of its resolution.
pub fn reply_reopens(
    status: Status,
    resolved_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    window: chrono::TimeDelta,
) -> bool {
    status == Status::Resolved && resolved_at.is_none_or(|at| now - at <= window)
}

impl Ticket {
    pub fn key_for(id: i64) -> String {
        format!("OPS-{id}")
    }

    /// Accepts `42`, `OPS-42` or `ops-42`.
    pub fn parse_ref(s: &str) -> Option<i64> {
        let digits = match s.get(..4) {
            Some(prefix) if prefix.eq_ignore_ascii_case("OPS-") => &s[4..],
            _ => s,
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok().filter(|id| *id > 0)
    }

    /// Applies a status change and the timestamps that go with it.
    pub fn apply_transition(&mut self, t: Transition, at: DateTime<Utc>) {
        self.status = t.to;
        if t.from == Status::New && self.acknowledged_at.is_none() {
            self.acknowledged_at = Some(at);
        }
        match t.to {
            Status::Resolved => self.resolved_at = Some(at),
            Status::Closed => {
                self.closed_at = Some(at);
                if self.resolved_at.is_none() {
                    self.resolved_at = Some(at);
                }
            }
            Status::InProgress if !t.from.is_open() => {
                // Reopened: the earlier resolution stays in the audit trail.
                self.resolved_at = None;
                self.closed_at = None;
            }
            _ => {}
        }
    }
}

/// A remark on a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Comment {
    pub id: i64,
    pub ticket_id: i64,
    /// Markdown.
    pub body: String,
    pub author: String,
    /// Public comments are visible to the requester; internal ones only to agents.
    pub public: bool,
    pub created_at: DateTime<Utc>,
}

/// A directed relation between two tickets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketLink {
    pub id: i64,
    pub source_id: i64,
    pub target_id: i64,
    pub kind: LinkKind,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ticket_references() {
        assert_eq!(Ticket::parse_ref("42"), Some(42));
        assert_eq!(Ticket::parse_ref("OPS-42"), Some(42));
        assert_eq!(Ticket::parse_ref("ops-7"), Some(7));
        assert_eq!(Ticket::parse_ref("OPS-"), None);
        assert_eq!(Ticket::parse_ref("0"), None);
        assert_eq!(Ticket::parse_ref("-3"), None);
        assert_eq!(Ticket::parse_ref("OPS-1x"), None);
        assert_eq!(Ticket::parse_ref("99999999999999999999"), None);
        assert_eq!(Ticket::parse_ref("é"), None);
    }

    #[test]
    fn workflow_allows_documented_paths_only() {
        use Status::*;
        assert!(New.transition_to(Acknowledged).is_ok());
        assert!(InProgress.transition_to(Pending).is_ok());
        assert!(Pending.transition_to(InProgress).is_ok());
        assert!(Resolved.transition_to(InProgress).is_ok());
        assert!(Closed.transition_to(InProgress).is_ok());
        let err = Closed.transition_to(New).unwrap_err();
        assert_eq!(err.allowed, "in_progress");
        assert!(New.transition_to(Closed).is_err());
        assert!(New.transition_to(New).is_err());
    }

    #[test]
    fn severity_maps_to_aws_support_codes() {
        let codes: Vec<_> = Severity::ALL.iter().map(|s| s.aws_support_code()).collect();
        assert_eq!(codes, ["critical", "urgent", "high", "normal", "low"]);
    }
}
