//! KPIs: named measures of the support process and of the workloads, each with a target and
//! warning / breach thresholds, evaluated on a schedule and kept as a series.
//!
//! The built-in KPIs are listed by [`builtins`]; teams add their own as [`KpiSpec`]s (TOML
//! `[[kpis.custom]]` or `POST /api/v1/kpis`):
//!
//! ```toml
//! [[kpis.custom]]
//! name = "sev1_mttr_checkout"
//! over = "tickets"
//! aggregate = "p90"
//! from = "created_at"
//! to = "resolved_at"
//! filter = { severities = ["SEV1"], workloads = ["checkout"] }
//! window = "30d"
//! better = "lower"
//! target = 3600
//! warning = 7200
//! breach = 14400
//! scope = ["team"]
//! ```

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::signal::SignalState;
use crate::ticket::{named_enum, Kind, Severity, Status};
use crate::validation::{FieldError, Validated};

named_enum! {
    /// Which way a KPI should move.
    Better {
        /// Smaller values are better (times, backlog, reopen rate).
        Lower => "lower",
        /// Larger values are better (SLA compliance).
        Higher => "higher",
    }
}

named_enum! {
    /// How a KPI stands against its thresholds.
    KpiStatus {
        Ok => "ok",
        /// Past the warning threshold.
        Warning => "warning",
        /// Past the breach threshold.
        Breach => "breach",
        /// Nothing to measure in the window (no ticket acknowledged, say).
        NoData => "no_data",
    }
}

named_enum! {
    /// What a KPI's value counts in.
    Unit {
        Seconds => "seconds",
        Percent => "percent",
        Count => "count",
        /// US dollars per month (Trusted Advisor's estimated savings).
        Usd => "usd",
        PerHour => "per_hour",
        PerDay => "per_day",
        PerWeek => "per_week",
    }
}

named_enum! {
    /// A breakdown of a KPI: its value per team, per workload, and so on.
    Dimension {
        Team => "team",
        Workload => "workload",
        Severity => "severity",
        Source => "source",
        Kind => "kind",
        /// Age of open tickets: `lt_1d`, `1d_7d`, `7d_30d`, `gt_30d`.
        Age => "age",
        /// Trusted Advisor category (`security`, `cost_optimizing`, ...).
        Category => "category",
        /// Trusted Advisor status (`ERROR`, `WARN`).
        Status => "status",
        /// AWS account id.
        Account => "account",
    }
}

named_enum! {
    /// What a custom KPI counts.
    Over {
        Tickets => "tickets",
        Signals => "signals",
    }
}

named_enum! {
    /// How a custom KPI turns what it counts into one number.
    Aggregate {
        /// How many in the window.
        Count => "count",
        /// How many per `per` (hour, day, week), averaged over the window.
        Rate => "rate",
        /// Mean wall-clock seconds between two ticket timestamps (`from`, `to`).
        Mean => "mean",
        /// Median of the same.
        P50 => "p50",
        /// 90th percentile of the same.
        P90 => "p90",
        /// `numerator` count over `denominator` count, as a percentage.
        Ratio => "ratio",
    }
}

named_enum! {
    /// A ticket timestamp a custom KPI measures between.
    TicketTime {
        CreatedAt => "created_at",
        AcknowledgedAt => "acknowledged_at",
        ResolvedAt => "resolved_at",
        ClosedAt => "closed_at",
        UpdatedAt => "updated_at",
    }
}

named_enum! {
    /// The period of a rate.
    Period {
        Hour => "hour",
        Day => "day",
        Week => "week",
    }
}

impl Period {
    pub fn duration(self) -> Duration {
        match self {
            Period::Hour => Duration::hours(1),
            Period::Day => Duration::days(1),
            Period::Week => Duration::weeks(1),
        }
    }

    fn unit(self) -> Unit {
        match self {
            Period::Hour => Unit::PerHour,
            Period::Day => Unit::PerDay,
            Period::Week => Unit::PerWeek,
        }
    }
}

/// A length of time written `15m`, `24h`, `30d` or `2w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(i64);

/// The longest window, interval or retention: ten years.
const SPAN_MAX_MINUTES: i64 = 10 * 366 * 24 * 60;

impl Span {
    pub const fn minutes(m: i64) -> Span {
        Span(m)
    }

    pub const fn days(d: i64) -> Span {
        Span(d * 24 * 60)
    }

    pub fn duration(self) -> Duration {
        Duration::minutes(self.0)
    }

    pub fn as_minutes(self) -> i64 {
        self.0
    }

