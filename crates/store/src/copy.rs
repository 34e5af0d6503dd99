//! Copying a whole SQLite desk into an empty PostgreSQL database, for `opsdesk migrate-db`.
//!
//! Both databases are migrated to the same version first, so their tables and columns match
//! (PostgreSQL's full-text columns are computed by PostgreSQL; SQLite's full-text tables are
//! not copied). The source is read in one read transaction, so the copy is the desk as it was
//! at one moment; the target is written in one transaction, so a copy that fails leaves it as
//! it was. Values cross as text and are read by PostgreSQL with the column's own type.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use sqlx::Row;

use crate::db::Db;
use crate::{Result, StoreError};

/// The most bind parameters one PostgreSQL statement may carry.
const PG_MAX_BINDS: usize = 65_535;
/// Rows per INSERT at most.
const BATCH_ROWS: usize = 1_000;

/// A column as the target has it.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    /// PostgreSQL's name of its type (`bigint`, `timestamp with time zone`, `bytea`, ...).
    data_type: String,
    /// Numbered by a sequence (an identity or a serial column): moved on past the copied rows.
    sequenced: bool,
}

/// What a copy did.
#[derive(Debug, Clone)]
pub struct Copied {
    /// How many rows each table got, in the order they were copied.
    pub tables: Vec<(String, u64)>,
    /// The audit chain's head as the copy has it (seq, hash), read in the same snapshot as
    /// everything copied, and found the same on the target before its commit.
    pub head: (i64, String),
}

/// Why the PostgreSQL database `target` cannot take a copy (it already holds a desk), before
/// anything is written to it; `None` when it can. Reads only.
pub async fn refusal(target: &Db) -> Result<Option<String>> {
    let Db::Postgres(pg) = target else {
        return Ok(Some("the target is not a PostgreSQL database".into()));
    };
    for (table, what) in [
        ("tickets", "tickets"),
        ("audit_log", "audit entries"),
        ("users", "people"),
        ("api_tokens", "API tokens"),
    ] {
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(table)
            .fetch_one(pg)
            .await?;
        if exists.is_none() {
            continue;
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pg)
            .await?;
        if n > 0 {
            return Ok(Some(format!(
                "the target database is not empty (it has {n} {what}); copy into a new, empty one"
            )));
        }
    }
    Ok(None)
}

/// Copies every table of the SQLite desk `source` into the PostgreSQL desk `target`, which
/// must hold nothing yet but what its migrations made. `progress` is told each table's count
/// as it goes (table, rows so far, whether the table is done).
pub async fn sqlite_to_postgres(
    source: &Db,
    target: &Db,
    mut progress: impl FnMut(&str, u64, bool),
) -> Result<Copied> {
    let (Db::Sqlite(sqlite), Db::Postgres(pg)) = (source, target) else {
        return Err(StoreError::Corrupt(
            "the copy goes from a SQLite database to a PostgreSQL one".into(),
        ));
    };
    let mut src = sqlite.reader.acquire().await?;
    let mut dst = pg.begin().await?;

    let versions = |rows: Vec<sqlx::sqlite::SqliteRow>| -> Result<Vec<i64>> {
        rows.iter()
            .map(|r| r.try_get::<i64, _>(0).map_err(StoreError::from))
            .collect()
    };
    let src_versions = versions(
        sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *src)
            .await?,
    )?;
    let dst_versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *dst)
            .await?;
    if src_versions != dst_versions {
        return Err(StoreError::Corrupt(
            "the two databases are not at the same migration; migrate both with this version first"
                .into(),
        ));
    }
    for (table, what) in [
        ("tickets", "tickets"),
        ("audit_log", "audit entries"),
        ("users", "people"),
        ("api_tokens", "API tokens"),
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *dst)
            .await?;
        if n > 0 {
            return Err(StoreError::Unique(format!(
                "the target database is not empty (it has {n} {what}); copy into a new, empty one"
            )));
        }
    }

    let tables = target_tables(&mut dst).await?;
    let order = copy_order(&mut dst, &tables).await?;
    let mut copied = Vec::new();
    // What the migrations seeded (the audit chain's head, the built-in lens) comes from the
    // source instead; triggers are off while rows arrive as they were (a ticket's clocks are
    // copied, not made again).
    for table in order.iter().rev() {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *dst)
            .await?;
    }
    for table in &order {
        sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
            .execute(&mut *dst)
            .await?;
    }
    sqlx::query("BEGIN").execute(&mut *src).await?;
    let head_sql = "SELECT seq, hash FROM audit_head WHERE id = 1";
    let source_head: (i64, String) = sqlx::query_as(head_sql).fetch_one(&mut *src).await?;
    for table in &order {
        let columns = &tables[table];
        let source_columns = sqlite_columns(&mut src, table).await?;
        if let Some(missing) = source_columns
            .iter()
            .find(|c| !columns.iter().any(|t| &t.name == *c))
        {
            // Not if the target has it as a computed column (full-text search).
            let computed: Option<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
            )
            .bind(table)
            .bind(missing)
            .fetch_optional(&mut *dst)
            .await?;
            if computed.is_none() {
                return Err(StoreError::Corrupt(format!(
                    "{table}.{missing} is in the SQLite database but not in PostgreSQL"
                )));
            }
        }
        let columns: Vec<&Column> = columns
            .iter()
            .filter(|c| source_columns.contains(&c.name))
            .collect();
        let select = format!(
            "SELECT {} FROM {table}",
            columns
                .iter()
                .map(|c| format!(
                    "CASE WHEN typeof(\"{0}\") = 'blob' THEN hex(\"{0}\") ELSE CAST(\"{0}\" AS TEXT) END",
                    c.name
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let per_batch = (PG_MAX_BINDS / columns.len().max(1)).clamp(1, BATCH_ROWS);
        let mut rows = sqlx::query(&select).fetch(&mut *src);
        let mut batch: Vec<Vec<Option<String>>> = Vec::with_capacity(per_batch);
        let mut count = 0u64;
        while let Some(row) = rows.try_next().await? {
            let values = (0..columns.len())
                .map(|i| row.try_get::<Option<String>, _>(i))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            batch.push(values);
            if batch.len() == per_batch {
                insert(&mut dst, table, &columns, &batch).await?;
                count += batch.len() as u64;
                batch.clear();
                progress(table, count, false);
            }
        }
        drop(rows);
        if !batch.is_empty() {
            insert(&mut dst, table, &columns, &batch).await?;
            count += batch.len() as u64;
        }
        progress(table, count, true);
        for c in columns.iter().filter(|c| c.sequenced) {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{0}'), \
                 COALESCE((SELECT max(\"{0}\") FROM {table}), 1), \
                 (SELECT max(\"{0}\") FROM {table}) IS NOT NULL)",
                c.name
            ))
            .execute(&mut *dst)
            .await?;
        }
        copied.push((table.clone(), count));
    }
    sqlx::query("COMMIT").execute(&mut *src).await?;
    for table in &order {
        sqlx::query(&format!("ALTER TABLE {table} ENABLE TRIGGER USER"))
            .execute(&mut *dst)
            .await?;
    }
    // The chain arrived whole: the same head, and as many entries as it counts (the chain
    // itself is walked after the commit by `opsdesk audit verify`'s check).
    let target_head: (i64, String) = sqlx::query_as(head_sql).fetch_one(&mut *dst).await?;
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&mut *dst)
        .await?;
    if target_head != source_head || entries != source_head.0 {
        return Err(StoreError::Corrupt(format!(
            "the copied audit trail ends at {}:{} with {entries} entries, not at {}:{}; nothing was kept",
            target_head.0, target_head.1, source_head.0, source_head.1
        )));
    }
    dst.commit().await?;
    Ok(Copied {
        tables: copied,
        head: source_head,
    })
}

