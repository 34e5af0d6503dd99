//! SLA clocks: how long a ticket may wait for its first response and for its resolution,
//! counted in the business time of a calendar, paused while the ticket is `pending`.
//!
//! Policies as configured (TOML; the JSON API takes the same keys):
//!
//! ```toml
//! [[sla.policies]]
//! name = "checkout-sev1"
//! severity = "SEV1"               # required
//! kind = "incident"               # optional
//! workload = "checkout"           # optional
//! first_response_minutes = 10
//! resolution_minutes = 120
//! calendar = "eu-office"          # optional: without it the 24x7 `always` calendar
//! warning_share = 0.5             # optional, default 0.75: warn at half the target
//! ```
//!
//! The hours that count come from a [`Calendar`]; [`CalendarSpec`] shows how one is configured.

mod calendar;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use calendar::{
    Calendar, CalendarSpec, WeeklyHours, ALWAYS, HOLIDAYS_MAX, RANGES_PER_DAY_MAX,
    SEARCH_HORIZON_DAYS,
};

use crate::ticket::{named_enum, Kind, Severity};
use crate::validation::{FieldError, Validated};
use calendar::{name_ok, NAME_RULE};

/// The longest target a policy may set: 365 days.
pub const TARGET_MAX_MINUTES: u32 = 365 * 24 * 60;

/// How far ahead of now a ticket's clocks may be read: a year.
pub const READ_AHEAD_MAX_DAYS: i64 = 365;

/// Checks the instant a caller asks to read a ticket's clocks at: from the ticket's creation
/// to [`READ_AHEAD_MAX_DAYS`] after `now`. The error names `at`.
pub fn check_reading_time(
    at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, FieldError> {
    if at < created_at {
        return Err(FieldError::new(
            "at",
            format!(
                "must not be before the ticket was created ({})",
                crate::audit::format_time(created_at)
            ),
        ));
    }
    let latest = now
        .checked_add_signed(Duration::days(READ_AHEAD_MAX_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if at > latest {
        return Err(FieldError::new(
            "at",
            format!("must be at most {READ_AHEAD_MAX_DAYS} days after now"),
        ));
    }
    Ok(at)
}

/// The share of a target after which a clock warns, unless a policy says otherwise.
pub const DEFAULT_WARNING_SHARE: f64 = 0.75;

fn default_warning_share() -> f64 {
    DEFAULT_WARNING_SHARE
}

/// Targets for the tickets it matches. A policy matches on severity and, when given, on kind
/// and workload; [`select_policy`] picks the most specific.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    /// Letters, digits, `-`, `_` and `.`.
    pub name: String,
    pub severity: Severity,
    /// Only tickets of this kind; any kind when left out.
    #[serde(default)]
    pub kind: Option<Kind>,
    /// Only tickets of this workload; any workload when left out.
    #[serde(default)]
    pub workload: Option<String>,
    /// Business minutes from creation to the first response, 1 to 525600 (365 days).
    pub first_response_minutes: u32,
    /// Business minutes from creation to resolution, at least the first response target.
    pub resolution_minutes: u32,
    /// The calendar whose hours count; the built-in 24x7 `always` calendar when left out.
    #[serde(default)]
    pub calendar: Option<String>,
    /// The share of each target after which the clock warns, between 0 and 1; 0.75 when
    /// left out.
    #[serde(default = "default_warning_share")]
    pub warning_share: f64,
}

impl SlaPolicy {
    pub fn first_response(&self) -> Duration {
        Duration::minutes(i64::from(self.first_response_minutes))
    }

    pub fn resolution(&self) -> Duration {
        Duration::minutes(i64::from(self.resolution_minutes))
    }

    /// How specifically this policy matches a ticket (kind and workload 3, workload 2, kind
    /// 1, severity only 0), or `None` when it does not.
    fn specificity(&self, severity: Severity, kind: Kind, workload: Option<&str>) -> Option<u8> {
        if self.severity != severity {
            return None;
        }
        let by_kind = match self.kind {
            None => false,
            Some(k) if k == kind => true,
            Some(_) => return None,
        };
        let by_workload = match self.workload.as_deref() {
            None => false,
            Some(w) if Some(w) == workload => true,
            Some(_) => return None,
        };
        Some(u8::from(by_workload) * 2 + u8::from(by_kind))
    }
}

fn optional_name(field: &str, value: Option<String>) -> Result<Option<String>, FieldError> {
    match value.map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(FieldError::new(field, "must not be empty when given")),
        Some(v) if !name_ok(&v) => Err(FieldError::new(field, NAME_RULE)),
        Some(v) => Ok(Some(v)),
    }
}

impl Validated for SlaPolicy {
    /// Errors name the field: `name`, `workload`, `calendar`, `first_response_minutes`,
    /// `resolution_minutes`, `warning_share`.
    fn validate(mut self) -> Result<Self, FieldError> {
        self.name = self.name.trim().to_owned();
        if !name_ok(&self.name) {
            return Err(FieldError::new("name", NAME_RULE));
        }
        self.workload = optional_name("workload", self.workload)?;
        self.calendar = optional_name("calendar", self.calendar)?;
        for (field, minutes) in [
            ("first_response_minutes", self.first_response_minutes),
            ("resolution_minutes", self.resolution_minutes),
        ] {
            if minutes == 0 || minutes > TARGET_MAX_MINUTES {
                return Err(FieldError::new(
                    field,
                    format!("must be 1 to {TARGET_MAX_MINUTES} minutes (365 days)"),
                ));
            }
        }
        if self.first_response_minutes > self.resolution_minutes {
            return Err(FieldError::new(
                "first_response_minutes",
                "must not be longer than resolution_minutes",
            ));
        }
        if !(self.warning_share > 0.0 && self.warning_share < 1.0) {
            return Err(FieldError::new(
                "warning_share",
                "must be more than 0 and less than 1, e.g. 0.75",
            ));
        }
        Ok(self)
    }
}

/// The policy for a ticket: the most specific match (severity with kind and workload, then
/// severity with workload, then severity with kind, then severity only), the first listed on a
/// tie. Try the configured policies first and [`default_policies`] when none matches.
pub fn select_policy<'a>(
    policies: &'a [SlaPolicy],
    severity: Severity,
    kind: Kind,
    workload: Option<&str>,
) -> Option<&'a SlaPolicy> {
    let mut best: Option<(u8, &SlaPolicy)> = None;
    for policy in policies {
        if let Some(score) = policy.specificity(severity, kind, workload) {
            if best.is_none_or(|(top, _)| score > top) {
                best = Some((score, policy));
            }
        }
    }
    best.map(|(_, policy)| policy)
}

