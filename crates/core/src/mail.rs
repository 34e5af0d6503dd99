//! Email with requesters: what a message that came in does, and the letters opsdesk writes.
//!
//! A message is logged first, under its Message-ID, in the same transaction as everything it
//! does: a second copy (another poll, another node, SNS redelivering) finds the id taken and
//! does nothing. The decision is pure ([`opsdesk_domain::mail::decide`]); this module reads the
//! facts it needs and writes its outcome. Letters to requesters go through the outbox like
//! every notification.

use chrono::{DateTime, TimeDelta, Utc};
use opsdesk_domain::audit::one_change;
use opsdesk_domain::channel::{is_email, truncate};
use opsdesk_domain::mail::thread::{ticket_in_subject, title_from_subject, trim_reply};
use opsdesk_domain::mail::{
    decide, parse, Disposition, Facts, InboundMail, InboxPolicy, KnownSender, Letter, LetterKind,
    LetterTemplate, LetterTemplates, LetterVars, MailError, ThreadTicket, REQUESTER_MAIL,
};
use opsdesk_domain::validation::{NewTicket, TITLE_MAX};
use opsdesk_domain::{Comment, Kind, LinkKind, Role, Severity, Ticket, Validated};
use opsdesk_store::{MailFilter, MailRecord, NewMailRecord, NewOutboxItem, Tx, UserRecord};
use serde_json::{json, Value};

use crate::attachments::{record_files, FileUse, StoredFile, Upload};
use crate::outbox::Routing;
use crate::{Actor, Desk, Error, Result};
use opsdesk_domain::attachment::AttachmentSource;
use opsdesk_domain::mail::message::MailFile;

/// A letter's template as it is used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MailTemplateView {
    pub kind: LetterKind,
    pub subject: String,
    pub body: String,
    /// Rewritten by an admin (otherwise the configured template, or opsdesk's own).
    pub edited: bool,
    pub updated_by: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// How opsdesk writes to requesters and takes their mail, from `[email]`.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Whether requesters get letters: a receipt, agents' public replies, the resolution.
    pub letters: bool,
    /// The domain of the Message-IDs opsdesk writes: the sender address's.
    pub domain: String,
    pub templates: LetterTemplates,
    /// A requester's reply reopens a resolved ticket within this long; later it opens a
    /// follow-up ticket.
    pub reopen_window: TimeDelta,
    /// Messages one sender may send in an hour; more are refused.
    pub hourly_limit: i64,
    /// Whether an unknown sender of a message through Amazon SES becomes a requester.
    pub ses_create_requesters: bool,
    /// The SNS topics SES receipt rules publish mail to; receipts on other topics are refused.
    pub ses_topics: Vec<String>,
    /// Where SES receipt rules' S3 actions store messages, when they do.
    pub ses_s3: Option<SesS3>,
}

/// The S3 buckets SES receipt rules store messages in (`[email.ses_s3]`): only these are read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesS3 {
    pub buckets: Vec<String>,
    /// The buckets' region; the SDK's usual chain when not set.
    #[serde(default)]
    pub region: Option<String>,
    /// Another S3 endpoint (an S3-compatible store); path-style addressing is used with it.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            letters: false,
            domain: "opsdesk.invalid".into(),
            templates: LetterTemplates::default(),
            reopen_window: TimeDelta::days(7),
            hourly_limit: 20,
            ses_create_requesters: false,
            ses_topics: Vec::new(),
            ses_s3: None,
        }
    }
}

/// One message as a source hands it over.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The inbox's name (`ses` for Amazon SES).
    pub source: String,
    /// The source's own id of the message (an IMAP UID with its UIDVALIDITY, SES's message
    /// id): the message's id when it has no Message-ID, and in the log when it cannot be read.
    pub source_id: String,
    pub raw: Vec<u8>,
    pub trust: SenderTrust,
    pub policy: InboxPolicy,
    pub max_bytes: usize,
}

