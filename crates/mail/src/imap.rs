//! Reading an IMAP inbox: IDLE where the server has it, polling otherwise. Each new message
//! is handed to the desk; once taken it is moved to `move_to` or flagged `\Seen`, never
//! deleted. A message the desk has seen before (read again after a crash, or by another
//! node) is taken once: the desk logs every Message-ID.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_imap::{Authenticator, Client, Session};
use futures::TryStreamExt;
use opsdesk_core::mail::{Arrival, MailOutcome, SenderTrust};
use opsdesk_core::Desk;
use opsdesk_domain::mail::message::MAIL_MAX_BYTES;
use opsdesk_domain::mail::{InboxPolicy, MailError};
use opsdesk_domain::validation::FieldError;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long connecting and each command may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// IDLE is renewed this often (RFC 2177 asks for less than 29 minutes).
const IDLE_RENEW: Duration = Duration::from_secs(10 * 60);
/// Messages fetched per command.
const BATCH: usize = 20;

/// How the connection to the IMAP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImapTls {
    /// Plain text throughout: only for a server on the same host or a trusted network.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 143).
    Starttls,
    /// TLS from the first byte (IMAPS, port 993).
    #[default]
    Tls,
}

/// `[[email.inboxes]]`: one mailbox opsdesk reads requests from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxSettings {
    /// Names the inbox in the mail log and in logs.
    pub name: String,
    pub host: String,
    /// Default: 993 with `tls = "tls"`, 143 otherwise.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: ImapTls,
    pub username: String,
    /// The password, or an app password.
    #[serde(default)]
    pub password: Option<String>,
    /// An OAuth 2.0 access token (XOAUTH2: Microsoft 365, Google Workspace).
    #[serde(default)]
    pub oauth_token: Option<String>,
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Where taken messages go; without it they stay and are flagged `\Seen` (then only
    /// unseen messages are read, so keep the inbox for opsdesk).
    #[serde(default)]
    pub move_to: Option<String>,
    /// Whether a sender opsdesk does not know becomes a requester (otherwise their message is
    /// held for an agent).
    #[serde(default)]
    pub create_requesters: bool,
    /// Larger messages are refused (logged, not fetched).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// How often to look when the server has no IDLE (or `idle = false`).
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: u64,
    #[serde(default = "default_true")]
    pub idle: bool,
    /// The name the receiving mail server writes in `Authentication-Results` (its authserv-id,
    /// e.g. `mx.example.com`). Set, a message may speak for a person opsdesk knows only when
    /// that server's header says DMARC passed; otherwise it is held. Not set, the mailbox's
    /// server is trusted to have refused forged mail.
    #[serde(default)]
    pub authserv_id: Option<String>,
}

fn default_folder() -> String {
    "INBOX".into()
}
fn default_max_bytes() -> usize {
    MAIL_MAX_BYTES
}
fn default_poll_seconds() -> u64 {
    60
}
fn default_true() -> bool {
    true
}

impl fmt::Debug for InboxSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxSettings")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "oauth_token",
                &self.oauth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("folder", &self.folder)
            .field("move_to", &self.move_to)
            .field("create_requesters", &self.create_requesters)
            .field("max_bytes", &self.max_bytes)
            .field("poll_seconds", &self.poll_seconds)
            .field("idle", &self.idle)
            .field("authserv_id", &self.authserv_id)
            .finish()
    }
}