    pub fn parse(s: &str) -> Result<Span, String> {
        let s = s.trim();
        let unit_at = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("{s:?} has no unit: write e.g. 15m, 24h, 30d or 2w"))?;
        let (n, unit) = s.split_at(unit_at);
        let n: i64 = n
            .parse()
            .map_err(|_| format!("{s:?} does not start with a whole number"))?;
        let per = match unit {
            "m" => 1,
            "h" => 60,
            "d" => 24 * 60,
            "w" => 7 * 24 * 60,
            _ => return Err(format!("{s:?}: the unit must be m, h, d or w")),
        };
        let minutes = n.saturating_mul(per);
        if minutes <= 0 {
            return Err(format!("{s:?} is empty: it must be at least 1m"));
        }
        if minutes > SPAN_MAX_MINUTES {
            return Err(format!("{s:?} is longer than ten years"));
        }
        Ok(Span(minutes))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        if m % (7 * 24 * 60) == 0 {
            write!(f, "{}w", m / (7 * 24 * 60))
        } else if m % (24 * 60) == 0 {
            write!(f, "{}d", m / (24 * 60))
        } else if m % 60 == 0 {
            write!(f, "{}h", m / 60)
        } else {
            write!(f, "{m}m")
        }
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Span {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A length of time: 15m, 24h, 30d, 2w"))
            .examples([serde_json::json!("30d")])
            .into()
    }
}

impl ToSchema for Span {}

/// Target and thresholds. With `better = lower` they must read target <= warning <= breach;
/// with `higher`, target >= warning >= breach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Thresholds {
    pub target: f64,
    pub warning: f64,
    pub breach: f64,
    pub better: Better,
}

impl Thresholds {
    pub fn new(better: Better, target: f64, warning: f64, breach: f64) -> Thresholds {
        Thresholds {
            target,
            warning,
            breach,
            better,
        }
    }

    /// Errors name `target`, `warning` or `breach`.
    pub fn check(&self) -> Result<(), FieldError> {
        for (field, v) in [
            ("target", self.target),
            ("warning", self.warning),
            ("breach", self.breach),
        ] {
            if !v.is_finite() {
                return Err(FieldError::new(field, "must be a finite number"));
            }
        }
        let word = match self.better {
            Better::Lower => "at most",
            Better::Higher => "at least",
        };
        let ordered = |a: f64, b: f64| match self.better {
            Better::Lower => a <= b,
            Better::Higher => a >= b,
        };
        if !ordered(self.target, self.warning) {
            return Err(FieldError::new(
                "warning",
                format!(
                    "with better = {} the target must be {word} the warning threshold",
                    self.better
                ),
            ));
        }
        if !ordered(self.warning, self.breach) {
            return Err(FieldError::new(
                "breach",
                format!(
                    "with better = {} the warning threshold must be {word} the breach threshold",
                    self.better
                ),
            ));
        }
        Ok(())
    }

    /// Where `value` stands: at or past `breach` is a breach, at or past `warning` a warning.
    pub fn status(&self, value: Option<f64>) -> KpiStatus {
        let Some(v) = value else {
            return KpiStatus::NoData;
        };
        let past = |threshold: f64| match self.better {
            Better::Lower => v >= threshold,
            Better::Higher => v <= threshold,
        };
        if past(self.breach) {
            KpiStatus::Breach
        } else if past(self.warning) {
            KpiStatus::Warning
        } else {
            KpiStatus::Ok
        }
    }
}

/// How a KPI moved since one window ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Improving,
    Worsening,
    Steady,
}

/// Compares `now` with `before`: a change of less than 1% (or none) is steady.
pub fn direction(better: Better, before: f64, now: f64) -> Direction {
    let scale = before.abs().max(now.abs());
    if scale == 0.0 || (now - before).abs() < scale * 0.01 {
        return Direction::Steady;
    }
    match (better, now > before) {
        (Better::Lower, true) | (Better::Higher, false) => Direction::Worsening,
        _ => Direction::Improving,
    }
}

/// Which tickets or signals a custom KPI counts; a condition left empty holds for all.
/// Ticket KPIs take `severities`, `kinds`, `statuses`, `sources`, `teams`, `workloads` and
/// `tags`; signal KPIs take `sources`, `kinds`, `categories`, `states`, `workloads` and
/// `accounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KpiFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severities: Vec<Severity>,
    /// Ticket kinds (`incident`, ...) or signal kinds (Health `issue`, Trusted Advisor `ERROR`,
    /// CloudWatch `ALARM`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Status>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<SignalState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
}