/// How a source knows who sent a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderTrust {
    /// The receiving service checked and said (Amazon SES's verdicts).
    Checked(bool),
    /// The receiving server of this name writes `Authentication-Results`; only a DMARC pass
    /// in its header lets a message speak for a person opsdesk knows.
    Header(String),
    /// The mailbox's own server is trusted to have refused forged mail.
    Mailbox,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// Taken before (this message id is in the mail log).
    Seen,
    Ticket(i64),
    Comment {
        ticket_id: i64,
        comment_id: i64,
    },
    Held(String),
    Ignored(String),
    Refused(String),
}

impl MailOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            MailOutcome::Seen => "seen",
            MailOutcome::Ticket(_) => "ticket",
            MailOutcome::Comment { .. } => "comment",
            MailOutcome::Held(_) => "held",
            MailOutcome::Ignored(_) => "ignored",
            MailOutcome::Refused(_) => "refused",
        }
    }
}

fn record(mail: &InboundMail, source: &str, outcome: &str, at: DateTime<Utc>) -> NewMailRecord {
    NewMailRecord {
        message_id: mail.message_id.clone(),
        direction: "in",
        source: source.to_owned(),
        sender: mail.from.clone(),
        recipient: None,
        subject: mail.subject.clone(),
        ticket_id: None,
        comment_id: None,
        outcome: outcome.to_owned(),
        reason: None,
        body: Some(mail.text.clone()),
        at,
    }
}

impl Desk {
    pub fn with_mail_settings(mut self, settings: MailSettings) -> Desk {
        self.settings.mail = std::sync::Arc::new(settings);
        self
    }

    pub fn mail_settings(&self) -> &MailSettings {
        &self.settings.mail
    }

