//! The SQS consumer: long-polls a queue that EventBridge rules or SNS topics feed, ingests each
//! batch in one transaction and only then deletes its messages.
//!
//! A message is deleted only after what it carried is committed, so a crash or a database
//! outage means redelivery, which ingest recognises by receipt key. A message opsdesk cannot
//! read is left alone: after `maxReceiveCount` receives the queue's redrive policy moves it to
//! the dead-letter queue, where an operator can look at it.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use chrono::{DateTime, Utc};
use opsdesk_core::signals::{Effect, Outcome};
use opsdesk_core::{Actor, Desk};
use opsdesk_domain::validation::FieldError;
use opsdesk_domain::{Role, Signal};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::poll::{backoff, pause};

/// Caps the backoff at 2^6 s (about a minute): a queue should drain soon after SQS or the
/// database is back.
const MAX_DOUBLINGS: u32 = 7;

/// `[[ingest.sqs]]`: one SQS queue to consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// The queue's URL, e.g. `https://sqs.eu-west-1.amazonaws.com/123456789012/opsdesk`. Give
    /// it a redrive policy to a dead-letter queue: messages opsdesk cannot read stay on the
    /// queue until that policy moves them.
    pub queue_url: String,
    /// The queue's region. Default: the SDK's (`AWS_REGION`, the profile), else the region in
    /// `queue_url`.
    #[serde(default)]
    pub region: Option<String>,
    /// The SQS endpoint, for tests and VPC endpoints. Default: the SDK's (`AWS_ENDPOINT_URL`,
    /// else the region's public endpoint).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Messages per receive, 1 to 10; all of them are ingested in one transaction.
    #[serde(default = "default_max_messages")]
    pub max_messages: i32,
    /// Long-poll wait in seconds, 0 to 20.
    #[serde(default = "default_wait_seconds")]
    pub wait_seconds: i32,
    /// Workers receiving from the queue at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_max_messages() -> i32 {
    10
}

fn default_wait_seconds() -> i32 {
    20
}

fn default_concurrency() -> usize {
    1
}

impl SqsConfig {
    /// A queue with the default settings.
    pub fn new(queue_url: impl Into<String>) -> SqsConfig {
        SqsConfig {
            queue_url: queue_url.into(),
            region: None,
            endpoint_url: None,
            max_messages: default_max_messages(),
            wait_seconds: default_wait_seconds(),
            concurrency: default_concurrency(),
        }
    }

    /// Checks the settings; the error names the bad field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !is_http_url(&self.queue_url) || queue_name(&self.queue_url).is_empty() {
            return Err(FieldError::new(
                "queue_url",
                "must be an http(s) URL ending in the queue name",
            ));
        }
        if self.region.as_deref().is_some_and(str::is_empty) {
            return Err(FieldError::new("region", "must not be empty"));
        }
        if self
            .endpoint_url
            .as_deref()
            .is_some_and(|u| !is_http_url(u))
        {
            return Err(FieldError::new("endpoint_url", "must be an http(s) URL"));
        }
        if !(1..=10).contains(&self.max_messages) {
            return Err(FieldError::new("max_messages", "must be 1 to 10"));
        }
        if !(0..=20).contains(&self.wait_seconds) {
            return Err(FieldError::new("wait_seconds", "must be 0 to 20"));
        }
        if self.concurrency == 0 {
            return Err(FieldError::new("concurrency", "must be at least 1"));
        }
        Ok(())
    }

    /// The last segment of the queue URL.
    pub fn queue_name(&self) -> &str {
        queue_name(&self.queue_url)
    }
}

fn is_http_url(s: &str) -> bool {
    s.strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
}

fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// The region in an AWS queue URL (`https://sqs.<region>.amazonaws.com/...`).
fn region_in_url(url: &str) -> Option<&str> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let mut parts = host.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("sqs"), Some(region), Some("amazonaws")) => Some(region),
        _ => None,
    }
}

