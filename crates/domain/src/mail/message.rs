//! Reading one email message as it arrived (RFC 5322 with MIME).

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};

use crate::channel::is_email;

/// The largest message taken unless an inbox says otherwise.
pub const MAIL_MAX_BYTES: usize = 10 * 1024 * 1024;
/// The largest message taken from S3, where an SES receipt rule stores messages of up to
/// 40 MB.
pub const SES_S3_MAX_BYTES: usize = 40 * 1024 * 1024;
/// The longest subject kept; a longer one is cut.
const SUBJECT_MAX: usize = 998;
/// The most text kept of a message (a comment's limit).
pub const TEXT_MAX: usize = crate::validation::COMMENT_MAX;

/// A message, read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMail {
    /// Without angle brackets. When the message has none, one made from where it came from
    /// (`fallback_id` of [`parse`]), so that it is still taken once.
    pub message_id: String,
    /// `In-Reply-To` and `References`, without angle brackets, the nearest first.
    pub replies_to: Vec<String>,
    /// The sender's address, in lower case.
    pub from: String,
    pub from_name: Option<String>,
    pub subject: String,
    /// The plain text (HTML-only messages are turned into text; no HTML is kept).
    pub text: String,
    /// Why this is an automatic message (an out-of-office answer, a bounce, a list), if it is.
    pub automatic: Option<String>,
    /// The `Authentication-Results` headers (RFC 8601), newest first.
    pub authentication_results: Vec<String>,
    /// Bytes as received.
    pub size: usize,
    /// The files the message carries, as they came (checked when they are taken).
    pub files: Vec<MailFile>,
}

/// A file a message carries.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailFile {
    /// The name the sender gave it (made safe when it is taken).
    pub name: String,
    /// The MIME part's type, e.g. `image/png`.
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for MailFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailFile")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// The most files taken from one message; more are not taken.
pub const MAIL_FILES_MAX: usize = 20;

/// Why a message cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("the message is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the message cannot be read as an email message")]
    Malformed,
    #[error("the message has no sender address")]
    NoSender,
    #[error("the sender `{0}` is not an email address")]
    BadSender(String),
    #[error("{0}")]
    Unsafe(String),
}

/// Reads `raw`, refusing more than `limit` bytes. `fallback_id` names the message when it has
/// no `Message-ID` (an IMAP inbox's UID, SES's message id).
pub fn parse(raw: &[u8], limit: usize, fallback_id: &str) -> Result<InboundMail, MailError> {
    if raw.len() > limit {
        return Err(MailError::TooLarge {
            size: raw.len(),
            limit,
        });
    }
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or(MailError::Malformed)?;
    // The sender is who the message says it is from; `Sender` only when `From` is missing.
    let addr = message
        .from()
        .or_else(|| message.sender())
        .and_then(|a| a.first())
        .ok_or(MailError::NoSender)?;
    let from = addr
        .address()
        .map(|a| a.trim().to_ascii_lowercase())
        .ok_or(MailError::NoSender)?;
    if !is_email(&from) || from.len() > crate::validation::NAME_MAX {
        return Err(MailError::BadSender(crate::channel::truncate(&from, 100)));
    }
    let from_name = addr
        .name()
        .map(crate::channel::one_line)
        .filter(|n| !n.is_empty());
    let message_id = message
        .message_id()
        .map(clean_id)
        .filter(|id| !id.is_empty())
        .map(|id| bounded_id(&id))
        .unwrap_or_else(|| bounded_id(fallback_id));
    let mut replies_to = ids(message.in_reply_to());
    for id in ids(message.references()).into_iter().rev() {
        if !replies_to.contains(&id) && replies_to.len() < 50 {
            replies_to.push(id);
        }
    }
    let authentication_results = message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Authentication-Results"))
        .map(|(_, value)| crate::channel::one_line(value))
        .take(20)
        .collect();
    let subject = crate::channel::truncate(
        &crate::channel::one_line(message.subject().unwrap_or("")),
        SUBJECT_MAX,
    );
    let text = message
        .body_text(0)
        .map(|t| desk_text(t.as_ref()))
        .unwrap_or_default();
    let automatic = automatic(&message);
    Ok(InboundMail {
        message_id,
        replies_to,
        from,
        from_name,
        subject,
        text,
        automatic,
        authentication_results,
        size: raw.len(),
        files: message
            .attachments()
            .take(MAIL_FILES_MAX)
            .map(|part| MailFile {
                name: part
                    .attachment_name()
                    .map(str::to_owned)
                    .unwrap_or_else(|| "attachment".into()),
                content_type: part.content_type().map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{sub}", ct.ctype()),
                    None => ct.ctype().to_owned(),
                }),
                bytes: part.contents().to_vec(),
            })
            .collect(),
    })
}