    /// Takes one message: logs it once and does what [`decide`] says.
    pub async fn take_mail(&self, arrival: Arrival) -> Result<MailOutcome> {
        let fallback_id = format!("{}@{}.opsdesk", arrival.source_id, arrival.source);
        let mut parsed = parse(&arrival.raw, arrival.max_bytes, &fallback_id);
        // Files are checked and stored before the message's transaction; they are recorded
        // on the ticket only if the message acts.
        let files = match &mut parsed {
            // Not for automatic mail, which does nothing, nor a message taken before.
            Ok(mail)
                if !mail.files.is_empty()
                    && mail.automatic.is_none()
                    && !self.db().mail_logged("in", &mail.message_id).await? =>
            {
                self.mail_files(std::mem::take(&mut mail.files)).await?
            }
            _ => MailFiles::default(),
        };
        let routing = self.routing().await?;
        let settings = self.settings.mail.clone();
        let source = arrival.source.clone();
        let inbox = arrival.source.clone();
        let outcome = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let mail = match parsed {
                        Ok(mail) => mail,
                        Err(e) => return refuse(tx, &source, &fallback_id, &e, now).await,
                    };
                    take(tx, &routing, &settings, &arrival, mail, &files, now).await
                })
            })
            .await?;
        metrics::counter!("opsdesk_mail_total", "outcome" => outcome.as_str()).increment(1);
        match &outcome {
            MailOutcome::Held(why) | MailOutcome::Ignored(why) | MailOutcome::Refused(why) => {
                tracing::info!(%inbox, outcome = outcome.as_str(), reason = %why, "mail not taken as a request")
            }
            _ => tracing::debug!(%inbox, outcome = outcome.as_str(), "mail taken"),
        }
        Ok(outcome)
    }

    /// Logs a message its source would not hand over (too large to fetch, say) as refused,
    /// once.
    pub async fn refuse_mail(
        &self,
        source: &str,
        source_id: &str,
        why: MailError,
    ) -> Result<MailOutcome> {
        let fallback_id = format!("{source_id}@{source}.opsdesk");
        let source = source.to_owned();
        let outcome = self
            .change(move |tx, now| {
                Box::pin(async move { refuse(tx, &source, &fallback_id, &why, now).await })
            })
            .await?;
        metrics::counter!("opsdesk_mail_total", "outcome" => outcome.as_str()).increment(1);
        if let MailOutcome::Refused(why) = &outcome {
            tracing::info!(outcome = "refused", reason = %why, "mail not taken as a request");
        }
        Ok(outcome)
    }

    /// The letter settings in force when letters are on: the configured templates with those
    /// an admin rewrote in their place.
    pub(crate) async fn letter_settings(&self) -> Result<Option<std::sync::Arc<MailSettings>>> {
        if !self.settings.mail.letters {
            return Ok(None);
        }
        let stored = self.db().mail_templates().await?;
        if stored.is_empty() {
            return Ok(Some(self.settings.mail.clone()));
        }
        let mut settings = (*self.settings.mail).clone();
        for t in stored {
            if let Some(kind) = LetterKind::parse(&t.kind) {
                settings.templates.set(
                    kind,
                    LetterTemplate {
                        subject: t.subject,
                        body: t.body,
                    },
                );
            }
        }
        Ok(Some(std::sync::Arc::new(settings)))
    }

    /// The letters' templates as they are used: each the configured one or an admin's (admin).
    pub async fn mail_templates(&self, actor: &Actor) -> Result<Vec<MailTemplateView>> {
        actor.require_admin()?;
        let stored = self.db().mail_templates().await?;
        Ok(LetterKind::ALL
            .iter()
            .map(|&kind| {
                let edited = stored.iter().find(|t| t.kind == kind.as_str());
                let configured = self.settings.mail.templates.get(kind);
                MailTemplateView {
                    kind,
                    subject: edited.map_or(configured.subject.clone(), |t| t.subject.clone()),
                    body: edited.map_or(configured.body.clone(), |t| t.body.clone()),
                    edited: edited.is_some(),
                    updated_by: edited.map(|t| t.updated_by.clone()),
                    updated_at: edited.map(|t| t.updated_at),
                }
            })
            .collect())
    }

    /// Rewrites the template of `kind` (admin); placeholders are checked as at start.
    pub async fn set_mail_template(
        &self,
        actor: &Actor,
        kind: LetterKind,
        template: LetterTemplate,
    ) -> Result<MailTemplateView> {
        actor.require_admin()?;
        let mut check = self.settings.mail.templates.clone();
        check.set(kind, template.clone());
        check.validate()?;
        let actor_name = actor.name.clone();
        let who = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let before = tx.mail_template(kind.as_str()).await?;
                tx.save_mail_template(&opsdesk_store::StoredTemplate {
                    kind: kind.as_str().to_owned(),
                    subject: template.subject.clone(),
                    body: template.body.clone(),
                    updated_by: actor_name,
                    updated_at: now,
                })
                .await?;
                crate::audit::record(
                    tx,
                    &who,
                    now,
                    "mail.template_changed",
                    one_change(
                        &format!("template {kind}"),
                        before.map_or(
                            Value::Null,
                            |b| json!({"subject": b.subject, "body": b.body}),
                        ),
                        json!({"subject": template.subject, "body": template.body}),
                    ),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        self.caches.routing.clear();
        self.mail_template_view(actor, kind).await
    }

    /// Goes back to the configured template of `kind` (admin).
    pub async fn reset_mail_template(
        &self,
        actor: &Actor,
        kind: LetterKind,
    ) -> Result<MailTemplateView> {
        actor.require_admin()?;
        let who = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let Some(before) = tx.mail_template(kind.as_str()).await? else {
                    return Ok(());
                };
                tx.delete_mail_template(kind.as_str()).await?;
                crate::audit::record(
                    tx,
                    &who,
                    now,
                    "mail.template_changed",
                    one_change(
                        &format!("template {kind}"),
                        json!({"subject": before.subject, "body": before.body}),
                        Value::Null,
                    ),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        self.caches.routing.clear();
        self.mail_template_view(actor, kind).await
    }

    async fn mail_template_view(
        &self,
        actor: &Actor,
        kind: LetterKind,
    ) -> Result<MailTemplateView> {
        self.mail_templates(actor)
            .await?
            .into_iter()
            .find(|t| t.kind == kind)
            .ok_or_else(|| Error::NotFound(format!("template {kind}")))
    }

    /// The mail log, newest first (staff only; requesters see their mail as comments).
    pub async fn mail_log(&self, actor: &Actor, filter: &MailFilter) -> Result<Vec<MailRecord>> {
        actor.require(opsdesk_domain::Permission::WriteTickets)?;
        Ok(self.db().mail_log(filter).await?)
    }

    /// Whether the actor gets receipts for the requests they raise.
    pub async fn mail_receipts(&self, actor: &Actor) -> Result<bool> {
        Ok(self.db().mail_receipts(actor.identity()).await?)
    }

    /// Turns the actor's receipts on or off.
    pub async fn set_mail_receipts(&self, actor: &Actor, receipts: bool) -> Result<bool> {
        let email = actor
            .user_email()
            .ok_or_else(|| Error::Forbidden("only a person gets receipts".into()))?
            .to_owned();
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                tx.set_mail_receipts(&email, receipts, now).await?;
                crate::audit::record(
                    tx,
                    &actor,
                    now,
                    "user.mail_receipts",
                    one_change("mail_receipts", Value::Null, json!(receipts)),
                )
                .await?;
                Ok(receipts)
            })
        })
        .await
    }
}

