//! What happens to a signal after its source read it, step by step. Core runs the steps in
//! this order, reading what they need before and writing what they decide after:
//!
//! 1. **receipt**: a delivery of news already received stops here;
//! 2. **dedup/correlate**: signals with one source and dedup key are one problem
//!    ([`super::Correlation`]), followed by one ticket; both are read for a whole group of
//!    signals at once;
//! 3. **workload match** ([`super::workload::match_workload`]), on the entities of every page
//!    of a split event received so far ([`super::Pages`]);
//! 4. **maintenance**: a signal of a workload inside one of its planned windows is expected,
//!    unless its source says otherwise ([`super::source::Source::expected_in_maintenance`]);
//! 5. **severity rules** ([`super::rules::decide`]);
//! 6. **follow-up decision** ([`super::follow_up::first_sight`] for a problem with no ticket
//!    to follow up, [`super::follow_up::follow_up`] for one with a ticket): a
//!    [`super::follow_up::Decision`];
//! 7. **ticket change**: the decision applied, audited and stored;
//! 8. **routing** ([`crate::routing`]): who hears of the change.

use super::rules::SeverityRule;
use super::SignalState;
use crate::ticket::Severity;

/// How signals become tickets, beyond the severity rules' defaults.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Tried in order before the built-in rules.
    pub rules: Vec<SeverityRule>,
    /// A problem that fires again this soon after its ticket was resolved reopens that ticket.
    pub reopen_window: chrono::Duration,
    /// This many firing/resolved flips within `flapping_window` mark a problem as flapping.
    pub flapping_changes: usize,
    pub flapping_window: chrono::Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            rules: Vec::new(),
            reopen_window: chrono::Duration::hours(24),
            flapping_changes: 4,
            flapping_window: chrono::Duration::hours(1),
        }
    }
}

/// What the steps before the follow-up decision found about one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// What the source says about the problem.
    pub state: SignalState,
    /// Another page of the communication the problem's last signal began.
    pub continues: bool,
    /// From the severity rules.
    pub severity: Severity,
    /// Whether the severity rules want a ticket.
    pub ticket: bool,
    /// Inside a planned maintenance window of its workload.
    pub expected: bool,
}
