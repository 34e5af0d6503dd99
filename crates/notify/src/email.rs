//! The email channel: one multipart/alternative message (plain text and HTML) per
//! notification, through the SMTP server in `[notify.smtp]`.
//!
//! The `Message-ID` is made from the idempotency key ([`message_id`]), so a message sent twice
//! (a retry after a lost answer) carries the same id, and mail clients and archives can tell
//! it is a duplicate.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use opsdesk_core::Clock;
use opsdesk_domain::channel::{EmailTarget, Notification};
use opsdesk_domain::mail::{Letter, LetterKind};
use opsdesk_domain::validation::FieldError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Receipt, SendError};

/// How long one SMTP command may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text throughout: only for a relay on the same host or a trusted network.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

/// `[notify.smtp]`: the server email notifications go through.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// Default: 25 with `tls = "none"`, 587 with `starttls`, 465 with `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The sender: `opsdesk@example.com` or `opsdesk <opsdesk@example.com>`.
    pub from: String,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

impl SmtpSettings {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }

    /// The `from` address, parsed.
    pub fn sender(&self) -> Result<Mailbox, FieldError> {
        self.from.trim().parse::<Mailbox>().map_err(|e| {
            FieldError::new(
                "from",
                format!("must be an address such as `opsdesk <opsdesk@example.com>`: {e}"),
            )
        })
    }

    /// Checks the settings; the error names the bad field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let host = self.host.trim();
        if host.is_empty()
            || host.len() > 253
            || host.contains(|c: char| c.is_whitespace() || c == '/')
        {
            return Err(FieldError::new("host", "must be a host name or IP address"));
        }
        if self.port == Some(0) {
            return Err(FieldError::new("port", "must be 1 to 65535"));
        }
        self.sender()?;
        match (&self.username, &self.password) {
            (Some(u), Some(_)) if u.trim().is_empty() => {
                return Err(FieldError::new("username", "must not be empty"))
            }
            (Some(_), None) => {
                return Err(FieldError::new("password", "is needed with a username"))
            }
            (None, Some(_)) => {
                return Err(FieldError::new("username", "is needed with a password"))
            }
            _ => {}
        }
        if self.tls == SmtpTls::None && self.password.is_some() {
            return Err(FieldError::new(
                "password",
                "is refused with tls = \"none\": it would cross the network in clear text",
            ));
        }
        Ok(())
    }
}

/// Sends notifications by email.
#[derive(Clone)]
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Where requesters' replies go, when not to `from`.
    reply_to: Option<Mailbox>,
    clock: Arc<dyn Clock>,
}