/// The built-in policies, one per severity, all on the 24x7 `always` calendar (a default set of
/// office hours would be a guess). First-response targets for SEV3 to SEV5 follow the response
/// times of AWS Business and Enterprise Support for high, normal and low.
///
/// | severity | first response | resolution |
/// |----------|----------------|------------|
/// | SEV1     | 15 minutes     | 4 hours    |
/// | SEV2     | 30 minutes     | 8 hours    |
/// | SEV3     | 4 hours        | 3 days     |
/// | SEV4     | 12 hours       | 7 days     |
/// | SEV5     | 24 hours       | 14 days    |
///
/// Each warns at 75% of its targets.
pub fn default_policies() -> Vec<SlaPolicy> {
    const HOUR: u32 = 60;
    const DAY: u32 = 24 * HOUR;
    let policy = |severity: Severity, first_response_minutes, resolution_minutes| SlaPolicy {
        name: format!("default-{}", severity.as_str().to_lowercase()),
        severity,
        kind: None,
        workload: None,
        first_response_minutes,
        resolution_minutes,
        calendar: None,
        warning_share: DEFAULT_WARNING_SHARE,
    };
    vec![
        policy(Severity::Sev1, 15, 4 * HOUR),
        policy(Severity::Sev2, 30, 8 * HOUR),
        policy(Severity::Sev3, 4 * HOUR, 3 * DAY),
        policy(Severity::Sev4, 12 * HOUR, 7 * DAY),
        policy(Severity::Sev5, 24 * HOUR, 14 * DAY),
    ]
}

/// The calendar a policy's clock runs on: the configured calendar of that name, or the
/// built-in 24x7 one when the policy names none (or names `always` and no configured calendar
/// has that name). `None` when the named calendar does not exist.
pub fn policy_calendar<'a>(policy: &SlaPolicy, calendars: &'a [Calendar]) -> Option<&'a Calendar> {
    match policy.calendar.as_deref() {
        None => Some(Calendar::always_ref()),
        Some(name) => calendars
            .iter()
            .find(|c| c.name() == name)
            .or_else(|| (name == ALWAYS).then(Calendar::always_ref)),
    }
}

