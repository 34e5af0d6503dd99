//! The follow-up decision: what a signal does to tickets. A problem seen for the first time
//! opens a ticket or is only recorded; a problem with a ticket counts an occurrence on it,
//! raises its severity, reopens, acknowledges or resolves it, or is noted on it, and may mark
//! the problem flapping. Core applies the decision; nothing here reads or writes.

use chrono::{DateTime, Utc};

use super::pipeline::{Assessment, IngestSettings};
use super::workload::Workload;
use super::{Correlation, SignalState};
use crate::ticket::{Severity, Status, Ticket};

/// What a signal does to tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Open a ticket: a firing problem with no ticket to follow up, which the rules want one
    /// for.
    Open,
    /// Store the signal only: no ticket is opened or changed.
    Record(NoTicket),
    /// Change the problem's ticket, or note the signal on it.
    Update(Update),
}

/// Why a signal of a problem with no ticket to follow up opens none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTicket {
    /// Acknowledged or resolved: nothing open to change.
    NotFiring,
    /// The severity rule says `ticket = false`.
    NotWanted,
    /// Expected, inside a maintenance window of its workload.
    Expected,
}

/// A signal's effect on the ticket of its problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    pub change: Change,
    /// The signal flips the problem between firing and resolved.
    pub flip: bool,
    pub flapping: Flapping,
}

/// What happens to the ticket. `raise` is the worse severity the signal brings, if any: a
/// problem can get worse, it never gets quieter by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Another page of news the open ticket has: no occurrence is counted.
    Merge { raise: Option<Severity> },
    /// Firing again while the ticket is open.
    Occurrence { raise: Option<Severity> },
    /// Firing again within the reopen window of the ticket's resolution.
    Reopen { raise: Option<Severity> },
    /// Acknowledged at the source while the ticket is new.
    Acknowledge,
    /// Resolved at the source while the ticket is open.
    Resolve,
    /// The signal is noted on the ticket, whose status stays.
    Note(Note),
}

/// Why a signal leaves its ticket's status as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Fired again within the reopen window while the problem flaps: counted, not reopened.
    FiredWhileFlapping,
    /// Resolved at the source while the problem flaps: not resolved.
    ResolvedWhileFlapping,
    /// Acknowledged at the source, but the ticket is past new.
    NotNew,
    /// Resolved at the source, but the ticket is not open.
    NotOpen,
}

/// Whether the problem flaps, before and after the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flapping {
    Off,
    Started,
    On,
    Stopped,
}

impl Flapping {
    fn of(before: bool, after: bool) -> Flapping {
        match (before, after) {
            (false, false) => Flapping::Off,
            (false, true) => Flapping::Started,
            (true, true) => Flapping::On,
            (true, false) => Flapping::Stopped,
        }
    }

    /// Whether the problem flaps after the signal.
    pub fn is_on(self) -> bool {
        matches!(self, Flapping::Started | Flapping::On)
    }

    /// Whether the signal started or stopped the flapping.
    pub fn changed(self) -> bool {
        matches!(self, Flapping::Started | Flapping::Stopped)
    }
}

impl Change {
    /// The status the ticket moves to.
    pub fn status(self) -> Option<Status> {
        match self {
            Change::Reopen { .. } => Some(Status::InProgress),
            Change::Acknowledge => Some(Status::Acknowledged),
            Change::Resolve => Some(Status::Resolved),
            Change::Merge { .. } | Change::Occurrence { .. } | Change::Note(_) => None,
        }
    }

    /// The worse severity the ticket takes.
    pub fn raise(self) -> Option<Severity> {
        match self {
            Change::Merge { raise } | Change::Occurrence { raise } | Change::Reopen { raise } => {
                raise
            }
            Change::Acknowledge | Change::Resolve | Change::Note(_) => None,
        }
    }

    /// Whether the signal counts as an occurrence of the problem: it fired, and is not another
    /// page of news already counted.
    pub fn counts(self) -> bool {
        matches!(
            self,
            Change::Occurrence { .. }
                | Change::Reopen { .. }
                | Change::Note(Note::FiredWhileFlapping)
        )
    }

    /// Whether the ticket is open after a firing signal, so that what the signal shows
    /// (a worse severity, a production workload) escalates it.
    pub fn escalates(self) -> bool {
        matches!(
            self,
            Change::Merge { .. } | Change::Occurrence { .. } | Change::Reopen { .. }
        )
    }
}