impl KpiFilter {
    /// Refuses conditions that do not apply to `over`, and empty values; errors name
    /// `<prefix>.<condition>`.
    fn check(&self, over: Over, prefix: &str) -> Result<(), FieldError> {
        let not_for = |name: &str| {
            FieldError::new(
                format!("{prefix}.{name}"),
                format!("{over} KPIs cannot filter on {name}"),
            )
        };
        match over {
            Over::Tickets => {
                for (name, set) in [
                    ("categories", self.categories.is_empty()),
                    ("states", self.states.is_empty()),
                    ("accounts", self.accounts.is_empty()),
                ] {
                    if !set {
                        return Err(not_for(name));
                    }
                }
                for (i, k) in self.kinds.iter().enumerate() {
                    if Kind::parse(k).is_none() {
                        return Err(FieldError::new(
                            format!("{prefix}.kinds[{i}]"),
                            format!("unknown kind {k:?}: use one of {}", Kind::names()),
                        ));
                    }
                }
            }
            Over::Signals => {
                for (name, set) in [
                    ("severities", self.severities.is_empty()),
                    ("statuses", self.statuses.is_empty()),
                    ("teams", self.teams.is_empty()),
                    ("tags", self.tags.is_empty()),
                ] {
                    if !set {
                        return Err(not_for(name));
                    }
                }
            }
        }
        for (name, list) in [
            ("kinds", &self.kinds),
            ("sources", &self.sources),
            ("teams", &self.teams),
            ("workloads", &self.workloads),
            ("tags", &self.tags),
            ("categories", &self.categories),
            ("accounts", &self.accounts),
        ] {
            if let Some(i) = list.iter().position(|v| v.trim().is_empty()) {
                return Err(FieldError::new(
                    format!("{prefix}.{name}[{i}]"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }

    /// Both filters' conditions; where both set the same one, the values both allow.
    pub fn and(&self, other: &KpiFilter) -> KpiFilter {
        fn both<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
            match (a.is_empty(), b.is_empty()) {
                (true, _) => b.to_vec(),
                (_, true) => a.to_vec(),
                _ => a.iter().filter(|x| b.contains(x)).cloned().collect(),
            }
        }
        KpiFilter {
            severities: both(&self.severities, &other.severities),
            kinds: both(&self.kinds, &other.kinds),
            statuses: both(&self.statuses, &other.statuses),
            sources: both(&self.sources, &other.sources),
            teams: both(&self.teams, &other.teams),
            workloads: both(&self.workloads, &other.workloads),
            tags: both(&self.tags, &other.tags),
            categories: both(&self.categories, &other.categories),
            states: both(&self.states, &other.states),
            accounts: both(&self.accounts, &other.accounts),
        }
    }

    /// True when two filters that each set a condition allow no value in common: their
    /// conjunction would match nothing.
    pub fn disjoint_with(&self, other: &KpiFilter) -> bool {
        fn clash<T: PartialEq>(a: &[T], b: &[T]) -> bool {
            !a.is_empty() && !b.is_empty() && !a.iter().any(|x| b.contains(x))
        }
        clash(&self.severities, &other.severities)
            || clash(&self.kinds, &other.kinds)
            || clash(&self.statuses, &other.statuses)
            || clash(&self.sources, &other.sources)
            || clash(&self.teams, &other.teams)
            || clash(&self.workloads, &other.workloads)
            || clash(&self.tags, &other.tags)
            || clash(&self.categories, &other.categories)
            || clash(&self.states, &other.states)
            || clash(&self.accounts, &other.accounts)
    }
}

fn default_window() -> Span {
    Span::days(30)
}

/// A KPI a team defines: what it counts, how, over which window, and its thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KpiSpec {
    /// snake_case: lowercase letters, digits and `_`, starting with a letter; at most 64.
    pub name: String,
    /// A short human name; the name when left out.
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub over: Over,
    #[serde(default)]
    pub filter: KpiFilter,
    pub aggregate: Aggregate,
    /// For `mean`, `p50`, `p90`: the timestamp the duration starts at.
    #[serde(default)]
    pub from: Option<TicketTime>,
    /// For `mean`, `p50`, `p90`: the timestamp the duration ends at.
    #[serde(default)]
    pub to: Option<TicketTime>,
    /// For `rate`: per hour, day or week.
    #[serde(default)]
    pub per: Option<Period>,
    /// For `ratio`: what is counted above the line (besides `filter`).
    #[serde(default)]
    pub numerator: Option<KpiFilter>,
    /// For `ratio`: what is counted below the line (besides `filter`).
    #[serde(default)]
    pub denominator: Option<KpiFilter>,
    /// Which timestamp must fall in the window: `received_at` for signals; for tickets
    /// `created_at`, or `to` for durations. Only ticket KPIs may set it.
    #[serde(default)]
    pub window_on: Option<TicketTime>,
    /// How far back the KPI looks (e.g. `7d`); 30 days when left out.
    #[serde(default = "default_window")]
    pub window: Span,
    /// How often it is evaluated; `[kpis] interval` when left out.
    #[serde(default)]
    pub interval: Option<Span>,
    pub target: f64,
    pub warning: f64,
    pub breach: f64,
    /// Whether smaller or larger values are better; `lower` when left out.
    #[serde(default = "default_better")]
    pub better: Better,
    /// Breakdowns beside the overall value.
    #[serde(default)]
    pub scope: Vec<Dimension>,
}

fn default_better() -> Better {
    Better::Lower
}

/// The dimensions a ticket KPI can break down by.
pub const TICKET_DIMENSIONS: &[Dimension] = &[
    Dimension::Team,
    Dimension::Workload,
    Dimension::Severity,
    Dimension::Source,
    Dimension::Kind,
];

/// The dimensions a signal KPI can break down by.
pub const SIGNAL_DIMENSIONS: &[Dimension] = &[
    Dimension::Workload,
    Dimension::Severity,
    Dimension::Source,
    Dimension::Kind,
    Dimension::Category,
    Dimension::Account,
];

const NAME_MAX: usize = 64;

pub fn name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= NAME_MAX
}

impl KpiSpec {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds::new(self.better, self.target, self.warning, self.breach)
    }

    pub fn unit(&self) -> Unit {
        match self.aggregate {
            Aggregate::Count => Unit::Count,
            Aggregate::Rate => self.per.unwrap_or(Period::Day).unit(),
            Aggregate::Mean | Aggregate::P50 | Aggregate::P90 => Unit::Seconds,
            Aggregate::Ratio => Unit::Percent,
        }
    }

    /// The timestamp that must fall in the window.
    pub fn window_time(&self) -> TicketTime {
        self.window_on.unwrap_or(match self.aggregate {
            Aggregate::Mean | Aggregate::P50 | Aggregate::P90 => {
                self.to.unwrap_or(TicketTime::ResolvedAt)
            }
            _ => TicketTime::CreatedAt,
        })
    }
}

impl Validated for KpiSpec {
    /// Errors name the field: `name`, `title`, `filter.<condition>`, `from`, `to`, `per`,
    /// `numerator`, `denominator`, `window_on`, `target`, `warning`, `breach`, `scope[i]`.
    fn validate(mut self) -> Result<Self, FieldError> {
        self.name = self.name.trim().to_owned();
        if !name_ok(&self.name) {
            return Err(FieldError::new(
                "name",
                format!(
                    "use 1 to {NAME_MAX} lowercase letters, digits and _, starting with a letter"
                ),
            ));
        }
        if builtins().iter().any(|b| b.name == self.name) {
            return Err(FieldError::new(
                "name",
                format!("{} is a built-in KPI", self.name),
            ));
        }
        self.title = self.title.map(|t| t.trim().to_owned());
        if self
            .title
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.chars().count() > 200)
        {
            return Err(FieldError::new("title", "must be 1 to 200 characters"));
        }
        self.filter.check(self.over, "filter")?;
        let durations = matches!(
            self.aggregate,
            Aggregate::Mean | Aggregate::P50 | Aggregate::P90
        );
        if durations {
            if self.over != Over::Tickets {
                return Err(FieldError::new(
                    "aggregate",
                    "durations are measured between ticket timestamps: use over = tickets",
                ));
            }
            let from = self.from.ok_or_else(|| {
                FieldError::new("from", "name the timestamp the duration starts at")
            })?;
            let to = self
                .to
                .ok_or_else(|| FieldError::new("to", "name the timestamp the duration ends at"))?;
            let order = |t: TicketTime| TicketTime::ALL.iter().position(|x| *x == t);
            if order(to) <= order(from) {
                return Err(FieldError::new(
                    "to",
                    format!(
                        "must come after `from` in a ticket's life ({})",
                        TicketTime::names()
                    ),
                ));
            }
        } else {
            for (field, set) in [("from", self.from.is_some()), ("to", self.to.is_some())] {
                if set {
                    return Err(FieldError::new(
                        field,
                        format!("only mean, p50 and p90 take {field}"),
                    ));
                }
            }
        }
        match (self.aggregate, self.per) {
            (Aggregate::Rate, None) => {
                return Err(FieldError::new(
                    "per",
                    "a rate needs per = hour, day or week",
                ))
            }
            (Aggregate::Rate, Some(p)) if p.duration() > self.window.duration() => {
                return Err(FieldError::new("per", "must not be longer than the window"))
            }
            (Aggregate::Rate, Some(_)) => {}
            (_, Some(_)) => return Err(FieldError::new("per", "only a rate takes per")),
            (_, None) => {}
        }
        if self.aggregate == Aggregate::Ratio {
            let numerator = self
                .numerator
                .as_ref()
                .ok_or_else(|| FieldError::new("numerator", "a ratio needs a numerator filter"))?;
            let denominator = self.denominator.clone().unwrap_or_default();
            numerator.check(self.over, "numerator")?;
            denominator.check(self.over, "denominator")?;
            if self.filter.and(&denominator).disjoint_with(numerator)
                || self.filter.disjoint_with(&denominator)
            {
                return Err(FieldError::new(
                    "numerator",
                    "the numerator and denominator filters match nothing in common",
                ));
            }
        } else {
            for (field, set) in [
                ("numerator", self.numerator.is_some()),
                ("denominator", self.denominator.is_some()),
            ] {
                if set {
                    return Err(FieldError::new(
                        field,
                        format!("only a ratio takes {field}"),
                    ));
                }
            }
        }
        if self.window_on.is_some() && self.over == Over::Signals {
            return Err(FieldError::new(
                "window_on",
                "signal KPIs are windowed on received_at",
            ));
        }
        self.thresholds().check()?;
        let allowed = match self.over {
            Over::Tickets => TICKET_DIMENSIONS,
            Over::Signals => SIGNAL_DIMENSIONS,
        };
        for (i, d) in self.scope.iter().enumerate() {
            if !allowed.contains(d) {
                return Err(FieldError::new(
                    format!("scope[{i}]"),
                    format!(
                        "{} KPIs break down by {}",
                        self.over,
                        allowed
                            .iter()
                            .map(|d| d.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        self.scope.sort();
        self.scope.dedup();
        Ok(self)
    }
}

/// Which measure a built-in KPI is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Mtta,
    Mttr,
    FirstResponseSla,
    ResolutionSla,
    Backlog,
    ReopenRate,
    TicketsCreated,
    AwsEscalations,
    AwsCaseFirstResponse,
    HealthOpenProduction,
    MaintenanceUpcoming,
    TrustedAdvisorFlagged,
    TrustedAdvisorSavings,
    ReadinessRisks,
    SinceReview,
    ActionItemsOverdue,
    IncidentReviewsOnTime,
}

/// What every KPI has, built-in or custom, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KpiInfo {
    pub name: String,
    pub title: String,
    pub description: String,
    pub unit: Unit,
    /// Empty for KPIs that inform rather than judge (volume, savings).
    pub thresholds: Option<Thresholds>,
    /// How far back it looks (ahead, for `maintenance_upcoming`).
    pub window: Span,
    pub interval: Span,
    pub scope: Vec<Dimension>,
    pub builtin: bool,
}

/// A built-in KPI with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinKpi {
    pub name: &'static str,
    pub measure: Builtin,
    pub title: &'static str,
    pub description: &'static str,
    pub unit: Unit,
    pub thresholds: Option<Thresholds>,
    pub window: Span,
    pub scope: &'static [Dimension],
}

const TEAM_WORKLOAD_SEVERITY: &[Dimension] =
    &[Dimension::Team, Dimension::Workload, Dimension::Severity];

/// The built-in KPIs and their default targets (docs/kpis.md explains each).
pub fn builtins() -> Vec<BuiltinKpi> {
    use Better::{Higher, Lower};
    let t = Thresholds::new;
    let month = Span::days(30);
    vec![
        BuiltinKpi {
            name: "mtta",
            measure: Builtin::Mtta,
            title: "Mean time to acknowledge",
            description: "Mean business seconds from a ticket's creation to its acknowledgement (or resolution, when never acknowledged), pending time left out, over tickets acknowledged in the window.",
            unit: Unit::Seconds,
            thresholds: Some(t(Lower, 900.0, 1800.0, 3600.0)),
            window: month,
            scope: TEAM_WORKLOAD_SEVERITY,
        },
        BuiltinKpi {
            name: "mttr",
            measure: Builtin::Mttr,
            title: "Mean time to resolve",
            description: "Mean business seconds from a ticket's creation to its resolution, pending time left out, over tickets resolved in the window.",
            unit: Unit::Seconds,
            thresholds: Some(t(Lower, 8.0 * 3600.0, 24.0 * 3600.0, 72.0 * 3600.0)),
            window: month,
            scope: TEAM_WORKLOAD_SEVERITY,
        },
        BuiltinKpi {
            name: "first_response_sla",
            measure: Builtin::FirstResponseSla,
            title: "First-response SLA compliance",
            description: "Share of first-response clocks decided in the window that were met: met when answered by the due time (counted at the answer), missed at the due time, whether answered later or not yet.",
            unit: Unit::Percent,
            thresholds: Some(t(Higher, 95.0, 90.0, 80.0)),
            window: month,
            scope: TEAM_WORKLOAD_SEVERITY,
        },
        BuiltinKpi {
            name: "resolution_sla",
            measure: Builtin::ResolutionSla,
            title: "Resolution SLA compliance",
            description: "Share of resolution clocks decided in the window that were met: met when resolved by the due time, missed at the due time.",
            unit: Unit::Percent,
            thresholds: Some(t(Higher, 95.0, 90.0, 80.0)),
            window: month,
            scope: TEAM_WORKLOAD_SEVERITY,
        },
        BuiltinKpi {
            name: "backlog",
            measure: Builtin::Backlog,
            title: "Open backlog",
            description: "Tickets open now (new, acknowledged, in progress or pending), by severity, team, workload and age.",
            unit: Unit::Count,
            thresholds: Some(t(Lower, 50.0, 100.0, 200.0)),
            window: month,
            scope: &[
                Dimension::Team,
                Dimension::Workload,
                Dimension::Severity,
                Dimension::Age,
            ],
        },
        BuiltinKpi {
            name: "reopen_rate",
            measure: Builtin::ReopenRate,
            title: "Reopen rate",
            description: "Share of the tickets resolved in the window that had been reopened at least once.",
            unit: Unit::Percent,
            thresholds: Some(t(Lower, 5.0, 10.0, 20.0)),
            window: month,
            scope: TEAM_WORKLOAD_SEVERITY,
        },
        BuiltinKpi {
            name: "tickets_created",
            measure: Builtin::TicketsCreated,
            title: "Tickets created",
            description: "Tickets created in the window, by source (api, aws.health, aws.cloudwatch, ...), team, workload and severity.",
            unit: Unit::Count,
            thresholds: None,
            window: month,
            scope: &[
                Dimension::Source,
                Dimension::Team,
                Dimension::Workload,
                Dimension::Severity,
            ],
        },
        BuiltinKpi {
            name: "aws_escalations",
            measure: Builtin::AwsEscalations,
            title: "Escalations to AWS Support",
            description: "AWS Support cases requested in the window, by AWS account and ticket severity.",
            unit: Unit::Count,
            thresholds: None,
            window: month,
            scope: &[Dimension::Account, Dimension::Severity],
        },
        BuiltinKpi {
            name: "aws_case_first_response",
            measure: Builtin::AwsCaseFirstResponse,
            title: "AWS case first response within the plan's target",
            description: "Share of AWS Support cases whose first answer from AWS came within the first-response target, for the case's severity, of the support plan the case was opened on; cases requested in the window, one still unanswered past its target counts as missed.",
            unit: Unit::Percent,
            thresholds: Some(t(Higher, 95.0, 90.0, 80.0)),
            window: month,
            scope: &[Dimension::Account, Dimension::Severity],
        },
        BuiltinKpi {
            name: "health_open_production",
            measure: Builtin::HealthOpenProduction,
            title: "Open AWS Health issues affecting production",
            description: "Open tickets from AWS Health issue events on production workloads.",
            unit: Unit::Count,
            thresholds: Some(t(Lower, 0.0, 1.0, 3.0)),
            window: month,
            scope: &[Dimension::Workload, Dimension::Team],
        },
        BuiltinKpi {
            name: "maintenance_upcoming",
            measure: Builtin::MaintenanceUpcoming,
            title: "Upcoming maintenance windows",
            description: "Maintenance windows (AWS Health scheduled changes and windows set by people) starting within the window ahead.",
            unit: Unit::Count,
            thresholds: None,
            window: Span::days(7),
            scope: &[Dimension::Workload],
        },
        BuiltinKpi {
            name: "trusted_advisor_flagged",
            measure: Builtin::TrustedAdvisorFlagged,
            title: "Trusted Advisor flagged items",
            description: "Resources Trusted Advisor flags now (its newest finding for them is not OK), by category and status.",
            unit: Unit::Count,
            thresholds: None,
            window: month,
            scope: &[Dimension::Category, Dimension::Status],
        },
        BuiltinKpi {
            name: "trusted_advisor_savings",
            measure: Builtin::TrustedAdvisorSavings,
            title: "Trusted Advisor estimated monthly savings",
            description: "Sum of the estimated monthly savings (USD) of the items Trusted Advisor flags now, by category.",
            unit: Unit::Usd,
            thresholds: None,
            window: month,
            scope: &[Dimension::Category],
        },
        BuiltinKpi {
            name: "readiness_risks",
            measure: Builtin::ReadinessRisks,
            title: "Open readiness risks",
            description: "HIGH and MEDIUM answers in each workload's newest readiness review with an answer, whose finding is not made into an action item and verified, by workload.",
            unit: Unit::Count,
            thresholds: Some(t(Lower, 0.0, 3.0, 10.0)),
            window: month,
            scope: &[Dimension::Workload],
        },
        BuiltinKpi {
            name: "since_review",
            measure: Builtin::SinceReview,
            title: "Time since the last readiness review",
            description: "Seconds since each workload's newest review milestone (since the workload was added, when never reviewed); overall, the longest.",
            unit: Unit::Seconds,
            thresholds: Some(t(Lower, 90.0 * 86400.0, 120.0 * 86400.0, 180.0 * 86400.0)),
            window: month,
            scope: &[Dimension::Workload],
        },
        BuiltinKpi {
            name: "action_items_overdue",
            measure: Builtin::ActionItemsOverdue,
            title: "Overdue action items",
            description: "Action items from readiness and post-incident reviews past their due date and not verified, by workload and team.",
            unit: Unit::Count,
            thresholds: Some(t(Lower, 0.0, 1.0, 5.0)),
            window: month,
            scope: &[Dimension::Workload, Dimension::Team],
        },
        BuiltinKpi {
            name: "incident_reviews_on_time",
            measure: Builtin::IncidentReviewsOnTime,
            title: "Post-incident reviews completed on time",
            description: "Share of the post-incident reviews opened in the window that were completed within the configured days of their incident's resolution ([readiness] post_incident_days); one still open past that counts as late, one still within it is not counted yet.",
            unit: Unit::Percent,
            thresholds: Some(t(Higher, 95.0, 80.0, 60.0)),
            window: Span::days(90),
            scope: &[Dimension::Workload, Dimension::Team],
        },
    ]
}

/// One breakdown value of a KPI: `team=ops`, or the overall value when `dimension` is empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub struct Scope {
    pub dimension: Option<Dimension>,
    pub value: String,
}

impl Scope {
    pub fn overall() -> Scope {
        Scope {
            dimension: None,
            value: String::new(),
        }
    }

