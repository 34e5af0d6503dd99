//! Periods of trend reports: `last-week`, `last-month` or `FROM..TO`.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use serde::Deserialize;

use crate::ticket::named_enum;
use crate::validation::{FieldError, Validated};

named_enum! {
    /// How often a scheduled report goes out.
    Every {
        /// On Mondays, covering the week before.
        Week => "week",
        /// On the first of the month, covering the month before.
        Month => "month",
    }
}

/// A trend report sent through a channel every week or month (`[[reports.schedules]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSchedule {
    /// Letters, digits, `-` and `_`.
    pub name: String,
    pub every: Every,
    /// An email or webhook channel of `[[notify.channels]]`.
    pub channel: String,
}

impl ReportSchedule {
    /// The period the report of `now` covers.
    pub fn period(&self, now: DateTime<Utc>) -> Result<Period, FieldError> {
        Period::parse(
            match self.every {
                Every::Week => "last-week",
                Every::Month => "last-month",
            },
            now,
        )
    }
}

impl Validated for ReportSchedule {
    fn validate(mut self) -> Result<Self, FieldError> {
        self.name = self.name.trim().to_owned();
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(FieldError::new(
                "name",
                "use 1 to 64 letters, digits, - and _",
            ));
        }
        if self.channel.trim().is_empty() {
            return Err(FieldError::new(
                "channel",
                "name an email or webhook channel",
            ));
        }
        Ok(self)
    }
}

/// The longest period a report covers.
pub const PERIOD_MAX_DAYS: i64 = 366;

/// A stretch of time `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// The period of the same length just before this one.
    pub fn previous(&self) -> Period {
        Period {
            from: self.from - (self.to - self.from),
            to: self.from,
        }
    }

    /// Reads `last-week` (Monday to Monday, UTC, the last full week before `now`),
    /// `last-month` (the last full calendar month) or `FROM..TO`: dates (`2026-11-01..2026-11-30`,
    /// both days included) or RFC 3339 times (`TO` excluded). Errors name `period`.
    pub fn parse(s: &str, now: DateTime<Utc>) -> Result<Period, FieldError> {
        let bad = |why: &str| {
            FieldError::new(
                "period",
                format!("{s:?} {why}: use last-week, last-month or FROM..TO (dates YYYY-MM-DD or RFC 3339 times)"),
            )
        };
        let midnight =
            |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
        let today = now.date_naive();
        let period = match s.trim() {
            "last-week" => {
                let monday =
                    today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
                Period {
                    from: midnight(monday - Duration::days(7)),
                    to: midnight(monday),
                }
            }
            "last-month" => {
                let first = today.with_day(1).ok_or_else(|| bad("cannot be read"))?;
                let before = (first - Duration::days(1))
                    .with_day(1)
                    .ok_or_else(|| bad("cannot be read"))?;
                Period {
                    from: midnight(before),
                    to: midnight(first),
                }
            }
            range => {
                let (a, b) = range
                    .split_once("..")
                    .ok_or_else(|| bad("is not a period"))?;
                let end = |t: &str, is_to: bool| -> Result<DateTime<Utc>, FieldError> {
                    let at = match NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d") {
                        Ok(d) if is_to => d.checked_add_signed(Duration::days(1)).map(midnight),
                        Ok(d) => Some(midnight(d)),
                        Err(_) => DateTime::parse_from_rfc3339(t.trim())
                            .ok()
                            .map(|t| t.with_timezone(&Utc)),
                    }
                    .ok_or_else(|| bad(&format!("has {t:?}, neither a date nor a time")))?;
                    // Far-off years would only overflow the arithmetic of the previous period.
                    if !(1970..=9999).contains(&at.year()) {
                        return Err(bad(&format!("has {t:?}, outside the years 1970 to 9999")));
                    }
                    Ok(at)
                };
                Period {
                    from: end(a, false)?,
                    to: end(b, true)?,
                }
            }
        };
        if period.to <= period.from {
            return Err(bad("ends before it starts"));
        }
        if period.to - period.from > Duration::days(PERIOD_MAX_DAYS) {
            return Err(bad(&format!("is longer than {PERIOD_MAX_DAYS} days")));
        }
        Ok(period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        // Tuesday 24 November 2026.
        Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap()
    }

    fn day(m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn named_periods_are_full_weeks_and_months() {
        let w = Period::parse("last-week", now()).unwrap();
        assert_eq!((w.from, w.to), (day(11, 16), day(11, 23)));
        assert_eq!(w.previous().from, day(11, 9));
        let m = Period::parse("last-month", now()).unwrap();
        assert_eq!((m.from, m.to), (day(10, 1), day(11, 1)));
        let jan = Utc.with_ymd_and_hms(2027, 1, 5, 0, 0, 0).unwrap();
        let m = Period::parse("last-month", jan).unwrap();
        assert_eq!(
            (m.from, m.to),
            (
                day(12, 1),
                Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
            )
        );
    }

    #[test]
    fn ranges_take_dates_or_times() {
        let p = Period::parse("2026-11-01..2026-11-15", now()).unwrap();
        assert_eq!((p.from, p.to), (day(11, 1), day(11, 16)));
        let p = Period::parse("2026-11-01T00:00:00Z..2026-11-02T12:00:00+01:00", now()).unwrap();
        assert_eq!(p.to, Utc.with_ymd_and_hms(2026, 11, 2, 11, 0, 0).unwrap());
    }

    #[test]
    fn bad_periods_say_why() {
        for bad in [
            "yesterday",
            "2026-11-15..2026-11-01",
            "2026-13-01..2026-12-01",
            "262143-12-30..262143-12-31",
            "0001-01-01..0001-01-02",
            "2020-01-01..2026-01-01",
            "..",
        ] {
            let e = Period::parse(bad, now()).unwrap_err();
            assert_eq!(e.field, "period", "{bad}");
        }
    }
}