/// The decision for a signal of a problem with no ticket to follow up: a firing problem opens
/// a ticket unless the rules want none or it is expected.
pub fn first_sight(signal: &Assessment) -> Decision {
    if signal.state != SignalState::Firing {
        Decision::Record(NoTicket::NotFiring)
    } else if !signal.ticket {
        Decision::Record(NoTicket::NotWanted)
    } else if signal.expected {
        Decision::Record(NoTicket::Expected)
    } else {
        Decision::Open
    }
}

/// The decision for a signal of a problem that has a ticket, as the problem and the ticket
/// are now.
///
/// A firing signal after the reopen window of the ticket's resolution is the first sight of
/// a new problem. Otherwise the signal counts toward flapping when it flips the problem
/// between firing and resolved; once `flapping_changes` flips fall within `flapping_window`
/// the problem flaps, and its flips neither resolve nor reopen the ticket.
pub fn follow_up(
    problem: &Correlation,
    ticket: &Ticket,
    signal: &Assessment,
    settings: &IngestSettings,
    now: DateTime<Utc>,
) -> Decision {
    let open = ticket.status.is_open();
    if signal.state == SignalState::Firing && !open {
        let recent = ticket
            .resolved_at
            .is_some_and(|at| now - at <= settings.reopen_window);
        if !recent {
            // An old problem back again is a new ticket.
            return first_sight(signal);
        }
    }
    let flip = matches!(
        (problem.last_state, signal.state),
        (SignalState::Resolved, SignalState::Firing)
            | (
                SignalState::Firing | SignalState::Acknowledged,
                SignalState::Resolved
            )
    );
    let within = |t: &DateTime<Utc>| now - *t <= settings.flapping_window;
    let flips = problem.state_changes.iter().filter(|t| within(t)).count()
        + usize::from(flip && within(&now));
    let flapping = Flapping::of(problem.flapping, flips >= settings.flapping_changes);
    let raise = (signal.severity < ticket.severity).then_some(signal.severity);
    let change = match signal.state {
        SignalState::Firing if open && signal.continues => Change::Merge { raise },
        SignalState::Firing if open => Change::Occurrence { raise },
        SignalState::Firing if flapping.is_on() => Change::Note(Note::FiredWhileFlapping),
        SignalState::Firing => Change::Reopen { raise },
        SignalState::Acknowledged if ticket.status == Status::New => Change::Acknowledge,
        SignalState::Acknowledged => Change::Note(Note::NotNew),
        SignalState::Resolved if !open => Change::Note(Note::NotOpen),
        SignalState::Resolved if flapping.is_on() => Change::Note(Note::ResolvedWhileFlapping),
        SignalState::Resolved => Change::Resolve,
    };
    Decision::Update(Update {
        change,
        flip,
        flapping,
    })
}

/// A ticket's move to the production workload a signal shows affected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProductionMove<'a> {
    pub workload: &'a Workload,
    /// Whether the ticket takes the workload's team: it had none, or the one of its former
    /// workload.
    pub takes_team: bool,
}

