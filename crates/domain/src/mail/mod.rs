//! Email with requesters.
//!
//! A message that comes in (through an IMAP inbox or Amazon SES) is read into an
//! [`InboundMail`] ([`message`]), recognised as a reply to a ticket or as an automatic answer
//! ([`thread`]), and given a [`Disposition`] ([`intake`]): a new ticket, a public comment, held
//! for an agent, or left alone. What opsdesk writes to requesters (a receipt, an agent's reply,
//! the resolution) is a [`Letter`] ([`letter`]), sent through the outbox.

pub mod intake;
pub mod letter;
pub mod message;
pub mod ses;
pub mod thread;

pub use intake::{decide, Disposition, Facts, InboxPolicy, KnownSender, ThreadTicket};
pub use letter::{Letter, LetterKind, LetterTemplate, LetterTemplates, LetterVars};
pub use message::{parse, InboundMail, MailError};

/// The outbox's name for letters to requesters: not a channel a person can name (channel
/// names are letters, digits, `-`, `_` and `.`).
pub const REQUESTER_MAIL: &str = "@requester";
