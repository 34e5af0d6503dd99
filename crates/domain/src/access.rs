use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a person or an API token may do. Every route names the [`Permission`] it needs;
/// [`Role::allows`] is the one table that says which role holds which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Raises tickets, sees and comments on their own (public comments only); sees nothing of
    /// the organisation but the workload names a new ticket may name.
    Requester,
    /// Works tickets: create, update, comment, link.
    Agent,
    /// An agent who also manages their team's members and queue.
    Lead,
    /// Everything, including people, teams, tokens and the audit trail.
    Admin,
    /// Reads everything, the audit trail included; writes nothing.
    Auditor,
    /// Reads tickets, their history and the inventory; writes nothing.
    Viewer,
    /// API tokens only: sends events to the ingest endpoints and nothing else.
    Ingest,
}

/// Something a route or a use case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See tickets (a requester: only their own).
    ReadTickets,
    /// See the organisation beyond one's own tickets: teams and their members, workloads,
    /// AWS accounts and support plans, maintenance, tickets' signals and AWS cases, KPIs and
    /// reports. Staff hold it; requesters do not.
    ReadInventory,
    /// Raise tickets and comment (a requester: on their own).
    CreateTickets,
    /// Change any ticket: status, fields, links, internal comments.
    WriteTickets,
    /// Read the whole audit trail.
    ReadAudit,
    /// Manage the members of a team one leads.
    ManageTeam,
    /// Manage people, teams and tokens.
    Administer,
    /// Send events to the ingest endpoints.
    Ingest,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Requester,
        Role::Agent,
        Role::Lead,
        Role::Admin,
        Role::Auditor,
        Role::Viewer,
        Role::Ingest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Agent => "agent",
            Role::Lead => "lead",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The accepted names, for error messages.
    pub fn names() -> String {
        Role::ALL.map(Role::as_str).join(", ")
    }

    /// Whether a person (not only a token) may hold this role.
    pub fn for_people(self) -> bool {
        self != Role::Ingest
    }

    /// The access table.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => p != Ingest,
            Role::Lead => matches!(
                p,
                ReadTickets | ReadInventory | CreateTickets | WriteTickets | ManageTeam
            ),
            Role::Agent => matches!(
                p,
                ReadTickets | ReadInventory | CreateTickets | WriteTickets
            ),
            Role::Requester => matches!(p, ReadTickets | CreateTickets),
            Role::Auditor => matches!(p, ReadTickets | ReadInventory | ReadAudit),
            Role::Viewer => matches!(p, ReadTickets | ReadInventory),
            Role::Ingest => matches!(p, Ingest),
        }
    }

    /// Whether this role sees only the tickets it raised.
    pub fn sees_own_tickets_only(self) -> bool {
        self == Role::Requester
    }

    pub fn can_write_tickets(self) -> bool {
        self.allows(Permission::WriteTickets)
    }

    pub fn can_administer(self) -> bool {
        self.allows(Permission::Administer)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API token as listed: never the secret, never its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenSummary {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Who created it: `token:<name>`, `cli` or `system`.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Set once revoked; a revoked token is refused.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A person to add.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(format = Email)]
    pub email: String,
    /// Defaults to the part of the email before the @.
    #[serde(default)]
    pub display_name: Option<String>,
    pub role: Role,
    /// Names of existing teams.
    #[serde(default)]
    pub teams: Vec<String>,
    /// A local password (12 characters at least, not a common one). Leave out for people who
    /// sign in with SSO only.
    #[serde(default)]
    pub password: Option<String>,
}

/// A person who uses opsdesk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: i64,
    /// Unique, compared without regard to case; stored in lower case.
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// A disabled person cannot sign in; their history stays.
    pub active: bool,
    /// Teams they belong to, by name.
    pub teams: Vec<String>,
    /// Whether they have a local password (people who sign in with SSO may not).
    pub has_password: bool,
    /// Whether they sign in with a two-factor code.
    pub totp: bool,
    /// Whether an admin requires a two-factor code from them.
    pub totp_required: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A group of people who work a queue together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Team {
    pub id: i64,
    pub name: String,
    /// The lead's email, if the team has one.
    pub lead: Option<String>,
    /// Members' emails.
    pub members: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_table() {
        use Permission::*;
        assert!(Role::Admin.allows(Administer) && !Role::Admin.allows(Ingest));
        assert!(Role::Lead.allows(ManageTeam) && !Role::Lead.allows(Administer));
        assert!(Role::Agent.allows(WriteTickets) && !Role::Agent.allows(ReadAudit));
        assert!(Role::Requester.allows(CreateTickets) && !Role::Requester.allows(WriteTickets));
        for r in Role::ALL {
            // The inventory is for staff: every role that reads tickets but the requester.
            let staff = r.allows(ReadTickets) && r != Role::Requester;
            assert_eq!(r.allows(ReadInventory), staff, "{r}");
        }
        assert!(Role::Auditor.allows(ReadAudit) && !Role::Auditor.allows(CreateTickets));
        assert!(Role::Viewer.allows(ReadTickets) && !Role::Viewer.allows(ReadAudit));
        assert!(Role::Ingest.allows(Ingest) && !Role::Ingest.allows(ReadTickets));
        assert!(!Role::Ingest.for_people());
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
