use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::{Result, StoreError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Reads the backend from the URL scheme; anything else is refused.
    pub fn from_url(url: &str) -> Result<Backend> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::UnknownScheme(redact_url(url))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The row-lock clause for SELECTs that precede an update. SQLite has one writer at a time
    /// and needs none.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// Hides the password of a database URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                url.to_owned()
            }
        }
        None => url.to_owned(),
    }
}

/// Pool sizes and timeouts.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteDb {
    /// One connection: SQLite allows one writer, and queuing here beats retrying on SQLITE_BUSY.
    pub(crate) writer: SqlitePool,
    /// The group-commit task that owns `writer` for changes made through [`Db::write`].
    pub(crate) jobs: tokio::sync::mpsc::Sender<crate::writer::Job>,
    pub(crate) reader: SqlitePool,
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// One open transaction. Dropping it without [`Tx::commit`] rolls everything back.
pub enum Tx {
    /// On SQLite, full-text index changes wait until just before commit: FTS5 writes a new
    /// index segment at every savepoint it has pending changes at, so writing it once per
    /// transaction keeps group commit cheap.
    Sqlite(Transaction<'static, Sqlite>, Vec<SearchUpdate>),
    Postgres(Transaction<'static, Postgres>),
}

/// A change to the SQLite full-text index, applied at commit.
#[derive(Debug, Clone)]
pub enum SearchUpdate {
    Ticket {
        id: i64,
        title: String,
        description: String,
        new: bool,
    },
    Comment {
        ticket_id: i64,
        body: String,
    },
}

impl Db {
    /// Opens the database named by `url` (creating a SQLite file if needed). Does not migrate.
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Db> {
        match Backend::from_url(url)? {
            Backend::Sqlite => {
                if url.contains(":memory:") || url.contains("mode=memory") {
                    return Err(StoreError::UnknownScheme(format!(
                        "{url} (an in-memory database cannot be shared by opsdesk's connections; use a file)"
                    )));
                }
                let base = SqliteConnectOptions::from_str(url)?
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(
                        base.clone()
                            .create_if_missing(true)
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal),
                    )
                    .await?;
                let reader = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(base.read_only(true))
                    .await?;
                let jobs = crate::writer::spawn(writer.clone());
                Ok(Db::Sqlite(SqliteDb {
                    writer,
                    reader,
                    jobs,
                }))
            }
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(opts)
                    .await?;
                Ok(Db::Postgres(pool))
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Brings the schema up to date.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Sqlite(s) => SQLITE_MIGRATIONS.run(&s.writer).await?,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    /// The migration versions embedded for a backend.
    pub fn migration_versions(backend: Backend) -> Vec<i64> {
        let m = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        m.iter().map(|m| m.version).collect()
    }

    /// Runs `f` in a write transaction and commits it. On SQLite, changes waiting at the same
    /// time share one transaction (each in its own savepoint, so one failing undoes only
    /// itself) and one commit; the result is returned only once the commit is done.
    pub async fn write<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'a> FnOnce(&'a mut Tx) -> futures::future::BoxFuture<'a, std::result::Result<T, E>>
            + Send
            + 'static,
    {
        match self {
            Db::Sqlite(s) => crate::writer::submit(&s.jobs, f).await,
            Db::Postgres(p) => {
                let mut tx = Tx::Postgres(p.begin().await.map_err(StoreError::from)?);
                let value = f(&mut tx).await?;
                tx.commit().await?;
                Ok(value)
            }
        }
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            // IMMEDIATE takes the write lock now, so another process waits on busy_timeout
            // instead of failing halfway through.
            Db::Sqlite(s) => Tx::Sqlite(s.writer.begin_with("BEGIN IMMEDIATE").await?, Vec::new()),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        crate::on_read!(self, p, _b => {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(s) => {
                s.reader.close().await;
                s.writer.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }

    /// Runs one SQL statement as is, for tests and maintenance.
    pub async fn execute_raw(&self, sql: &str) -> Result<u64> {
        Ok(match self {
            Db::Sqlite(s) => sqlx::raw_sql(sql).execute(&s.writer).await?.rows_affected(),
            Db::Postgres(p) => sqlx::raw_sql(sql).execute(p).await?.rows_affected(),
        })
    }
}

impl Tx {
    /// Runs a statement without parameters, such as a savepoint.
    pub(crate) fn raw<'a>(
        &'a mut self,
        sql: &'static str,
    ) -> futures::future::BoxFuture<'a, Result<()>> {
        use sqlx::Executor;
        match self {
            Tx::Sqlite(t, _) => {
                let c: &'a mut sqlx::SqliteConnection = t;
                Box::pin(async move {
                    c.execute(sql).await?;
                    Ok(())
                })
            }
            Tx::Postgres(t) => {
                let c: &'a mut sqlx::PgConnection = t;
                Box::pin(async move {
                    c.execute(sql).await?;
                    Ok(())
                })
            }
        }
    }

    /// [`Tx::commit`] as a boxed future, for tasks that must prove they are `Send`.
    pub(crate) fn commit_boxed(self) -> futures::future::BoxFuture<'static, Result<()>> {
        Box::pin(self.commit())
    }

    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(mut t, search) => {
                apply_search(&mut t, search).await?;
                t.commit().await?;
            }
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Queues a full-text index change (SQLite; PostgreSQL indexes generated columns itself).
    pub(crate) fn queue_search(&mut self, update: SearchUpdate) {
        if let Tx::Sqlite(_, queue) = self {
            queue.push(update);
        }
    }

    /// How many index changes are queued, to take back those of a failed change.
    pub(crate) fn search_mark(&self) -> usize {
        match self {
            Tx::Sqlite(_, queue) => queue.len(),
            Tx::Postgres(_) => 0,
        }
    }

    pub(crate) fn search_rollback(&mut self, mark: usize) {
        if let Tx::Sqlite(_, queue) = self {
            queue.truncate(mark);
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(..) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

async fn apply_search(
    t: &mut Transaction<'static, Sqlite>,
    updates: Vec<SearchUpdate>,
) -> Result<()> {
    use sqlx::Executor;
    for update in updates {
        let c: &mut sqlx::SqliteConnection = t;
        let query = match update {
            SearchUpdate::Ticket { id, title, description, new: true } => sqlx::query(
                "INSERT INTO ticket_search (rowid, title, description, comments) VALUES ($1, $2, $3, '')",
            )
            .bind(id)
            .bind(title)
            .bind(description),
            SearchUpdate::Ticket { id, title, description, new: false } => sqlx::query(
                "UPDATE ticket_search SET title = $2, description = $3 WHERE rowid = $1",
            )
            .bind(id)
            .bind(title)
            .bind(description),
            SearchUpdate::Comment { ticket_id, body } => sqlx::query(
                "UPDATE ticket_search SET comments = comments || ' ' || $2 WHERE rowid = $1",
            )
            .bind(ticket_id)
            .bind(body),
        };
        c.execute(query).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://opsdesk.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        let err = Backend::from_url("mysql://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported database URL scheme"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert!(Backend::from_url("opsdesk.db").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn both_backends_have_the_same_migrations() {
        assert_eq!(
            Db::migration_versions(Backend::Sqlite),
            Db::migration_versions(Backend::Postgres)
        );
        assert!(!Db::migration_versions(Backend::Sqlite).is_empty());
    }
}
