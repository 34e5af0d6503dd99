//! Business-hours calendars: the local hours an SLA clock runs in one time zone, minus holidays.
//! [`CalendarSpec`] shows the configuration shape; [`Calendar`] explains daylight saving time.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use chrono::{
    DateTime, Datelike, Days, Duration, LocalResult, NaiveDate, NaiveTime, Offset, TimeZone, Utc,
    Weekday,
};
use chrono_tz::{GapInfo, Tz};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{FieldError, NAME_MAX};

/// The name of the built-in 24x7 UTC calendar, used when a policy names no calendar.
pub const ALWAYS: &str = "always";

/// How far any walk over a calendar goes, in days (100 years): `Calendar::add_business` gives
/// no due time for a target not reached by then, and `Calendar::business_between` counts no
/// further. Each walk costs a few time-zone lookups per day, so this bounds its work too.
pub const SEARCH_HORIZON_DAYS: u64 = 36_525;

/// At most this many ranges per weekday.
pub const RANGES_PER_DAY_MAX: usize = 24;

/// At most this many holidays per calendar.
pub const HOLIDAYS_MAX: usize = 10_000;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// Opening hours per weekday, each a list of local `HH:MM-HH:MM` ranges. A day left out or
/// empty is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyHours {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mon: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tue: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wed: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thu: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fri: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sat: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sun: Vec<String>,
}

impl WeeklyHours {
    /// Monday first, with the key each day has in the configuration.
    fn days(&self) -> [(&'static str, &[String]); 7] {
        [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ]
    }
}

/// A calendar as written in configuration or sent to the API; `validate` turns it into a
/// [`Calendar`]. In TOML (JSON takes the same keys):
///
/// ```toml
/// [[sla.calendars]]
/// name = "eu-office"
/// time_zone = "Europe/Berlin"              # an IANA time zone name
/// holidays = ["2026-12-24", "2026-12-25"]  # local dates, closed all day
///
/// [sla.calendars.hours]                    # local [start, end) ranges per weekday
/// mon = ["09:00-17:00"]
/// tue = ["09:00-12:30", "13:30-17:00"]
/// wed = ["09:00-17:00"]
/// thu = ["09:00-17:00"]
/// fri = ["09:00-15:00"]
/// # sat and sun left out: closed
/// ```
///
/// A range is `HH:MM-HH:MM` and stays within its day: `24:00` ends at midnight, and a shift past
/// midnight is written as two ranges (`mon = ["22:00-24:00"]`, `tue = ["00:00-06:00"]`).
/// Ranges of one day must not overlap; they may touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// What policies call it: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// IANA time zone name, e.g. `Europe/Berlin`, `America/New_York`, `UTC`.
    pub time_zone: String,
    pub hours: WeeklyHours,
    /// Local dates (`YYYY-MM-DD`) closed all day.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// A local `[start, end)` range in minutes after midnight; `end` may be 1440 (24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HoursRange {
    start: u16,
    end: u16,
}

impl HoursRange {
    const WHOLE_DAY: HoursRange = HoursRange {
        start: 0,
        end: MINUTES_PER_DAY,
    };

    fn parse(s: &str) -> Result<HoursRange, String> {
        let syntax = || format!("`{s}` is not a range of local times such as 09:00-17:00");
        let (a, b) = s.split_once('-').ok_or_else(syntax)?;
        let (Some(start), Some(end)) = (clock_minutes(a), clock_minutes(b)) else {
            return Err(syntax());
        };
        if end <= start {
            return Err(format!(
                "`{s}` does not end after it starts; a range stays within its day, so write \
                 one past midnight as two (22:00-24:00, then 00:00-06:00 on the next day)"
            ));
        }
        Ok(HoursRange { start, end })
    }
}