/// Why one batch failed; the worker backs off and tries again.
#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    #[error("cannot receive from SQS: {0}")]
    Receive(String),
    /// Nothing was deleted, so the batch comes back after its visibility timeout.
    #[error("cannot store the batch: {0}")]
    Ingest(#[from] opsdesk_core::Error),
    /// Stored, but not deleted: the messages come back and are recognised as duplicates.
    #[error("cannot delete the batch from SQS: {0}")]
    Delete(String),
}

/// Why a message is left for the dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The `reason` label of `opsdesk_ingest_refused_total`, as the HTTP inputs name it.
    pub reason: &'static str,
    pub detail: String,
}

/// The signals a message body carries, or why it carries none opsdesk reads.
pub fn read_body(body: Option<&str>, received_at: DateTime<Utc>) -> Result<Vec<Signal>, Refusal> {
    let json: Value = serde_json::from_str(body.unwrap_or("")).map_err(|e| Refusal {
        reason: "malformed",
        detail: format!("the body is not JSON: {e}"),
    })?;
    opsdesk_domain::signal::from_payload(&json, received_at).map_err(|e| Refusal {
        reason: "invalid",
        detail: e.to_string(),
    })
}

/// What the workers share.
struct Consumer {
    client: Client,
    desk: Desk,
    actor: Actor,
    queue_url: String,
    queue: String,
    max_messages: i32,
    wait_seconds: i32,
}