    pub fn of(dimension: Dimension, value: impl Into<String>) -> Scope {
        Scope {
            dimension: Some(dimension),
            value: value.into(),
        }
    }

    /// `""` overall, else `team=ops`: how it is stored and asked for.
    pub fn key(&self) -> String {
        match self.dimension {
            None => String::new(),
            Some(d) => format!("{d}={}", self.value),
        }
    }

    pub fn from_key(key: &str) -> Option<Scope> {
        if key.is_empty() {
            return Some(Scope::overall());
        }
        let (d, v) = key.split_once('=')?;
        Some(Scope::of(Dimension::parse(d)?, v))
    }
}

/// Counts and sums that add up across breakdowns, from which a KPI's value follows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// How many were counted (the denominator of a mean or share).
    pub n: f64,
    /// The sum (of seconds for a mean, of hits for a share, of items for a count).
    pub sum: f64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.n += other.n;
        self.sum += other.sum;
    }

    /// `sum / n`; nothing when nothing was counted.
    pub fn mean(self) -> Option<f64> {
        (self.n > 0.0).then(|| self.sum / self.n)
    }

    /// `100 * sum / n`; nothing when nothing was counted.
    pub fn percent(self) -> Option<f64> {
        self.mean().map(|m| m * 100.0)
    }
}

