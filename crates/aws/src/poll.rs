//! What the AWS Health and Trusted Advisor pollers share: their error, their report, the pause
//! between runs (with backoff while AWS throttles) and the step that ingests what a run read
//! and only then moves the poller's cursor.

use std::time::Duration;

use aws_sdk_health::config::http::HttpResponse;
use aws_sdk_health::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_health::primitives::DateTime as SmithyTime;
use chrono::{DateTime, Utc};
use opsdesk_core::signals::{Effect, Outcome};
use opsdesk_core::{Actor, Desk};
use opsdesk_domain::{Role, Signal};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// The error code AWS answers with when the account's support plan lacks the API.
const SUBSCRIPTION_REQUIRED: &str = "SubscriptionRequiredException";

/// Error codes the AWS SDKs treat as throttling.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
];

/// First pause after AWS throttled a run.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest pause while AWS keeps throttling.
pub const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// Signals ingested per transaction, so one large read does not hold the writer for long.
const INGEST_CHUNK: usize = 500;

/// Why a poll run failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The account's support plan does not include the API; nothing a retry can fix until
    /// the plan changes.
    #[error(
        "the {api} API needs a Business Support+, Enterprise or Unified Operations support plan \
         (or Business or Enterprise On-Ramp where they remain; AWS answered \
         SubscriptionRequiredException)"
    )]
    SubscriptionRequired { api: &'static str },
    /// AWS throttled the calls, after the SDK's own retries.
    #[error("the {api} API throttled the poller: {message}")]
    Throttled { api: &'static str, message: String },
    /// Any other answer from AWS, or no answer.
    #[error("the {api} API failed: {message}")]
    Aws { api: &'static str, message: String },
    /// Storing what was read failed; the cursor did not move, so the next run reads it again.
    #[error("cannot store what the poller read: {0}")]
    Desk(#[from] opsdesk_core::Error),
}

impl PollError {
    /// The `result` label of `opsdesk_poller_runs_total`.
    pub fn result_label(&self) -> &'static str {
        match self {
            PollError::SubscriptionRequired { .. } => "subscription_required",
            PollError::Throttled { .. } => "throttled",
            PollError::Aws { .. } | PollError::Desk(_) => "error",
        }
    }
}

/// Sorts an SDK error into the cases the run loop treats differently. `api` names the API in
/// messages, e.g. `AWS Health`.
pub(crate) fn aws_error<E>(api: &'static str, err: SdkError<E, HttpResponse>) -> PollError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let message = DisplayErrorContext(&err).to_string();
    match code.as_deref() {
        Some(SUBSCRIPTION_REQUIRED) => PollError::SubscriptionRequired { api },
        Some(c) if THROTTLING_CODES.contains(&c) => PollError::Throttled { api, message },
        _ if status == Some(429) => PollError::Throttled { api, message },
        _ => PollError::Aws { api, message },
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollReport {
    /// Signals read from AWS and handed to ingest.
    pub signals: usize,
    /// What each signal did, in order.
    pub outcomes: Vec<Outcome>,
    /// The cursor stored after ingest.
    pub cursor: String,
}

impl PollReport {
    /// How many signals had this effect.
    pub fn count(&self, effect: Effect) -> usize {
        self.outcomes.iter().filter(|o| o.effect == effect).count()
    }
}

/// Ingests `signals` as `actor_name` and, once that has committed, stores `cursor`: a crash
/// in between reads the same news again, which ingest recognises by its receipt key.
pub(crate) async fn commit(
    desk: &Desk,
    actor_name: &str,
    cursor_name: &str,
    signals: Vec<Signal>,
    cursor: String,
) -> Result<PollReport, PollError> {
    let actor = Actor::new(actor_name, Role::Ingest);
    let count = signals.len();
    let mut outcomes = Vec::with_capacity(count);
    let mut signals = signals.into_iter().peekable();
    while signals.peek().is_some() {
        let chunk: Vec<Signal> = signals.by_ref().take(INGEST_CHUNK).collect();
        outcomes.extend(desk.ingest(&actor, chunk).await?);
    }
    desk.set_poller_cursor(cursor_name, &cursor).await?;
    Ok(PollReport {
        signals: count,
        outcomes,
        cursor,
    })
}

/// The pause after AWS throttled `attempt` runs in a row (1 for the first): doubling from
/// [`BACKOFF_INITIAL`] up to [`BACKOFF_MAX`], then cut to between half and all of that by
/// `jitter` (0 to 1), so pollers of many installations do not retry in step.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    let full = BACKOFF_INITIAL
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        1.0
    };
    full.mul_f64(0.5 + 0.5 * jitter)
}

/// When the next run is due, given how the runs went.
#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Duration,
    throttled: u32,
}

impl Schedule {
    pub fn new(interval: Duration) -> Schedule {
        Schedule {
            interval: interval.max(Duration::from_secs(1)),
            throttled: 0,
        }
    }

    /// The pause before the next run: the backoff while AWS throttles, else the interval.
    pub fn next_delay(&mut self, run: Result<(), &PollError>, jitter: f64) -> Duration {
        match run {
            Err(PollError::Throttled { .. }) => {
                self.throttled = self.throttled.saturating_add(1);
                backoff(self.throttled, jitter)
            }
            _ => {
                self.throttled = 0;
                self.interval
            }
        }
    }
}

/// Logs and counts a finished run, and returns the pause before the next one.
pub(crate) fn finish_run(
    poller: &'static str,
    schedule: &mut Schedule,
    run: &Result<PollReport, PollError>,
) -> Duration {
    let result = match run {
        Ok(_) => "ok",
        Err(e) => e.result_label(),
    };
    metrics::counter!("opsdesk_poller_runs_total", "poller" => poller, "result" => result)
        .increment(1);
    let delay = schedule.next_delay(run.as_ref().map(|_| ()), rand::random::<f64>());
    match run {
        Ok(report) => tracing::info!(
            poller,
            signals = report.signals,
            created = report.count(Effect::Created),
            resolved = report.count(Effect::Resolved),
            "poll finished"
        ),
        Err(e @ PollError::SubscriptionRequired { .. }) => {
            tracing::error!(poller, error = %e, next_in_secs = delay.as_secs(), "poll refused")
        }
        Err(e) => tracing::warn!(
            poller,
            error = %e,
            next_in_secs = delay.as_secs_f64(),
            "poll failed; trying again"
        ),
    }
    delay
}

/// A JSON object of the fields that are there: the raw payload of a signal, since the SDK's
/// types cannot be serialised.
pub(crate) fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    }
    Value::Object(m)
}

