//! Which ticket a message answers, and what of its text is new.

use crate::Ticket;

/// The ticket a subject names as `[OPS-42]` (any case), if it names one.
pub fn ticket_in_subject(subject: &str) -> Option<i64> {
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find(']') {
            if let Some(id) = rest[..close]
                .trim()
                .get(..4)
                .filter(|p| p.eq_ignore_ascii_case("OPS-"))
                .and_then(|_| Ticket::parse_ref(rest[..close].trim()))
            {
                return Some(id);
            }
        }
    }
    None
}

/// A subject as a ticket title: reply and forward prefixes and the ticket tag taken off.
pub fn title_from_subject(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let before = s;
        for prefix in [
            "re:", "fw:", "fwd:", "aw:", "wg:", "sv:", "vs:", "tr:", "rv:",
        ] {
            if s.get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            {
                s = s[prefix.len()..].trim_start();
            }
        }
        if s.starts_with('[') {
            if let Some(close) = s.find(']') {
                if ticket_in_subject(&s[..=close]).is_some() {
                    s = s[close + 1..].trim_start();
                }
            }
        }
        if s == before {
            break;
        }
    }
    if s.is_empty() {
        "(no subject)".to_owned()
    } else {
        s.to_owned()
    }
}

/// The new part of a reply: the quoted earlier message and the signature cut off. When
/// nothing would be left, the text as it was.
pub fn trim_reply(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let l = line.trim();
        let lower = l.to_ascii_lowercase();
        let quote_intro = (lower.starts_with("on ") && lower.ends_with("wrote:"))
            || (lower.starts_with("am ") && lower.ends_with("schrieb:"))
            || (lower.starts_with("le ") && lower.ends_with("a écrit :"))
            // "On Mon, 7 Dec 2026 at 10:00, Rob Smith <rob@example.com>" / "wrote:"
            || (lower.starts_with("on ")
                && lines.get(i + 1).is_some_and(|n| n.trim().eq_ignore_ascii_case("wrote:")));
        let outlook = lower.starts_with("-----original message-----")
            || (l.starts_with("________________")
                && lines
                    .get(i + 1)
                    .is_some_and(|n| n.trim_start().starts_with("From:")))
            || (lower.starts_with("from:")
                && lines.get(i + 1).is_some_and(|n| {
                    let n = n.trim_start().to_ascii_lowercase();
                    n.starts_with("sent:") || n.starts_with("date:")
                }));
        let signature = *line == "-- " || l == "--";
        if quote_intro || outlook || signature {
            end = i;
            break;
        }
    }
    // Quoted lines (`> ...`) left at the end.
    while end > 0 && {
        let l = lines[end - 1].trim();
        l.is_empty() || l.starts_with('>')
    } {
        end -= 1;
    }
    let kept = lines[..end].join("\n");
    if kept.trim().is_empty() {
        text.trim().to_owned()
    } else {
        kept.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ticket_tag_in_a_subject() {
        assert_eq!(ticket_in_subject("Re: [OPS-42] VPN down"), Some(42));
        assert_eq!(ticket_in_subject("[ops-7]"), Some(7));
        assert_eq!(ticket_in_subject("[External] Re: [OPS-9] x"), Some(9));
        assert_eq!(ticket_in_subject("OPS-42 without brackets"), None);
        assert_eq!(ticket_in_subject("[42]"), None);
        assert_eq!(ticket_in_subject("[OPS-x] [OPS-]"), None);
        assert_eq!(ticket_in_subject("[OPS-0]"), None);
    }

    #[test]
    fn titles_lose_prefixes_and_tags() {
        assert_eq!(title_from_subject("Re: Fwd: [OPS-3] Printer"), "Printer");
        assert_eq!(title_from_subject("AW: RE: laptop"), "laptop");
        assert_eq!(title_from_subject("   "), "(no subject)");
        assert_eq!(title_from_subject("Refund please"), "Refund please");
    }

    #[test]
    fn replies_lose_quotes_and_signatures() {
        let gmail = "Works now, thanks!\n\nOn Mon, 7 Dec 2026 at 10:00, opsdesk <desk@example.com> wrote:\n> OPS-42 was resolved.\n> Reply to reopen.";
        assert_eq!(trim_reply(gmail), "Works now, thanks!");
        let wrapped =
            "Fine.\nOn Mon, 7 Dec 2026 at 10:00, opsdesk <desk@example.com>\nwrote:\n> old";
        assert_eq!(trim_reply(wrapped), "Fine.");
        let outlook = "Still broken.\n\n________________________________\nFrom: opsdesk\nSent: Monday\nSubject: x";
        assert_eq!(trim_reply(outlook), "Still broken.");
        let sig = "See attached.\n-- \nRob Smith\nACME";
        assert_eq!(trim_reply(sig), "See attached.");
        let inline = "> your question\nMy answer\n> more\n";
        assert_eq!(trim_reply(inline), "> your question\nMy answer");
        // Nothing new at all: the whole text stays.
        assert_eq!(trim_reply("> only a quote"), "> only a quote");
    }
}
