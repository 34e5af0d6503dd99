//! The SNS transport: publishes what the SNS channel type rendered through opsdesk-aws's
//! [`SnsPublisher`].

use std::sync::Arc;

use opsdesk_aws::sns::SnsPublisher;
use opsdesk_domain::channel::spec::SnsPublish;

use crate::{Receipt, SendError};

/// Publishes to SNS topics.
#[derive(Clone)]
pub struct Sns {
    publisher: Arc<SnsPublisher>,
}

impl Sns {
    pub fn new(publisher: Arc<SnsPublisher>) -> Sns {
        Sns { publisher }
    }

    /// Publishes `message`.
    pub async fn send(&self, message: SnsPublish) -> Result<Receipt, SendError> {
        let attributes: Vec<(&str, &str)> = message
            .attributes
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let id = self
            .publisher
            .publish(
                &message.topic_arn,
                message.region.as_deref(),
                &message.subject,
                &message.message,
                &attributes,
            )
            .await
            .map_err(|e| SendError {
                message: e.message,
                retryable: e.retryable,
                retry_after: None,
            })?;
        Ok(Receipt {
            detail: format!("SNS message id {id}"),
        })
    }
}
