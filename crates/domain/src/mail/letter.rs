//! The letters opsdesk writes to a ticket's requester, from templates an admin may change.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::ticket::named_enum;
use crate::validation::FieldError;

named_enum! {
    /// Why opsdesk writes to a requester.
    LetterKind {
        /// The request was received: a receipt with its key.
        Received => "received",
        /// An agent answered publicly.
        Replied => "replied",
        /// The request was resolved; a reply reopens it.
        Resolved => "resolved",
    }
}

/// The words a template may use, each written `{name}`.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("key", "the ticket's key, OPS-42"),
    ("title", "the ticket's title"),
    ("name", "the requester's name (or address)"),
    ("url", "the link to the ticket"),
    ("comment", "the agent's reply (replied only)"),
    ("author", "who replied (replied only)"),
    (
        "reopen_days",
        "how many days a reply reopens a resolved ticket",
    ),
];

/// A subject line and a plain-text body with placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LetterTemplate {
    pub subject: String,
    pub body: String,
}

/// One template per [`LetterKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LetterTemplates {
    pub received: LetterTemplate,
    pub replied: LetterTemplate,
    pub resolved: LetterTemplate,
}

impl Default for LetterTemplates {
    fn default() -> Self {
        LetterTemplates {
            received: LetterTemplate {
                subject: "[{key}] {title}".into(),
                body: "Hello {name},\n\nwe have received your request and filed it as {key}: {title}.\nAn agent will answer soon. To add anything, reply to this email and keep [{key}] in the subject.\n\n{url}\n\n-- \nopsdesk".into(),
            },
            replied: LetterTemplate {
                subject: "Re: [{key}] {title}".into(),
                body: "{author} wrote on {key}:\n\n{comment}\n\nReply to this email to answer.\n\n{url}\n\n-- \nopsdesk".into(),
            },
            resolved: LetterTemplate {
                subject: "[{key}] Resolved: {title}".into(),
                body: "Hello {name},\n\nyour request {key} ({title}) has been resolved.\nIf it is not, reply to this email within {reopen_days} days and it opens again.\n\n{url}\n\n-- \nopsdesk".into(),
            },
        }
    }
}

impl LetterTemplates {
    /// Replaces the template of `kind`.
    pub fn set(&mut self, kind: LetterKind, t: LetterTemplate) {
        match kind {
            LetterKind::Received => self.received = t,
            LetterKind::Replied => self.replied = t,
            LetterKind::Resolved => self.resolved = t,
        }
    }

    pub fn get(&self, kind: LetterKind) -> &LetterTemplate {
        match kind {
            LetterKind::Received => &self.received,
            LetterKind::Replied => &self.replied,
            LetterKind::Resolved => &self.resolved,
        }
    }