/// Text as the desk keeps it: line breaks as `\n`, no control characters but line breaks and
/// tabs, at most [`TEXT_MAX`] characters.
pub fn desk_text(s: &str) -> String {
    let text: String = s
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect();
    crate::channel::truncate(&text, TEXT_MAX)
}

/// The longest Message-ID kept as it is; a longer one is kept as its digest.
const ID_MAX: usize = 250;

fn bounded_id(id: &str) -> String {
    if id.len() <= ID_MAX {
        return id.to_owned();
    }
    use sha2::Digest as _;
    format!(
        "sha256-{}",
        hex::encode(sha2::Sha256::digest(id.as_bytes()))
    )
}

/// Whether the newest `Authentication-Results` header written by `authserv_id` (the receiving
/// server's name) says the sender passed DMARC. Headers from anyone else are not believed:
/// a sender can write their own.
pub fn dmarc_passed(results: &[String], authserv_id: &str) -> bool {
    results
        .iter()
        .find(|r| {
            r.split(';')
                .next()
                .and_then(|id| id.split_whitespace().next())
                .is_some_and(|id| id.eq_ignore_ascii_case(authserv_id))
        })
        .is_some_and(|r| {
            r.split(';')
                .skip(1)
                .any(|m| m.trim().to_ascii_lowercase().starts_with("dmarc=pass"))
        })
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    value
        .as_text_list()
        .unwrap_or_default()
        .iter()
        .map(|id| clean_id(id))
        .filter(|id| !id.is_empty())
        .map(|id| bounded_id(&id))
        .collect()
}