impl Email {
    /// A sender for `settings`, once they are valid. Connects only when sending.
    pub fn new(settings: &SmtpSettings, clock: Arc<dyn Clock>) -> Result<Email, FieldError> {
        settings.validate()?;
        let host = settings.host.trim().to_owned();
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(&host)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(&host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(settings.port())
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let (Some(username), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
        }
        Ok(Email {
            transport: builder.build(),
            from: settings.sender()?,
            reply_to: None,
            clock,
        })
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, FieldError> {
    TlsParameters::new(host.to_owned())
        .map_err(|e| FieldError::new("host", format!("cannot set up TLS for it: {e}")))
}

impl Email {
    /// Replies to letters go to `reply_to` (the inbox opsdesk reads) instead of the sender.
    pub fn with_reply_to(mut self, reply_to: Option<Mailbox>) -> Email {
        self.reply_to = reply_to;
        self
    }

    /// Mails a letter to a ticket's requester.
    pub async fn send_letter(&self, letter: &Letter) -> Result<Receipt, SendError> {
        let message = letter_message(
            &self.from,
            self.reply_to.as_ref(),
            letter,
            self.clock.now().into(),
        )?;
        self.deliver(message).await
    }

    /// Mails `n` to `target`'s addresses and the notification's own recipients.
    pub async fn send(
        &self,
        target: &EmailTarget,
        n: &Notification,
        idempotency_key: &str,
    ) -> Result<Receipt, SendError> {
        let message = message(
            &self.from,
            target,
            n,
            idempotency_key,
            self.clock.now().into(),
        )?;
        self.deliver(message).await
    }

    async fn deliver(&self, message: Message) -> Result<Receipt, SendError> {
        let response = self.transport.send(message).await.map_err(|e| {
            let text = format!("SMTP: {e}");
            // 5xx answers and mistakes on this side stay as they are; 4xx answers, broken
            // connections, timeouts and TLS failures may pass later.
            if e.is_permanent() || e.is_client() {
                SendError::permanent(text)
            } else {
                SendError::retryable(text)
            }
        })?;
        let first_line = response.first_line().unwrap_or("").trim();
        Ok(Receipt {
            detail: format!("SMTP {} {first_line}", response.code())
                .trim_end()
                .to_owned(),
        })
    }
}

/// `<hex>.opsdesk@<sender's domain>`, the hex a digest of the idempotency key: the same key
/// gives the same id, and the id is a valid `msg-id` whatever characters the key holds.
pub fn message_id(idempotency_key: &str, from: &Mailbox) -> String {
    let digest = Sha256::digest(idempotency_key.as_bytes());
    format!(
        "<{}.opsdesk@{}>",
        hex::encode(&digest[..16]),
        from.email.domain()
    )
}

/// The message for `n` to `target`'s recipients and the notification's own.
pub fn message(
    from: &Mailbox,
    target: &EmailTarget,
    n: &Notification,
    idempotency_key: &str,
    date: SystemTime,
) -> Result<Message, SendError> {
    let mailbox = |a: &String| {
        a.parse::<Mailbox>()
            .map_err(|e| SendError::permanent(format!("`{a}` is not an email address: {e}")))
    };
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(n.subject())
        .message_id(Some(message_id(idempotency_key, from)))
        .date(date)
        .header(AUTO_GENERATED);
    for a in &target.to {
        builder = builder.to(mailbox(a)?);
    }
    // The event's own recipients (an AWS account team, say) join the channel's. They come
    // from people's records, not from the channel: one that is not an address is left out
    // rather than failing the message for everyone.
    for a in n
        .recipients
        .iter()
        .filter(|r| !target.to.iter().any(|t| t.eq_ignore_ascii_case(r)))
    {
        match a.parse::<Mailbox>() {
            Ok(m) => builder = builder.to(m),
            Err(e) => {
                tracing::warn!(recipient = %a, error = %e, "left out a recipient that is not an email address")
            }
        }
    }
    for a in &target.cc {
        builder = builder.cc(mailbox(a)?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(n.text(), n.html()))
        .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))
}

/// `Auto-Submitted` (RFC 3834): `auto-generated` for notifications, `auto-replied` for a
/// receipt; out-of-office replies stay away from both.
#[derive(Clone)]
struct AutoSubmitted(&'static str);

const AUTO_GENERATED: AutoSubmitted = AutoSubmitted("auto-generated");

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AUTO_GENERATED)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.to_owned())
    }
}