impl std::fmt::Display for HoursRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// `H:MM` or `HH:MM`, 00:00 to 24:00.
fn clock_minutes(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let digits = |x: &str, max_len: usize| {
        !x.is_empty() && x.len() <= max_len && x.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    let minutes = h * 60 + m;
    (m < 60 && minutes <= MINUTES_PER_DAY).then_some(minutes)
}

pub(crate) fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.chars().count() <= NAME_MAX
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

pub(crate) const NAME_RULE: &str = "must be 1 to 200 letters, digits, `-`, `_` or `.`";

impl CalendarSpec {
    /// Checks every field and builds the calendar. Errors name the field: `name`,
    /// `time_zone`, `hours`, `hours.mon[0]`, `holidays[2]`.
    pub fn validate(&self) -> Result<Calendar, FieldError> {
        let name = self.name.trim();
        if !name_ok(name) {
            return Err(FieldError::new("name", NAME_RULE));
        }
        let time_zone: Tz = self.time_zone.trim().parse().map_err(|_| {
            FieldError::new(
                "time_zone",
                format!(
                    "`{}` is not an IANA time zone name such as Europe/Berlin, \
                     America/New_York or UTC",
                    self.time_zone
                ),
            )
        })?;
        let mut week: [Vec<HoursRange>; 7] = Default::default();
        for ((day, texts), ranges) in self.hours.days().into_iter().zip(week.iter_mut()) {
            if texts.len() > RANGES_PER_DAY_MAX {
                return Err(FieldError::new(
                    format!("hours.{day}"),
                    format!("at most {RANGES_PER_DAY_MAX} ranges a day"),
                ));
            }
            let mut parsed = Vec::with_capacity(texts.len());
            for (i, text) in texts.iter().enumerate() {
                let range = HoursRange::parse(text)
                    .map_err(|m| FieldError::new(format!("hours.{day}[{i}]"), m))?;
                parsed.push((i, range));
            }
            parsed.sort_by_key(|(_, r)| r.start);
            for pair in parsed.windows(2) {
                if let [(i, a), (j, b)] = pair {
                    if b.start < a.end {
                        return Err(FieldError::new(
                            format!("hours.{day}[{}]", i.max(j)),
                            format!("`{b}` overlaps `{a}`"),
                        ));
                    }
                }
            }
            *ranges = parsed.into_iter().map(|(_, r)| r).collect();
        }
        if week.iter().all(Vec::is_empty) {
            return Err(FieldError::new(
                "hours",
                "a calendar needs business hours on at least one day",
            ));
        }
        if self.holidays.len() > HOLIDAYS_MAX {
            return Err(FieldError::new(
                "holidays",
                format!("at most {HOLIDAYS_MAX} holidays"),
            ));
        }
        let mut holidays = BTreeSet::new();
        for (i, text) in self.holidays.iter().enumerate() {
            let field = || format!("holidays[{i}]");
            let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                FieldError::new(
                    field(),
                    format!("`{text}` is not a date such as 2026-12-25"),
                )
            })?;
            if !holidays.insert(date) {
                return Err(FieldError::new(field(), format!("{date} is listed twice")));
            }
        }
        Ok(Calendar {
            name: name.to_owned(),
            time_zone,
            week,
            holidays,
        })
    }
}

/// A checked business-hours calendar and the clock math on it. It reads and writes as a
/// [`CalendarSpec`]; reading one validates it.
///
/// Daylight saving time: a range is wall-clock time on its date. A local time that occurs twice
/// (clocks go back) is taken at its first occurrence; a local time that does not exist (clocks
/// go forward) is taken as the instant the clocks jump. So `09:00-17:00` is always eight hours,
/// `00:00-24:00` is 23 or 25 hours on the days the clocks change, and a range wholly inside a
/// skipped hour is empty that day. Neither case fails or loops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CalendarSpec", into = "CalendarSpec")]
pub struct Calendar {
    name: String,
    time_zone: Tz,
    /// Monday first; each day's ranges sorted and disjoint.
    week: [Vec<HoursRange>; 7],
    holidays: BTreeSet<NaiveDate>,
}

