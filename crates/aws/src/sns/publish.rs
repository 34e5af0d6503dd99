//! Publishing to an SNS topic, for the SNS notification channel.
//!
//! The client comes from an [`SdkConfig`], so it takes credentials, region and endpoint the
//! usual way (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SNS`, profiles, instance roles). A topic
//! is published to in its own region: the one asked for, else the one in its ARN.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::publish::PublishError as SdkPublishError;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use opsdesk_domain::channel::TopicArn;

/// Why a publish failed, and whether trying again later may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PublishError {
    /// SNS's error code, when SNS answered (`NotFound`, `Throttling`...).
    pub code: Option<String>,
    pub message: String,
    /// Throttling, SNS's own failures, timeouts and network errors: yes. A missing topic,
    /// missing permission or a refused parameter: no.
    pub retryable: bool,
}

/// Publishes to SNS topics, with one client per region.
#[derive(Debug)]
pub struct SnsPublisher {
    sdk: SdkConfig,
    clients: Mutex<HashMap<String, Client>>,
}

impl SnsPublisher {
    /// A publisher using `sdk`'s credentials, endpoint and retry settings.
    pub fn new(sdk: &SdkConfig) -> SnsPublisher {
        SnsPublisher {
            sdk: sdk.clone(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// A publisher configured from the environment, as the AWS CLI is.
    pub async fn from_env() -> SnsPublisher {
        SnsPublisher::new(&aws_config::defaults(BehaviorVersion::latest()).load().await)
    }

    fn client(&self, region: Option<&str>) -> Client {
        let key = region.unwrap_or("").to_owned();
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients
            .entry(key)
            .or_insert_with(|| {
                let mut config = aws_sdk_sns::config::Builder::from(&self.sdk);
                if let Some(region) = region {
                    config = config.region(Region::new(region.to_owned()));
                }
                Client::from_conf(config.build())
            })
            .clone()
    }

    /// Publishes `message` with `subject` to `topic_arn` and returns SNS's message id.
    ///
    /// `region` defaults to the topic's. Each attribute is sent as a `String` message
    /// attribute, for subscription filter policies; empty values are left out, as SNS
    /// refuses them.
    pub async fn publish(
        &self,
        topic_arn: &str,
        region: Option<&str>,
        subject: &str,
        message: &str,
        attributes: &[(&str, &str)],
    ) -> Result<String, PublishError> {
        let region = region.or_else(|| TopicArn::parse(topic_arn).map(|a| a.region));
        let mut request = self
            .client(region)
            .publish()
            .topic_arn(topic_arn)
            .message(message);
        if !subject.is_empty() {
            request = request.subject(subject);
        }
        for (name, value) in attributes.iter().filter(|(_, v)| !v.is_empty()) {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .map_err(|e| PublishError {
                    code: None,
                    message: format!("message attribute {name}: {e}"),
                    retryable: false,
                })?;
            request = request.message_attributes(*name, value);
        }
        let out = request.send().await.map_err(publish_error)?;
        Ok(out.message_id.unwrap_or_default())
    }
}

fn publish_error(e: SdkError<SdkPublishError>) -> PublishError {
    match &e {
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(str::to_owned);
            let status = service.raw().status().as_u16();
            // SNS's code and message say it all; the context adds the raw response.
            PublishError {
                retryable: is_retryable(code.as_deref(), status),
                message: format!(
                    "SNS publish failed: HTTP {status} {}: {}",
                    code.as_deref().unwrap_or("(no error code)"),
                    service.err().message().unwrap_or("(no message)")
                ),
                code,
            }
        }
        // The request could not be made (a bad parameter, no credentials provider): the
        // same request fails the same way.
        SdkError::ConstructionFailure(_) => PublishError {
            code: None,
            message: format!("SNS publish failed: {}", DisplayErrorContext(&e)),
            retryable: false,
        },
        // Timeouts, connection failures and unreadable responses.
        _ => PublishError {
            code: None,
            message: format!("SNS publish failed: {}", DisplayErrorContext(&e)),
            retryable: true,
        },
    }
}

/// Whether an error SNS answered with may pass if tried again later.
fn is_retryable(code: Option<&str>, status: u16) -> bool {
    const TRANSIENT: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "KMSThrottling",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
    ];
    match code {
        Some(c) if TRANSIENT.contains(&c) => true,
        _ => status >= 500 || status == 429 || status == 408,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_worth_a_retry() {
        assert!(is_retryable(Some("Throttling"), 400));
        assert!(is_retryable(Some("KMSThrottling"), 400));
        assert!(is_retryable(Some("InternalError"), 500));
        assert!(is_retryable(None, 503));
        assert!(is_retryable(Some("Unknown"), 502));
        assert!(is_retryable(None, 429));
    }

    #[test]
    fn refusals_are_not() {
        assert!(!is_retryable(Some("NotFound"), 404));
        assert!(!is_retryable(Some("AuthorizationError"), 403));
        assert!(!is_retryable(Some("InvalidParameter"), 400));
        assert!(!is_retryable(Some("InvalidParameterValue"), 400));
        assert!(!is_retryable(None, 400));
    }
}
