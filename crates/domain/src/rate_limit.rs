//! Fixed-window rate limits: how many requests one sender may make per period.

use chrono::{DateTime, TimeDelta, Utc};

/// The requests one sender made in the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub count: u32,
}

/// What a rate limit decides for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Over the limit; `first` for the first refusal of the window (worth one log line).
    Refuse {
        first: bool,
    },
}

/// Counts one request at `now` against `window` (none: the sender is new) with at most
/// `limit` requests per `period`; returns the window to keep and the verdict.
pub fn admit(
    window: Option<Window>,
    now: DateTime<Utc>,
    period: TimeDelta,
    limit: u32,
) -> (Window, Verdict) {
    let current = match window {
        Some(w) if now >= w.start && now - w.start < period => w,
        _ => Window {
            start: now,
            count: 0,
        },
    };
    let counted = Window {
        count: current.count.saturating_add(1),
        ..current
    };
    let verdict = if counted.count <= limit {
        Verdict::Admit
    } else {
        Verdict::Refuse {
            first: counted.count == limit.saturating_add(1),
        }
    };
    (counted, verdict)
}

/// Whether a window has ended by `now`, so its sender can be forgotten.
pub fn ended(window: &Window, now: DateTime<Utc>, period: TimeDelta) -> bool {
    now < window.start || now - window.start >= period
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_gets_limit_requests_per_window() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let minute = TimeDelta::minutes(1);
        let mut w = None;
        let mut verdicts = Vec::new();
        for i in 0..5 {
            let (next, v) = admit(w, t0 + TimeDelta::seconds(i), minute, 3);
            w = Some(next);
            verdicts.push(v);
        }
        assert_eq!(
            verdicts,
            [
                Verdict::Admit,
                Verdict::Admit,
                Verdict::Admit,
                Verdict::Refuse { first: true },
                Verdict::Refuse { first: false }
            ]
        );
        let w = w.unwrap();
        assert!(!ended(&w, t0 + TimeDelta::seconds(59), minute));
        assert!(ended(&w, t0 + minute, minute));
        let (fresh, v) = admit(Some(w), t0 + minute, minute, 3);
        assert_eq!((fresh.count, v), (1, Verdict::Admit));
    }
}