static ALWAYS_CALENDAR: LazyLock<Calendar> = LazyLock::new(|| Calendar {
    name: ALWAYS.to_owned(),
    time_zone: Tz::UTC,
    week: std::array::from_fn(|_| vec![HoursRange::WHOLE_DAY]),
    holidays: BTreeSet::new(),
});

impl TryFrom<CalendarSpec> for Calendar {
    type Error = FieldError;

    fn try_from(spec: CalendarSpec) -> Result<Self, Self::Error> {
        spec.validate()
    }
}

impl From<Calendar> for CalendarSpec {
    fn from(calendar: Calendar) -> Self {
        calendar.spec()
    }
}

impl Calendar {
    /// The built-in calendar named `always`: 24 hours, 7 days, UTC, no holidays.
    pub fn always() -> Calendar {
        ALWAYS_CALENDAR.clone()
    }

    pub(crate) fn always_ref() -> &'static Calendar {
        &ALWAYS_CALENDAR
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// The calendar as written in configuration.
    pub fn spec(&self) -> CalendarSpec {
        let day = |d: usize| {
            self.week
                .get(d)
                .map(|ranges| ranges.iter().map(HoursRange::to_string).collect())
                .unwrap_or_default()
        };
        CalendarSpec {
            name: self.name.clone(),
            time_zone: self.time_zone.name().to_owned(),
            hours: WeeklyHours {
                mon: day(0),
                tue: day(1),
                wed: day(2),
                thu: day(3),
                fri: day(4),
                sat: day(5),
                sun: day(6),
            },
            holidays: self
                .holidays
                .iter()
                .map(|d| d.format("%Y-%m-%d").to_string())
                .collect(),
        }
    }

    /// Open around the clock with no holidays, whatever the zone: business time is real time.
    pub fn is_always_open(&self) -> bool {
        self.holidays.is_empty()
            && self
                .week
                .iter()
                .all(|day| day.as_slice() == [HoursRange::WHOLE_DAY])
    }

    /// The instant at which `d` of business time has elapsed after `start`. A start outside
    /// business hours waits for the next opening; a `d` of zero or less is `start` itself.
    /// `None` when `d` is not reached within [`SEARCH_HORIZON_DAYS`] of `start`.
    ///
    /// Walks day by day (a few time-zone lookups a day), so a year of calendar time costs a
    /// few hundred steps.
    pub fn add_business(&self, start: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
        if d <= Duration::zero() {
            return Some(start);
        }
        if self.is_always_open() {
            let horizon = Duration::days(i64::try_from(SEARCH_HORIZON_DAYS).ok()?);
            return if d > horizon {
                None
            } else {
                start.checked_add_signed(d)
            };
        }
        let last = self
            .local_date(start)
            .checked_add_days(Days::new(SEARCH_HORIZON_DAYS))?;
        let mut remaining = d;
        self.walk(start, last, |open, close| {
            let length = close - open;
            if length >= remaining {
                ControlFlow::Break(open.checked_add_signed(remaining))
            } else {
                remaining -= length;
                ControlFlow::Continue(())
            }
        })
        .flatten()
    }

