use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including token management and the audit trail.
    Admin,
    /// Works tickets: create, update, comment, link.
    Agent,
    /// Reads tickets and their history; writes nothing.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Agent, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn can_write_tickets(self) -> bool {
        matches!(self, Role::Admin | Role::Agent)
    }

    pub fn can_administer(self) -> bool {
        matches!(self, Role::Admin)
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