/// The message for a letter to a requester: plain text, threaded to the ticket's mail.
/// Letters written by the desk (receipt, resolution) say they are automatic; an agent's reply
/// does not, so that the requester's mail client treats it as a person's.
pub fn letter_message(
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
    letter: &Letter,
    date: SystemTime,
) -> Result<Message, SendError> {
    let to = letter.to.parse::<Mailbox>().map_err(|e| {
        SendError::permanent(format!("`{}` is not an email address: {e}", letter.to))
    })?;
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(letter.subject.clone())
        .message_id(Some(format!("<{}>", letter.message_id)))
        .date(date);
    if let Some(reply_to) = reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    if let Some(id) = &letter.in_reply_to {
        builder = builder.in_reply_to(format!("<{id}>"));
    }
    if !letter.references.is_empty() {
        let refs: Vec<String> = letter.references.iter().map(|r| format!("<{r}>")).collect();
        builder = builder.references(refs.join(" "));
    }
    builder = match letter.kind {
        LetterKind::Received => builder.header(AutoSubmitted("auto-replied")),
        LetterKind::Resolved => builder.header(AUTO_GENERATED),
        LetterKind::Replied => builder,
    };
    builder
        .body(letter.text.clone())
        .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use opsdesk_domain::channel::NotificationEvent;

    use super::*;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "smtp.example.com".into(),
            port: None,
            tls: SmtpTls::Starttls,
            username: Some("opsdesk".into()),
            password: Some("hunter2-hunter2".into()),
            from: "opsdesk <opsdesk@example.com>".into(),
        }
    }

    #[test]
    fn settings_read_from_toml_with_defaults() {
        let s: SmtpSettings =
            toml::from_str("host = \"smtp.example.com\"\nfrom = \"opsdesk@example.com\"\n")
                .unwrap();
        assert_eq!(s.tls, SmtpTls::Starttls);
        assert_eq!(s.port(), 587);
        assert_eq!(s.validate(), Ok(()));
        let s: SmtpSettings = toml::from_str(
            "host = \"smtp.example.com\"\nfrom = \"opsdesk@example.com\"\ntls = \"tls\"\n",
        )
        .unwrap();
        assert_eq!(s.port(), 465);
        let err = toml::from_str::<SmtpSettings>(
            "host = \"h\"\nfrom = \"opsdesk@example.com\"\ntls = \"ssl\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown variant `ssl`"), "{err}");
        let err = toml::from_str::<SmtpSettings>(
            "host = \"h\"\nfrom = \"opsdesk@example.com\"\npasword = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `pasword`"), "{err}");
    }

    #[test]
    fn settings_are_checked_by_field() {
        assert_eq!(settings().validate(), Ok(()));
        let field = |f: fn(&mut SmtpSettings)| {
            let mut s = settings();
            f(&mut s);
            s.validate().unwrap_err().field
        };
        assert_eq!(field(|s| s.host = " ".into()), "host");
        assert_eq!(field(|s| s.from = "not an address".into()), "from");
        assert_eq!(field(|s| s.password = None), "password");
        assert_eq!(field(|s| s.username = None), "username");
        assert_eq!(field(|s| s.tls = SmtpTls::None), "password");
        assert_eq!(field(|s| s.port = Some(0)), "port");
    }

    #[test]
    fn debug_hides_the_password() {
        let debug = format!("{:?}", settings());
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn message_id_follows_the_key() {
        let from: Mailbox = "opsdesk <opsdesk@example.com>".parse().unwrap();
        let id = message_id("outbox:42:oncall", &from);
        assert_eq!(id, message_id("outbox:42:oncall", &from));
        assert_ne!(id, message_id("outbox:43:oncall", &from));
        assert!(
            id.starts_with('<') && id.ends_with(".opsdesk@example.com>"),
            "{id}"
        );
        assert_eq!(id.len(), "<.opsdesk@example.com>".len() + 32);
    }

    #[test]
    fn message_has_both_parts_and_the_headers() {
        let n = Notification {
            event: NotificationEvent::Escalated,
            ticket_id: Some(3),
            ticket_key: Some("OPS-3".into()),
            title: "Läuft nicht <b>".into(),
            severity: Some(opsdesk_domain::Severity::Sev2),
            status: None,
            workload: None,
            environment: None,
            team: None,
            summary: "Escalated to AWS Support.".into(),
            url: None,
            at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(),
            recipients: vec![
                "tam@example.com".into(),
                "A@example.com".into(),
                "bob@".into(),
            ],
            report: None,
        };
        let from: Mailbox = "opsdesk@example.com".parse().unwrap();
        let target = EmailTarget {
            to: vec!["a@example.com".into(), "b@example.com".into()],
            cc: vec!["c@example.com".into()],
        };
        let m = message(&from, &target, &n, "k1", SystemTime::UNIX_EPOCH).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/html; charset=utf-8"),
            "{raw}"
        );
        assert!(
            raw.contains(&format!("Message-ID: {}", message_id("k1", &from))),
            "{raw}"
        );
        let rcpt: Vec<String> = m.envelope().to().iter().map(|a| a.to_string()).collect();
        // The notification's own recipients join the channel's, each once; one that is not an
        // address is left out.
        assert_eq!(
            rcpt,
            [
                "a@example.com",
                "b@example.com",
                "tam@example.com",
                "c@example.com"
            ]
        );
    }
}
