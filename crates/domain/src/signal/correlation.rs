//! Dedup and correlate: signals with the same source and dedup key are one problem, followed
//! by one ticket, and the problem remembers how it has been seen.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::follow_up::Update;
use super::{Pages, Signal, SignalState};

/// The ticket that tracks one problem, and how it has been seen.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Correlation {
    pub source: String,
    pub dedup_key: String,
    pub ticket_id: i64,
    pub occurrences: i64,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub last_state: SignalState,
    /// When the problem last flipped between firing and resolved, oldest first.
    #[serde(skip)]
    pub state_changes: Vec<DateTime<Utc>>,
    pub flapping: bool,
    /// The pages received of the latest communication split over several messages.
    #[serde(skip)]
    pub pages: Option<Pages>,
}

impl Correlation {
    /// The problem of `signal`, seen for the first time now, whose ticket is `ticket_id`.
    pub fn first_seen(
        signal: &Signal,
        ticket_id: i64,
        pages: Option<Pages>,
        now: DateTime<Utc>,
    ) -> Correlation {
        Correlation {
            source: signal.source.clone(),
            dedup_key: signal.dedup_key.clone(),
            ticket_id,
            occurrences: 1,
            first_seen_at: now,
            last_seen_at: now,
            last_state: signal.state,
            state_changes: Vec::new(),
            flapping: false,
            pages,
        }
    }

    /// The problem after a signal in `state` that [`super::follow_up::follow_up`] decided
    /// `update` for: its flips within `flapping_window`, whether it flaps, its last state (an
    /// acknowledgement is not a state of the problem) and its occurrences.
    pub fn note(
        &mut self,
        state: SignalState,
        update: &Update,
        now: DateTime<Utc>,
        flapping_window: chrono::Duration,
    ) {
        if update.flip {
            self.state_changes.push(now);
        }
        self.state_changes.retain(|t| now - *t <= flapping_window);
        self.flapping = update.flapping.is_on();
        if state != SignalState::Acknowledged {
            self.last_state = state;
        }
        self.last_seen_at = now;
        if update.change.counts() {
            self.occurrences += 1;
        }
    }
}