async fn refuse(
    tx: &mut Tx,
    source: &str,
    fallback_id: &str,
    e: &MailError,
    now: DateTime<Utc>,
) -> Result<MailOutcome> {
    let reason = e.to_string();
    let logged = tx
        .log_mail(&NewMailRecord {
            message_id: fallback_id.to_owned(),
            direction: "in",
            source: source.to_owned(),
            sender: String::new(),
            recipient: None,
            subject: String::new(),
            ticket_id: None,
            comment_id: None,
            outcome: "refused".into(),
            reason: Some(reason.clone()),
            body: None,
            at: now,
        })
        .await?;
    Ok(match logged {
        Some(_) => MailOutcome::Refused(reason),
        None => MailOutcome::Seen,
    })
}

/// A message's files: those stored, and why the others were not.
#[derive(Debug, Default)]
struct MailFiles {
    stored: Vec<StoredFile>,
    refused: Vec<String>,
}

impl Desk {
    /// Checks and stores a message's files. A file the desk does not take is named in the
    /// mail log; a file store that fails fails the message, which its source hands over again.
    async fn mail_files(&self, files: Vec<MailFile>) -> Result<MailFiles> {
        let mut out = MailFiles::default();
        for f in files {
            let name = opsdesk_domain::attachment::file_name(&f.name);
            let upload = Upload {
                name: name.clone(),
                declared_type: f.content_type,
                bytes: f.bytes,
            };
            match self.store_files(vec![upload]).await {
                Ok(mut stored) => out.stored.append(&mut stored),
                Err(e @ Error::Files(_)) => return Err(e),
                Err(e) => out.refused.push(format!("{name}: {e}")),
            }
        }
        Ok(out)
    }
}

