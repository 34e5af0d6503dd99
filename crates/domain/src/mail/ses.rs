//! Amazon SES receiving: the notification an SES receipt rule's SNS action publishes, with the
//! message inside it.

use base64::Engine as _;
use serde_json::Value;

use crate::validation::FieldError;

/// Where the message of an SES notification is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SesContent {
    /// In the notification (an SNS action, up to 150 KB).
    Inline(Vec<u8>),
    /// In an S3 object an S3 action wrote (messages up to 40 MB).
    S3 { bucket: String, key: String },
}

/// What an SES notification carries of one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesReceipt {
    /// SES's id of the message.
    pub message_id: String,
    /// The message as received, or where it is.
    pub content: SesContent,
    /// True only when SES reports that the sender passed DMARC: the `From` domain's own
    /// policy vouches for the address (SPF or DKIM alone may pass for another domain).
    pub authenticated: bool,
    /// The topic the receipt rule's SNS action published to.
    pub topic_arn: Option<String>,
    /// Why the message is not to be taken at all (SES found a virus), if so.
    pub refused: Option<String>,
}

/// Whether `v` is an SES receiving notification (`notificationType: Received`).
pub fn is_receipt(v: &Value) -> bool {
    v.get("notificationType").and_then(Value::as_str) == Some("Received")
        && v.get("receipt").is_some()
}

fn verdict<'a>(receipt: &'a Value, name: &str) -> &'a str {
    receipt
        .get(name)
        .and_then(|v| v.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Reads an SES receiving notification: of an SNS action that carried the message
/// (`content`), or of an S3 action that stored it (`receipt.action.bucketName`/`objectKey`).
pub fn receipt(v: &Value) -> Result<SesReceipt, FieldError> {
    let message_id = v
        .pointer("/mail/messageId")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty() && s.len() <= 200)
        .ok_or_else(|| FieldError::new("mail.messageId", "is missing"))?
        .to_owned();
    let receipt = v
        .get("receipt")
        .ok_or_else(|| FieldError::new("receipt", "is missing"))?;
    let action = receipt.get("action").cloned().unwrap_or(Value::Null);
    let kind = action
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let text = |name: &str| {
        action
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 1024)
            .map(str::to_owned)
    };
    let content = match (v.get("content").and_then(Value::as_str), kind) {
        (Some(content), _) => {
            SesContent::Inline(match action.get("encoding").and_then(Value::as_str) {
                Some("BASE64") => base64::engine::general_purpose::STANDARD
                    .decode(content.trim())
                    .map_err(|e| FieldError::new("content", format!("is not base64: {e}")))?,
                _ => content.as_bytes().to_vec(),
            })
        }
        (None, "S3") => SesContent::S3 {
            bucket: text("bucketName")
                .ok_or_else(|| FieldError::new("receipt.action.bucketName", "is missing"))?,
            key: text("objectKey")
                .ok_or_else(|| FieldError::new("receipt.action.objectKey", "is missing"))?,
        },
        (None, kind) => {
            return Err(FieldError::new(
                "content",
                format!(
                    "is missing: the receipt rule's action is {kind}; opsdesk reads messages an SNS action carries (up to 150 KB) or an S3 action stores"
                ),
            ));
        }
    };
    let authenticated = verdict(receipt, "dmarcVerdict") == "PASS";
    let refused = (verdict(receipt, "virusVerdict") == "FAIL")
        .then(|| "SES found a virus in the message".to_owned());
    Ok(SesReceipt {
        message_id,
        content,
        authenticated,
        topic_arn: action
            .get("topicArn")
            .and_then(Value::as_str)
            .map(str::to_owned),
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(content: Value, encoding: &str, verdicts: [&str; 4]) -> Value {
        let [spf, dkim, dmarc, virus] = verdicts;
        json!({
            "notificationType": "Received",
            "mail": {"timestamp": "2026-12-07T10:00:00.000Z", "source": "rob@example.com",
                     "messageId": "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1",
                     "destination": ["support@desk.example.com"]},
            "receipt": {"spamVerdict": {"status": "PASS"}, "virusVerdict": {"status": virus},
                        "spfVerdict": {"status": spf}, "dkimVerdict": {"status": dkim},
                        "dmarcVerdict": {"status": dmarc},
                        "action": {"type": "SNS", "topicArn": "arn:aws:sns:eu-west-1:123456789012:mail", "encoding": encoding}},
            "content": content
        })
    }

    #[test]
    fn reads_inline_content_in_either_encoding() {
        let raw = "From: rob@example.com\r\nSubject: hi\r\n\r\nbody";
        let n = notification(json!(raw), "UTF8", ["PASS", "PASS", "PASS", "PASS"]);
        assert!(is_receipt(&n));
        let r = receipt(&n).unwrap();
        assert_eq!(r.content, SesContent::Inline(raw.as_bytes().to_vec()));
        assert_eq!(r.message_id, "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1");
        assert!(r.authenticated && r.refused.is_none());
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let r = receipt(&notification(
            json!(b64),
            "BASE64",
            ["PASS", "PASS", "PASS", "PASS"],
        ))
        .unwrap();
        assert_eq!(r.content, SesContent::Inline(raw.as_bytes().to_vec()));
    }

    #[test]
    fn verdicts_decide_trust_and_viruses_refuse() {
        let v = |verdicts| receipt(&notification(json!("x"), "UTF8", verdicts)).unwrap();
        assert!(v(["PASS", "PASS", "PASS", "PASS"]).authenticated);
        assert!(!v(["PASS", "PASS", "FAIL", "PASS"]).authenticated);
        // Without a DMARC pass, SPF and DKIM may have passed for the sender's own domain
        // while `From` names another.
        assert!(!v(["PASS", "PASS", "GRAY", "PASS"]).authenticated);
        assert!(!v(["GRAY", "GRAY", "GRAY", "PASS"]).authenticated);
        assert!(!v(["PASS", "PASS", "PROCESSING_FAILED", "PASS"]).authenticated);
        assert!(v(["PASS", "PASS", "PASS", "FAIL"]).refused.is_some());
    }

    #[test]
    fn an_s3_action_names_its_object() {
        let mut n = notification(Value::Null, "UTF8", ["PASS", "PASS", "PASS", "PASS"]);
        n.as_object_mut().unwrap().remove("content");
        n["receipt"]["action"] = json!({"type": "S3", "topicArn": "arn:aws:sns:eu-west-1:123456789012:mail",
            "bucketName": "desk-mail", "objectKeyPrefix": "inbox/", "objectKey": "inbox/o3vr"});
        let r = receipt(&n).unwrap();
        assert_eq!(
            r.content,
            SesContent::S3 {
                bucket: "desk-mail".into(),
                key: "inbox/o3vr".into()
            }
        );
        assert_eq!(
            r.topic_arn.as_deref(),
            Some("arn:aws:sns:eu-west-1:123456789012:mail")
        );
        n["receipt"]["action"] = json!({"type": "S3", "bucketName": "desk-mail"});
        assert_eq!(receipt(&n).unwrap_err().field, "receipt.action.objectKey");
        n["receipt"]["action"] = json!({"type": "Lambda"});
        let e = receipt(&n).unwrap_err();
        assert_eq!(e.field, "content");
        assert!(e.message.contains("Lambda"), "{}", e.message);
        assert!(!is_receipt(&json!({"notificationType": "Bounce"})));
    }
}