/// Checks calendars and policies together: calendar names are unique and every calendar a
/// policy names exists. Errors name `calendars[i].name` or `policies[i].calendar`.
pub fn check_setup(calendars: &[Calendar], policies: &[SlaPolicy]) -> Result<(), FieldError> {
    for (i, calendar) in calendars.iter().enumerate() {
        if calendars
            .iter()
            .take(i)
            .any(|c| c.name() == calendar.name())
        {
            return Err(FieldError::new(
                format!("calendars[{i}].name"),
                format!("a calendar named `{}` is already defined", calendar.name()),
            ));
        }
    }
    for (i, policy) in policies.iter().enumerate() {
        if policy_calendar(policy, calendars).is_none() {
            let known: Vec<&str> = std::iter::once(ALWAYS)
                .chain(calendars.iter().map(Calendar::name))
                .collect();
            return Err(FieldError::new(
                format!("policies[{i}].calendar"),
                format!(
                    "no calendar is named `{}`; known calendars: {}",
                    policy.calendar.as_deref().unwrap_or_default(),
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A stretch of time a ticket spent in `pending`; `until` is empty while it still is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pause {
    pub from: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

/// What an SLA clock needs to know about a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTimes {
    pub created_at: DateTime<Utc>,
    /// The first response, however the caller defines it (acknowledgement, first public
    /// comment). A resolution counts as the first response when there is none.
    pub responded_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Times spent in `pending`, in any order; overlaps count once.
    pub pauses: Vec<Pause>,
}

named_enum! {
    /// Where an SLA clock stands.
    ClockState {
        /// Counting business time towards the target.
        Running => "running",
        /// The ticket is pending: the clock waits, and the due time moves with it.
        Paused => "paused",
        /// Stopped at or before the due time.
        Met => "met",
        /// Past the due time, stopped or not.
        Breached => "breached",
    }
}

/// One target (first response or resolution) and how the ticket stands against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deadline {
    /// The target in business minutes.
    pub target_minutes: u32,
    /// When the target is reached if the ticket is not paused again; a pause still going on
    /// is counted up to now. Empty when that lies beyond the search horizon (100 years).
    pub due_at: Option<DateTime<Utc>>,
    /// When the policy's warning share of the target is reached, on the same terms.
    pub warn_at: Option<DateTime<Utc>>,
    pub state: ClockState,
    /// Running or paused, and past `warn_at`.
    pub warning: bool,
    /// Business seconds counted so far (up to the stop for a met or breached clock that
    /// stopped), pauses left out.
    pub elapsed_seconds: i64,
    /// Business seconds left before the target; 0 once it is reached.
    pub left_seconds: i64,
}

/// A ticket's SLA clocks at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlaClock {
    /// The policy that set the targets.
    pub policy: String,
    /// The calendar whose hours count.
    pub calendar: String,
    pub first_response: Deadline,
    pub resolution: Deadline,
}

/// Measures a ticket's clocks against a policy at `now`. Each clock counts the business time of
/// `calendar` from creation to its stop (the response or the resolution, when at or before
/// `now`) or to `now`, leaving out the business time spent paused; each pause moves the due
/// time by the business time it took.
pub fn measure(
    policy: &SlaPolicy,
    calendar: &Calendar,
    ticket: &TicketTimes,
    now: DateTime<Utc>,
) -> SlaClock {
    let on = |target_minutes, stopped_at| {
        deadline(
            calendar,
            ticket,
            target_minutes,
            policy.warning_share,
            stopped_at,
            now,
        )
    };
    SlaClock {
        policy: policy.name.clone(),
        calendar: calendar.name().to_owned(),
        first_response: on(
            policy.first_response_minutes,
            ticket.responded_at.or(ticket.resolved_at),
        ),
        resolution: on(policy.resolution_minutes, ticket.resolved_at),
    }
}

fn deadline(
    calendar: &Calendar,
    ticket: &TicketTimes,
    target_minutes: u32,
    warning_share: f64,
    stopped_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Deadline {
    let created = ticket.created_at;
    let stop = stopped_at.filter(|t| *t <= now).map(|t| t.max(created));
    let end = stop.unwrap_or(now).max(created);
    let paused = paused_spans(&ticket.pauses, created, end);

    let target = Duration::minutes(i64::from(target_minutes));
    // Whole seconds; a share outside (0, 1) is refused by validation, clamped here.
    let warn_seconds = (target.num_seconds() as f64 * warning_share).round() as i64;
    let warn_target = Duration::seconds(warn_seconds.clamp(0, target.num_seconds()));
    let due_at = reach(calendar, created, &paused, target);
    let warn_at = reach(calendar, created, &paused, warn_target);

    let elapsed = paused.iter().fold(
        calendar.business_between(created, end),
        |total, (from, until)| total - calendar.business_between(*from, *until),
    );
    let paused_now = ticket
        .pauses
        .iter()
        .any(|p| p.from <= now && p.until.is_none_or(|until| until > now));
    let state = match (stop, due_at) {
        (Some(t), Some(due)) if t > due => ClockState::Breached,
        (Some(_), _) => ClockState::Met,
        (None, Some(due)) if now > due => ClockState::Breached,
        (None, _) if paused_now => ClockState::Paused,
        (None, _) => ClockState::Running,
    };
    let warning = matches!(state, ClockState::Running | ClockState::Paused)
        && warn_at.is_some_and(|w| now >= w);
    Deadline {
        target_minutes,
        due_at,
        warn_at,
        state,
        warning,
        elapsed_seconds: elapsed.num_seconds(),
        left_seconds: (target - elapsed).num_seconds().max(0),
    }
}

/// The pauses within `[from, to]`, sorted and merged; one still going on lasts until `to`.
fn paused_spans(
    pauses: &[Pause],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut spans: Vec<_> = pauses
        .iter()
        .filter_map(|p| {
            let start = p.from.max(from);
            let end = p.until.map_or(to, |until| until.min(to));
            (end > start).then_some((start, end))
        })
        .collect();
    spans.sort();
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// The instant at which `target` of business time outside the (sorted, disjoint) pauses has
/// elapsed since `start`.
fn reach(
    calendar: &Calendar,
    start: DateTime<Utc>,
    paused: &[(DateTime<Utc>, DateTime<Utc>)],
    target: Duration,
) -> Option<DateTime<Utc>> {
    let mut cursor = start;
    let mut remaining = target;
    for &(from, until) in paused {
        let before = calendar.business_between(cursor, from);
        if before >= remaining {
            return calendar.add_business(cursor, remaining);
        }
        remaining -= before;
        cursor = cursor.max(until);
    }
    calendar.add_business(cursor, remaining)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn office_hours(ranges: &[&str]) -> WeeklyHours {
        let r: Vec<String> = ranges.iter().map(|r| r.to_string()).collect();
        WeeklyHours {
            mon: r.clone(),
            tue: r.clone(),
            wed: r.clone(),
            thu: r.clone(),
            fri: r,
            ..WeeklyHours::default()
        }
    }

    fn calendar(name: &str, time_zone: &str, hours: WeeklyHours, holidays: &[&str]) -> Calendar {
        CalendarSpec {
            name: name.into(),
            time_zone: time_zone.into(),
            hours,
            holidays: holidays.iter().map(|h| h.to_string()).collect(),
        }
        .validate()
        .unwrap()
    }

    fn eu_office() -> Calendar {
        calendar(
            "eu-office",
            "Europe/Berlin",
            office_hours(&["09:00-17:00"]),
            &["2026-12-25"],
        )
    }

    fn policy(severity: Severity, kind: Option<Kind>, workload: Option<&str>) -> SlaPolicy {
        SlaPolicy {
            name: "p".into(),
            severity,
            kind,
            workload: workload.map(str::to_owned),
            first_response_minutes: 240,
            resolution_minutes: 960,
            calendar: Some("eu-office".into()),
            warning_share: 0.75,
        }
    }

    fn ticket(pauses: &[(&str, Option<&str>)]) -> TicketTimes {
        TicketTimes {
            // A Tuesday, 15:00 in Berlin.
            created_at: utc("2026-03-03T15:00:00+01:00"),
            responded_at: None,
            resolved_at: None,
            pauses: pauses
                .iter()
                .map(|(from, until)| Pause {
                    from: utc(from),
                    until: until.map(utc),
                })
                .collect(),
        }
    }

    const HOUR: i64 = 3600;

    #[test]
    fn clock_without_pauses_counts_business_hours() {
        let p = policy(Severity::Sev3, None, None);
        let clock = measure(
            &p,
            &eu_office(),
            &ticket(&[]),
            utc("2026-03-03T16:00:00+01:00"),
        );
        let fr = &clock.first_response;
        // 4h: 15:00-17:00 on Tuesday, 09:00-11:00 on Wednesday. Warning at 3h.
        assert_eq!(fr.due_at, Some(utc("2026-03-04T11:00:00+01:00")));
        assert_eq!(fr.warn_at, Some(utc("2026-03-04T10:00:00+01:00")));
        assert_eq!(fr.state, ClockState::Running);
        assert!(!fr.warning);
        assert_eq!((fr.elapsed_seconds, fr.left_seconds), (HOUR, 3 * HOUR));
        // 16h: Tuesday 2h, Wednesday and Thursday 8h each (ends at Thursday's close).
        assert_eq!(
            clock.resolution.due_at,
            Some(utc("2026-03-05T15:00:00+01:00"))
        );
        assert_eq!(clock.calendar, "eu-office");
    }

    #[test]
    fn a_pause_over_night_moves_the_due_times_by_its_business_hours() {
        let p = policy(Severity::Sev3, None, None);
        // Pending from Tuesday 16:00 to Wednesday 10:00: one business hour each side of the
        // night.
        let t = ticket(&[(
            "2026-03-03T16:00:00+01:00",
            Some("2026-03-04T10:00:00+01:00"),
        )]);
        let clock = measure(&p, &eu_office(), &t, utc("2026-03-04T12:30:00+01:00"));
        let fr = &clock.first_response;
        assert_eq!(fr.due_at, Some(utc("2026-03-04T13:00:00+01:00")));
        assert_eq!(fr.warn_at, Some(utc("2026-03-04T12:00:00+01:00")));
        assert_eq!(fr.state, ClockState::Running);
        assert!(fr.warning);
        // 15:00-16:00 and 10:00-12:30.
        assert_eq!(fr.elapsed_seconds, 3 * HOUR + HOUR / 2);
        assert_eq!(fr.left_seconds, HOUR / 2);
        assert_eq!(
            clock.resolution.due_at,
            Some(utc("2026-03-05T17:00:00+01:00"))
        );

        let later = measure(&p, &eu_office(), &t, utc("2026-03-04T13:30:00+01:00"));
        assert_eq!(later.first_response.state, ClockState::Breached);
        assert_eq!(later.first_response.left_seconds, 0);
        assert!(!later.first_response.warning);

        let mut answered = t.clone();
        answered.responded_at = Some(utc("2026-03-04T12:00:00+01:00"));
        let met = measure(
            &p,
            &eu_office(),
            &answered,
            utc("2026-03-06T12:00:00+01:00"),
        );
        assert_eq!(met.first_response.state, ClockState::Met);
        assert_eq!(met.first_response.elapsed_seconds, 3 * HOUR);
        assert_eq!(met.first_response.left_seconds, HOUR);
        assert_eq!(met.resolution.state, ClockState::Breached);

        answered.responded_at = Some(utc("2026-03-04T14:00:00+01:00"));
        let late = measure(
            &p,
            &eu_office(),
            &answered,
            utc("2026-03-04T14:00:00+01:00"),
        );
        assert_eq!(late.first_response.state, ClockState::Breached);
    }

    #[test]
    fn a_pause_still_going_on_holds_the_clock() {
        let p = policy(Severity::Sev3, None, None);
        let t = ticket(&[("2026-03-03T16:00:00+01:00", None)]);
        let at_ten = measure(&p, &eu_office(), &t, utc("2026-03-04T10:00:00+01:00"));
        let fr = &at_ten.first_response;
        assert_eq!(fr.state, ClockState::Paused);
        assert_eq!((fr.elapsed_seconds, fr.left_seconds), (HOUR, 3 * HOUR));
        assert_eq!(fr.due_at, Some(utc("2026-03-04T13:00:00+01:00")));
        // An hour later it is still paused, and the due time has moved an hour.
        let at_eleven = measure(&p, &eu_office(), &t, utc("2026-03-04T11:00:00+01:00"));
        assert_eq!(at_eleven.first_response.state, ClockState::Paused);
        assert_eq!(
            at_eleven.first_response.due_at,
            Some(utc("2026-03-04T14:00:00+01:00"))
        );
        assert_eq!(at_eleven.first_response.elapsed_seconds, HOUR);
    }

    #[test]
    fn a_clock_breached_before_a_pause_stays_breached() {
        let sev1 = select_policy(&default_policies(), Severity::Sev1, Kind::Incident, None)
            .unwrap()
            .clone();
        let t = TicketTimes {
            created_at: utc("2026-03-03T10:00:00Z"),
            responded_at: None,
            resolved_at: None,
            pauses: vec![Pause {
                from: utc("2026-03-03T10:30:00Z"),
                until: None,
            }],
        };
        let clock = measure(&sev1, &Calendar::always(), &t, utc("2026-03-03T11:00:00Z"));
        assert_eq!(
            clock.first_response.due_at,
            Some(utc("2026-03-03T10:15:00Z"))
        );
        assert_eq!(clock.first_response.state, ClockState::Breached);
        assert_eq!(clock.resolution.state, ClockState::Paused);
        assert_eq!(clock.resolution.elapsed_seconds, HOUR / 2);
        assert_eq!(clock.resolution.due_at, Some(utc("2026-03-03T14:30:00Z")));
        assert_eq!(clock.calendar, ALWAYS);
    }

    #[test]
    fn resolution_counts_as_first_response_and_future_stops_are_ignored() {
        let p = policy(Severity::Sev3, None, None);
        let mut t = ticket(&[]);
        t.resolved_at = Some(utc("2026-03-03T16:00:00+01:00"));
        let clock = measure(&p, &eu_office(), &t, utc("2026-03-10T00:00:00Z"));
        assert_eq!(clock.first_response.state, ClockState::Met);
        assert_eq!(clock.resolution.state, ClockState::Met);
        assert_eq!(clock.resolution.elapsed_seconds, HOUR);
        let before = measure(&p, &eu_office(), &t, utc("2026-03-03T15:30:00+01:00"));
        assert_eq!(before.resolution.state, ClockState::Running);
        assert_eq!(before.resolution.elapsed_seconds, HOUR / 2);
    }

    #[test]
    fn an_unchecked_warning_share_does_not_break_the_clock() {
        for share in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 7.0] {
            let p = SlaPolicy {
                warning_share: share,
                ..policy(Severity::Sev3, None, None)
            };
            let clock = measure(&p, &eu_office(), &ticket(&[]), utc("2026-03-03T16:00:00Z"));
            let fr = clock.first_response;
            assert!(fr.warn_at <= fr.due_at && fr.warn_at.is_some(), "{share}");
        }
    }

    #[test]
    fn clock_reads_as_json() {
        let p = policy(Severity::Sev3, None, None);
        let clock = measure(
            &p,
            &eu_office(),
            &ticket(&[]),
            utc("2026-03-03T16:00:00+01:00"),
        );
        let json = serde_json::to_value(&clock).unwrap();
        assert_eq!(
            json["first_response"],
            serde_json::json!({
                "target_minutes": 240,
                "due_at": "2026-03-04T10:00:00Z",
                "warn_at": "2026-03-04T09:00:00Z",
                "state": "running",
                "warning": false,
                "elapsed_seconds": 3600,
                "left_seconds": 10800,
            })
        );
        assert_eq!(json["policy"], "p");
    }

    #[test]
    fn most_specific_policy_wins_then_the_first_listed() {
        use Kind::*;
        use Severity::*;
        let named = |name: &str, kind, workload| SlaPolicy {
            name: name.into(),
            ..policy(Sev2, kind, workload)
        };
        let policies = vec![
            named("sev2", None, None),
            named("sev2-incident", Some(Incident), None),
            named("sev2-checkout", None, Some("checkout")),
            named("sev2-checkout-incident", Some(Incident), Some("checkout")),
            named("sev2-again", None, None),
            named("sev2-checkout-again", None, Some("checkout")),
        ];
        let pick = |kind, workload| {
            select_policy(&policies, Sev2, kind, workload).map(|p| p.name.as_str())
        };
        assert_eq!(
            pick(Incident, Some("checkout")),
            Some("sev2-checkout-incident")
        );
        assert_eq!(pick(Task, Some("checkout")), Some("sev2-checkout"));
        assert_eq!(pick(Incident, Some("billing")), Some("sev2-incident"));
        assert_eq!(pick(Incident, None), Some("sev2-incident"));
        assert_eq!(pick(Question, None), Some("sev2"));
        assert_eq!(select_policy(&policies, Sev1, Incident, None), None);
        // Workload is more specific than kind.
        let without_both = &policies[..3];
        let top = select_policy(without_both, Sev2, Incident, Some("checkout")).unwrap();
        assert_eq!(top.name, "sev2-checkout");
        // Order breaks ties only between equally specific policies.
        let reversed: Vec<_> = policies.iter().rev().cloned().collect();
        let top = select_policy(&reversed, Sev2, Incident, Some("checkout")).unwrap();
        assert_eq!(top.name, "sev2-checkout-incident");
        let top = select_policy(&reversed, Sev2, Task, Some("checkout")).unwrap();
        assert_eq!(top.name, "sev2-checkout-again");
    }

    #[test]
    fn default_policies_cover_every_severity_on_the_always_calendar() {
        let defaults = default_policies();
        for severity in Severity::ALL {
            let p = select_policy(&defaults, *severity, Kind::Incident, Some("any")).unwrap();
            assert_eq!(p.severity, *severity);
            assert_eq!(p.clone().validate().as_ref(), Ok(p));
            assert_eq!(policy_calendar(p, &[]).map(Calendar::name), Some(ALWAYS));
        }
        let minutes: Vec<_> = defaults
            .iter()
            .map(|p| (p.first_response_minutes, p.resolution_minutes))
            .collect();
        assert_eq!(
            minutes,
            [
                (15, 240),
                (30, 480),
                (240, 4320),
                (720, 10080),
                (1440, 20160)
            ]
        );
        assert_eq!(defaults[0].name, "default-sev1");
    }

    #[test]
    fn policy_validation_names_the_field() {
        let ok = policy(Severity::Sev1, None, Some(" checkout "));
        assert_eq!(
            ok.clone().validate().unwrap().workload.as_deref(),
            Some("checkout")
        );
        let field = |change: &dyn Fn(&mut SlaPolicy)| {
            let mut p = ok.clone();
            change(&mut p);
            p.validate().unwrap_err().field
        };
        assert_eq!(field(&|p| p.name = " ".into()), "name");
        assert_eq!(field(&|p| p.workload = Some("".into())), "workload");
        assert_eq!(
            field(&|p| p.calendar = Some("eu office".into())),
            "calendar"
        );
        assert_eq!(
            field(&|p| p.first_response_minutes = 0),
            "first_response_minutes"
        );
        assert_eq!(
            field(&|p| p.resolution_minutes = 600_000),
            "resolution_minutes"
        );
        assert_eq!(
            field(&|p| p.first_response_minutes = 1000),
            "first_response_minutes"
        );
        for share in [0.0, 1.0, -0.5, f64::NAN] {
            assert_eq!(field(&|p| p.warning_share = share), "warning_share");
        }
    }

    #[test]
    fn setup_checks_calendar_names_and_references() {
        let cals = vec![eu_office()];
        let mut p = policy(Severity::Sev1, None, None);
        assert_eq!(check_setup(&cals, std::slice::from_ref(&p)), Ok(()));
        p.calendar = Some("us-office".into());
        let err = check_setup(&cals, &[default_policies()[0].clone(), p.clone()]).unwrap_err();
        assert_eq!(err.field, "policies[1].calendar");
        assert!(err.message.contains("always, eu-office"), "{}", err.message);
        p.calendar = Some(ALWAYS.into());
        assert_eq!(check_setup(&cals, &[p]), Ok(()));
        let err = check_setup(&[eu_office(), eu_office()], &[]).unwrap_err();
        assert_eq!(err.field, "calendars[1].name");
    }

    #[test]
    fn reads_the_documented_configuration() {
        #[derive(Deserialize)]
        struct Sla {
            calendars: Vec<CalendarSpec>,
            policies: Vec<SlaPolicy>,
        }
        let sla: Sla = toml::from_str(
            r#"
            [[calendars]]
            name = "eu-office"
            time_zone = "Europe/Berlin"
            holidays = ["2026-12-24", "2026-12-25"]
            [calendars.hours]
            mon = ["09:00-17:00"]
            tue = ["09:00-12:30", "13:30-17:00"]
            wed = ["09:00-17:00"]
            thu = ["09:00-17:00"]
            fri = ["09:00-15:00"]

            [[policies]]
            name = "checkout-sev1"
            severity = "SEV1"
            kind = "incident"
            workload = "checkout"
            first_response_minutes = 10
            resolution_minutes = 120
            calendar = "eu-office"
            warning_share = 0.5

            [[policies]]
            name = "sev4-office"
            severity = "SEV4"
            first_response_minutes = 480
            resolution_minutes = 2400
            calendar = "eu-office"
            "#,
        )
        .unwrap();
        let calendars: Vec<Calendar> = sla
            .calendars
            .iter()
            .map(|c| c.validate().unwrap())
            .collect();
        let policies: Vec<SlaPolicy> = sla
            .policies
            .into_iter()
            .map(|p| p.validate().unwrap())
            .collect();
        assert_eq!(check_setup(&calendars, &policies), Ok(()));
        assert_eq!(policies[1].warning_share, DEFAULT_WARNING_SHARE);
        assert_eq!(policies[0].kind, Some(Kind::Incident));
        let p = select_policy(&policies, Severity::Sev4, Kind::Task, None).unwrap();
        assert_eq!(policy_calendar(p, &calendars), Some(&calendars[0]));
    }

    // Property tests over calendars that exercise the awkward cases: weekends, lunch breaks,
    // holidays, hours inside the skipped and repeated hours of daylight saving, and a whole
    // day made of two ranges (not recognised as 24x7, so it takes the day-by-day path).
    fn fixture(i: usize) -> Calendar {
        let every_day = |ranges: &[&str]| {
            let r: Vec<String> = ranges.iter().map(|r| r.to_string()).collect();
            WeeklyHours {
                sat: r.clone(),
                sun: r.clone(),
                ..office_hours(ranges)
            }
        };
        match i {
            0 => calendar(
                "berlin",
                "Europe/Berlin",
                office_hours(&["09:00-17:00"]),
                &["2026-12-25", "2027-01-01", "2028-05-01"],
            ),
            1 => calendar(
                "new-york",
                "America/New_York",
                WeeklyHours {
                    sat: vec!["10:00-14:00".into()],
                    ..office_hours(&["08:00-12:00", "13:00-18:00"])
                },
                &["2026-07-03", "2027-11-25"],
            ),
            2 => calendar(
                "nights",
                "Europe/Berlin",
                every_day(&["00:00-03:00", "22:00-24:00"]),
                &["2026-10-25"],
            ),
            3 => calendar(
                "split-day",
                "America/New_York",
                every_day(&["00:00-12:00", "12:00-24:00"]),
                &[],
            ),
            // Cuba changes its clocks at midnight.
            4 => calendar(
                "havana",
                "America/Havana",
                every_day(&["00:00-08:00", "08:00-24:00"]),
                &[],
            ),
            _ => Calendar::always(),
        }
    }

    #[test]
    fn clocks_are_read_from_creation_to_a_year_ahead() {
        let created = utc("2026-03-03T15:00:00Z");
        let now = utc("2026-03-10T12:00:00Z");
        assert_eq!(check_reading_time(created, created, now), Ok(created));
        let year = now + Duration::days(READ_AHEAD_MAX_DAYS);
        assert_eq!(check_reading_time(year, created, now), Ok(year));
        for at in [
            created - Duration::seconds(1),
            year + Duration::seconds(1),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ] {
            assert_eq!(
                check_reading_time(at, created, now).unwrap_err().field,
                "at"
            );
        }
        let end = DateTime::<Utc>::MAX_UTC;
        assert_eq!(check_reading_time(end, created, end), Ok(end));
    }

    /// Any instant chrono can hold, the ends included.
    fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        prop_oneof![
            Just(min),
            Just(max),
            (min.timestamp()..=max.timestamp())
                .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
            instant(),
        ]
    }

    proptest! {
        // Each case may walk the whole horizon (a hundred years of days).
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn walks_anywhere_in_time_are_bounded(
            i in 0usize..6, a in any_time(), b in any_time(), minutes in 0u32..=TARGET_MAX_MINUTES
        ) {
            let cal = fixture(i);
            let horizon = Duration::days(SEARCH_HORIZON_DAYS as i64);
            let between = cal.business_between(a, b);
            prop_assert!(between >= Duration::zero() && between <= horizon);
            if b > a {
                prop_assert!(between <= b - a);
                if let Some(limit) = a.checked_add_signed(horizon).filter(|l| *l < b) {
                    prop_assert_eq!(between, cal.business_between(a, limit));
                }
            } else {
                prop_assert_eq!(between, Duration::zero());
            }
            let d = Duration::minutes(i64::from(minutes));
            if let Some(due) = cal.add_business(a, d) {
                prop_assert!(due >= a);
                prop_assert!(due - a <= horizon + Duration::days(2));
            }
        }

        #[test]
        fn clocks_read_anywhere_in_time_do_not_fail(
            i in 0usize..6, created in any_time(), now in any_time(), minutes in 1u32..=TARGET_MAX_MINUTES
        ) {
            let cal = fixture(i);
            let p = SlaPolicy {
                resolution_minutes: minutes,
                first_response_minutes: minutes,
                ..policy(Severity::Sev3, None, None)
            };
            let ticket = TicketTimes {
                created_at: created,
                responded_at: None,
                resolved_at: None,
                pauses: vec![Pause { from: created, until: Some(now) }],
            };
            let clock = measure(&p, &cal, &ticket, now).resolution;
            let horizon = Duration::days(SEARCH_HORIZON_DAYS as i64);
            prop_assert!(clock.elapsed_seconds <= horizon.num_seconds());
            prop_assert!(clock.left_seconds >= 0);
        }
    }

    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        // 2025-01-01 to 2030-01-01, on whole seconds.
        (1_735_689_600i64..1_893_456_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    fn business() -> impl Strategy<Value = Duration> {
        (0i64..90 * 24 * 3600).prop_map(Duration::seconds)
    }

    proptest! {
        #[test]
        fn add_then_between_round_trips(i in 0usize..6, start in instant(), d in business()) {
            let cal = fixture(i);
            let due = cal.add_business(start, d).unwrap();
            prop_assert!(due >= start);
            prop_assert_eq!(cal.business_between(start, due), d);
            if d > Duration::zero() {
                // And it is the first such instant.
                let just_before = due - Duration::seconds(1);
                prop_assert!(cal.business_between(start, just_before) < d);
            }
        }

        #[test]
        fn add_is_monotonic_in_the_duration(
            i in 0usize..6, start in instant(), d1 in business(), d2 in business()
        ) {
            let cal = fixture(i);
            let (short, long) = (d1.min(d2), d1.max(d2));
            prop_assert!(cal.add_business(start, short) <= cal.add_business(start, long));
        }

        #[test]
        fn between_adds_up(i in 0usize..6, a in instant(), b in instant(), c in instant()) {
            let cal = fixture(i);
            let mut t = [a, b, c];
            t.sort();
            let [a, b, c] = t;
            prop_assert_eq!(
                cal.business_between(a, b) + cal.business_between(b, c),
                cal.business_between(a, c)
            );
            prop_assert!(cal.business_between(a, c) <= c - a);
            prop_assert_eq!(cal.business_between(c, a), Duration::zero());
        }

        #[test]
        fn around_the_clock_is_real_time(
            i in 3usize..6, a in instant(), b in instant(), d in business()
        ) {
            let cal = fixture(i);
            prop_assert_eq!(cal.add_business(a, d), Some(a + d));
            prop_assert_eq!(cal.business_between(a.min(b), a.max(b)), a.max(b) - a.min(b));
        }

        #[test]
        fn due_time_is_where_unpaused_business_time_meets_the_target(
            i in 0usize..6,
            created in instant(),
            target_minutes in 1u32..20_000,
            pauses in prop::collection::vec((0i64..60 * 24 * 3600, 0i64..5 * 24 * 3600), 0..4),
        ) {
            let cal = fixture(i);
            let pauses: Vec<Pause> = pauses
                .into_iter()
                .map(|(offset, length)| {
                    let from = created + Duration::seconds(offset);
                    Pause { from, until: Some(from + Duration::seconds(length)) }
                })
                .collect();
            let p = SlaPolicy {
                resolution_minutes: target_minutes,
                first_response_minutes: target_minutes,
                ..policy(Severity::Sev3, None, None)
            };
            let ticket = TicketTimes {
                created_at: created,
                responded_at: None,
                resolved_at: None,
                pauses: pauses.clone(),
            };
            let now = created + Duration::days(3 * 365);
            let clock = measure(&p, &cal, &ticket, now).resolution;
            let due = clock.due_at.unwrap();
            let unpaused = paused_spans(&pauses, created, due)
                .iter()
                .fold(cal.business_between(created, due), |t, (from, until)| {
                    t - cal.business_between(*from, *until)
                });
            prop_assert_eq!(unpaused, Duration::minutes(i64::from(target_minutes)));
            prop_assert!(clock.warn_at.unwrap() <= due);
            let without_pauses = cal
                .add_business(created, Duration::minutes(i64::from(target_minutes)))
                .unwrap();
            prop_assert!(due >= without_pauses);
        }
    }
}
