//! Notification channels: sending one notification through one channel.
//!
//! One module per channel, each behind the [`Channel`] trait: [`sns`] (an SNS topic),
//! [`webhook`] (a JSON POST: generic, Slack or Teams) and [`email`] (SMTP). [`Channels`]
//! holds them and sends a [`Notification`] where a [`ChannelSpec`] says. Every request to a
//! URL a user configured goes through [`http::HttpClient`], which refuses private
//! addresses.
//!
//! A send either delivers ([`Receipt`]) or fails with a [`SendError`] that says whether a
//! retry may help; the outbox dispatcher decides when to retry. The idempotency key is the
//! same on every attempt of one delivery: webhooks get it as `Idempotency-Key`, email as the
//! source of its `Message-ID`.
//!
//! ```toml
//! [notify]
//! allow_private_addresses = false
//!
//! [notify.smtp]
//! host = "email-smtp.eu-west-1.amazonaws.com"
//! tls = "starttls"          # none | starttls | tls; port defaults to 25 | 587 | 465
//! username = "AKIA..."
//! password = "..."
//! from = "opsdesk <opsdesk@example.com>"
//!
//! [[notify.channels]]
//! name = "ops-sns"
//! type = "sns"
//! topic_arn = "arn:aws:sns:eu-west-1:123456789012:opsdesk"
//! ```

pub mod dispatcher;
pub mod email;
pub mod http;
pub mod sns;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opsdesk_aws::sns::SnsPublisher;
use opsdesk_core::Clock;
use opsdesk_domain::channel::{ChannelKind, ChannelSpec, Notification};
use opsdesk_domain::validation::FieldError;

pub use email::{Email, SmtpSettings, SmtpTls};
pub use http::HttpClient;
pub use sns::Sns;
pub use webhook::Webhook;

/// What the receiving side answered when it took a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// e.g. `HTTP 200`, `SNS message id …`, `SMTP 250 2.0.0 Ok: queued`.
    pub detail: String,
}

/// Why a notification was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// Whether sending the same notification later may succeed.
    pub retryable: bool,
    /// How long the receiver asked to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    pub fn retryable(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }
}

/// One way of delivering a notification to a target of type `Target`.
pub trait Channel {
    type Target;

    /// Delivers `n` to `target`. `idempotency_key` is the same on every attempt of one
    /// delivery.
    fn send(
        &self,
        target: &Self::Target,
        n: &Notification,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Receipt, SendError>> + Send;
}

/// Every channel opsdesk can send through, as configured.
#[derive(Clone)]
pub struct Channels {
    webhook: Webhook,
    email: Option<Email>,
    sns: Option<Sns>,
    /// An SNS publisher built from the AWS SDK's environment when the first SNS message goes
    /// out, so that a desk without SNS channels never looks for AWS credentials or a region.
    sns_from_env: Option<Arc<tokio::sync::OnceCell<Sns>>>,
}

impl Channels {
    /// Webhooks through `http`; no email or SNS until [`Channels::with_smtp`] and
    /// [`Channels::with_sns`].
    pub fn new(http: HttpClient, clock: Arc<dyn Clock>) -> Channels {
        Channels {
            webhook: Webhook::new(http, clock),
            email: None,
            sns: None,
            sns_from_env: None,
        }
    }

    /// Email through the SMTP server in `settings`, once they are valid.
    pub fn with_smtp(
        mut self,
        settings: &SmtpSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Channels, FieldError> {
        self.email = Some(Email::new(settings, clock)?);
        Ok(self)
    }

    /// SNS topics through a publisher made from the AWS SDK's environment on first use.
    pub fn with_sns_from_env(mut self) -> Channels {
        self.sns_from_env = Some(Arc::new(tokio::sync::OnceCell::new()));
        self
    }

    /// SNS topics through `publisher`.
    pub fn with_sns(mut self, publisher: SnsPublisher) -> Channels {
        self.sns = Some(Sns::new(Arc::new(publisher)));
        self
    }

    /// Sends `n` through the channel `spec` describes.
    pub async fn send(
        &self,
        spec: &ChannelSpec,
        n: &Notification,
        idempotency_key: &str,
    ) -> Result<Receipt, SendError> {
        let result = match &spec.kind {
            ChannelKind::Webhook(target) => self.webhook.send(target, n, idempotency_key).await,
            ChannelKind::Email(target) => match &self.email {
                Some(email) => email.send(target, n, idempotency_key).await,
                None => Err(SendError::permanent(
                    "email is not configured: set [notify.smtp] to send email",
                )),
            },
            ChannelKind::Sns(target) => match (&self.sns, &self.sns_from_env) {
                (Some(sns), _) => sns.send(target, n, idempotency_key).await,
                (None, Some(cell)) => {
                    let sns = cell
                        .get_or_init(|| async {
                            Sns::new(Arc::new(SnsPublisher::from_env().await))
                        })
                        .await;
                    sns.send(target, n, idempotency_key).await
                }
                (None, None) => Err(SendError::permanent("SNS publishing is not configured")),
            },
        };
        match &result {
            Ok(receipt) => tracing::debug!(
                channel = %spec.name,
                kind = spec.kind_name(),
                event = %n.event,
                detail = %receipt.detail,
                "notification delivered"
            ),
            Err(e) => tracing::debug!(
                channel = %spec.name,
                kind = spec.kind_name(),
                event = %n.event,
                retryable = e.retryable,
                error = %e,
                "notification not delivered"
            ),
        }
        result
    }
}
