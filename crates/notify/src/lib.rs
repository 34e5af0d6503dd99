//! Sending one notification through one channel.
//!
//! A channel's type (in `opsdesk_domain::channel`, one file per type) renders the
//! notification into an [`Outgoing`]; this crate runs the transport it names: [`post`] (an
//! HTTP POST: webhooks, PagerDuty), [`email`] (SMTP) or [`sns`] (an SNS topic). [`Channels`]
//! holds the transports. Every request to a URL a user configured goes through
//! [`http::HttpClient`], which refuses private addresses.
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
pub mod post;
pub mod sns;

use std::sync::Arc;
use std::time::Duration;

use opsdesk_aws::sns::SnsPublisher;
use opsdesk_core::Clock;
use opsdesk_domain::channel::{Attempt, ChannelSpec, EmailTarget, Notification, Outgoing};
use opsdesk_domain::mail::Letter;
use opsdesk_domain::validation::FieldError;

pub use email::{Email, SmtpSettings, SmtpTls};
pub use http::HttpClient;
pub use post::Http;
pub use sns::Sns;

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

/// Every transport opsdesk can send through, as configured.
#[derive(Clone)]
pub struct Channels {
    http: Http,
    clock: Arc<dyn Clock>,
    email: Option<Email>,
    sns: Option<Sns>,
    /// An SNS publisher built from the AWS SDK's environment when the first SNS message goes
    /// out, so that a desk without SNS channels never looks for AWS credentials or a region.
    sns_from_env: Option<Arc<tokio::sync::OnceCell<Sns>>>,
}

impl Channels {
    /// HTTP POSTs through `http`; no email or SNS until [`Channels::with_smtp`] and
    /// [`Channels::with_sns`].
    pub fn new(http: HttpClient, clock: Arc<dyn Clock>) -> Channels {
        Channels {
            http: Http::new(http, clock.clone()),
            clock,
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

    /// Letters to requesters say `reply_to` (the inbox opsdesk reads) as where to answer.
    pub fn with_reply_to(mut self, reply_to: Option<lettre::message::Mailbox>) -> Channels {
        self.email = self.email.take().map(|e| e.with_reply_to(reply_to));
        self
    }

    /// Mails a letter to a ticket's requester.
    pub async fn send_letter(&self, letter: &Letter) -> Result<Receipt, SendError> {
        match &self.email {
            Some(email) => email.send_letter(letter).await,
            None => Err(SendError::permanent(
                "email is not configured: set [notify.smtp] to write to requesters",
            )),
        }
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
        let attempt = Attempt {
            idempotency_key,
            now: self.clock.now(),
        };
        let result = match spec.render(n, attempt) {
            Ok(outgoing) => self.transport(outgoing, n, idempotency_key).await,
            Err(e) => Err(SendError::permanent(e)),
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

    async fn transport(
        &self,
        outgoing: Outgoing,
        n: &Notification,
        idempotency_key: &str,
    ) -> Result<Receipt, SendError> {
        match outgoing {
            Outgoing::Post(post) => self.http.send(post).await,
            Outgoing::Email { to, cc } => match &self.email {
                Some(email) => {
                    email
                        .send(&EmailTarget { to, cc }, n, idempotency_key)
                        .await
                }
                None => Err(SendError::permanent(
                    "email is not configured: set [notify.smtp] to send email",
                )),
            },
            Outgoing::Sns(message) => match (&self.sns, &self.sns_from_env) {
                (Some(sns), _) => sns.send(message).await,
                (None, Some(cell)) => {
                    let sns = cell
                        .get_or_init(|| async {
                            Sns::new(Arc::new(SnsPublisher::from_env().await))
                        })
                        .await;
                    sns.send(message).await
                }
                (None, None) => Err(SendError::permanent("SNS publishing is not configured")),
            },
            Outgoing::Nothing(reason) => Ok(Receipt {
                detail: format!("not sent: {reason}"),
            }),
        }
    }
}