async fn take(
    tx: &mut Tx,
    routing: &Routing,
    settings: &MailSettings,
    arrival: &Arrival,
    mail: InboundMail,
    files: &MailFiles,
    now: DateTime<Utc>,
) -> Result<MailOutcome> {
    let Some(log_id) = tx
        .log_mail(&record(&mail, &arrival.source, "pending", now))
        .await?
    else {
        return Ok(MailOutcome::Seen);
    };
    let person = tx.user_by_email(&mail.from).await?;
    let sender = person.as_ref().map(|p| KnownSender {
        role: p.role,
        active: p.active,
    });
    let mut thread_id = tx.ticket_of_mail(&mail.replies_to).await?;
    if thread_id.is_none() {
        thread_id = ticket_in_subject(&mail.subject);
    }
    let threaded = match thread_id {
        Some(id) => tx.ticket_for_update(id).await?,
        None => None,
    };
    let thread = threaded.as_ref().map(|t| ThreadTicket {
        id: t.id,
        requester: t.requester.clone(),
        status: t.status,
        resolved_at: t.resolved_at,
    });
    // Messages that acted, and this one: forged mail that was held or refused cannot use up
    // a real sender's allowance.
    let sent = tx
        .mail_from_since(&mail.from, now - TimeDelta::hours(1))
        .await?
        + 1;
    let authenticated = match &arrival.trust {
        SenderTrust::Checked(ok) => *ok,
        SenderTrust::Header(server) => {
            opsdesk_domain::mail::message::dmarc_passed(&mail.authentication_results, server)
        }
        SenderTrust::Mailbox => true,
    };
    let facts = Facts {
        mail: &mail,
        authenticated,
        sender,
        thread,
        inbox: arrival.policy,
        over_rate: sent > settings.hourly_limit,
        reopen_window: settings.reopen_window,
        now,
    };
    let role = person.as_ref().map(|p| p.role).unwrap_or(Role::Requester);
    let actor = Actor::new(format!("user:{}", mail.from), role);
    let outcome = match decide(&facts) {
        Disposition::Ignore(why) => MailOutcome::Ignored(why),
        Disposition::Refuse(why) => MailOutcome::Refused(why),
        Disposition::Hold(why) => MailOutcome::Held(why),
        Disposition::Comment { ticket_id, reopen } => {
            let current = threaded
                .as_ref()
                .ok_or_else(|| Error::NotFound(Ticket::key_for(ticket_id)))?;
            let comment = comment(tx, routing, &actor, current, &mail, reopen, now).await?;
            MailOutcome::Comment {
                ticket_id,
                comment_id: comment.id,
            }
        }
        Disposition::Open {
            create_person,
            follows,
        } => {
            if create_person {
                add_requester(tx, &actor, &mail, now).await?;
            }
            let ticket = open_from_mail(tx, routing, &actor, &mail, log_id, now).await?;
            if let Some(old) = follows {
                tx.insert_link(ticket.id, old, LinkKind::RelatesTo, &actor.name, now)
                    .await?;
            }
            MailOutcome::Ticket(ticket.id)
        }
    };
    let (outcome_name, ticket_id, comment_id, reason) = match &outcome {
        MailOutcome::Ticket(id) => ("ticket", Some(*id), None, None),
        MailOutcome::Comment {
            ticket_id,
            comment_id,
        } => ("comment", Some(*ticket_id), Some(*comment_id), None),
        // A held message names the ticket it answers, when that ticket exists.
        MailOutcome::Held(r) => (
            "held",
            threaded.as_ref().map(|t| t.id),
            None,
            Some(r.as_str()),
        ),
        MailOutcome::Ignored(r) => ("ignored", None, None, Some(r.as_str())),
        MailOutcome::Refused(r) => ("refused", None, None, Some(r.as_str())),
        MailOutcome::Seen => ("seen", None, None, None),
    };
    // The files go with what the message did, seen by the requester as the message is.
    let mut files_note = None;
    if let Some(ticket_id) = ticket_id.filter(|_| outcome_name != "held") {
        let how = FileUse {
            comment_id,
            public: true,
            source: AttachmentSource::Email,
            to_case: false,
        };
        record_files(tx, &actor, ticket_id, &files.stored, how, now).await?;
        if !files.refused.is_empty() {
            files_note = Some(format!("files not taken: {}", files.refused.join("; ")));
        }
    }
    let reason = reason.or(files_note.as_deref());
    // A new ticket's message was settled when the ticket was made, before its receipt.
    if !matches!(outcome, MailOutcome::Ticket(_)) || reason.is_some() {
        tx.settle_mail(log_id, outcome_name, ticket_id, comment_id, reason)
            .await?;
    }
    Ok(outcome)
}

/// A new request from a message: its subject as title, its text as description.
async fn open_from_mail(
    tx: &mut Tx,
    routing: &Routing,
    actor: &Actor,
    mail: &InboundMail,
    log_id: i64,
    now: DateTime<Utc>,
) -> Result<Ticket> {
    let input = NewTicket {
        title: truncate(&title_from_subject(&mail.subject), TITLE_MAX),
        description: mail.text.trim().to_owned(),
        kind: Kind::ServiceRequest,
        severity: Severity::Sev4,
        requester: Some(mail.from.clone()),
        assignee: None,
        team: None,
        workload: None,
        tags: vec!["email".into()],
        source: Some("email".into()),
        dedup_key: None,
    }
    .validate()?;
    crate::tickets::insert_ticket_answering(tx, routing, actor, input, now, Some(log_id)).await
}

