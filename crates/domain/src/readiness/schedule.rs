//! When a workload's next readiness review is due: every N days after its last one, or N days
//! before a date such as a launch or a peak. Pure: the clock and the last review are parameters.
//!
//! A review counts as done when one of the workload's reviews gets a milestone (the
//! Well-Architected Tool's way of saving where a review stands). A schedule is *due* from
//! `notice_days` before its due date (opsdesk announces `review_due` and opens a review) and
//! *overdue* once the due date has passed without a milestone since the notice began.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::FieldError;

/// The longest period or lead a schedule takes (ten years).
pub const DAYS_MAX: u32 = 3650;
/// The default warning ahead of a due date.
pub const DEFAULT_NOTICE_DAYS: u32 = 14;

/// A schedule as people send it: `every_days`, or `review_by` with `days_before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Review again this many days after the last review (1 to 3650).
    #[serde(default)]
    pub every_days: Option<u32>,
    /// A date the workload must be ready by (a launch, a peak), `YYYY-MM-DD`.
    #[serde(default)]
    pub review_by: Option<NaiveDate>,
    /// With `review_by`: the review is due this many days before that date (0 to 3650, default 0).
    #[serde(default)]
    pub days_before: Option<u32>,
    /// `review_due` is announced this many days before the due date (0 to 3650, default 14).
    #[serde(default)]
    pub notice_days: Option<u32>,
}

/// A checked schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cadence {
    Every { days: u32 },
    Before { date: NaiveDate, days: u32 },
}

/// Where a schedule stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    /// The notice has not begun.
    Upcoming,
    /// Within the notice before the due date, no review done yet.
    Due,
    /// Past the due date, no review done since the notice began.
    Overdue,
    /// A dated review done (a periodic schedule is never done: it moves on).
    Done,
}

impl ScheduleState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Upcoming => "upcoming",
            ScheduleState::Due => "due",
            ScheduleState::Overdue => "overdue",
            ScheduleState::Done => "done",
        }
    }
}

/// A schedule's due date and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub due_at: DateTime<Utc>,
    /// From when a review counts for this due date, and `review_due` is announced.
    pub notice_at: DateTime<Utc>,
    pub state: ScheduleState,
}

fn days_field(field: &str, v: Option<u32>) -> Result<Option<u32>, FieldError> {
    match v {
        Some(d) if d > DAYS_MAX => Err(FieldError::new(
            field,
            format!("must be at most {DAYS_MAX} days"),
        )),
        other => Ok(other),
    }
}

impl ScheduleSpec {
    /// The cadence and notice the spec describes, or the field that is wrong.
    pub fn check(&self) -> Result<(Cadence, u32), FieldError> {
        let every = days_field("every_days", self.every_days)?;
        let before = days_field("days_before", self.days_before)?;
        let notice = days_field("notice_days", self.notice_days)?.unwrap_or(DEFAULT_NOTICE_DAYS);
        let cadence = match (every, self.review_by) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "review_by",
                    "give either every_days or review_by, not both",
                ))
            }
            (Some(0), None) => {
                return Err(FieldError::new("every_days", "must be at least 1 day"));
            }
            (Some(days), None) => {
                if before.is_some() {
                    return Err(FieldError::new(
                        "days_before",
                        "only a schedule with review_by takes days_before",
                    ));
                }
                Cadence::Every { days }
            }
            (None, Some(date)) => {
                if !crate::validation::YEARS.contains(&chrono::Datelike::year(&date)) {
                    return Err(FieldError::new("review_by", "is out of range"));
                }
                Cadence::Before {
                    date,
                    days: before.unwrap_or(0),
                }
            }
            (None, None) => {
                return Err(FieldError::new(
                    "every_days",
                    "give every_days (a period) or review_by (a date)",
                ))
            }
        };
        Ok((cadence, notice))
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
}

