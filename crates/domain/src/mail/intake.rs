//! What a message that came in does: a pure decision over what the desk knows of its sender
//! and of the ticket it answers.

use chrono::{DateTime, TimeDelta, Utc};

use super::InboundMail;
use crate::{Role, Status};

/// What an inbox allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxPolicy {
    /// Whether a sender opsdesk does not know becomes a requester (otherwise the message is
    /// held for an agent).
    pub create_requesters: bool,
}

/// The person a message's sender address belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownSender {
    pub role: Role,
    pub active: bool,
}

/// The ticket a message answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTicket {
    pub id: i64,
    pub requester: Option<String>,
    pub status: Status,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Everything the decision needs.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub mail: &'a InboundMail,
    /// False when the receiving service reported that the sender's domain failed its checks
    /// (SPF, DKIM, DMARC): such a message may not speak for a person opsdesk knows.
    pub authenticated: bool,
    pub sender: Option<KnownSender>,
    pub thread: Option<ThreadTicket>,
    pub inbox: InboxPolicy,
    /// Whether the sender sent more than the inbox takes from one sender in an hour.
    pub over_rate: bool,
    /// A requester's reply reopens a resolved ticket this long after it was resolved; later,
    /// it opens a follow-up ticket.
    pub reopen_window: TimeDelta,
    pub now: DateTime<Utc>,
}

/// What a message does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// An automatic answer or a bounce: kept in the mail log, never answered.
    Ignore(String),
    /// Refused (too many from one sender): kept in the mail log only.
    Refuse(String),
    /// Kept for an agent to look at.
    Hold(String),
    /// A public comment on the ticket; `reopen` when it opens the resolved ticket again.
    Comment { ticket_id: i64, reopen: bool },
    /// A new ticket, linked to `follows` (a ticket resolved too long ago to reopen) if any;
    /// `create_person` when the sender becomes a requester.
    Open {
        create_person: bool,
        follows: Option<i64>,
    },
}

