//! The use cases of opsdesk. Each change runs in one database transaction together with its
//! audit entry; nothing is visible until that transaction commits.

pub mod accounts;
pub mod attachments;
pub mod audit;
pub mod cases;
mod clock;
pub mod connectors;
pub mod csv_writer;
mod error;
pub mod escalation;
pub mod export;
pub mod import;
pub mod kpis;
pub mod mail;
pub mod outbox;
pub mod people;
pub mod readiness;
pub mod reports;
pub mod sessions;
pub mod signals;
pub mod sla;
pub mod sso;
mod tickets;
mod tokens;
pub mod totp;
pub mod views;
pub mod workloads;

pub use audit::{VerifyError, VerifySummary};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{Error, Result};
pub use tokens::TOKEN_PREFIX;

use std::sync::Arc;

use opsdesk_domain::{Permission, Role};
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

    /// The person behind a `user:<email>` actor.
    pub fn user_email(&self) -> Option<&str> {
        self.name.strip_prefix("user:")
    }

    /// Who "their own tickets" belong to: a person's email, or `token:<name>`.
    pub fn identity(&self) -> &str {
        self.user_email().unwrap_or(&self.name)
    }

    /// Refuses unless the actor's role holds `p`.
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.role.allows(p) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "the {} role cannot do this",
                self.role
            )))
        }
    }

    fn require_write(&self) -> Result<()> {
        self.require(Permission::WriteTickets)
    }

    pub fn require_admin(&self) -> Result<()> {
        self.require(Permission::Administer)
    }
}

/// What the desk is set to, from the configuration: each area's settings.
#[derive(Clone, Default)]
struct Settings {
    auth: Arc<sessions::AuthSettings>,
    ingest: Arc<signals::IngestSettings>,
    notify: Arc<outbox::NotifySettings>,
    /// The accounts of `[[aws.accounts]]`.
    aws_accounts: Arc<Vec<opsdesk_domain::AwsAccount>>,
    sla: Arc<sla::SlaSettings>,
    escalation: Arc<escalation::EscalationSettings>,
    kpis: Arc<kpis::KpiSettings>,
    reports: Arc<Vec<opsdesk_domain::report::ReportSchedule>>,
    readiness: Arc<readiness::ReadinessSettings>,
    mail: Arc<mail::MailSettings>,
    attachments: Arc<attachments::AttachmentSettings>,
    /// The connectors of `[[connectors]]`.
    connectors: Arc<Vec<Arc<dyn connectors::RemoteSystem>>>,
}

/// What the desk keeps in memory of the store, read through and dropped when it changes.
#[derive(Clone, Default)]
struct Caches {
    catalog: Arc<signals::CatalogCache>,
    tokens: Arc<tokens::TokenCache>,
    routing: Arc<outbox::RoutingCache>,
    lenses: Arc<readiness::LensCache>,
    /// Connectors a webhook call asked to look at the other side before their next poll.
    connector_looks: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// The support desk: everything the web, the CLI and the jobs ask of opsdesk.
#[derive(Clone)]
pub struct Desk {
    db: Db,
    clock: Arc<dyn Clock>,
    settings: Settings,
    caches: Caches,
    /// The queue in front of signal ingest.
    intake: Arc<signals::Intake>,
}

impl Desk {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Desk {
        Desk {
            db,
            clock,
            settings: Settings::default(),
            caches: Caches::default(),
            intake: Arc::new(signals::Intake::default()),
        }
    }

    /// Uses these session lifetimes and sign-in limits instead of the defaults.
    pub fn with_auth_settings(mut self, settings: sessions::AuthSettings) -> Desk {
        self.settings.auth = Arc::new(settings);
        self
    }

    pub fn auth_settings(&self) -> &sessions::AuthSettings {
        &self.settings.auth
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The SLA policies and business-hours calendars in force.
    pub fn sla_settings(&self) -> &sla::SlaSettings {
        &self.settings.sla
    }

    /// The trend reports delivered on a schedule.
    pub fn report_schedules(&self) -> &[opsdesk_domain::report::ReportSchedule] {
        &self.settings.reports
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
