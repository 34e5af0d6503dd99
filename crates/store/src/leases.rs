//! Leases on jobs that run on one node at a time.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use crate::db::Db;
use crate::{Result, Ts};

/// Who holds a job, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    pub job: String,
    pub holder: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Db {
    /// Takes or renews the lease on `job` for `holder` until `ttl` from now, unless another
    /// holder's lease has not ended; true when `holder` holds it afterwards. On PostgreSQL the
    /// times are the database's (nodes' clocks need not agree); on SQLite, `now`.
    pub async fn hold_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool> {
        match self {
            Db::Postgres(pg) => {
                let seconds = ttl.num_milliseconds() as f64 / 1000.0;
                let done = sqlx::query(
                    "INSERT INTO job_leases (job, holder, acquired_at, expires_at) \
                     VALUES ($1, $2, now(), now() + make_interval(secs => $3)) \
                     ON CONFLICT (job) DO UPDATE SET holder = EXCLUDED.holder, \
                       expires_at = EXCLUDED.expires_at, \
                       acquired_at = CASE WHEN job_leases.holder = EXCLUDED.holder \
                         THEN job_leases.acquired_at ELSE EXCLUDED.acquired_at END \
                     WHERE job_leases.holder = EXCLUDED.holder OR job_leases.expires_at <= now()",
                )
                .bind(job)
                .bind(holder)
                .bind(seconds)
                .execute(pg)
                .await?;
                Ok(done.rows_affected() == 1)
            }
            Db::Sqlite(_) => {
                let (job, holder) = (job.to_owned(), holder.to_owned());
                self.write(move |tx| {
                    Box::pin(async move {
                        let crate::db::Tx::Sqlite(c, _) = tx else {
                            return Ok(false);
                        };
                        let done = sqlx::query(
                            "INSERT INTO job_leases (job, holder, acquired_at, expires_at) \
                             VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, \
                               expires_at = excluded.expires_at, \
                               acquired_at = CASE WHEN job_leases.holder = excluded.holder \
                                 THEN job_leases.acquired_at ELSE excluded.acquired_at END \
                             WHERE job_leases.holder = excluded.holder \
                               OR job_leases.expires_at <= excluded.acquired_at",
                        )
                        .bind(&job)
                        .bind(&holder)
                        .bind(Ts(now))
                        .bind(Ts(now + ttl))
                        .execute(&mut **c)
                        .await?;
                        Ok(done.rows_affected() == 1)
                    })
                })
                .await
            }
        }
    }

    /// Gives up `holder`'s lease on `job` (a node stopping), so another node takes it at once.
    pub async fn release_lease(&self, job: &str, holder: &str) -> Result<()> {
        let (job, holder) = (job.to_owned(), holder.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                crate::on_tx!(tx, c, _b => {
                    sqlx::query("DELETE FROM job_leases WHERE job = $1 AND holder = $2")
                        .bind(&job)
                        .bind(&holder)
                        .execute(&mut *c)
                        .await?;
                });
                Ok(())
            })
        })
        .await
    }

    /// Every job's lease, ended ones included, by job.
    pub async fn job_leases(&self) -> Result<Vec<JobLease>> {
        crate::on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT job, holder, acquired_at, expires_at FROM job_leases ORDER BY job",
            )
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(JobLease {
                        job: r.try_get("job")?,
                        holder: r.try_get("holder")?,
                        acquired_at: r.try_get::<Ts, _>("acquired_at")?.0,
                        expires_at: r.try_get::<Ts, _>("expires_at")?.0,
                    })
                })
                .collect()
        })
    }
}