/// Decides what `facts.mail` does.
pub fn decide(facts: &Facts<'_>) -> Disposition {
    if let Some(why) = &facts.mail.automatic {
        return Disposition::Ignore(format!("automatic message ({why})"));
    }
    if facts.over_rate {
        return Disposition::Refuse(format!(
            "{} sent more messages this hour than the inbox takes from one sender",
            facts.mail.from
        ));
    }
    let from = facts.mail.from.as_str();
    match &facts.sender {
        Some(person) if !person.active => {
            return Disposition::Hold(format!("{from} belongs to a disabled account"));
        }
        Some(_) if !facts.authenticated => {
            return Disposition::Hold(format!(
                "{from} failed the sender checks (SPF, DKIM or DMARC): not trusted to speak for a person opsdesk knows"
            ));
        }
        None if !facts.authenticated => {
            return Disposition::Hold(format!(
                "{from} failed the sender checks (SPF, DKIM or DMARC)"
            ));
        }
        _ => {}
    }
    if let Some(t) = &facts.thread {
        let is_requester = t
            .requester
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(from));
        let is_staff = facts
            .sender
            .as_ref()
            .is_some_and(|p| p.role.can_write_tickets());
        if !is_requester && !is_staff {
            return Disposition::Hold(format!(
                "{from} answered {} but is not its requester",
                crate::Ticket::key_for(t.id)
            ));
        }
        if t.status.is_open() {
            return Disposition::Comment {
                ticket_id: t.id,
                reopen: false,
            };
        }
        if !is_requester {
            return Disposition::Comment {
                ticket_id: t.id,
                reopen: false,
            };
        }
        return if crate::ticket::reply_reopens(
            t.status,
            t.resolved_at,
            facts.now,
            facts.reopen_window,
        ) {
            Disposition::Comment {
                ticket_id: t.id,
                reopen: true,
            }
        } else {
            Disposition::Open {
                create_person: false,
                follows: Some(t.id),
            }
        };
    }
    match &facts.sender {
        Some(p) if !p.role.allows(crate::Permission::CreateTickets) => Disposition::Hold(format!(
            "{from} is a {} and may not raise requests",
            p.role.as_str()
        )),
        Some(_) => Disposition::Open {
            create_person: false,
            follows: None,
        },
        None if facts.inbox.create_requesters => Disposition::Open {
            create_person: true,
            follows: None,
        },
        None => Disposition::Hold(format!(
            "{from} is not a person opsdesk knows, and the inbox does not add requesters"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn mail(from: &str) -> InboundMail {
        InboundMail {
            message_id: "m1@example.com".into(),
            replies_to: vec![],
            from: from.into(),
            from_name: None,
            subject: "VPN down".into(),
            text: "help".into(),
            automatic: None,
            authentication_results: vec![],
            size: 10,
            files: Vec::new(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
    }

    fn facts(m: &InboundMail) -> Facts<'_> {
        Facts {
            mail: m,
            authenticated: true,
            sender: None,
            thread: None,
            inbox: InboxPolicy {
                create_requesters: true,
            },
            over_rate: false,
            reopen_window: TimeDelta::days(7),
            now: now(),
        }
    }

    fn ticket(status: Status, resolved_days_ago: Option<i64>) -> ThreadTicket {
        ThreadTicket {
            id: 42,
            requester: Some("rob@example.com".into()),
            status,
            resolved_at: resolved_days_ago.map(|d| now() - TimeDelta::days(d)),
        }
    }

    fn requester() -> Option<KnownSender> {
        Some(KnownSender {
            role: Role::Requester,
            active: true,
        })
    }

    #[test]
    fn a_new_sender_opens_a_ticket_only_where_the_inbox_allows() {
        let m = mail("new@example.com");
        let mut f = facts(&m);
        assert_eq!(
            decide(&f),
            Disposition::Open {
                create_person: true,
                follows: None
            }
        );
        f.inbox.create_requesters = false;
        assert!(matches!(decide(&f), Disposition::Hold(_)));
    }

    #[test]
    fn replies_comment_reopen_or_follow_up() {
        let m = mail("rob@example.com");
        let mut f = facts(&m);
        f.sender = requester();
        f.thread = Some(ticket(Status::InProgress, None));
        assert_eq!(
            decide(&f),
            Disposition::Comment {
                ticket_id: 42,
                reopen: false
            }
        );
        f.thread = Some(ticket(Status::Resolved, Some(2)));
        assert_eq!(
            decide(&f),
            Disposition::Comment {
                ticket_id: 42,
                reopen: true
            }
        );
        f.thread = Some(ticket(Status::Resolved, Some(8)));
        assert_eq!(
            decide(&f),
            Disposition::Open {
                create_person: false,
                follows: Some(42)
            }
        );
        f.thread = Some(ticket(Status::Closed, Some(1)));
        assert_eq!(
            decide(&f),
            Disposition::Open {
                create_person: false,
                follows: Some(42)
            }
        );
    }

    #[test]
    fn a_stranger_answering_a_ticket_is_held() {
        let m = mail("eve@example.com");
        let mut f = facts(&m);
        f.thread = Some(ticket(Status::InProgress, None));
        assert!(matches!(decide(&f), Disposition::Hold(_)));
        // Another requester too: only the ticket's own requester or staff may answer.
        f.sender = requester();
        assert!(matches!(decide(&f), Disposition::Hold(_)));
        f.sender = Some(KnownSender {
            role: Role::Agent,
            active: true,
        });
        assert_eq!(
            decide(&f),
            Disposition::Comment {
                ticket_id: 42,
                reopen: false
            }
        );
    }

    #[test]
    fn unauthenticated_and_disabled_senders_are_held() {
        let m = mail("rob@example.com");
        let mut f = facts(&m);
        f.sender = requester();
        f.thread = Some(ticket(Status::InProgress, None));
        f.authenticated = false;
        assert!(matches!(decide(&f), Disposition::Hold(_)));
        f.authenticated = true;
        f.sender = Some(KnownSender {
            role: Role::Admin,
            active: false,
        });
        assert!(matches!(decide(&f), Disposition::Hold(_)));
    }

    proptest! {
        /// An automatic message never does anything, whoever sent it and whatever it answers.
        #[test]
        fn automatic_messages_never_act(
            staff in any::<bool>(),
            resolved in any::<bool>(),
            create in any::<bool>(),
            authenticated in any::<bool>(),
            over in any::<bool>(),
        ) {
            let mut m = mail("rob@example.com");
            m.automatic = Some("Auto-Submitted: auto-replied".into());
            let mut f = facts(&m);
            f.sender = Some(KnownSender {
                role: if staff { Role::Agent } else { Role::Requester },
                active: true,
            });
            f.thread = Some(ticket(if resolved { Status::Resolved } else { Status::New }, Some(1)));
            f.inbox.create_requesters = create;
            f.authenticated = authenticated;
            f.over_rate = over;
            prop_assert!(matches!(decide(&f), Disposition::Ignore(_)));
        }

        /// A sender that failed authentication never comments or opens as a known person.
        #[test]
        fn unauthenticated_senders_never_act(staff in any::<bool>(), threaded in any::<bool>()) {
            let m = mail("rob@example.com");
            let mut f = facts(&m);
            f.authenticated = false;
            f.sender = Some(KnownSender {
                role: if staff { Role::Admin } else { Role::Requester },
                active: true,
            });
            if threaded {
                f.thread = Some(ticket(Status::InProgress, None));
            }
            prop_assert!(matches!(decide(&f), Disposition::Hold(_)));
        }
    }
}