/// The target's tables (but the migrator's own) with their columns that take values.
async fn target_tables(dst: &mut sqlx::PgConnection) -> Result<BTreeMap<String, Vec<Column>>> {
    let rows = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, \
                (is_identity = 'YES' OR coalesce(column_default, '') LIKE 'nextval(%') \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_generated = 'NEVER' \
           AND table_name IN (SELECT table_name FROM information_schema.tables \
                              WHERE table_schema = current_schema() AND table_type = 'BASE TABLE') \
           AND table_name <> '_sqlx_migrations' \
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut *dst)
    .await?;
    let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for r in rows {
        let table: String = r.try_get(0)?;
        tables.entry(table).or_default().push(Column {
            name: r.try_get(1)?,
            data_type: r.try_get(2)?,
            sequenced: r.try_get::<bool, _>(3)?,
        });
    }
    Ok(tables)
}

/// The tables in an order where each comes after the tables it refers to.
async fn copy_order(
    dst: &mut sqlx::PgConnection,
    tables: &BTreeMap<String, Vec<Column>>,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c \
         JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE n.nspname = current_schema() AND c.contype = 'f'",
    )
    .fetch_all(&mut *dst)
    .await?;
    let mut needs: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for r in &rows {
        let (from, to): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        if from != to {
            if let Some((name, _)) = tables.get_key_value(from.as_str()) {
                needs.entry(name.as_str()).or_default().insert(to);
            }
        }
    }
    let mut order: Vec<String> = Vec::new();
    let mut left: Vec<&String> = tables.keys().collect();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|t| {
            let ready = needs.get(t.as_str()).is_none_or(|n| {
                n.iter()
                    .all(|d| order.contains(d) || !tables.contains_key(d))
            });
            if ready {
                order.push((*t).clone());
            }
            !ready
        });
        if left.len() == before {
            return Err(StoreError::Corrupt(format!(
                "the tables {left:?} refer to each other in a circle"
            )));
        }
    }
    Ok(order)
}

/// A SQLite table's columns.
async fn sqlite_columns(src: &mut sqlx::SqliteConnection, table: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(&format!("SELECT name FROM pragma_table_xinfo('{table}')"))
        .fetch_all(&mut *src)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
        .collect()
}

/// One multi-row INSERT of `rows` (text values read by PostgreSQL as each column's type).
async fn insert(
    dst: &mut sqlx::PgConnection,
    table: &str,
    columns: &[&Column],
    rows: &[Vec<Option<String>>],
) -> Result<()> {
    let names = columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("INSERT INTO {table} ({names}) VALUES ");
    let mut n = 0usize;
    for (i, _) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (j, c) in columns.iter().enumerate() {
            if j > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if c.data_type == "bytea" {
                sql.push_str(&format!("decode(${n}, 'hex')"));
            } else {
                sql.push_str(&format!("${n}::{}", c.data_type));
            }
        }
        sql.push(')');
    }
    let mut q = sqlx::query(&sql);
    for row in rows {
        for v in row {
            q = q.bind(v.as_deref());
        }
    }
    q.execute(&mut *dst).await?;
    Ok(())
}