impl Desk {
    /// Releases a held message: an agent vouches for it. A reply to a ticket becomes the
    /// sender's public comment there; a new message opens a ticket for the sender (a
    /// requester is made for an unknown address). The release is audited under the agent.
    pub async fn release_mail(&self, actor: &Actor, id: i64) -> Result<MailOutcome> {
        actor.require(opsdesk_domain::Permission::WriteTickets)?;
        let routing = self.routing().await?;
        let agent = actor.clone();
        let reopen_window = self.settings.mail.reopen_window;
        self.change(move |tx, now| {
            Box::pin(async move {
                let record = tx
                    .mail_record(id)
                    .await?
                    .filter(|r| r.direction == "in")
                    .ok_or_else(|| Error::NotFound(format!("message {id}")))?;
                if record.outcome != "held" {
                    return Err(Error::Conflict(format!(
                        "message {id} is {}: only held messages are released",
                        record.outcome
                    )));
                }
                let mail = InboundMail {
                    message_id: record.message_id.clone(),
                    replies_to: Vec::new(),
                    from: record.sender.clone(),
                    from_name: None,
                    subject: record.subject.clone(),
                    text: record.body.clone().unwrap_or_default(),
                    automatic: None,
                    authentication_results: Vec::new(),
                    size: 0,
                    files: Vec::new(),
                };
                let person = tx.user_by_email(&mail.from).await?;
                // An agent vouches for a requester, not for a colleague's or a disabled
                // account's voice: such mail is answered by hand.
                if let Some(p) = &person {
                    if p.role != Role::Requester || !p.active {
                        return Err(Error::Conflict(format!(
                            "message {id} claims to come from {}, {}: it is not released in their name",
                            mail.from,
                            if p.active { "a member of staff" } else { "a disabled account" }
                        )));
                    }
                }
                let sender = Actor::new(format!("user:{}", mail.from), Role::Requester);
                let threaded = match record.ticket_id {
                    Some(t) => tx.ticket_for_update(t).await?,
                    None => None,
                };
                let outcome = match threaded {
                    Some(current) => {
                        let reopen = current
                            .requester
                            .as_deref()
                            .is_some_and(|r| r.eq_ignore_ascii_case(&mail.from))
                            && opsdesk_domain::ticket::reply_reopens(
                                current.status,
                                current.resolved_at,
                                now,
                                reopen_window,
                            );
                        let c = comment(tx, &routing, &sender, &current, &mail, reopen, now).await?;
                        MailOutcome::Comment {
                            ticket_id: current.id,
                            comment_id: c.id,
                        }
                    }
                    None => {
                        if person.is_none() {
                            add_requester(tx, &sender, &mail, now).await?;
                        }
                        let t = open_from_mail(tx, &routing, &sender, &mail, id, now).await?;
                        MailOutcome::Ticket(t.id)
                    }
                };
                let (name, ticket_id, comment_id) = match &outcome {
                    MailOutcome::Comment {
                        ticket_id,
                        comment_id,
                    } => ("comment", Some(*ticket_id), Some(*comment_id)),
                    MailOutcome::Ticket(t) => ("ticket", Some(*t), None),
                    _ => ("held", None, None),
                };
                let reason = format!("released by {}", agent.name);
                tx.settle_mail(id, name, ticket_id, comment_id, Some(&reason))
                    .await?;
                crate::audit::record(
                    tx,
                    &agent,
                    now,
                    "mail.released",
                    one_change(
                        "mail",
                        json!({"id": id, "outcome": "held", "reason": record.reason}),
                        json!({"id": id, "outcome": name, "sender": mail.from,
                               "message_id": mail.message_id, "ticket_id": ticket_id}),
                    ),
                )
                .await?;
                Ok(outcome)
            })
        })
        .await
    }
}

/// A public comment from the message's new text; reopens the ticket when `reopen`.
async fn comment(
    tx: &mut Tx,
    routing: &Routing,
    actor: &Actor,
    current: &Ticket,
    mail: &InboundMail,
    reopen: bool,
    now: DateTime<Utc>,
) -> Result<Comment> {
    let body = match trim_reply(&mail.text) {
        b if b.trim().is_empty() => "(the message had no text)".to_owned(),
        b => b,
    };
    let input = crate::tickets::NewCommentIn {
        body: &body,
        public: true,
        email: Some(&mail.message_id),
    };
    crate::tickets::comment_on(tx, routing, actor, current, input, reopen, now).await
}

