//! The use cases of opsdesk. Each change runs in one database transaction together with its
//! audit entry; nothing is visible until that transaction commits.

pub mod audit;
mod clock;
mod error;
mod tickets;
mod tokens;

pub use audit::{VerifyError, VerifySummary};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{Error, Result};
pub use tokens::TOKEN_PREFIX;

use std::sync::Arc;

use opsdesk_domain::Role;
use opsdesk_store::Db;

/// Who is acting, as recorded in the audit trail, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// e.g. `token:deploy-bot`, `cli`, `system`.
    pub name: String,
    pub role: Role,
}

impl Actor {
    pub fn new(name: impl Into<String>, role: Role) -> Actor {
        Actor {
            name: name.into(),
            role,
        }
    }

    /// The operator at the command line of the server's machine.
    pub fn cli() -> Actor {
        Actor::new("cli", Role::Admin)
    }

    fn require_write(&self) -> Result<()> {
        if self.role.can_write_tickets() {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "the {} role cannot change tickets",
                self.role
            )))
        }
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.role.can_administer() {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "the {} role cannot manage tokens",
                self.role
            )))
        }
    }
}

/// The support desk: everything the web, the CLI and the jobs ask of opsdesk.
#[derive(Clone)]
pub struct Desk {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl Desk {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Desk {
        Desk { db, clock }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Runs one change in a write transaction, given the time it is made, and returns its
    /// result once committed. The time is read when the change runs, so audit entries are in
    /// time order as well as seq order.
    pub(crate) async fn change<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(
                &'a mut opsdesk_store::Tx,
                chrono::DateTime<chrono::Utc>,
            ) -> futures::future::BoxFuture<'a, Result<T>>
            + Send
            + 'static,
    {
        let clock = self.clock.clone();
        self.db().write(move |tx| f(tx, clock.now())).await
    }
}
