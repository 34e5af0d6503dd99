use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::SnsError;

/// The `Type` of an SNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl MessageType {
    /// The name SNS uses in `Type` and in the `x-amz-sns-message-type` header.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Notification => "Notification",
            MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

/// The `SignatureVersion` of an SNS message: which hash the RSA signature uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `"1"`: SHA1withRSA.
    Sha1,
    /// `"2"`: SHA256withRSA.
    Sha256,
}

/// An SNS message as posted to an HTTP(S) subscription, parsed but not yet verified.
///
/// Fields keep SNS's values as sent; anything SNS adds that is not listed here (for example
/// `MessageAttributes`) is ignored. Trust none of them before [`Verifier::verify`] succeeded.
///
/// [`Verifier::verify`]: super::Verifier::verify
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    pub kind: MessageType,
    pub message_id: String,
    pub topic_arn: String,
    /// Only notifications published with a subject have one.
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: DateTime<Utc>,
    pub signature_version: SignatureVersion,
    /// The decoded `Signature`.
    pub signature: Vec<u8>,
    pub signing_cert_url: String,
    /// Present in subscription and unsubscribe confirmations.
    pub subscribe_url: Option<String>,
    /// Present in notifications.
    pub unsubscribe_url: Option<String>,
    /// Present in subscription and unsubscribe confirmations.
    pub token: Option<String>,
    /// `Timestamp` exactly as sent: the signature covers the text, not the instant.
    timestamp_text: String,
}

/// The wire shape; every field optional so that a missing one is reported by name.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "MessageId")]
    message_id: Option<String>,
    #[serde(rename = "TopicArn")]
    topic_arn: Option<String>,
    #[serde(rename = "Subject")]
    subject: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "Timestamp")]
    timestamp: Option<String>,
    #[serde(rename = "SignatureVersion")]
    signature_version: Option<String>,
    #[serde(rename = "Signature")]
    signature: Option<String>,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: Option<String>,
    #[serde(rename = "SubscribeURL")]
    subscribe_url: Option<String>,
    #[serde(rename = "UnsubscribeURL")]
    unsubscribe_url: Option<String>,
    #[serde(rename = "Token")]
    token: Option<String>,
}

fn required(value: Option<String>, field: &str) -> Result<String, SnsError> {
    value.ok_or_else(|| SnsError::Malformed(format!("field {field} is missing")))
}

impl SnsMessage {
    /// Parses the body of an SNS HTTP(S) delivery.
    ///
    /// Errors are [`SnsError::Malformed`] and name the field that is missing or bad.
    pub fn parse(body: &[u8]) -> Result<SnsMessage, SnsError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let wire: Wire = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                SnsError::Malformed(format!("body is not a JSON object: {}", e.into_inner()))
            } else {
                SnsError::Malformed(format!("field {path} is bad: {}", e.into_inner()))
            }
        })?;

        let kind = match required(wire.kind, "Type")?.as_str() {
            "Notification" => MessageType::Notification,
            "SubscriptionConfirmation" => MessageType::SubscriptionConfirmation,
            "UnsubscribeConfirmation" => MessageType::UnsubscribeConfirmation,
            other => {
                return Err(SnsError::Malformed(format!(
                    "Type {other:?} is not an SNS message type"
                )))
            }
        };
        let signature_version = match required(wire.signature_version, "SignatureVersion")?.as_str()
        {
            "1" => SignatureVersion::Sha1,
            "2" => SignatureVersion::Sha256,
            other => {
                return Err(SnsError::Malformed(format!(
                    "SignatureVersion {other:?} is not 1 or 2"
                )))
            }
        };
        let timestamp_text = required(wire.timestamp, "Timestamp")?;
        let timestamp = DateTime::parse_from_rfc3339(&timestamp_text)
            .map_err(|e| {
                SnsError::Malformed(format!(
                    "Timestamp {timestamp_text:?} is not an RFC 3339 time: {e}"
                ))
            })?
            .with_timezone(&Utc);
        let signature = base64::engine::general_purpose::STANDARD
            .decode(required(wire.signature, "Signature")?)
            .map_err(|e| SnsError::Malformed(format!("Signature is not base64: {e}")))?;

        let (subscribe_url, token) = match kind {
            MessageType::Notification => (wire.subscribe_url, wire.token),
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => (
                Some(required(wire.subscribe_url, "SubscribeURL")?),
                Some(required(wire.token, "Token")?),
            ),
        };

        Ok(SnsMessage {
            kind,
            message_id: required(wire.message_id, "MessageId")?,
            topic_arn: required(wire.topic_arn, "TopicArn")?,
            subject: wire.subject,
            message: required(wire.message, "Message")?,
            timestamp,
            signature_version,
            signature,
            signing_cert_url: required(wire.signing_cert_url, "SigningCertURL")?,
            subscribe_url,
            unsubscribe_url: wire.unsubscribe_url,
            token,
            timestamp_text,
        })
    }

    /// The text SNS signs: each field as `"Key\nValue\n"`, in the order AWS documents.
    ///
    /// Notifications: `Message`, `MessageId`, `Subject` (only if present), `Timestamp`,
    /// `TopicArn`, `Type`. Confirmations: `Message`, `MessageId`, `SubscribeURL`, `Timestamp`,
    /// `Token`, `TopicArn`, `Type`.
    pub fn canonical_string(&self) -> Result<String, SnsError> {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind {
            MessageType::Notification => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.push(("Timestamp", &self.timestamp_text));
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
                let missing =
                    |field: &str| SnsError::Malformed(format!("field {field} is missing"));
                let subscribe_url = self
                    .subscribe_url
                    .as_deref()
                    .ok_or_else(|| missing("SubscribeURL"))?;
                let token = self.token.as_deref().ok_or_else(|| missing("Token"))?;
                fields.push(("SubscribeURL", subscribe_url));
                fields.push(("Timestamp", &self.timestamp_text));
                fields.push(("Token", token));
            }
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", self.kind.as_str()));

        let mut text = String::new();
        for (key, value) in fields {
            // Writing to a String cannot fail.
            let _ = write!(text, "{key}\n{value}\n");
        }
        Ok(text)
    }
}