impl InboxSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            ImapTls::Tls => 993,
            _ => 143,
        })
    }

    /// Checks the settings; the error names the bad field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            return Err(FieldError::new(
                "name",
                "must be 1 to 64 letters, digits, `-`, `_` or `.`",
            ));
        }
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
        if self.username.trim().is_empty() {
            return Err(FieldError::new("username", "must not be empty"));
        }
        match (&self.password, &self.oauth_token) {
            (None, None) => {
                return Err(FieldError::new(
                    "password",
                    "a password or an oauth_token is needed",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "oauth_token",
                    "give a password or an oauth_token, not both",
                ))
            }
            _ => {}
        }
        if self.tls == ImapTls::None && !is_local(host) {
            let field = if self.oauth_token.is_some() {
                "oauth_token"
            } else {
                "password"
            };
            return Err(FieldError::new(
                field,
                "is refused with tls = \"none\" to another host: it would cross the network in clear text",
            ));
        }
        if let Some(id) = &self.authserv_id {
            if id.trim().is_empty()
                || id.len() > 253
                || id.contains(|c: char| c.is_whitespace() || c == ';')
            {
                return Err(FieldError::new(
                    "authserv_id",
                    "must be a host name such as mx.example.com",
                ));
            }
        }
        for (field, folder) in [
            ("folder", Some(&self.folder)),
            ("move_to", self.move_to.as_ref()),
        ] {
            if let Some(f) = folder {
                if f.trim().is_empty()
                    || f.len() > 200
                    || f.chars().any(|c| c.is_control() || c == '"' || c == '\\')
                {
                    return Err(FieldError::new(
                        field,
                        "must be a folder name without quotes, backslashes or control characters",
                    ));
                }
            }
        }
        if self.move_to.as_deref() == Some(self.folder.as_str()) {
            return Err(FieldError::new("move_to", "must differ from folder"));
        }
        if self.max_bytes < 1024 || self.max_bytes > 100 * 1024 * 1024 {
            return Err(FieldError::new("max_bytes", "must be 1 KiB to 100 MiB"));
        }
        if self.poll_seconds == 0 || self.poll_seconds > 3600 {
            return Err(FieldError::new("poll_seconds", "must be 1 to 3600"));
        }
        Ok(())
    }

    fn trust(&self) -> SenderTrust {
        match &self.authserv_id {
            Some(id) => SenderTrust::Header(id.trim().to_owned()),
            None => SenderTrust::Mailbox,
        }
    }

    fn policy(&self) -> InboxPolicy {
        InboxPolicy {
            create_requesters: self.create_requesters,
        }
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why reading an inbox failed (it is tried again after a while).
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, String),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("no answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the desk could not take a message: {0}")]
    Desk(#[from] opsdesk_core::Error),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Stream for T {}
type Conn = Box<dyn Stream>;

async fn timed<T, E: Into<InboxError>>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, InboxError> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(InboxError::Timeout),
    }
}

struct XOAuth2<'a> {
    user: &'a str,
    token: &'a str,
}

impl Authenticator for XOAuth2<'_> {
    type Response = String;

    fn process(&mut self, _: &[u8]) -> String {
        format!("user={}\x01auth=Bearer {}\x01\x01", self.user, self.token)
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn tls(host: &str, plain: Conn) -> Result<Conn, InboxError> {
    let err = |e: String| InboxError::Tls(host.to_owned(), e);
    let connector = tls_connector().map_err(err)?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| err(e.to_string()))?;
    let stream = timed(async {
        connector
            .connect(name, plain)
            .await
            .map_err(|e| err(e.to_string()))
    })
    .await?;
    Ok(Box::new(stream))
}

async fn greeting(client: &mut Client<Conn>) -> Result<(), InboxError> {
    match timed(async {
        client
            .read_response()
            .await
            .map_err(|e| InboxError::Imap(e.into()))
    })
    .await?
    {
        Some(_) => Ok(()),
        None => Err(InboxError::Closed),
    }
}

/// Connects and signs in.
async fn connect(inbox: &InboxSettings) -> Result<Session<Conn>, InboxError> {
    let host = inbox.host.trim();
    let address = format!("{host}:{}", inbox.port());
    let tcp = timed(async {
        TcpStream::connect(&address)
            .await
            .map_err(|e| InboxError::Connect(address.clone(), e))
    })
    .await?;
    let client = match inbox.tls {
        ImapTls::Tls => {
            let mut c = Client::new(tls(host, Box::new(tcp)).await?);
            greeting(&mut c).await?;
            c
        }
        ImapTls::None => {
            let mut c = Client::new(Box::new(tcp) as Conn);
            greeting(&mut c).await?;
            c
        }
        ImapTls::Starttls => {
            let mut c = Client::new(Box::new(tcp) as Conn);
            greeting(&mut c).await?;
            timed(c.run_command_and_check_ok("STARTTLS", None)).await?;
            // The plain stream goes back out of the client and is wrapped; nothing else was
            // read after the server's OK.
            Client::new(tls(host, c.into_inner()).await?)
        }
    };
    let session = match &inbox.oauth_token {
        Some(token) => {
            let auth = XOAuth2 {
                user: &inbox.username,
                token,
            };
            timed(async {
                client
                    .authenticate("XOAUTH2", auth)
                    .await
                    .map_err(|(e, _)| e)
            })
            .await?
        }
        None => {
            let password = inbox.password.as_deref().unwrap_or_default();
            timed(async {
                client
                    .login(&inbox.username, password)
                    .await
                    .map_err(|(e, _)| e)
            })
            .await?
        }
    };
    Ok(session)
}