/// Consumes the queue with `config.concurrency` workers until `shutdown`.
pub async fn run(desk: Desk, config: SqsConfig, shutdown: CancellationToken) {
    if let Err(e) = config.validate() {
        tracing::error!(queue_url = %config.queue_url, error = %e, "SQS consumer not started");
        return;
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    let mut sqs = aws_sdk_sqs::config::Builder::from(&sdk);
    if sdk.region().is_none() {
        sqs = sqs.region(region_in_url(&config.queue_url).map(|r| Region::new(r.to_owned())));
    }
    let queue = config.queue_name().to_owned();
    let consumer = Arc::new(Consumer {
        client: Client::from_conf(sqs.build()),
        desk,
        actor: Actor::new(format!("sqs:{queue}"), Role::Ingest),
        queue_url: config.queue_url.clone(),
        queue,
        max_messages: config.max_messages,
        wait_seconds: config.wait_seconds,
    });
    tracing::info!(
        queue = %consumer.queue,
        concurrency = config.concurrency,
        "consuming SQS queue"
    );
    let mut workers = JoinSet::new();
    for _ in 0..config.concurrency {
        workers.spawn(consumer.clone().work(shutdown.clone()));
    }
    while workers.join_next().await.is_some() {}
}

impl Consumer {
    /// Receives and ingests batches until `shutdown`. Stopping at any point is safe: what was
    /// not deleted comes back, and what was already committed comes back as a duplicate.
    async fn work(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return,
                batch = self.batch() => batch,
            };
            let Err(e) = batch else {
                failures = 0;
                continue;
            };
            failures = failures.saturating_add(1);
            let delay = backoff(failures.min(MAX_DOUBLINGS), rand::random::<f64>());
            tracing::warn!(
                queue = %self.queue,
                error = %e,
                next_in_secs = delay.as_secs_f64(),
                "SQS batch failed; trying again"
            );
            if !pause(delay, &shutdown).await {
                return;
            }
        }
    }

    /// One long poll: ingests what it received in one transaction, then deletes it.
    async fn batch(&self) -> Result<(), SqsError> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.max_messages)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| SqsError::Receive(DisplayErrorContext(&e).to_string()))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(());
        }
        let now = self.desk.now();
        let mut signals = Vec::new();
        // The readable messages, with how many signals each carried.
        let mut readable: Vec<(&Message, usize)> = Vec::new();
        // Mail an SES receipt rule published to a topic this queue is subscribed to.
        let mut mail: Vec<&Message> = Vec::new();
        for m in &messages {
            if let Some((topic, inner)) = m.body().and_then(crate::ses::in_envelope) {
                match crate::ses::take(&self.desk, &topic, &inner).await {
                    Ok(outcome) => {
                        tracing::debug!(queue = %self.queue, outcome = outcome.as_str(), "SES mail taken");
                        mail.push(m);
                    }
                    Err(crate::ses::SesError::Refused { field, message }) => self.refuse(
                        m,
                        &Refusal {
                            reason: "invalid",
                            detail: format!("{field}: {message}"),
                        },
                    ),
                    // Left on the queue: it comes back after its visibility timeout.
                    Err(e) => tracing::warn!(
                        queue = %self.queue,
                        message_id = m.message_id().unwrap_or("?"),
                        error = %e,
                        "SES mail not taken now; it comes back"
                    ),
                }
                continue;
            }
            match read_body(m.body(), now) {
                Ok(s) => {
                    readable.push((m, s.len()));
                    signals.extend(s);
                }
                Err(refusal) => self.refuse(m, &refusal),
            }
        }
        if !mail.is_empty() {
            self.count(mail.len(), "mail");
            self.delete(mail.into_iter()).await?;
        }
        if readable.is_empty() {
            return Ok(());
        }
        let outcomes = match self.desk.ingest(&self.actor, signals).await {
            Ok(o) => o,
            Err(e) => {
                self.count(readable.len(), "failed");
                return Err(e.into());
            }
        };
        let mut outcomes = outcomes.iter();
        for (_, n) in &readable {
            let mine: Vec<&Outcome> = outcomes.by_ref().take(*n).collect();
            let all_repeated = mine.iter().all(|o| o.effect == Effect::Duplicate);
            self.count(
                1,
                if all_repeated {
                    "duplicate"
                } else {
                    "ingested"
                },
            );
        }
        self.delete(readable.iter().map(|(m, _)| *m)).await
    }

    /// Logs and counts a message that stays on the queue for its redrive policy.
    fn refuse(&self, m: &Message, refusal: &Refusal) {
        let receives = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .map(String::as_str)
            .unwrap_or("?");
        tracing::warn!(
            queue = %self.queue,
            message_id = m.message_id().unwrap_or("?"),
            receives,
            reason = refusal.reason,
            error = %refusal.detail,
            "SQS message refused; left for the dead-letter queue"
        );
        metrics::counter!(
            "opsdesk_ingest_refused_total",
            "input" => "sqs",
            "reason" => refusal.reason
        )
        .increment(1);
        self.count(1, "refused");
    }

    fn count(&self, n: usize, result: &'static str) {
        metrics::counter!(
            "opsdesk_sqs_messages_total",
            "queue" => self.queue.clone(),
            "result" => result
        )
        .increment(n as u64);
    }

    async fn delete(&self, messages: impl Iterator<Item = &Message>) -> Result<(), SqsError> {
        let mut entries = Vec::new();
        for (i, m) in messages.enumerate() {
            let Some(handle) = m.receipt_handle() else {
                continue;
            };
            let entry = DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .map_err(|e| SqsError::Delete(e.to_string()))?;
            entries.push(entry);
        }
        if entries.is_empty() {
            return Ok(());
        }
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| SqsError::Delete(DisplayErrorContext(&e).to_string()))?;
        for failed in out.failed() {
            tracing::warn!(
                queue = %self.queue,
                entry = failed.id(),
                code = failed.code(),
                error = failed.message().unwrap_or(""),
                "SQS message stored but not deleted; it will come back as a duplicate"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const URL: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/opsdesk-events";

    #[test]
    fn defaults_fill_what_is_left_out() {
        let c: SqsConfig = serde_json::from_value(serde_json::json!({ "queue_url": URL })).unwrap();
        assert_eq!(c, SqsConfig::new(URL));
        assert_eq!((c.max_messages, c.wait_seconds, c.concurrency), (10, 20, 1));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.queue_name(), "opsdesk-events");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r = serde_json::from_value::<SqsConfig>(
            serde_json::json!({ "queue_url": URL, "max_message": 5 }),
        );
        assert!(r.unwrap_err().to_string().contains("max_message"));
    }

    #[test]
    fn validate_names_the_bad_field() {
        let field = |f: fn(&mut SqsConfig)| {
            let mut c = SqsConfig::new(URL);
            f(&mut c);
            c.validate().unwrap_err().field
        };
        assert_eq!(field(|c| c.queue_url = "opsdesk".into()), "queue_url");
        assert_eq!(field(|c| c.queue_url = "https://".into()), "queue_url");
        assert_eq!(field(|c| c.region = Some(String::new())), "region");
        assert_eq!(
            field(|c| c.endpoint_url = Some("localhost".into())),
            "endpoint_url"
        );
        assert_eq!(field(|c| c.max_messages = 0), "max_messages");
        assert_eq!(field(|c| c.max_messages = 11), "max_messages");
        assert_eq!(field(|c| c.wait_seconds = -1), "wait_seconds");
        assert_eq!(field(|c| c.wait_seconds = 21), "wait_seconds");
        assert_eq!(field(|c| c.concurrency = 0), "concurrency");
    }

    #[tokio::test]
    async fn shutdown_ends_a_long_poll_at_once() {
        // The SDK's standard chain finds these; the endpoint below never checks them.
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        let (desk, _, _dir) = crate::poll::testing::desk(DateTime::UNIX_EPOCH).await;
        // An SQS endpoint that takes the receive and never answers, as a long poll does.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (polled, polling) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (_conn, _) = listener.accept().await.unwrap();
            let _ = polled.send(());
            std::future::pending::<()>().await;
        });
        let mut config = SqsConfig::new(format!("{endpoint}/123456789012/opsdesk"));
        config.endpoint_url = Some(endpoint);
        config.region = Some("us-east-1".into());
        let shutdown = CancellationToken::new();
        let consumer = tokio::spawn(run(desk, config, shutdown.clone()));
        tokio::time::timeout(Duration::from_secs(10), polling)
            .await
            .expect("the consumer polls")
            .unwrap();
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), consumer)
            .await
            .expect("the consumer stops within a second")
            .unwrap();
    }

    #[test]
    fn the_region_comes_from_an_aws_queue_url() {
        assert_eq!(region_in_url(URL), Some("eu-west-1"));
        assert_eq!(region_in_url("http://127.0.0.1:4566/000000000000/q"), None);
    }

    #[test]
    fn bodies_opsdesk_cannot_read_are_refused_with_a_reason() {
        let now = DateTime::from_timestamp(1_714_557_600, 0).unwrap();
        assert_eq!(
            read_body(Some("not json"), now).unwrap_err().reason,
            "malformed"
        );
        assert_eq!(read_body(None, now).unwrap_err().reason, "malformed");
        assert_eq!(
            read_body(Some("{\"a\":1}"), now).unwrap_err().reason,
            "invalid"
        );
        assert_eq!(read_body(Some("[]"), now).unwrap_err().reason, "invalid");
    }

    #[test]
    fn an_eventbridge_event_is_read() {
        let event = serde_json::json!({
            "version": "0",
            "id": "7bf73129-1428-4cd3-a780-95db273d1602",
            "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch",
            "account": "123456789012",
            "time": "2024-05-01T10:00:00Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-5xx"],
            "detail": {
                "alarmName": "api-5xx",
                "state": { "value": "ALARM", "reason": "Threshold Crossed",
                           "timestamp": "2024-05-01T10:00:00.000+0000" },
                "previousState": { "value": "OK", "timestamp": "2024-05-01T09:00:00.000+0000" },
                "configuration": { "description": "5xx above 1%" }
            }
        });
        let signals = read_body(Some(&event.to_string()), DateTime::UNIX_EPOCH).unwrap();
        assert_eq!(signals.len(), 1);
        assert_eq!(signals[0].source, "aws.cloudwatch");
    }
}
