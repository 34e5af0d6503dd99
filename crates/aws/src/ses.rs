//! Amazon SES receiving: the notification an SES receipt rule publishes to an SNS topic, taken
//! as mail whether SNS delivers it to opsdesk's HTTPS endpoint or to an SQS queue opsdesk
//! reads. The message is in the notification (an SNS action) or in S3 (an S3 action).

use opsdesk_core::mail::{Arrival, MailOutcome, SenderTrust};
use opsdesk_core::Desk;
use opsdesk_domain::mail::message::{MAIL_MAX_BYTES, SES_S3_MAX_BYTES};
use opsdesk_domain::mail::ses::SesContent;
use opsdesk_domain::mail::{InboxPolicy, MailError};
use serde_json::Value;

use crate::files::{read_object, ObjectError};

/// Why a notification was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SesError {
    /// It cannot be taken as it is: `field` says what is wrong. Delivering it again will not
    /// help.
    #[error("{field}: {message}")]
    Refused { field: String, message: String },
    /// The message could not be read from S3 for now: deliver it again later.
    #[error("{0}")]
    Unavailable(String),
    /// The desk failed.
    #[error(transparent)]
    Desk(#[from] opsdesk_core::Error),
}

fn refused(field: &str, message: &str) -> SesError {
    SesError::Refused {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

/// Takes the message of an SES receiving notification `inner` that came through SNS topic
/// `topic`: once, whichever node and whichever way it arrives.
pub async fn take(desk: &Desk, topic: &str, inner: &Value) -> Result<MailOutcome, SesError> {
    let settings = desk.mail_settings();
    if !settings.ses_topics.iter().any(|t| t == topic) {
        return Err(refused(
            "TopicArn",
            "SES receipts are taken only from the topics of email.ses_topics",
        ));
    }
    let r = opsdesk_domain::mail::ses::receipt(inner)
        .map_err(|e| refused(&format!("Message.{}", e.field), &e.message))?;
    if r.topic_arn.as_deref() != Some(topic) {
        return Err(refused(
            "Message.receipt.action.topicArn",
            "must be the topic the message came through",
        ));
    }
    if let Some(why) = r.refused {
        return Ok(desk
            .refuse_mail("ses", &r.message_id, MailError::Unsafe(why))
            .await?);
    }
    let mut max_bytes = MAIL_MAX_BYTES;
    let raw = match r.content {
        SesContent::Inline(raw) => raw,
        SesContent::S3 { bucket, key } => {
            let Some(s3) = settings
                .ses_s3
                .as_ref()
                .filter(|s| s.buckets.contains(&bucket))
            else {
                return Err(refused(
                    "Message.receipt.action.bucketName",
                    "SES messages are read only from the buckets of email.ses_s3",
                ));
            };
            // SES stores messages of up to 40 MB.
            max_bytes = SES_S3_MAX_BYTES;
            match read_object(
                s3.region.as_deref(),
                s3.endpoint_url.as_deref(),
                &bucket,
                &key,
                max_bytes,
            )
            .await
            {
                Ok(raw) => raw,
                Err(ObjectError::TooLarge { size, limit, .. }) => {
                    let size = usize::try_from(size).unwrap_or(usize::MAX);
                    return Ok(desk
                        .refuse_mail("ses", &r.message_id, MailError::TooLarge { size, limit })
                        .await?);
                }
                // Delivered again later: the object may not be readable yet, or S3 may be down.
                Err(e) => {
                    tracing::warn!(%bucket, %key, error = %e, "reading an SES message from S3 failed");
                    return Err(SesError::Unavailable(format!(
                        "the message could not be read from S3: {e}"
                    )));
                }
            }
        }
    };
    Ok(desk
        .take_mail(Arrival {
            source: "ses".into(),
            source_id: r.message_id,
            raw,
            trust: SenderTrust::Checked(r.authenticated),
            policy: InboxPolicy {
                create_requesters: settings.ses_create_requesters,
            },
            max_bytes,
        })
        .await?)
}

/// The topic and the SES receiving notification of an SNS envelope (as SNS delivers to an SQS
/// queue without raw delivery), if the body is one.
pub fn in_envelope(body: &str) -> Option<(String, Value)> {
    let v: Value = serde_json::from_str(body).ok()?;
    if v.get("Type")?.as_str()? != "Notification" {
        return None;
    }
    let topic = v.get("TopicArn")?.as_str()?.to_owned();
    let inner: Value = serde_json::from_str(v.get("Message")?.as_str()?).ok()?;
    opsdesk_domain::mail::ses::is_receipt(&inner).then_some((topic, inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn receipts_are_found_in_sns_envelopes_only() {
        let receipt = json!({"notificationType": "Received", "receipt": {}, "mail": {}});
        let envelope = json!({"Type": "Notification", "TopicArn": "arn:aws:sns:eu-west-1:1:mail",
            "Message": receipt.to_string()});
        let (topic, inner) = in_envelope(&envelope.to_string()).unwrap();
        assert_eq!(topic, "arn:aws:sns:eu-west-1:1:mail");
        assert_eq!(inner, receipt);
        let alarm = json!({"Type": "Notification", "TopicArn": "t",
            "Message": json!({"AlarmName": "x"}).to_string()});
        assert!(in_envelope(&alarm.to_string()).is_none());
        assert!(in_envelope("not json").is_none());
        assert!(in_envelope(&receipt.to_string()).is_none());
    }
}
