//! Mail that comes in: IMAP inboxes ([`imap`]) hand each message to the desk
//! ([`opsdesk_core::Desk::take_mail`]), which takes it once whichever node reads it first.
//!
//! ```toml
//! [[email.inboxes]]
//! name = "support"
//! host = "outlook.office365.com"
//! tls = "tls"                 # none | starttls | tls; port defaults to 143 | 143 | 993
//! username = "support@example.com"
//! oauth_token = "..."         # or password = "..."
//! folder = "INBOX"
//! move_to = "opsdesk"         # else messages taken are flagged \Seen
//! create_requesters = true
//! ```

pub mod imap;

pub use imap::{ImapTls, InboxSettings};