/// Reads `inbox` until `stop` is cancelled, reconnecting after failures.
pub async fn run(desk: Desk, inbox: InboxSettings, stop: CancellationToken) {
    const FIRST_WAIT: Duration = Duration::from_secs(5);
    let mut wait = FIRST_WAIT;
    while !stop.is_cancelled() {
        let started = std::time::Instant::now();
        match watch(&desk, &inbox, &stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(inbox = %inbox.name, error = %e, "reading the inbox failed; trying again");
                metrics::counter!("opsdesk_inbox_errors_total").increment(1);
            }
        }
        // A connection that worked for a while starts the backoff over.
        if started.elapsed() > Duration::from_secs(300) {
            wait = FIRST_WAIT;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(300));
    }
}

/// Takes what is in the inbox once and returns how many messages it handed over: for the CLI
/// and for tests.
pub async fn take_once(desk: &Desk, inbox: &InboxSettings) -> Result<usize, InboxError> {
    let mut session = connect(inbox).await?;
    let mailbox = open(inbox, &mut session).await?;
    let (taken, _) = take_new(desk, inbox, &mut session, mailbox.uid_validity.unwrap_or(0)).await?;
    let _ = timed(session.logout()).await;
    Ok(taken)
}

async fn watch(
    desk: &Desk,
    inbox: &InboxSettings,
    stop: &CancellationToken,
) -> Result<(), InboxError> {
    let mut session = connect(inbox).await?;
    let mailbox = open(inbox, &mut session).await?;
    let validity = mailbox.uid_validity.unwrap_or(0);
    let idle = inbox.idle && timed(session.capabilities()).await?.has_str("IDLE");
    tracing::info!(inbox = %inbox.name, folder = %inbox.folder, idle, "reading the inbox");
    loop {
        let (_, marked) = take_new(desk, inbox, &mut session, validity).await?;
        if stop.is_cancelled() {
            let _ = timed(session.logout()).await;
            return Ok(());
        }
        // IDLE tells of mail that comes after it starts: mail that came while the last
        // messages were taken is looked for first.
        let mut arrived = false;
        while let Ok(r) = session.unsolicited_responses.try_recv() {
            arrived |= matches!(
                r,
                async_imap::types::UnsolicitedResponse::Exists(_)
                    | async_imap::types::UnsolicitedResponse::Recent(_)
            );
        }
        if marked > 0 || arrived {
            continue;
        }
        if idle {
            let mut handle = session.idle();
            timed(handle.init()).await?;
            // A message that came just as IDLE began may not be told of: IDLE is also left
            // every `poll_seconds` to look.
            let renew = Duration::from_secs(inbox.poll_seconds).min(IDLE_RENEW);
            let (wait, interrupt) = handle.wait_with_timeout(renew);
            let stopped = tokio::select! {
                r = wait => { r?; false }
                _ = stop.cancelled() => true,
            };
            drop(interrupt);
            session = timed(handle.done()).await?;
            if stopped {
                let _ = timed(session.logout()).await;
                return Ok(());
            }
        } else {
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = timed(session.logout()).await;
                    return Ok(());
                }
                _ = tokio::time::sleep(Duration::from_secs(inbox.poll_seconds)) => {}
            }
        }
    }
}