async fn add_requester(
    tx: &mut Tx,
    actor: &Actor,
    mail: &InboundMail,
    now: DateTime<Utc>,
) -> Result<()> {
    let display_name = mail
        .from_name
        .clone()
        .filter(|n| n.chars().count() <= 200)
        .unwrap_or_else(|| mail.from.split('@').next().unwrap_or_default().to_owned());
    let id = tx
        .insert_user(&UserRecord {
            email: mail.from.clone(),
            display_name,
            role: Role::Requester,
            password_hash: None,
            at: now,
        })
        .await?;
    let after = json!({ "id": id, "email": mail.from, "role": Role::Requester, "via": "email" });
    crate::audit::record(
        tx,
        actor,
        now,
        "user.created",
        one_change("user", Value::Null, after),
    )
    .await?;
    Ok(())
}

impl Routing {
    /// Queues the letter of `kind` to `t`'s requester, when letters are on and the requester
    /// is an address; `comment` for a reply.
    pub(crate) async fn letter(
        &self,
        tx: &mut Tx,
        kind: LetterKind,
        t: &Ticket,
        comment: Option<(&Comment, &str)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(settings) = self.mail.as_ref().filter(|m| m.letters) else {
            return Ok(());
        };
        let Some(to) = t.requester.as_deref().filter(|r| is_email(r)) else {
            return Ok(());
        };
        if kind == LetterKind::Received && tx.mail_opted_out(to).await? {
            return Ok(());
        }
        let person = tx.user_by_email(&to.to_ascii_lowercase()).await?;
        if person.as_ref().is_some_and(|p| !p.active) {
            return Ok(());
        }
        let name = person
            .as_ref()
            .map(|p| p.display_name.clone())
            .unwrap_or_else(|| to.to_owned());
        let key = match (kind, comment) {
            (LetterKind::Replied, Some((c, _))) => format!("letter-replied-{}", c.id),
            (kind, _) => format!("letter-{kind}-{}-{}", t.id, t.version),
        };
        let url = self.ticket_url(t);
        let vars = LetterVars {
            key: &t.key,
            title: &t.title,
            name: &name,
            url: url.as_deref(),
            comment: comment.map(|(c, _)| c.body.as_str()),
            author: comment.map(|(_, a)| a),
            reopen_days: settings.reopen_window.num_days(),
        };
        let message_id = Letter::message_id_for(&key, &settings.domain);
        let mut letter = Letter::write(kind, &settings.templates, &vars, t.id, to, message_id);
        let (first, last_in) = tx.mail_thread(t.id).await?;
        letter.in_reply_to = last_in.clone().or(first.clone());
        letter.references = first.into_iter().chain(last_in).collect();
        letter.references.dedup();
        let logged = tx
            .log_mail(&NewMailRecord {
                message_id: letter.message_id.clone(),
                direction: "out",
                source: kind.as_str().to_owned(),
                sender: String::new(),
                recipient: Some(to.to_owned()),
                subject: letter.subject.clone(),
                ticket_id: Some(t.id),
                comment_id: comment.map(|(c, _)| c.id),
                outcome: "queued".into(),
                reason: None,
                body: None,
                at: now,
            })
            .await?;
        if logged.is_none() {
            return Ok(());
        }
        let notification = serde_json::to_value(&letter)
            .map_err(|e| Error::Internal(format!("cannot write a letter: {e}")))?;
        tx.enqueue(
            &[NewOutboxItem {
                idempotency_key: key,
                ticket_id: Some(t.id),
                event: format!("letter.{kind}"),
                channel: REQUESTER_MAIL.to_owned(),
                notification,
            }],
            now,
        )
        .await?;
        Ok(())
    }

    /// The letter for a public comment on `t`, unless the requester wrote it.
    pub(crate) async fn letter_for_comment(
        &self,
        tx: &mut Tx,
        t: &Ticket,
        comment: &Comment,
        author: &Actor,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if !comment.public
            || t.requester
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(author.identity()))
        {
            return Ok(());
        }
        let name = match author.user_email() {
            Some(email) => tx
                .user_by_email(email)
                .await?
                .map(|p| p.display_name)
                .unwrap_or_else(|| email.to_owned()),
            None => "opsdesk".to_owned(),
        };
        self.letter(tx, LetterKind::Replied, t, Some((comment, &name)), now)
            .await
    }
}