/// Where a ticket not yet on production goes when a signal (or another page of the same
/// event) shows a production workload affected. Like severity, this only ever escalates: a
/// ticket tagged `production` or already on that workload stays where it is.
pub fn production_move<'a>(
    ticket: &Ticket,
    workload: Option<&'a Workload>,
    workloads: &[Workload],
) -> Option<ProductionMove<'a>> {
    let workload = workload.filter(|w| w.is_production())?;
    if ticket.tags.iter().any(|t| t == "production")
        || ticket.workload.as_deref() == Some(&workload.name)
    {
        return None;
    }
    let former_team = ticket
        .workload
        .as_deref()
        .and_then(|name| workloads.iter().find(|w| w.name == name))
        .and_then(|w| w.team.as_deref());
    Some(ProductionMove {
        workload,
        takes_team: ticket.team.is_none() || ticket.team.as_deref() == former_team,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    use super::*;
    use crate::signal::workload::Environment;
    use crate::ticket::Kind;
    use crate::validation::NewTicket;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn ticket(status: Status, severity: Severity, resolved_at: Option<DateTime<Utc>>) -> Ticket {
        let mut t = Ticket::open(
            NewTicket {
                title: "disk full".into(),
                description: String::new(),
                kind: Kind::Incident,
                severity,
                requester: None,
                assignee: None,
                team: None,
                workload: None,
                tags: Vec::new(),
                source: Some("alerts".into()),
                dedup_key: Some("disk".into()),
            },
            at(0),
        );
        t.status = status;
        t.resolved_at = resolved_at;
        t
    }

    fn problem(last_state: SignalState, state_changes: Vec<DateTime<Utc>>) -> Correlation {
        Correlation {
            source: "alerts".into(),
            dedup_key: "disk".into(),
            ticket_id: 1,
            occurrences: 1,
            first_seen_at: at(0),
            last_seen_at: at(0),
            last_state,
            flapping: state_changes.len() >= IngestSettings::default().flapping_changes,
            state_changes,
            pages: None,
        }
    }

    fn signal(state: SignalState) -> Assessment {
        Assessment {
            state,
            continues: false,
            severity: Severity::Sev3,
            ticket: true,
            expected: false,
        }
    }

    fn update(decision: Decision) -> Update {
        match decision {
            Decision::Update(u) => u,
            other => panic!("expected an update, got {other:?}"),
        }
    }

    fn change(decision: Decision) -> Change {
        update(decision).change
    }

    const FIRING: SignalState = SignalState::Firing;
    const RESOLVED: SignalState = SignalState::Resolved;
    const ACKNOWLEDGED: SignalState = SignalState::Acknowledged;

    #[test]
    fn a_firing_problem_without_a_ticket_opens_one() {
        assert_eq!(first_sight(&signal(FIRING)), Decision::Open);
    }

    #[test]
    fn a_problem_without_a_ticket_is_only_recorded_when_it_is_not_firing_unwanted_or_expected() {
        assert_eq!(
            first_sight(&signal(RESOLVED)),
            Decision::Record(NoTicket::NotFiring)
        );
        assert_eq!(
            first_sight(&signal(ACKNOWLEDGED)),
            Decision::Record(NoTicket::NotFiring)
        );
        let unwanted = Assessment {
            ticket: false,
            ..signal(FIRING)
        };
        assert_eq!(
            first_sight(&unwanted),
            Decision::Record(NoTicket::NotWanted)
        );
        let expected = Assessment {
            expected: true,
            ..signal(FIRING)
        };
        assert_eq!(first_sight(&expected), Decision::Record(NoTicket::Expected));
    }

    #[test]
    fn firing_on_an_open_ticket_is_an_occurrence_that_raises_a_worse_severity() {
        let t = ticket(Status::InProgress, Severity::Sev3, None);
        let p = problem(FIRING, Vec::new());
        let s = IngestSettings::default();
        let d = follow_up(&p, &t, &signal(FIRING), &s, at(5));
        assert_eq!(
            d,
            Decision::Update(Update {
                change: Change::Occurrence { raise: None },
                flip: false,
                flapping: Flapping::Off,
            })
        );
        let worse = Assessment {
            severity: Severity::Sev1,
            ..signal(FIRING)
        };
        assert_eq!(
            change(follow_up(&p, &t, &worse, &s, at(5))),
            Change::Occurrence {
                raise: Some(Severity::Sev1)
            }
        );
        let better = Assessment {
            severity: Severity::Sev5,
            ..signal(FIRING)
        };
        assert_eq!(
            change(follow_up(&p, &t, &better, &s, at(5))),
            Change::Occurrence { raise: None }
        );
    }

    #[test]
    fn another_page_of_the_same_news_merges() {
        let t = ticket(Status::New, Severity::Sev3, None);
        let page = Assessment {
            continues: true,
            severity: Severity::Sev2,
            ..signal(FIRING)
        };
        let c = change(follow_up(
            &problem(FIRING, Vec::new()),
            &t,
            &page,
            &IngestSettings::default(),
            at(5),
        ));
        assert_eq!(
            c,
            Change::Merge {
                raise: Some(Severity::Sev2)
            }
        );
        assert!(!c.counts());
        assert!(c.escalates());
    }

    #[test]
    fn firing_soon_after_the_resolution_reopens() {
        let t = ticket(Status::Resolved, Severity::Sev3, Some(at(0)));
        let u = update(follow_up(
            &problem(RESOLVED, vec![at(0)]),
            &t,
            &signal(FIRING),
            &IngestSettings::default(),
            at(60),
        ));
        assert_eq!(u.change, Change::Reopen { raise: None });
        assert_eq!(u.change.status(), Some(Status::InProgress));
        assert!(u.flip);
        assert_eq!(u.flapping, Flapping::Off);
    }

    #[test]
    fn firing_after_the_reopen_window_is_a_new_problem() {
        let t = ticket(Status::Closed, Severity::Sev3, Some(at(0)));
        let p = problem(RESOLVED, Vec::new());
        let s = IngestSettings::default();
        let late = at(24 * 60 + 1);
        assert_eq!(follow_up(&p, &t, &signal(FIRING), &s, late), Decision::Open);
        let expected = Assessment {
            expected: true,
            ..signal(FIRING)
        };
        assert_eq!(
            follow_up(&p, &t, &expected, &s, late),
            Decision::Record(NoTicket::Expected)
        );
    }

    #[test]
    fn acknowledged_at_the_source_acknowledges_a_new_ticket_only() {
        let p = problem(FIRING, Vec::new());
        let s = IngestSettings::default();
        let new = ticket(Status::New, Severity::Sev3, None);
        let u = update(follow_up(&p, &new, &signal(ACKNOWLEDGED), &s, at(5)));
        assert_eq!(u.change, Change::Acknowledge);
        assert_eq!(u.change.status(), Some(Status::Acknowledged));
        assert!(!u.flip);
        let taken = ticket(Status::InProgress, Severity::Sev3, None);
        assert_eq!(
            change(follow_up(&p, &taken, &signal(ACKNOWLEDGED), &s, at(5))),
            Change::Note(Note::NotNew)
        );
    }

    #[test]
    fn resolved_at_the_source_resolves_an_open_ticket_only() {
        let p = problem(FIRING, Vec::new());
        let s = IngestSettings::default();
        let open = ticket(Status::Pending, Severity::Sev3, None);
        let u = update(follow_up(&p, &open, &signal(RESOLVED), &s, at(5)));
        assert_eq!(u.change, Change::Resolve);
        assert_eq!(u.change.status(), Some(Status::Resolved));
        assert!(u.flip);
        let resolved = ticket(Status::Resolved, Severity::Sev3, Some(at(1)));
        assert_eq!(
            change(follow_up(&p, &resolved, &signal(RESOLVED), &s, at(5))),
            Change::Note(Note::NotOpen)
        );
    }

    #[test]
    fn flips_of_a_flapping_problem_neither_resolve_nor_reopen() {
        let s = IngestSettings::default();
        // Three flips in the last hour: the fourth marks the problem flapping.
        let p = problem(FIRING, vec![at(10), at(20), at(30)]);
        assert!(!p.flapping);
        let open = ticket(Status::InProgress, Severity::Sev3, None);
        let u = update(follow_up(&p, &open, &signal(RESOLVED), &s, at(40)));
        assert_eq!(u.change, Change::Note(Note::ResolvedWhileFlapping));
        assert_eq!(u.flapping, Flapping::Started);

        let p = problem(RESOLVED, vec![at(10), at(20), at(30), at(40)]);
        let resolved = ticket(Status::Resolved, Severity::Sev3, Some(at(30)));
        let u = update(follow_up(&p, &resolved, &signal(FIRING), &s, at(50)));
        assert_eq!(u.change, Change::Note(Note::FiredWhileFlapping));
        assert_eq!(u.flapping, Flapping::On);
        assert!(u.change.counts());
        assert!(!u.change.escalates());
    }

    #[test]
    fn the_windows_include_their_ends() {
        let s = IngestSettings::default();
        let open = ticket(Status::InProgress, Severity::Sev3, None);
        let now = at(120);
        // Flips exactly an hour old still count: this one is the fourth.
        let p = problem(FIRING, vec![at(60), at(70), at(80)]);
        let u = update(follow_up(&p, &open, &signal(RESOLVED), &s, now));
        assert_eq!(u.flapping, Flapping::Started);
        let p = problem(FIRING, vec![at(59), at(70), at(80)]);
        let u = update(follow_up(&p, &open, &signal(RESOLVED), &s, now));
        assert_eq!(u.flapping, Flapping::Off);
        // Firing exactly 24 hours after the resolution still reopens.
        let resolved = ticket(Status::Resolved, Severity::Sev3, Some(at(0)));
        let p = problem(RESOLVED, Vec::new());
        assert_eq!(
            change(follow_up(&p, &resolved, &signal(FIRING), &s, at(24 * 60))),
            Change::Reopen { raise: None }
        );
    }

    #[test]
    fn flapping_stops_once_a_quiet_window_passes() {
        let s = IngestSettings::default();
        let p = problem(FIRING, vec![at(10), at(20), at(30), at(40)]);
        assert!(p.flapping);
        let open = ticket(Status::InProgress, Severity::Sev3, None);
        let mut later = p.clone();
        let u = update(follow_up(&p, &open, &signal(FIRING), &s, at(40 + 61)));
        assert_eq!(u.change, Change::Occurrence { raise: None });
        assert_eq!(u.flapping, Flapping::Stopped);
        later.note(FIRING, &u, at(40 + 61), s.flapping_window);
        assert!(!later.flapping);
        assert!(later.state_changes.is_empty());
        assert_eq!(later.occurrences, 2);
    }

    fn workload(name: &str, environment: Environment, team: Option<&str>) -> Workload {
        Workload {
            id: 1,
            name: name.into(),
            environment,
            team: team.map(Into::into),
            accounts: vec!["111111111111".into()],
            regions: Vec::new(),
            resources: Vec::new(),
            tags: BTreeMap::new(),
            created_at: at(0),
            updated_at: at(0),
        }
    }

    #[test]
    fn a_ticket_moves_to_production_once_and_keeps_a_team_of_its_own() {
        let staging = workload("shop-staging", Environment::Staging, Some("qa"));
        let prod = workload("shop", Environment::Production, Some("shop-team"));
        let all = [staging.clone(), prod.clone()];
        let mut t = ticket(Status::InProgress, Severity::Sev3, None);
        t.workload = Some("shop-staging".into());
        t.team = Some("qa".into());
        assert_eq!(
            production_move(&t, Some(&prod), &all),
            Some(ProductionMove {
                workload: &prod,
                takes_team: true
            })
        );
        // A team someone chose stays.
        t.team = Some("dba".into());
        assert_eq!(
            production_move(&t, Some(&prod), &all).map(|m| m.takes_team),
            Some(false)
        );
        // Never away from production, nor to a workload that is not production.
        assert_eq!(production_move(&t, Some(&staging), &all), None);
        assert_eq!(production_move(&t, None, &all), None);
        t.tags = vec!["production".into()];
        assert_eq!(production_move(&t, Some(&prod), &all), None);
        t.tags.clear();
        t.workload = Some("shop".into());
        assert_eq!(production_move(&t, Some(&prod), &all), None);
    }

    fn state() -> impl Strategy<Value = SignalState> {
        prop::sample::select(SignalState::ALL.to_vec())
    }

    fn status() -> impl Strategy<Value = Status> {
        prop::sample::select(Status::ALL.to_vec())
    }

    fn severity() -> impl Strategy<Value = Severity> {
        prop::sample::select(Severity::ALL.to_vec())
    }

    prop_compose! {
        /// A problem with a ticket, and a signal of it. Times are around the windows' edges:
        /// flips within a few hours before the signal, a resolution near the end of the reopen
        /// window half the time.
        fn case()(
            last_state in state(),
            flips in prop::collection::vec(0i64..180, 0..8),
            was_flapping in any::<bool>(),
            status in status(),
            ticket_severity in severity(),
            resolved in any::<bool>(),
            near_the_end in any::<bool>(),
            from_the_end in -90i64..90,
            since_resolution in -60i64..72 * 60,
            state in state(),
            continues in any::<bool>(),
            severity in severity(),
            wanted in any::<bool>(),
            expected in any::<bool>(),
            reopen_hours in 0i64..48,
            flapping_changes in 2usize..6,
            flapping_minutes in 1i64..120,
        ) -> (Correlation, Ticket, Assessment, IngestSettings, DateTime<Utc>) {
            let now = at(7 * 24 * 60);
            let mut flips: Vec<DateTime<Utc>> =
                flips.into_iter().map(|m| now - Duration::minutes(m)).collect();
            flips.sort();
            let mut p = problem(last_state, flips);
            p.flapping = was_flapping;
            let since = if near_the_end {
                reopen_hours * 60 + from_the_end
            } else {
                since_resolution
            };
            let resolved_at =
                Some(now - Duration::minutes(since)).filter(|_| resolved && !status.is_open());
            let t = ticket(status, ticket_severity, resolved_at);
            let a = Assessment { state, continues, severity, ticket: wanted, expected };
            let settings = IngestSettings {
                rules: Vec::new(),
                reopen_window: Duration::hours(reopen_hours),
                flapping_changes,
                flapping_window: Duration::minutes(flapping_minutes),
            };
            (p, t, a, settings, now)
        }
    }

    proptest! {
        /// A ticket reopens only when its problem fires again within the reopen window of its
        /// resolution; after it, the problem is new.
        #[test]
        fn reopens_only_within_the_reopen_window((p, t, a, s, now) in case()) {
            let d = follow_up(&p, &t, &a, &s, now);
            let within = t.resolved_at.is_some_and(|r| now - r <= s.reopen_window);
            if let Decision::Update(u @ Update { change: Change::Reopen { .. }, .. }) = d {
                prop_assert!(!t.status.is_open());
                prop_assert_eq!(a.state, SignalState::Firing);
                prop_assert!(within);
                prop_assert!(!u.flapping.is_on());
            }
            if a.state == SignalState::Firing && !t.status.is_open() {
                if within {
                    prop_assert!(matches!(d, Decision::Update(_)));
                } else {
                    prop_assert_eq!(d, first_sight(&a));
                }
            }
        }

        /// The problem flaps exactly when `flapping_changes` flips between firing and resolved,
        /// this one included, fall within the flapping window; then no flip resolves or reopens.
        #[test]
        fn flapping_is_enough_flips_within_the_window((p, t, a, s, now) in case()) {
            if let Decision::Update(u) = follow_up(&p, &t, &a, &s, now) {
                let flip = matches!(
                    (p.last_state, a.state),
                    (SignalState::Resolved, SignalState::Firing)
                        | (SignalState::Firing | SignalState::Acknowledged, SignalState::Resolved)
                );
                prop_assert_eq!(u.flip, flip);
                let mut noted = p.clone();
                noted.note(a.state, &u, now, s.flapping_window);
                prop_assert_eq!(noted.flapping, noted.state_changes.len() >= s.flapping_changes);
                prop_assert_eq!(
                    noted.state_changes.len(),
                    p.state_changes.iter().filter(|c| now - **c <= s.flapping_window).count()
                        + usize::from(flip)
                );
                prop_assert!(noted.state_changes.iter().all(|c| now - *c <= s.flapping_window));
                let status_flip = matches!(u.change, Change::Reopen { .. } | Change::Resolve);
                if u.flapping.is_on() {
                    prop_assert!(!status_flip);
                }
                if a.state != SignalState::Acknowledged {
                    prop_assert_eq!(noted.last_state, a.state);
                } else {
                    prop_assert_eq!(noted.last_state, p.last_state);
                }
            }
        }

        /// A signal never lowers a ticket's severity: what it brings is taken only when worse,
        /// and only while the ticket is open after it.
        #[test]
        fn a_repeat_never_lowers_severity((p, t, a, s, now) in case()) {
            if let Decision::Update(u) = follow_up(&p, &t, &a, &s, now) {
                if let Some(raised) = u.change.raise() {
                    prop_assert!(raised < t.severity);
                    prop_assert_eq!(raised, a.severity);
                    prop_assert_eq!(a.state, SignalState::Firing);
                    prop_assert!(u.change.status().unwrap_or(t.status).is_open());
                }
                if a.state == SignalState::Firing
                    && a.severity < t.severity
                    && u.change.status().unwrap_or(t.status).is_open()
                {
                    prop_assert_eq!(u.change.raise(), Some(a.severity));
                }
            }
        }

        /// Only an open ticket is resolved, only a new one acknowledged, only a closed or
        /// resolved one reopened; every status change is one the workflow allows.
        #[test]
        fn changes_only_what_is_open((p, t, a, s, now) in case()) {
            if let Decision::Update(u) = follow_up(&p, &t, &a, &s, now) {
                match u.change {
                    Change::Resolve => {
                        prop_assert!(t.status.is_open());
                        prop_assert_eq!(a.state, SignalState::Resolved);
                    }
                    Change::Acknowledge => prop_assert_eq!(t.status, Status::New),
                    Change::Reopen { .. } => prop_assert!(!t.status.is_open()),
                    Change::Merge { .. } | Change::Occurrence { .. } => {
                        prop_assert!(t.status.is_open());
                        prop_assert_eq!(a.state, SignalState::Firing);
                    }
                    Change::Note(_) => {}
                }
                if let Some(to) = u.change.status() {
                    prop_assert!(t.status.transition_to(to).is_ok());
                }
                prop_assert_eq!(
                    u.change.counts(),
                    a.state == SignalState::Firing && !matches!(u.change, Change::Merge { .. })
                );
            }
        }

        /// A problem with no ticket opens one only when it fires, is wanted and is not expected.
        #[test]
        fn first_sight_opens_only_what_is_wanted((_p, _t, a, _s, _now) in case()) {
            prop_assert_eq!(
                first_sight(&a) == Decision::Open,
                a.state == SignalState::Firing && a.ticket && !a.expected
            );
        }
    }
}