/// Why `m` is a message no person wrote to the desk: an automatic answer (RFC 3834), a
/// delivery report, bulk or list mail.
fn automatic(m: &mail_parser::Message<'_>) -> Option<String> {
    let raw = |name: &str| m.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if let Some(v) = raw("Auto-Submitted") {
        if !v.is_empty() && !v.starts_with("no") {
            return Some(format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(v) = raw("Precedence") {
        if ["bulk", "junk", "list", "auto_reply"].contains(&v.as_str()) {
            return Some(format!("Precedence: {v}"));
        }
    }
    for name in ["X-Autoreply", "X-Autorespond", "X-Autoresponder"] {
        if raw(name).is_some() {
            return Some(format!("{name} header"));
        }
    }
    if let Some(v) = raw("X-Auto-Response-Suppress") {
        if v.contains("all") || v.contains("oof") {
            return Some(format!("X-Auto-Response-Suppress: {v}"));
        }
    }
    if raw("List-Id").is_some() {
        return Some("List-Id header: mail from a list".into());
    }
    if let Some(ct) = m.content_type() {
        let sub = ct.subtype().unwrap_or("").to_ascii_lowercase();
        let kind = ct.ctype().to_ascii_lowercase();
        if (kind == "multipart" && sub == "report")
            || (kind == "message" && sub == "delivery-status")
        {
            return Some(format!("a delivery report ({kind}/{sub})"));
        }
    }
    // A null reverse path (`Return-Path: <>`) marks a bounce.
    if let Some(v) = raw("Return-Path") {
        if v.trim_matches(|c| c == '<' || c == '>' || c == ' ')
            .is_empty()
        {
            return Some("Return-Path: <> (a bounce)".into());
        }
    }
    let from = m
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_ascii_lowercase();
    let local = from.split('@').next().unwrap_or("");
    if ["mailer-daemon", "postmaster"].contains(&local) {
        return Some(format!("from {local}: a delivery report"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(headers: &str, body: &str) -> Vec<u8> {
        format!("{headers}\r\n\r\n{body}").into_bytes()
    }

    const PLAIN: &str = "From: Rob Smith <Rob@Example.com>\r\nTo: support@desk.example\r\nSubject: Re: [OPS-42] VPN down\r\nMessage-ID: <abc@mail.example.com>\r\nIn-Reply-To: <x1.opsdesk@desk.example>\r\nReferences: <root@desk.example> <x1.opsdesk@desk.example>";

    #[test]
    fn reads_sender_subject_ids_and_text() {
        let m = parse(&mail(PLAIN, "It is back.\r\nThanks"), MAIL_MAX_BYTES, "x").unwrap();
        assert_eq!(m.from, "rob@example.com");
        assert_eq!(m.from_name.as_deref(), Some("Rob Smith"));
        assert_eq!(m.subject, "Re: [OPS-42] VPN down");
        assert_eq!(m.message_id, "abc@mail.example.com");
        assert_eq!(
            m.replies_to,
            vec!["x1.opsdesk@desk.example", "root@desk.example"]
        );
        assert_eq!(m.text, "It is back.\nThanks");
        assert_eq!(m.automatic, None);
    }

    #[test]
    fn html_only_becomes_text_without_markup() {
        let raw = mail(
            "From: a@example.com\r\nSubject: hi\r\nContent-Type: text/html; charset=utf-8",
            "<p>Hello <b>there</b><script>alert(1)</script></p>",
        );
        let m = parse(&raw, MAIL_MAX_BYTES, "x").unwrap();
        assert!(m.text.contains("Hello there"), "{}", m.text);
        assert!(!m.text.contains('<'), "{}", m.text);
    }

    #[test]
    fn a_message_without_id_takes_the_fallback() {
        let m = parse(
            &mail("From: a@example.com\r\nSubject: hi", "x"),
            1000,
            "imap-1-7@ops",
        )
        .unwrap();
        assert_eq!(m.message_id, "imap-1-7@ops");
        assert!(m.replies_to.is_empty());
    }

    #[test]
    fn refuses_oversized_malformed_and_senderless_messages() {
        let raw = mail(PLAIN, &"x".repeat(2000));
        assert!(matches!(
            parse(&raw, 1000, "x"),
            Err(MailError::TooLarge { limit: 1000, .. })
        ));
        assert_eq!(parse(b"", 1000, "x"), Err(MailError::Malformed));
        assert_eq!(
            parse(&mail("Subject: hi", "x"), 1000, "x"),
            Err(MailError::NoSender)
        );
        assert!(matches!(
            parse(&mail("From: not an address\r\nSubject: x", "x"), 1000, "x"),
            Err(MailError::NoSender | MailError::BadSender(_))
        ));
    }

    #[test]
    fn only_the_named_server_s_dmarc_result_counts() {
        let raw = mail(
            "From: a@example.com\r\nSubject: x\r\nAuthentication-Results: mx.desk.example; spf=pass; dkim=pass; dmarc=fail header.from=example.com\r\nAuthentication-Results: forged.example; dmarc=pass",
            "x",
        );
        let m = parse(&raw, MAIL_MAX_BYTES, "x").unwrap();
        assert_eq!(m.authentication_results.len(), 2);
        assert!(!dmarc_passed(&m.authentication_results, "mx.desk.example"));
        assert!(dmarc_passed(&m.authentication_results, "forged.example"));
        assert!(!dmarc_passed(&m.authentication_results, "other.example"));
        let ok = vec!["mx.desk.example; dkim=pass header.d=example.com; dmarc=pass (p=reject) header.from=example.com".to_owned()];
        assert!(dmarc_passed(&ok, "MX.desk.example"));
    }

    #[test]
    fn long_ids_and_senders_are_bounded() {
        let long = "x".repeat(3000);
        let raw = mail(
            &format!("From: a@example.com\r\nSubject: x\r\nMessage-ID: <{long}@example.com>"),
            "x",
        );
        let m = parse(&raw, MAIL_MAX_BYTES, "x").unwrap();
        assert!(
            m.message_id.starts_with("sha256-") && m.message_id.len() < 80,
            "{}",
            m.message_id
        );
        let raw = mail(
            &format!("From: {}@example.com\r\nSubject: x", "a".repeat(64)),
            "x",
        );
        assert!(parse(&raw, MAIL_MAX_BYTES, "x").is_ok());
        let raw = mail(
            &format!(
                "From: a@{}.com\r\nSubject: x",
                vec!["b".repeat(60); 4].join(".")
            ),
            "x",
        );
        assert!(matches!(
            parse(&raw, MAIL_MAX_BYTES, "x"),
            Err(MailError::BadSender(_))
        ));
    }

    #[test]
    fn recognises_automatic_messages() {
        for header in [
            "Auto-Submitted: auto-replied",
            "Auto-Submitted: auto-generated",
            "Precedence: bulk",
            "Precedence: auto_reply",
            "X-Autoreply: yes",
            "X-Auto-Response-Suppress: All",
            "List-Id: <ops.lists.example.com>",
            "Return-Path: <>",
            "Content-Type: multipart/report; report-type=delivery-status; boundary=b",
        ] {
            let raw = mail(
                &format!("From: a@example.com\r\nSubject: x\r\n{header}"),
                "x",
            );
            let m = parse(&raw, MAIL_MAX_BYTES, "x").unwrap();
            assert!(m.automatic.is_some(), "{header} not recognised");
        }
        let raw = mail(
            "From: MAILER-DAEMON@mx.example.com\r\nSubject: Undelivered",
            "x",
        );
        assert!(parse(&raw, MAIL_MAX_BYTES, "x")
            .unwrap()
            .automatic
            .is_some());
        // A person's message says so explicitly sometimes.
        let raw = mail(
            "From: a@example.com\r\nSubject: x\r\nAuto-Submitted: no",
            "x",
        );
        assert_eq!(parse(&raw, MAIL_MAX_BYTES, "x").unwrap().automatic, None);
    }
}