    /// Business time between `a` and `b`; zero when `b` is not after `a`. Walks the days
    /// between them, at most [`SEARCH_HORIZON_DAYS`] after `a`: a `b` further off counts as
    /// that horizon (the answer saturates, it never walks on).
    pub fn business_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        let horizon = Duration::days(SEARCH_HORIZON_DAYS as i64);
        let b = a
            .checked_add_signed(horizon)
            .map_or(b, |limit| b.min(limit));
        if b <= a {
            return Duration::zero();
        }
        if self.is_always_open() {
            return b - a;
        }
        let end_date = self.local_date(b);
        let last = end_date.succ_opt().unwrap_or(end_date);
        let mut total = Duration::zero();
        self.walk(a, last, |open, close| {
            if open >= b {
                return ControlFlow::Break(());
            }
            total += close.min(b) - open;
            ControlFlow::Continue(())
        });
        total
    }

    /// The local date of an instant; the UTC date at the very ends of representable time, where
    /// the local one may not exist.
    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        let offset = self
            .time_zone
            .offset_from_utc_datetime(&t.naive_utc())
            .fix();
        t.naive_utc()
            .checked_add_offset(offset)
            .map_or(t.date_naive(), |local| local.date())
    }

    fn ranges(&self, day: Weekday) -> &[HoursRange] {
        self.week
            .get(day.num_days_from_monday() as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// Calls `f` with each business interval that ends after `from`, in order, its opening
    /// moved up to `from`, for local dates up to `last` but never more than
    /// [`SEARCH_HORIZON_DAYS`] after `from`'s. Returns what `f` breaks with, or `None` when the
    /// dates run out.
    fn walk<T>(
        &self,
        from: DateTime<Utc>,
        last: NaiveDate,
        mut f: impl FnMut(DateTime<Utc>, DateTime<Utc>) -> ControlFlow<T>,
    ) -> Option<T> {
        // Start a day early: it costs little and holds whatever a zone does around midnight.
        let first = self.local_date(from);
        let limit = first
            .checked_add_days(Days::new(SEARCH_HORIZON_DAYS + 1))
            .unwrap_or(NaiveDate::MAX);
        let last = last.min(limit);
        let mut date = first.pred_opt().unwrap_or(first);
        while date <= last {
            if !self.holidays.contains(&date) {
                for range in self.ranges(date.weekday()) {
                    let open = self.instant(date, range.start)?;
                    let close = self.instant(date, range.end)?;
                    if close <= from || close <= open {
                        continue;
                    }
                    if let ControlFlow::Break(v) = f(open.max(from), close) {
                        return Some(v);
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// The instant of a local wall-clock time (`minute` after midnight, 1440 = next midnight):
    /// the first of two, or the end of a skipped stretch.
    fn instant(&self, date: NaiveDate, minute: u16) -> Option<DateTime<Utc>> {
        let local = if minute >= MINUTES_PER_DAY {
            date.succ_opt()?.and_time(NaiveTime::MIN)
        } else {
            date.and_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)?
        };
        match self.time_zone.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => match GapInfo::new(&local, &self.time_zone).and_then(|g| g.end) {
                Some(after_gap) => Some(after_gap.with_timezone(&Utc)),
                // Only at the ends of the zone's table; any fixed reading will do there.
                None => {
                    let offset = self.time_zone.offset_from_utc_datetime(&local).fix();
                    let seconds = i64::from(offset.local_minus_utc());
                    Some(
                        local
                            .checked_sub_signed(Duration::seconds(seconds))?
                            .and_utc(),
                    )
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn spec(time_zone: &str, hours: WeeklyHours, holidays: &[&str]) -> CalendarSpec {
        CalendarSpec {
            name: "test".into(),
            time_zone: time_zone.into(),
            hours,
            holidays: holidays.iter().map(|h| h.to_string()).collect(),
        }
    }

    fn weekdays(ranges: &[&str]) -> WeeklyHours {
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

    fn every_day(ranges: &[&str]) -> WeeklyHours {
        let r: Vec<String> = ranges.iter().map(|r| r.to_string()).collect();
        WeeklyHours {
            sat: r.clone(),
            sun: r.clone(),
            ..weekdays(ranges)
        }
    }

    fn berlin_office(holidays: &[&str]) -> Calendar {
        spec("Europe/Berlin", weekdays(&["09:00-17:00"]), holidays)
            .validate()
            .unwrap()
    }

    fn new_york_office() -> Calendar {
        spec("America/New_York", weekdays(&["09:00-17:00"]), &[])
            .validate()
            .unwrap()
    }

    fn hours(h: i64) -> Duration {
        Duration::hours(h)
    }

    #[test]
    fn clock_skips_the_weekend() {
        let cal = berlin_office(&[]);
        // Friday 16:00 CET + 2h: one hour on Friday, one on Monday.
        let due = cal.add_business(utc("2026-03-06T16:00:00+01:00"), hours(2));
        assert_eq!(due, Some(utc("2026-03-09T10:00:00+01:00")));
        let weekend = cal.business_between(
            utc("2026-03-06T16:00:00+01:00"),
            utc("2026-03-09T10:00:00+01:00"),
        );
        assert_eq!(weekend, hours(2));
        // Saturday to Sunday: nothing.
        let closed = cal.business_between(
            utc("2026-03-07T00:00:00+01:00"),
            utc("2026-03-09T00:00:00+01:00"),
        );
        assert_eq!(closed, Duration::zero());
    }

    #[test]
    fn clock_skips_holidays() {
        let cal = berlin_office(&["2026-12-24", "2026-12-25"]);
        // Wednesday 23 Dec 16:00 + 3h: 1h Wednesday, Thursday and Friday closed, weekend,
        // 2h on Monday 28 Dec.
        let due = cal.add_business(utc("2026-12-23T16:00:00+01:00"), hours(3));
        assert_eq!(due, Some(utc("2026-12-28T11:00:00+01:00")));
        assert_eq!(
            cal.business_between(utc("2026-12-23T00:00:00Z"), utc("2026-12-29T00:00:00Z")),
            hours(16)
        );
    }

    #[test]
    fn start_outside_hours_waits_for_the_opening() {
        let cal = berlin_office(&[]);
        let early = cal.add_business(utc("2026-03-03T07:00:00+01:00"), Duration::minutes(30));
        assert_eq!(early, Some(utc("2026-03-03T09:30:00+01:00")));
        let late = cal.add_business(utc("2026-03-03T20:00:00+01:00"), Duration::minutes(30));
        assert_eq!(late, Some(utc("2026-03-04T09:30:00+01:00")));
        // Exactly a day's hours end at closing time, not at the next opening.
        let whole = cal.add_business(utc("2026-03-03T09:00:00+01:00"), hours(8));
        assert_eq!(whole, Some(utc("2026-03-03T17:00:00+01:00")));
        let zero = cal.add_business(utc("2026-03-03T20:00:00+01:00"), Duration::zero());
        assert_eq!(zero, Some(utc("2026-03-03T20:00:00+01:00")));
    }

    #[test]
    fn berlin_office_hours_follow_daylight_saving() {
        let cal = berlin_office(&[]);
        // Clocks go forward on Sunday 29 March 2026: Friday is CET (+1), Monday CEST (+2).
        let due = cal.add_business(utc("2026-03-27T16:00:00+01:00"), hours(2));
        assert_eq!(due, Some(utc("2026-03-30T08:00:00Z")));
        // Clocks go back on Sunday 25 October 2026.
        let due = cal.add_business(utc("2026-10-23T16:00:00+02:00"), hours(2));
        assert_eq!(due, Some(utc("2026-10-26T09:00:00Z")));
    }

    #[test]
    fn days_are_23_or_25_hours_when_clocks_change_in_berlin() {
        let cal = spec(
            "Europe/Berlin",
            every_day(&["00:00-12:00", "12:00-24:00"]),
            &[],
        )
        .validate()
        .unwrap();
        assert!(!cal.is_always_open());
        let day = |from: &str, to: &str| cal.business_between(utc(from), utc(to));
        assert_eq!(
            day("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
            hours(23)
        );
        assert_eq!(
            day("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
            hours(25)
        );
    }

    #[test]
    fn skipped_and_repeated_local_hours_in_berlin() {
        // 02:00-03:00 does not exist on 29 March and happens twice on 25 October 2026.
        let hours_2_to_3 = WeeklyHours {
            sun: vec!["02:00-03:00".into()],
            ..WeeklyHours::default()
        };
        let cal = spec("Europe/Berlin", hours_2_to_3, &[]).validate().unwrap();
        let sunday = |from: &str, to: &str| cal.business_between(utc(from), utc(to));
        assert_eq!(
            sunday("2026-03-22T00:00:00Z", "2026-03-23T00:00:00Z"),
            hours(1)
        );
        assert_eq!(
            sunday("2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"),
            Duration::zero()
        );
        assert_eq!(
            sunday("2026-10-25T00:00:00Z", "2026-10-26T00:00:00Z"),
            hours(2)
        );
        // The skipped Sunday is passed over, not looped on.
        let due = cal.add_business(utc("2026-03-28T12:00:00Z"), Duration::minutes(30));
        assert_eq!(due, Some(utc("2026-04-05T00:30:00Z")));
    }

    #[test]
    fn new_york_office_hours_follow_daylight_saving() {
        let cal = new_york_office();
        // Clocks go forward on Sunday 8 March 2026: Friday is EST (-5), Monday EDT (-4).
        let due = cal.add_business(utc("2026-03-06T16:00:00-05:00"), hours(2));
        assert_eq!(due, Some(utc("2026-03-09T14:00:00Z")));
        // Clocks go back on Sunday 1 November 2026: Friday noon EDT to Monday noon EST.
        let between =
            cal.business_between(utc("2026-10-30T16:00:00Z"), utc("2026-11-02T17:00:00Z"));
        assert_eq!(between, hours(8));
        let round_the_clock = spec(
            "America/New_York",
            every_day(&["00:00-24:00"]),
            &["2020-01-01"],
        )
        .validate()
        .unwrap();
        assert_eq!(
            round_the_clock
                .business_between(utc("2026-11-01T04:00:00Z"), utc("2026-11-02T05:00:00Z")),
            hours(25)
        );
    }

    #[test]
    fn clocks_changing_at_midnight_in_havana() {
        // Cuba goes from 00:00 to 01:00 on 8 March 2026 and back from 01:00 to 00:00 on
        // 1 November 2026, so those Sundays have no or two midnights.
        let cal = spec(
            "America/Havana",
            every_day(&["00:00-24:00"]),
            &["2000-01-01"],
        )
        .validate()
        .unwrap();
        let sunday = |from: &str, to: &str| cal.business_between(utc(from), utc(to));
        assert_eq!(
            sunday("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"),
            hours(23)
        );
        assert_eq!(
            sunday("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"),
            hours(25)
        );
        let office = spec("America/Havana", weekdays(&["00:00-01:00"]), &[])
            .validate()
            .unwrap();
        // Saturday 23:30 (-4) + 1h: the Monday hour, at -5.
        let due = office.add_business(utc("2026-10-31T23:30:00-04:00"), hours(1));
        assert_eq!(due, Some(utc("2026-11-02T01:00:00-05:00")));
    }

    #[test]
    fn a_skipped_calendar_day_is_passed_over() {
        // Samoa skipped 30 December 2011 entirely.
        let cal = spec("Pacific/Apia", every_day(&["09:00-17:00"]), &[])
            .validate()
            .unwrap();
        let between =
            cal.business_between(utc("2011-12-28T00:00:00Z"), utc("2012-01-03T00:00:00Z"));
        // 27 Dec from 14:00 (-10): 3h; 28, 29, 31 Dec, 1 and 2 Jan: 8h each; 3 Jan until 14:00
        // (+14): 5h.
        assert_eq!(between, hours(48));
        let due = cal.add_business(utc("2011-12-29T10:00:00-10:00"), hours(8));
        assert_eq!(due, Some(utc("2011-12-31T10:00:00+14:00")));
    }

    #[test]
    fn always_is_real_time() {
        let cal = Calendar::always();
        assert!(cal.is_always_open());
        assert_eq!(cal.name(), ALWAYS);
        let start = utc("2026-03-28T23:30:00Z");
        assert_eq!(
            cal.add_business(start, Duration::minutes(90)),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            cal.business_between(start, utc("2027-03-28T23:30:00Z")),
            Duration::days(365)
        );
    }

    #[test]
    fn long_holiday_stretches_end_and_impossible_targets_give_none() {
        // Every weekday of 2026 to 2028 is a holiday: the clock opens on Monday 1 Jan 2029.
        let mut holidays = Vec::new();
        let mut d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        while d.year() < 2029 {
            if d.weekday().num_days_from_monday() < 5 {
                holidays.push(d.format("%Y-%m-%d").to_string());
            }
            d = d.succ_opt().unwrap();
        }
        let refs: Vec<&str> = holidays.iter().map(String::as_str).collect();
        let cal = berlin_office(&refs);
        assert_eq!(
            cal.add_business(utc("2026-01-01T00:00:00Z"), hours(1)),
            Some(utc("2029-01-01T10:00:00+01:00"))
        );
        // One minute a week cannot hold 120 years of minutes within the horizon.
        let sparse = WeeklyHours {
            wed: vec!["12:00-12:01".into()],
            ..WeeklyHours::default()
        };
        let sparse = spec("UTC", sparse, &[]).validate().unwrap();
        let minutes_in_120_years = 120 * 52;
        assert_eq!(
            sparse.add_business(
                utc("2026-01-01T00:00:00Z"),
                Duration::minutes(minutes_in_120_years)
            ),
            None
        );
        // Near the end of representable time: no panic, no due time.
        let end = DateTime::<Utc>::MAX_UTC - Duration::days(3);
        assert_eq!(cal.add_business(end, Duration::days(30)), None);
        assert_eq!(
            Calendar::always().add_business(end, Duration::days(30)),
            None
        );
        assert!(cal.business_between(end, DateTime::<Utc>::MAX_UTC) <= Duration::days(3));
    }

    #[test]
    fn a_year_of_office_hours_is_fast_and_right() {
        let cal = berlin_office(&[]);
        let start = utc("2026-01-05T09:00:00+01:00"); // a Monday
                                                      // 52 weeks of 40 hours.
        let due = cal.add_business(start, hours(52 * 40)).unwrap();
        assert_eq!(due, utc("2027-01-01T17:00:00+01:00"));
        assert_eq!(cal.business_between(start, due), hours(52 * 40));
        let decade = cal.business_between(start, utc("2036-01-01T00:00:00Z"));
        assert!(decade > hours(10 * 52 * 40) && decade < hours(10 * 53 * 40));
    }

    #[test]
    fn walks_stop_at_the_horizon_and_return_promptly() {
        let cal = berlin_office(&[]);
        let start = utc("2026-01-05T09:00:00+01:00");
        let horizon = Duration::days(SEARCH_HORIZON_DAYS as i64);
        let century = cal.business_between(start, start + horizon);
        assert!(century > hours(100 * 52 * 40) && century < hours(100 * 53 * 40));
        // Eight thousand years count as the hundred of the horizon: the walk stops there.
        assert_eq!(
            cal.business_between(start, utc("9999-12-31T00:00:00Z")),
            century
        );
        assert_eq!(
            Calendar::always().business_between(start, DateTime::<Utc>::MAX_UTC),
            horizon
        );
        let started = std::time::Instant::now();
        let (first, end) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            cal.business_between(first, end),
            cal.business_between(first, first + horizon)
        );
        let sparse = WeeklyHours {
            wed: vec!["12:00-12:01".into()],
            ..WeeklyHours::default()
        };
        let sparse = spec("Pacific/Apia", sparse, &[]).validate().unwrap();
        assert_eq!(sparse.add_business(first, Duration::days(365)), None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    fn field_of(s: CalendarSpec) -> String {
        s.validate().unwrap_err().field
    }

    #[test]
    fn validation_names_the_field() {
        let ok = spec("Europe/Berlin", weekdays(&["09:00-17:00"]), &["2026-12-25"]);
        assert!(ok.validate().is_ok());

        let mut s = ok.clone();
        s.time_zone = "Europe/Berln".into();
        assert_eq!(field_of(s), "time_zone");

        let mut s = ok.clone();
        s.name = "eu office".into();
        assert_eq!(field_of(s), "name");

        for bad in [
            "9-17",
            "09:00",
            "09:00-17:60",
            "25:00-26:00",
            "09:0-17:00",
            "x-y",
        ] {
            let mut s = ok.clone();
            s.hours.mon = vec![bad.into()];
            assert_eq!(field_of(s), "hours.mon[0]", "{bad}");
        }

        let mut s = ok.clone();
        s.hours.tue = vec!["09:00-12:00".into(), "17:00-09:00".into()];
        let err = s.validate().unwrap_err();
        assert_eq!(err.field, "hours.tue[1]");
        assert!(err.message.contains("past midnight"), "{}", err.message);

        let mut s = ok.clone();
        s.hours.wed = vec!["13:00-18:00".into(), "09:00-13:30".into()];
        assert_eq!(field_of(s), "hours.wed[1]");

        let mut s = ok.clone();
        s.hours.wed = vec!["09:00-12:00".into(), "12:00-24:00".into()];
        assert!(s.validate().is_ok(), "touching ranges do not overlap");

        let mut s = ok.clone();
        s.holidays = vec![
            "2026-12-25".into(),
            "2026-12-26".into(),
            "2026-13-01".into(),
        ];
        assert_eq!(field_of(s), "holidays[2]");

        let mut s = ok.clone();
        s.holidays = vec!["2026-12-25".into(), "2026-12-25".into()];
        assert_eq!(field_of(s), "holidays[1]");

        let mut s = ok;
        s.hours = WeeklyHours::default();
        assert_eq!(field_of(s), "hours");
    }

    #[test]
    fn reads_and_writes_the_documented_shape() {
        let toml_text = r#"
            name = "eu-office"
            time_zone = "Europe/Berlin"
            holidays = ["2026-12-24", "2026-12-25"]

            [hours]
            mon = ["09:00-17:00"]
            tue = ["13:30-17:00", "9:00-12:30"]
            fri = ["09:00-15:00"]
        "#;
        let cal: Calendar = toml::from_str(toml_text).unwrap();
        assert_eq!(cal.name(), "eu-office");
        assert_eq!(cal.time_zone(), chrono_tz::Europe::Berlin);
        let json = serde_json::to_value(&cal).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "eu-office",
                "time_zone": "Europe/Berlin",
                "hours": {
                    "mon": ["09:00-17:00"],
                    "tue": ["09:00-12:30", "13:30-17:00"],
                    "fri": ["09:00-15:00"],
                },
                "holidays": ["2026-12-24", "2026-12-25"],
            })
        );
        let back: Calendar = serde_json::from_value(json).unwrap();
        assert_eq!(back, cal);

        let unknown = toml::from_str::<CalendarSpec>(
            "name = \"x\"\ntime_zone = \"UTC\"\nhours = { monday = [\"09:00-17:00\"] }",
        );
        assert!(unknown.is_err());
        let invalid = serde_json::from_value::<Calendar>(serde_json::json!({
            "name": "x", "time_zone": "Mars/Olympus", "hours": { "mon": ["09:00-17:00"] }
        }));
        assert!(invalid.unwrap_err().to_string().contains("time_zone"));
        assert_eq!(
            serde_json::from_value::<Calendar>(serde_json::to_value(Calendar::always()).unwrap())
                .unwrap(),
            Calendar::always()
        );
    }
}