    /// Checks every template: not empty, only known placeholders; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        for &kind in LetterKind::ALL {
            let t = self.get(kind);
            for (field, text, max) in [("subject", &t.subject, 500), ("body", &t.body, 20_000)] {
                let name = format!("{kind}.{field}");
                if text.trim().is_empty() {
                    return Err(FieldError::new(name, "must not be empty"));
                }
                if text.chars().count() > max {
                    return Err(FieldError::new(name, format!("at most {max} characters")));
                }
                if let Some(unknown) =
                    placeholders(text).find(|p| !PLACEHOLDERS.iter().any(|(k, _)| k == p))
                {
                    let known: Vec<String> = PLACEHOLDERS
                        .iter()
                        .map(|(k, _)| format!("{{{k}}}"))
                        .collect();
                    return Err(FieldError::new(
                        name,
                        format!(
                            "`{{{unknown}}}` is not a placeholder; use {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{').skip(1).filter_map(|rest| {
        let end = rest.find('}')?;
        let name = &rest[..end];
        (!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .then_some(name)
    })
}

/// What fills a template's placeholders.
#[derive(Debug, Clone, Default)]
pub struct LetterVars<'a> {
    pub key: &'a str,
    pub title: &'a str,
    pub name: &'a str,
    pub url: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub author: Option<&'a str>,
    pub reopen_days: i64,
}

impl LetterVars<'_> {
    fn fill(&self, text: &str) -> String {
        let reopen_days = self.reopen_days.to_string();
        let mut out = text.to_owned();
        for (k, v) in [
            ("key", self.key),
            ("title", self.title),
            ("name", self.name),
            ("url", self.url.unwrap_or("")),
            ("comment", self.comment.unwrap_or("")),
            ("author", self.author.unwrap_or("")),
            ("reopen_days", reopen_days.as_str()),
        ] {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out
    }
}

/// One email to a ticket's requester, as queued in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Letter {
    pub kind: LetterKind,
    pub ticket_id: i64,
    pub ticket_key: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    /// Without angle brackets.
    pub message_id: String,
    #[serde(default)]
    pub in_reply_to: Option<String>,
    #[serde(default)]
    pub references: Vec<String>,
}

impl Letter {
    /// The letter of `kind` from `templates`; the subject always carries `[OPS-42]` so that a
    /// reply finds its ticket even when a mail client drops the threading headers.
    pub fn write(
        kind: LetterKind,
        templates: &LetterTemplates,
        vars: &LetterVars<'_>,
        ticket_id: i64,
        to: &str,
        message_id: String,
    ) -> Letter {
        let t = templates.get(kind);
        let mut subject = crate::channel::one_line(&vars.fill(&t.subject));
        let tag = format!("[{}]", vars.key);
        if !subject.contains(&tag) {
            subject = format!("{tag} {subject}");
        }
        Letter {
            kind,
            ticket_id,
            ticket_key: vars.key.to_owned(),
            to: to.to_owned(),
            subject: crate::channel::truncate(&subject, 250),
            text: vars.fill(&t.body),
            message_id,
            in_reply_to: None,
            references: Vec::new(),
        }
    }

    /// `<digest>.opsdesk@<domain>` from the outbox's idempotency key: the same letter always
    /// has the same id, so a retry is recognised as the same message.
    pub fn message_id_for(idempotency_key: &str, domain: &str) -> String {
        let digest = Sha256::digest(idempotency_key.as_bytes());
        format!("{}.opsdesk@{domain}", hex::encode(&digest[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> LetterVars<'static> {
        LetterVars {
            key: "OPS-42",
            title: "VPN down",
            name: "Rob",
            url: Some("https://desk.example.com/tickets/OPS-42"),
            comment: Some("Restarted the gateway."),
            author: Some("Ann Agent"),
            reopen_days: 7,
        }
    }

    #[test]
    fn default_letters_carry_the_key_and_the_words() {
        let t = LetterTemplates::default();
        t.validate().unwrap();
        let l = Letter::write(
            LetterKind::Replied,
            &t,
            &vars(),
            42,
            "rob@example.com",
            "m@d".into(),
        );
        assert_eq!(l.subject, "Re: [OPS-42] VPN down");
        assert!(
            l.text
                .contains("Ann Agent wrote on OPS-42:\n\nRestarted the gateway."),
            "{}",
            l.text
        );
        assert!(l.text.contains("https://desk.example.com/tickets/OPS-42"));
        let l = Letter::write(
            LetterKind::Resolved,
            &t,
            &vars(),
            42,
            "rob@example.com",
            "m@d".into(),
        );
        assert!(l.text.contains("within 7 days"), "{}", l.text);
    }

    #[test]
    fn a_subject_without_the_key_gets_it() {
        let mut t = LetterTemplates::default();
        t.received.subject = "Thanks: {title}".into();
        let l = Letter::write(
            LetterKind::Received,
            &t,
            &vars(),
            42,
            "r@e.com",
            "m@d".into(),
        );
        assert_eq!(l.subject, "[OPS-42] Thanks: VPN down");
    }

    #[test]
    fn unknown_placeholders_and_empty_templates_are_refused() {
        let mut t = LetterTemplates::default();
        t.resolved.body = "Bye {nmae}".into();
        let e = t.validate().unwrap_err();
        assert_eq!(e.field, "resolved.body");
        assert!(e.message.contains("{nmae}"), "{}", e.message);
        let mut t = LetterTemplates::default();
        t.received.subject = " ".into();
        assert_eq!(t.validate().unwrap_err().field, "received.subject");
        // Braces that are not placeholders are text.
        let mut t = LetterTemplates::default();
        t.received.body = "JSON {\"a\": 1} and {Key}".into();
        t.validate().unwrap();
    }

    #[test]
    fn message_ids_are_stable_per_key() {
        let a = Letter::message_id_for("letter-1", "desk.example");
        assert_eq!(a, Letter::message_id_for("letter-1", "desk.example"));
        assert_ne!(a, Letter::message_id_for("letter-2", "desk.example"));
        assert!(a.ends_with(".opsdesk@desk.example"));
    }
}