/// The value at quantile `q` (0..=1) of `values` by the nearest-rank method; nothing for no
/// values. Sorts `values`.
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize;
    values
        .get(rank.saturating_sub(1).min(values.len() - 1))
        .copied()
}

/// Adds `tally`, seen for a group with these breakdown values, to the overall value and to
/// each breakdown `wanted` asks for. Groups without a value for a dimension (a ticket with no
/// team) count overall only.
pub fn roll_up(
    into: &mut BTreeMap<Scope, Tally>,
    wanted: &[Dimension],
    values: &[(Dimension, Option<&str>)],
    tally: Tally,
) {
    into.entry(Scope::overall()).or_default().add(tally);
    for (d, v) in values {
        if let (true, Some(v)) = (wanted.contains(d), v) {
            into.entry(Scope::of(*d, *v)).or_default().add(tally);
        }
    }
}

/// The age bucket of an open ticket created at `created` as of `now`.
pub fn age_bucket(created: DateTime<Utc>, now: DateTime<Utc>) -> &'static str {
    let age = now - created;
    if age < Duration::days(1) {
        "lt_1d"
    } else if age < Duration::days(7) {
        "1d_7d"
    } else if age < Duration::days(30) {
        "7d_30d"
    } else {
        "gt_30d"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(json: serde_json::Value) -> Result<KpiSpec, String> {
        let s: KpiSpec = serde_json::from_value(json).map_err(|e| e.to_string())?;
        s.validate().map_err(|e| e.field)
    }

    #[test]
    fn spans_read_and_print() {
        assert_eq!(Span::parse("30d").unwrap(), Span::days(30));
        assert_eq!(Span::parse("15m").unwrap().to_string(), "15m");
        assert_eq!(Span::parse("48h").unwrap().to_string(), "2d");
        assert_eq!(Span::parse("2w").unwrap().as_minutes(), 2 * 7 * 24 * 60);
        for bad in ["", "0d", "d", "30", "3x", "-1d", "99999999999w"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thresholds_judge_in_their_direction() {
        let lower = Thresholds::new(Better::Lower, 10.0, 20.0, 30.0);
        assert_eq!(lower.status(Some(5.0)), KpiStatus::Ok);
        assert_eq!(lower.status(Some(19.9)), KpiStatus::Ok);
        assert_eq!(lower.status(Some(20.0)), KpiStatus::Warning);
        assert_eq!(lower.status(Some(30.0)), KpiStatus::Breach);
        assert_eq!(lower.status(None), KpiStatus::NoData);
        let higher = Thresholds::new(Better::Higher, 95.0, 90.0, 80.0);
        assert_eq!(higher.status(Some(96.0)), KpiStatus::Ok);
        assert_eq!(higher.status(Some(90.0)), KpiStatus::Warning);
        assert_eq!(higher.status(Some(79.0)), KpiStatus::Breach);
    }

    #[test]
    fn thresholds_in_the_wrong_order_are_refused() {
        let e = Thresholds::new(Better::Lower, 10.0, 30.0, 20.0)
            .check()
            .unwrap_err();
        assert_eq!(e.field, "breach");
        let e = Thresholds::new(Better::Higher, 80.0, 90.0, 70.0)
            .check()
            .unwrap_err();
        assert_eq!(e.field, "warning");
        let e = Thresholds::new(Better::Lower, f64::NAN, 1.0, 2.0)
            .check()
            .unwrap_err();
        assert_eq!(e.field, "target");
    }

    #[test]
    fn custom_kpis_are_checked_with_the_field_named() {
        let base = serde_json::json!({
            "name": "p90_resolve", "over": "tickets", "aggregate": "p90",
            "from": "created_at", "to": "resolved_at",
            "target": 10, "warning": 20, "breach": 30
        });
        assert!(spec(base.clone()).is_ok());
        let with = |k: &str, v: serde_json::Value| {
            let mut j = base.clone();
            j[k] = v;
            spec(j)
        };
        assert!(with("aggregate", "median".into())
            .unwrap_err()
            .contains("median"));
        assert!(with("to", "answered_at".into())
            .unwrap_err()
            .contains("answered_at"));
        assert!(with("window", "0d".into()).unwrap_err().contains("empty"));
        assert!(with("colour", "red".into()).unwrap_err().contains("colour"));
        assert_eq!(with("breach", 15.into()).unwrap_err(), "breach");
        assert_eq!(with("name", "MTTA!".into()).unwrap_err(), "name");
        assert_eq!(with("name", "mtta".into()).unwrap_err(), "name");
        assert_eq!(with("to", "created_at".into()).unwrap_err(), "to");
        let mut backwards = base.clone();
        backwards["from"] = "resolved_at".into();
        backwards["to"] = "acknowledged_at".into();
        assert_eq!(spec(backwards).unwrap_err(), "to");
        assert_eq!(with("per", "day".into()).unwrap_err(), "per");
        assert_eq!(
            with("scope", serde_json::json!(["category"])).unwrap_err(),
            "scope[0]"
        );
        assert_eq!(
            with("filter", serde_json::json!({"categories": ["security"]})).unwrap_err(),
            "filter.categories"
        );
        assert_eq!(
            with("filter", serde_json::json!({"kinds": ["outage"]})).unwrap_err(),
            "filter.kinds[0]"
        );
        let e = spec(serde_json::json!({
            "name": "rate", "over": "signals", "aggregate": "rate",
            "target": 1, "warning": 2, "breach": 3
        }));
        assert_eq!(e.unwrap_err(), "per");
        let e = spec(serde_json::json!({
            "name": "share", "over": "tickets", "aggregate": "ratio",
            "target": 1, "warning": 2, "breach": 3
        }));
        assert_eq!(e.unwrap_err(), "numerator");
        let e = spec(serde_json::json!({
            "name": "share", "over": "tickets", "aggregate": "ratio",
            "numerator": {"severities": ["SEV1"]}, "denominator": {"severities": ["SEV2"]},
            "target": 1, "warning": 2, "breach": 3
        }));
        assert_eq!(e.unwrap_err(), "numerator");
        let e = spec(serde_json::json!({
            "name": "slow", "over": "signals", "aggregate": "mean",
            "from": "created_at", "to": "resolved_at",
            "target": 1, "warning": 2, "breach": 3
        }));
        assert_eq!(e.unwrap_err(), "aggregate");
    }

    #[test]
    fn scopes_round_trip_through_their_key() {
        for s in [Scope::overall(), Scope::of(Dimension::Team, "ops=east")] {
            assert_eq!(Scope::from_key(&s.key()), Some(s));
        }
        assert_eq!(Scope::from_key("planet=mars"), None);
    }

    #[test]
    fn built_in_defaults_are_in_order_and_named_snake_case() {
        for b in builtins() {
            assert!(name_ok(b.name), "{}", b.name);
            if let Some(t) = b.thresholds {
                t.check().unwrap();
            }
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v = vec![15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(percentile(&mut v, 0.5), Some(35.0));
        assert_eq!(percentile(&mut v, 0.9), Some(50.0));
        assert_eq!(percentile(&mut v, 0.0), Some(15.0));
        assert_eq!(percentile(&mut [], 0.5), None);
    }

    #[test]
    fn directions_follow_what_is_better() {
        assert_eq!(direction(Better::Lower, 100.0, 120.0), Direction::Worsening);
        assert_eq!(direction(Better::Higher, 90.0, 95.0), Direction::Improving);
        assert_eq!(direction(Better::Higher, 90.0, 90.5), Direction::Steady);
        assert_eq!(direction(Better::Lower, 0.0, 0.0), Direction::Steady);
    }

    proptest! {
        /// Rolling groups up gives the same overall tally whatever the grouping, and every
        /// breakdown's tallies add up to the overall one when each group has a value.
        #[test]
        fn roll_ups_add_up(groups in prop::collection::vec((0u8..3, 0u8..4, 0.0f64..1e6, 0u32..50), 0..40)) {
            let mut by = BTreeMap::new();
            let mut total = Tally::default();
            for (team, sev, sum, n) in &groups {
                let tally = Tally { n: f64::from(*n), sum: *sum };
                total.add(tally);
                let team = format!("t{team}");
                let sev = format!("SEV{}", sev + 1);
                roll_up(&mut by, &[Dimension::Team, Dimension::Severity],
                    &[(Dimension::Team, Some(&team)), (Dimension::Severity, Some(&sev))], tally);
            }
            let overall = by.get(&Scope::overall()).copied().unwrap_or_default();
            prop_assert!((overall.sum - total.sum).abs() < 1e-6 * total.sum.max(1.0));
            prop_assert_eq!(overall.n, total.n);
            for d in [Dimension::Team, Dimension::Severity] {
                let parts = by.iter().filter(|(s, _)| s.dimension == Some(d))
                    .fold(Tally::default(), |mut acc, (_, t)| { acc.add(*t); acc });
                prop_assert_eq!(parts.n, overall.n);
                prop_assert!((parts.sum - overall.sum).abs() < 1e-6 * overall.sum.max(1.0));
            }
        }

        /// A percentile is one of the values and sits between the minimum and maximum, and
        /// higher quantiles never give smaller values.
        #[test]
        fn percentiles_are_ordered(mut v in prop::collection::vec(0.0f64..1e9, 1..100), a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let p_lo = percentile(&mut v, lo).unwrap();
            let p_hi = percentile(&mut v, hi).unwrap();
            prop_assert!(p_lo <= p_hi);
            prop_assert!(v.contains(&p_lo));
            prop_assert!(v[0] <= p_lo && p_hi <= v[v.len() - 1]);
        }

        /// Status never improves as the value gets worse.
        #[test]
        fn status_is_monotonic(x in -1e6f64..1e6, y in -1e6f64..1e6, higher in any::<bool>()) {
            let t = if higher { Thresholds::new(Better::Higher, 95.0, 90.0, 80.0) }
                else { Thresholds::new(Better::Lower, 10.0, 20.0, 30.0) };
            let (better, worse) = match (higher, x <= y) {
                (true, true) | (false, false) => (y, x),
                _ => (x, y),
            };
            let rank = |s: KpiStatus| match s { KpiStatus::Ok => 0, KpiStatus::Warning => 1, _ => 2 };
            prop_assert!(rank(t.status(Some(better))) <= rank(t.status(Some(worse))));
        }
    }
}