pub(crate) fn chrono_time(t: &SmithyTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

pub(crate) fn smithy_time(t: DateTime<Utc>) -> SmithyTime {
    SmithyTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}

/// Waits `delay`; false when shutdown came first.
pub(crate) async fn pause(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use opsdesk_core::{Desk, FixedClock};
    use opsdesk_store::{Db, DbOptions};

    /// A desk on a new SQLite database, with a clock the test moves.
    pub(crate) async fn desk(at: DateTime<Utc>) -> (Desk, Arc<FixedClock>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
        db.migrate().await.unwrap();
        let clock = Arc::new(FixedClock::new(at));
        (Desk::new(db, clock.clone()), clock, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled() -> PollError {
        PollError::Throttled {
            api: "AWS Health",
            message: "Rate exceeded".into(),
        }
    }

    #[test]
    fn backoff_doubles_from_one_second_to_fifteen_minutes() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(5, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(10, 1.0), Duration::from_secs(512));
        assert_eq!(backoff(11, 1.0), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX, 1.0), BACKOFF_MAX);
    }

    #[test]
    fn jitter_takes_off_at_most_half() {
        assert_eq!(backoff(3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(3));
        assert_eq!(backoff(30, 0.0), BACKOFF_MAX / 2);
        assert_eq!(backoff(3, 7.0), Duration::from_secs(4));
        assert_eq!(backoff(3, f64::NAN), Duration::from_secs(4));
    }

    #[test]
    fn throttling_backs_off_and_success_returns_to_the_interval() {
        let interval = Duration::from_secs(300);
        let mut s = Schedule::new(interval);
        let e = throttled();
        assert_eq!(s.next_delay(Err(&e), 1.0), Duration::from_secs(1));
        assert_eq!(s.next_delay(Err(&e), 1.0), Duration::from_secs(2));
        assert_eq!(s.next_delay(Err(&e), 1.0), Duration::from_secs(4));
        assert_eq!(s.next_delay(Ok(()), 1.0), interval);
        assert_eq!(s.next_delay(Err(&e), 1.0), Duration::from_secs(1));
    }

    #[test]
    fn other_errors_wait_the_interval() {
        let interval = Duration::from_secs(3600);
        let mut s = Schedule::new(interval);
        let e = throttled();
        s.next_delay(Err(&e), 1.0);
        let other = PollError::Aws {
            api: "AWS Health",
            message: "dispatch failure".into(),
        };
        assert_eq!(s.next_delay(Err(&other), 1.0), interval);
        let plan = PollError::SubscriptionRequired { api: "AWS Health" };
        assert_eq!(s.next_delay(Err(&plan), 1.0), interval);
        // The throttling streak was broken, so backoff starts again from the bottom.
        assert_eq!(s.next_delay(Err(&e), 1.0), Duration::from_secs(1));
    }

    #[test]
    fn the_plan_message_names_the_plans() {
        let e = PollError::SubscriptionRequired { api: "AWS Health" };
        assert_eq!(
            e.to_string(),
            "the AWS Health API needs a Business Support+, Enterprise or Unified Operations support plan \
             (or Business or Enterprise On-Ramp where they remain; AWS answered \
             SubscriptionRequiredException)"
        );
        assert_eq!(e.result_label(), "subscription_required");
    }
}
