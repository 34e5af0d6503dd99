use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    // A password may also come as a parameter (`?password=...`).
    if let Some((base, query)) = url.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        return format!("{}?{}", redact_url(base), query.join("&"));
    }
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
    /// The one write connection (docs/storage.md, "Write path on SQLite").
    pub(crate) writer: SqlitePool,
    /// Runs the WAL checkpoints, off the writer's path (docs/storage.md, "WAL checkpoints").
    pub(crate) checkpointer: SqlitePool,
    /// The group-commit task that owns `writer` for changes made through [`Db::write`].
    pub(crate) jobs: tokio::sync::mpsc::Sender<crate::writer::Job>,
    /// The runtime of the writer's own thread.
    pub(crate) writer_runtime: tokio::runtime::Handle,
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
    /// On SQLite, with the rows it writes just before its commit.
    Sqlite(Transaction<'static, Sqlite>, Box<Deferred>),
    Postgres(Transaction<'static, Postgres>),
}

/// Rows a SQLite transaction writes just before its commit, in a few multi-row statements
/// for the whole group (why: docs/storage.md, "Deferred rows and read-through").
#[derive(Debug, Default)]
pub struct Deferred {
    pub(crate) search: Vec<SearchUpdate>,
    pub(crate) audit: Vec<opsdesk_domain::AuditRecord>,
    /// The chain head as of the last queued entry; read from the database on first use.
    pub(crate) head: Option<(i64, String)>,
    /// Statements run that changed the database, to tell whether a failed change wrote.
    pub(crate) writes: u64,
    /// Signals, their receipts and correlations, written in a few statements at commit.
    pub(crate) signals: crate::signals::DeferredSignals,
}

/// A point to return to when a change in a group fails.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    search: usize,
    audit: usize,
    head: Option<(i64, String)>,
    writes: u64,
    signals: crate::signals::SignalsMark,
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
                            .synchronous(SqliteSynchronous::Normal)
                            // No automatic checkpoints: see docs/storage.md, "WAL checkpoints".
                            .pragma("wal_autocheckpoint", "0")
                            .pragma("journal_size_limit", "268435456")
                            // A group fits in memory until its commit: see docs/storage.md,
                            // "Write path on SQLite".
                            .pragma("cache_size", "-16384")
                            .pragma("temp_store", "memory"),
                    )
                    .await?;
                let checkpointer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(base.clone())
                    .await?;
                let wal_full = Arc::new(AtomicBool::new(false));
                tokio::spawn(checkpoint(checkpointer.clone(), wal_full.clone()));
                let reader = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(base.read_only(true))
                    .await?;
                let (jobs, writer_runtime) = crate::writer::spawn(writer.clone(), wal_full)?;
                Ok(Db::Sqlite(SqliteDb {
                    writer,
                    reader,
                    checkpointer,
                    jobs,
                    writer_runtime,
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

    /// Runs `task` beside the single writer: on SQLite on the writer's own thread, on
    /// PostgreSQL on the caller's runtime (why: docs/storage.md, "Write path on SQLite").
    ///
    /// That thread's runtime has timers but no I/O driver: `task`, and every change it
    /// submits, must not use sockets or child processes (they would panic there on SQLite).
    pub fn spawn_beside_writer<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self {
            Db::Sqlite(s) => {
                s.writer_runtime.spawn(task);
            }
            Db::Postgres(_) => {
                tokio::spawn(task);
            }
        }
    }

    /// Runs `f` in a write transaction and returns its result once committed. On SQLite,
    /// changes waiting at the same time share one transaction: a change that fails after
    /// writing rolls the group back (docs/storage.md, "Write path on SQLite").
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
                let mut pg = p.begin().await.map_err(StoreError::from)?;
                // The audit chain head orders every audited change, so writers wait for it
                // anyway; taking it before any other row means no two writers ever hold locks
                // in opposite orders, so concurrent writes cannot deadlock.
                sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
                    .execute(&mut *pg)
                    .await
                    .map_err(StoreError::from)?;
                let mut tx = Tx::Postgres(pg);
                let value = f(&mut tx).await?;
                tx.commit().await?;
                Ok(value)
            }
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        crate::on_read!(self, p, _b => {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// True once [`Db::close`] has run.
    pub fn is_closed(&self) -> bool {
        match self {
            Db::Sqlite(s) => s.writer.is_closed(),
            Db::Postgres(p) => p.is_closed(),
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(s) => {
                // Leave the database file whole and the WAL empty.
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&s.checkpointer)
                    .await
                {
                    tracing::warn!(error = %e, "final checkpoint failed");
                }
                s.checkpointer.close().await;
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
    /// [`Tx::commit`] as a boxed future, for tasks that must prove they are `Send`.
    pub(crate) fn commit_boxed(self) -> futures::future::BoxFuture<'static, Result<()>> {
        Box::pin(self.commit())
    }

    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(mut t, deferred) => {
                write_deferred(&mut t, *deferred).await?;
                t.commit().await?;
            }
            Tx::Postgres(t) => t.commit().await.map_err(|e| {
                let e = StoreError::from(e);
                // The connection went away while COMMIT was on its way: PostgreSQL may have
                // committed. Not a "try again" (a retry could make the change twice).
                if e.is_unavailable() {
                    StoreError::Commit(format!(
                        "the connection to the database was lost while committing; the change \
                         may or may not have been saved ({e})"
                    ))
                } else {
                    e
                }
            })?,
        }
        Ok(())
    }

    /// Queues a full-text index change (SQLite; PostgreSQL indexes generated columns itself).
    pub(crate) fn queue_search(&mut self, update: SearchUpdate) {
        if let Tx::Sqlite(_, d) = self {
            d.search.push(update);
        }
    }

    /// Where the deferred writes stand, to take back those of a failed change.
    pub(crate) fn mark(&self) -> Option<Mark> {
        match self {
            Tx::Sqlite(_, d) => Some(Mark {
                search: d.search.len(),
                audit: d.audit.len(),
                head: d.head.clone(),
                writes: d.writes,
                signals: d.signals.mark(),
            }),
            Tx::Postgres(_) => None,
        }
    }

    /// Counts a statement that changed the database.
    pub(crate) fn note_write(&mut self) {
        if let Tx::Sqlite(_, d) = self {
            d.writes += 1;
        }
    }

    pub(crate) fn wrote_since(&self, mark: &Option<Mark>) -> bool {
        match (self, mark) {
            (Tx::Sqlite(_, d), Some(m)) => d.writes != m.writes,
            _ => true,
        }
    }

    pub(crate) fn rollback_to(&mut self, mark: Option<Mark>) {
        if let (Tx::Sqlite(_, d), Some(m)) = (self, mark) {
            d.search.truncate(m.search);
            d.audit.truncate(m.audit);
            d.head = m.head;
            d.signals.rollback_to(m.signals);
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(..) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// WAL pages (4 KiB each) after which the writer resets the log.
const WAL_RESET_PAGES: i64 = 65_536;

/// Copies the WAL into the database file five times a second until closed, and asks the
/// writer to reset a long log (docs/storage.md, "WAL checkpoints").
async fn checkpoint(pool: SqlitePool, wal_full: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok((_, log_pages, _)) => {
                if log_pages > WAL_RESET_PAGES {
                    wal_full.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }
}

/// Rows per multi-row INSERT; well under SQLite's limit of 32,766 parameters.
const ROWS_PER_INSERT: usize = 500;

async fn write_deferred(t: &mut Transaction<'static, Sqlite>, d: Deferred) -> Result<()> {
    use sqlx::Executor;
    crate::signals::write_deferred(t, d.signals).await?;
    for chunk in d.audit.chunks(ROWS_PER_INSERT) {
        let mut qb = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_log (seq, at, actor, action, ticket_id, changes, prev_hash, hash) ",
        );
        let mut rows = Vec::with_capacity(chunk.len());
        for r in chunk {
            rows.push((r, r.changes_text()));
        }
        qb.push_values(rows, |mut b, (r, changes)| {
            b.push_bind(r.seq)
                .push_bind(crate::Ts(r.at))
                .push_bind(r.actor.clone())
                .push_bind(r.action.clone())
                .push_bind(r.ticket_id)
                .push_bind(changes)
                .push_bind(r.prev_hash.clone())
                .push_bind(r.hash.clone());
        });
        let c: &mut sqlx::SqliteConnection = t;
        c.execute(qb.build().persistent(false)).await?;
    }
    if let (Some(_), Some((seq, hash))) = (d.audit.last(), &d.head) {
        let c: &mut sqlx::SqliteConnection = t;
        c.execute(
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(*seq)
                .bind(hash.clone()),
        )
        .await?;
    }
    let mut inserts = Vec::new();
    for update in d.search {
        match update {
            SearchUpdate::Ticket {
                id,
                title,
                description,
                new: true,
            } => {
                inserts.push((id, title, description));
            }
            other => {
                // Later changes to a ticket may follow its insert in the same group.
                insert_search_rows(t, std::mem::take(&mut inserts)).await?;
                let c: &mut sqlx::SqliteConnection = t;
                let query = match other {
                    SearchUpdate::Ticket { id, title, description, .. } => sqlx::query(
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
        }
    }
    insert_search_rows(t, inserts).await
}

async fn insert_search_rows(
    t: &mut Transaction<'static, Sqlite>,
    rows: Vec<(i64, String, String)>,
) -> Result<()> {
    use sqlx::Executor;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(ROWS_PER_INSERT).collect();
        let mut qb = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO ticket_search (rowid, title, description, comments) ",
        );
        qb.push_values(chunk, |mut b, (id, title, description)| {
            b.push_bind(id)
                .push_bind(title)
                .push_bind(description)
                .push_bind("");
        });
        let c: &mut sqlx::SqliteConnection = t;
        c.execute(qb.build().persistent(false)).await?;
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
        assert_eq!(
            redact_url("postgres://u:pw@h/db?sslmode=require&password=pw2"),
            "postgres://u:***@h/db?sslmode=require&password=***"
        );
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