/// Selects the inbox's folder, making the `move_to` folder first when it is not there.
async fn open(
    inbox: &InboxSettings,
    session: &mut Session<Conn>,
) -> Result<async_imap::types::Mailbox, InboxError> {
    if let Some(folder) = &inbox.move_to {
        let listed: Vec<_> = timed(async {
            session
                .list(None, Some(folder.as_str()))
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        if listed.is_empty() {
            timed(session.create(folder)).await?;
        }
    }
    timed(session.select(&inbox.folder)).await
}

/// Hands every new message to the desk and marks each one taken; how many the desk took (not
/// seen before), and how many were marked.
async fn take_new(
    desk: &Desk,
    inbox: &InboxSettings,
    session: &mut Session<Conn>,
    validity: u32,
) -> Result<(usize, usize), InboxError> {
    let query = if inbox.move_to.is_some() {
        "ALL"
    } else {
        "UNSEEN"
    };
    let mut uids: Vec<u32> = timed(session.uid_search(query))
        .await?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let mut taken = 0;
    let mut marked = 0;
    for chunk in uids.chunks(BATCH) {
        let set = chunk
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sizes: Vec<(u32, usize)> = timed(async {
            let fetches: Vec<_> = session
                .uid_fetch(&set, "(UID RFC822.SIZE)")
                .await?
                .try_collect()
                .await?;
            Ok::<_, async_imap::error::Error>(
                fetches
                    .iter()
                    .filter_map(|f| Some((f.uid?, f.size.map(|s| s as usize).unwrap_or(0))))
                    .collect(),
            )
        })
        .await?;
        for (uid, size) in sizes {
            let source_id = format!("imap-{validity}-{uid}");
            let outcome = if size > inbox.max_bytes {
                desk.refuse_mail(
                    &inbox.name,
                    &source_id,
                    MailError::TooLarge {
                        size,
                        limit: inbox.max_bytes,
                    },
                )
                .await?
            } else {
                let raw = timed(async {
                    let fetches: Vec<_> = session
                        .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                        .await?
                        .try_collect()
                        .await?;
                    Ok::<_, async_imap::error::Error>(
                        fetches.iter().find_map(|f| f.body().map(<[u8]>::to_vec)),
                    )
                })
                .await?;
                let Some(raw) = raw else {
                    // Expunged meanwhile by someone else.
                    continue;
                };
                let taken = desk
                    .take_mail(Arrival {
                        source: inbox.name.clone(),
                        source_id,
                        raw,
                        trust: inbox.trust(),
                        policy: inbox.policy(),
                        max_bytes: inbox.max_bytes,
                    })
                    .await;
                match taken {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        // Left in the inbox to be tried again; the messages after it go on.
                        tracing::warn!(inbox = %inbox.name, uid, error = %e, "a message could not be taken; it stays in the inbox");
                        continue;
                    }
                }
            };
            if outcome != MailOutcome::Seen {
                taken += 1;
            }
            mark_taken(inbox, session, uid).await?;
            marked += 1;
        }
    }
    Ok((taken, marked))
}

async fn mark_taken(
    inbox: &InboxSettings,
    session: &mut Session<Conn>,
    uid: u32,
) -> Result<(), InboxError> {
    match &inbox.move_to {
        Some(folder) => timed(session.uid_mv(uid.to_string(), folder)).await,
        None => {
            timed(async {
                let _: Vec<_> = session
                    .uid_store(uid.to_string(), "+FLAGS (\\Seen)")
                    .await?
                    .try_collect()
                    .await?;
                Ok::<_, async_imap::error::Error>(())
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox() -> InboxSettings {
        toml::from_str(
            "name = \"support\"\nhost = \"imap.example.com\"\nusername = \"support@example.com\"\npassword = \"app-password\"\n",
        )
        .unwrap()
    }

    #[test]
    fn settings_have_defaults_and_are_checked_by_field() {
        let i = inbox();
        assert_eq!(i.port(), 993);
        assert_eq!(i.folder, "INBOX");
        assert!(i.idle);
        assert_eq!(i.validate(), Ok(()));
        let field = |f: fn(&mut InboxSettings)| {
            let mut i = inbox();
            f(&mut i);
            i.validate().unwrap_err().field
        };
        assert_eq!(field(|i| i.name = "a b".into()), "name");
        assert_eq!(field(|i| i.password = None), "password");
        assert_eq!(field(|i| i.oauth_token = Some("t".into())), "oauth_token");
        assert_eq!(field(|i| i.tls = ImapTls::None), "password");
        assert_eq!(
            field(|i| {
                i.tls = ImapTls::None;
                i.password = None;
                i.oauth_token = Some("t".into());
            }),
            "oauth_token"
        );
        assert_eq!(
            field(|i| i.authserv_id = Some("mx example".into())),
            "authserv_id"
        );
        assert_eq!(field(|i| i.move_to = Some("INBOX".into())), "move_to");
        assert_eq!(field(|i| i.folder = "a\"b".into()), "folder");
        assert_eq!(field(|i| i.poll_seconds = 0), "poll_seconds");
        let mut local = inbox();
        local.host = "127.0.0.1".into();
        local.tls = ImapTls::None;
        assert_eq!(local.validate(), Ok(()));
        let err = toml::from_str::<InboxSettings>(
            "name = \"a\"\nhost = \"h\"\nusername = \"u\"\npasword = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `pasword`"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let mut i = inbox();
        i.oauth_token = Some("ya29.secret-token".into());
        let shown = format!("{i:?}");
        assert!(
            !shown.contains("app-password") && !shown.contains("secret-token"),
            "{shown}"
        );
    }
}