fn minus_days(t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    t.checked_sub_days(Days::new(u64::from(days)))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn plus_days(t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    t.checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Cadence {
    /// The due date and state at `now`, given when the schedule began and when the workload's
    /// last review was done (its newest milestone), if ever.
    ///
    /// Periodic: due `days` after the last review; a workload never reviewed is due from the
    /// day the schedule began. Dated: due `days` before the date, done once a review is done
    /// after the notice began.
    pub fn standing(
        self,
        notice_days: u32,
        began: DateTime<Utc>,
        last_done: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Standing {
        let due_at = match self {
            Cadence::Every { days } => match last_done {
                Some(t) => plus_days(t, days),
                None => began,
            },
            Cadence::Before { date, days } => minus_days(midnight(date), days),
        };
        let notice_at = minus_days(due_at, notice_days);
        let done =
            last_done.is_some_and(|t| t >= notice_at) && matches!(self, Cadence::Before { .. });
        let state = if done {
            ScheduleState::Done
        } else if now >= due_at {
            ScheduleState::Overdue
        } else if now >= notice_at {
            ScheduleState::Due
        } else {
            ScheduleState::Upcoming
        };
        Standing {
            due_at,
            notice_at,
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn every(days: u32) -> ScheduleSpec {
        ScheduleSpec {
            every_days: Some(days),
            review_by: None,
            days_before: None,
            notice_days: None,
        }
    }

    #[test]
    fn a_periodic_schedule_moves_on_from_each_review() {
        let (c, notice) = every(90).check().unwrap();
        assert_eq!(notice, 14);
        let began = at("2026-01-01T00:00:00Z");
        // Never reviewed: due from the start.
        let s = c.standing(notice, began, None, at("2026-01-01T00:00:00Z"));
        assert_eq!((s.due_at, s.state), (began, ScheduleState::Overdue));
        // Reviewed on 1 February: due 90 days later, announced 14 days before.
        let done = at("2026-02-01T10:00:00Z");
        let s = c.standing(notice, began, Some(done), at("2026-04-01T00:00:00Z"));
        assert_eq!(s.due_at, at("2026-05-02T10:00:00Z"));
        assert_eq!(s.notice_at, at("2026-04-18T10:00:00Z"));
        assert_eq!(s.state, ScheduleState::Upcoming);
        let s = c.standing(notice, began, Some(done), at("2026-04-20T00:00:00Z"));
        assert_eq!(s.state, ScheduleState::Due);
        let s = c.standing(notice, began, Some(done), at("2026-05-02T10:00:00Z"));
        assert_eq!(s.state, ScheduleState::Overdue);
        // A review done while due moves the next due date on.
        let again = at("2026-04-25T00:00:00Z");
        let s = c.standing(notice, began, Some(again), at("2026-05-03T00:00:00Z"));
        assert_eq!(s.due_at, at("2026-07-24T00:00:00Z"));
        assert_eq!(s.state, ScheduleState::Upcoming);
    }

    #[test]
    fn a_dated_schedule_is_done_by_a_review_after_its_notice_began() {
        let spec = ScheduleSpec {
            every_days: None,
            review_by: Some("2027-03-01".parse().unwrap()),
            days_before: Some(7),
            notice_days: Some(10),
        };
        let (c, notice) = spec.check().unwrap();
        let began = at("2026-12-01T00:00:00Z");
        let s = c.standing(notice, began, None, at("2027-02-10T00:00:00Z"));
        assert_eq!(s.due_at, at("2027-02-22T00:00:00Z"));
        assert_eq!(s.notice_at, at("2027-02-12T00:00:00Z"));
        assert_eq!(s.state, ScheduleState::Upcoming);
        let s = c.standing(notice, began, None, at("2027-02-15T00:00:00Z"));
        assert_eq!(s.state, ScheduleState::Due);
        // A review before the notice began does not count.
        let old = Some(at("2027-01-01T00:00:00Z"));
        let s = c.standing(notice, began, old, at("2027-02-23T00:00:00Z"));
        assert_eq!(s.state, ScheduleState::Overdue);
        let s = c.standing(
            notice,
            began,
            Some(at("2027-02-15T00:00:00Z")),
            at("2027-02-23T00:00:00Z"),
        );
        assert_eq!(s.state, ScheduleState::Done);
    }

    #[test]
    fn a_schedule_names_the_field_that_is_wrong() {
        let both = ScheduleSpec {
            review_by: Some("2027-03-01".parse().unwrap()),
            ..every(30)
        };
        assert_eq!(both.check().unwrap_err().field, "review_by");
        assert_eq!(every(0).check().unwrap_err().field, "every_days");
        assert_eq!(every(4000).check().unwrap_err().field, "every_days");
        let lead = ScheduleSpec {
            days_before: Some(3),
            ..every(30)
        };
        assert_eq!(lead.check().unwrap_err().field, "days_before");
        let none = ScheduleSpec {
            every_days: None,
            ..every(1)
        };
        assert_eq!(none.check().unwrap_err().field, "every_days");
    }
}
