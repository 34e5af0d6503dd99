//! Storage for opsdesk on SQLite or PostgreSQL, chosen by the URL scheme.
//!
//! Queries are written once where both databases accept the same SQL (both take `$1`
//! parameters) and per backend where they differ (full-text search, row locks). Every change
//! runs inside a [`Tx`], which the use cases in `opsdesk-core` open and commit.

mod accounts;
mod attachments;
mod audit;
pub mod backup;
mod clocks;
mod connectors;
pub mod copy;
pub mod db;
mod followups;
mod imports;
mod kpis;
mod leases;
mod mail;
mod outbox;
mod people;
mod readiness;
mod rows;
mod sessions;
mod signals;
mod tickets;
mod time;
mod tokens;
mod views;
mod writer;

pub use accounts::{AwsAccountRecord, SeverityLevelsRecord};
pub use attachments::NewAttachment;
pub use audit::AuditHead;
pub use clocks::{SupportCaseRecord, TicketClock};
pub use connectors::{ConnectorCursor, ExternalLink, NewExternalLink};
pub use db::{Backend, Db, DbOptions, Tx};
pub use followups::{
    ActionItemFilter, ActionItemRecord, IncidentReviewFact, IncidentReviewRecord, ScheduleRecord,
};
pub use kpis::{
    CaseFact, FlaggedItem, KpiDefinitionRecord, KpiPoint, KpiQuery, KpiStateRecord, Recurring,
    SignalType, TicketFacts,
};
pub use leases::JobLease;
pub use mail::{MailFilter, MailRecord, NewMailRecord, StoredTemplate};
pub use opsdesk_domain::signal::Correlation;
pub use opsdesk_domain::TokenSummary;
pub use outbox::{AfterAttempt, DeliveryAttempt, NewOutboxItem, OutboxFilter, OutboxItem, Stored};
pub use people::{TotpState, UserRecord};
pub use readiness::{
    AnswerRecord, LensRecord, LensVersionRecord, MilestoneRecord, NewReviewRecord, ReviewFilter,
    ReviewRecord,
};
pub use sessions::{LoginRecord, SessionRecord};
pub use signals::{MaintenanceWindow, NewMaintenanceWindow, RawJson, SignalFilter, SignalRecord};
pub use tickets::{Cursor, SortKey, TicketFilter, TicketPage};
pub use time::Ts;
pub use tokens::TokenRecord;
pub use views::SavedView;

/// A failure of the database or of what it holds.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL scheme in {0:?}: use sqlite://PATH or postgres://...")]
    UnknownScheme(String),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Unique(String),
    #[error("the change was not saved: {0}")]
    Commit(String),
    /// The database could not take the change for now (a full disk): try again later.
    #[error("the change was not saved, the database cannot take it now: {0}")]
    Unavailable(String),
    #[error("cannot start the database writer: {0}")]
    Writer(#[source] std::io::Error),
}

impl StoreError {
    /// True when the database could not be reached or cannot take writes for now (the
    /// connection failed or was cut, no connection came within the pool's wait, PostgreSQL is shutting
    /// down or starting, a disk is full): the request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        let e = match self {
            StoreError::Sqlx(e) => e,
            StoreError::Unavailable(_) => return true,
            _ => return false,
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            // A connection cut while it was being made (TLS negotiation included).
            | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(d) => d.code().is_some_and(|c| {
                // PostgreSQL: connection exceptions, insufficient resources (disk full, too
                // many connections), admin shutdown, cannot connect now, a read-only
                // transaction (a failed-over writer now a replica); SQLite: SQLITE_FULL.
                c.starts_with("08")
                    || c.starts_with("53")
                    || matches!(&*c, "57P01" | "57P02" | "57P03" | "25006" | "13")
            }),
            _ => false,
        }
    }

    /// True when the error is a unique constraint refusing a duplicate.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Sqlx(sqlx::Error::Database(e)) => e.is_unique_violation(),
            StoreError::Unique(_) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Runs `$body` with `$c` bound to the transaction's connection, once per backend.
macro_rules! on_tx {
    ($tx:expr, $c:ident, $backend:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t, _) => {
                let $c = &mut **t;
                let $backend = $crate::db::Backend::Sqlite;
                let _ = $backend;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                let $c = &mut **t;
                let $backend = $crate::db::Backend::Postgres;
                let _ = $backend;
                $body
            }
        }
    };
}

/// Runs `$body` with `$p` bound to a pool for reading, once per backend.
macro_rules! on_read {
    ($db:expr, $p:ident, $backend:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(s) => {
                let $p = &s.reader;
                let $backend = $crate::db::Backend::Sqlite;
                let _ = $backend;
                $body
            }
            $crate::db::Db::Postgres(pg) => {
                let $p = pg;
                let $backend = $crate::db::Backend::Postgres;
                let _ = $backend;
                $body
            }
        }
    };
}

pub(crate) use on_read;
pub(crate) use on_tx;
