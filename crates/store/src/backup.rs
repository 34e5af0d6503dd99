//! Consistent copies of a SQLite database, for `opsdesk backup` and `opsdesk restore`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use crate::{Result, StoreError};

/// The file a `sqlite://` URL names.
pub fn sqlite_file(url: &str) -> Result<PathBuf> {
    Ok(SqliteConnectOptions::from_str(url)?
        .get_filename()
        .to_path_buf())
}

fn read_only(file: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10))
}

/// Copies the SQLite database in `from` to the new file `to` as one read transaction
/// (`VACUUM INTO`): a consistent copy, also while a server writes to `from`.
pub async fn sqlite_copy(from: &Path, to: &Path) -> Result<()> {
    let target = to
        .to_str()
        .ok_or_else(|| StoreError::Corrupt(format!("{} is not a UTF-8 path", to.display())))?
        .to_owned();
    let mut c = read_only(from).connect().await?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut c)
        .await;
    c.close().await?;
    copied?;
    Ok(())
}

/// Checks that `file` is a whole opsdesk database: SQLite's integrity check passes and it
/// has an audit trail.
pub async fn sqlite_check(file: &Path) -> Result<()> {
    let mut c = read_only(file).connect().await?;
    let checked: Result<()> = async {
        let rows = sqlx::query("PRAGMA integrity_check")
            .fetch_all(&mut c)
            .await?;
        let said: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect();
        if said != ["ok"] {
            return Err(StoreError::Corrupt(format!(
                "SQLite's integrity check failed: {}",
                said.join("; ")
            )));
        }
        sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(&mut c)
            .await
            .map_err(|_| StoreError::Corrupt("it is not an opsdesk database".into()))?;
        Ok(())
    }
    .await;
    c.close().await?;
    checked
}
