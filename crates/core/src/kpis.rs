//! KPIs: the built-in measures of the support process and the workloads, the ones teams
//! define, their evaluation on a schedule into a series, and the `kpi_breach` /
//! `kpi_recovered` events a change of status raises.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use opsdesk_domain::audit::{AuditEntry, Changes, FieldChange};
use opsdesk_domain::channel::{Notification, NotificationEvent};
use opsdesk_domain::kpi::{
    builtins, direction, percentile, roll_up, Aggregate, Better, Builtin, Dimension, Direction,
    KpiInfo, KpiSpec, KpiStatus, Scope, Span, Tally, Thresholds, TicketTime, Unit,
};
use opsdesk_domain::support::{CaseSeverity, SupportPlan};
use opsdesk_domain::validation::check_time;
use opsdesk_domain::{Calendar, CalendarSpec, FieldError, Severity, Validated, WeeklyHours};
use opsdesk_store::{KpiPoint, KpiQuery, KpiStateRecord, NewOutboxItem, TicketFacts, Tx};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::{Actor, Desk, Error, Result};

/// Who records KPI status changes in the audit trail.
const EVALUATOR: &str = "system:kpi";

/// A point is stored when the value or status changes, and at least this often.
const POINT_EVERY: Duration = Duration::hours(1);

/// Changes to a built-in KPI (`[kpis.builtin.<name>]`): its window, interval and thresholds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KpiOverride {
    #[serde(default)]
    pub window: Option<Span>,
    #[serde(default)]
    pub interval: Option<Span>,
    #[serde(default)]
    pub target: Option<f64>,
    #[serde(default)]
    pub warning: Option<f64>,
    #[serde(default)]
    pub breach: Option<f64>,
    #[serde(default)]
    pub better: Option<Better>,
}

/// `[kpis]`: how often KPIs are evaluated, how long their series are kept, changes to the
/// built-in ones and the custom ones of the configuration file.
#[derive(Debug, Clone)]
pub struct KpiSettings {
    pub interval: Span,
    pub retention: Span,
    builtins: Vec<Kpi>,
    custom: Vec<Kpi>,
}

impl Default for KpiSettings {
    fn default() -> Self {
        let interval = Span::minutes(5);
        KpiSettings {
            interval,
            retention: Span::days(400),
            builtins: builtin_kpis(interval, &BTreeMap::new()).unwrap_or_default(),
            custom: Vec::new(),
        }
    }
}

impl KpiSettings {
    /// Checks the overrides and the custom KPIs; errors name `builtin.<name>.<field>` or
    /// `custom[i].<field>`.
    pub fn new(
        interval: Span,
        retention: Span,
        overrides: &BTreeMap<String, KpiOverride>,
        custom: Vec<KpiSpec>,
    ) -> Result<KpiSettings, FieldError> {
        let builtins = builtin_kpis(interval, overrides)?;
        let mut kpis: Vec<Kpi> = Vec::with_capacity(custom.len());
        for (i, spec) in custom.into_iter().enumerate() {
            let spec = spec.validate().map_err(|e| FieldError {
                field: format!("custom[{i}].{}", e.field),
                message: e.message,
            })?;
            if kpis.iter().any(|k| k.info.name == spec.name) {
                return Err(FieldError::new(
                    format!("custom[{i}].name"),
                    format!("{} is defined twice", spec.name),
                ));
            }
            kpis.push(Kpi::custom(spec, interval));
        }
        Ok(KpiSettings {
            interval,
            retention,
            builtins,
            custom: kpis,
        })
    }
}

fn builtin_kpis(
    interval: Span,
    overrides: &BTreeMap<String, KpiOverride>,
) -> Result<Vec<Kpi>, FieldError> {
    let all = builtins();
    if let Some(name) = overrides
        .keys()
        .find(|n| !all.iter().any(|b| b.name == n.as_str()))
    {
        return Err(FieldError::new(
            format!("builtin.{name}"),
            format!(
                "no built-in KPI is called {name}: use one of {}",
                all.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    all.into_iter()
        .map(|b| {
            let o = overrides.get(b.name).cloned().unwrap_or_default();
            let field = |f: &str| format!("builtin.{}.{f}", b.name);
            let thresholds = match (b.thresholds, o.target, o.warning, o.breach) {
                (None, None, None, None) if o.better.is_some() => {
                    return Err(FieldError::new(
                        field("better"),
                        "this KPI has no thresholds by default: set target, warning and breach with it",
                    ))
                }
                (t, None, None, None) => t.map(|mut t| {
                    t.better = o.better.unwrap_or(t.better);
                    t
                }),
                (Some(t), target, warning, breach) => Some(Thresholds::new(
                    o.better.unwrap_or(t.better),
                    target.unwrap_or(t.target),
                    warning.unwrap_or(t.warning),
                    breach.unwrap_or(t.breach),
                )),
                (None, Some(target), Some(warning), Some(breach)) => Some(Thresholds::new(
                    o.better.unwrap_or(Better::Lower),
                    target,
                    warning,
                    breach,
                )),
                (None, ..) => {
                    return Err(FieldError::new(
                        field("target"),
                        "this KPI has no thresholds by default: set target, warning and breach together",
                    ))
                }
            };
            if let Some(t) = &thresholds {
                t.check().map_err(|e| FieldError::new(field(&e.field), e.message))?;
            }
            Ok(Kpi {
                info: KpiInfo {
                    name: b.name.to_owned(),
                    title: b.title.to_owned(),
                    description: b.description.to_owned(),
                    unit: b.unit,
                    thresholds,
                    window: o.window.unwrap_or(b.window),
                    interval: o.interval.unwrap_or(interval),
                    scope: b.scope.to_vec(),
                    builtin: true,
                },
                measure: Measure::Builtin(b.measure),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Measure {
    Builtin(Builtin),
    Custom(Box<KpiSpec>),
}

/// A KPI as evaluated: what the API shows of it, and how it is measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Kpi {
    pub info: KpiInfo,
    measure: Measure,
}

impl Kpi {
    fn custom(spec: KpiSpec, default_interval: Span) -> Kpi {
        Kpi {
            info: KpiInfo {
                name: spec.name.clone(),
                title: spec.title.clone().unwrap_or_else(|| spec.name.clone()),
                description: spec.description.clone().unwrap_or_default(),
                unit: spec.unit(),
                thresholds: Some(spec.thresholds()),
                window: spec.window,
                interval: spec.interval.unwrap_or(default_interval),
                scope: spec.scope.clone(),
                builtin: false,
            },
            measure: Measure::Custom(Box::new(spec)),
        }
    }

    /// The definition of a custom KPI.
    pub fn spec(&self) -> Option<&KpiSpec> {
        match &self.measure {
            Measure::Custom(s) => Some(s),
            Measure::Builtin(_) => None,
        }
    }

    fn status(&self, value: Option<f64>) -> KpiStatus {
        match (&self.info.thresholds, value) {
            (Some(t), v) => t.status(v),
            (None, Some(_)) => KpiStatus::Ok,
            (None, None) => KpiStatus::NoData,
        }
    }
}

/// A KPI's value in one breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ScopeValue {
    /// The dimension: `team`, `workload`, `severity`, ...
    pub by: Dimension,
    /// The team's, workload's, ... name.
    pub scope: String,
    pub value: Option<f64>,
    pub status: KpiStatus,
}

/// A KPI with its latest value.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KpiView {
    #[serde(flatten)]
    pub info: KpiInfo,
    /// The overall value; empty when nothing was measured in the window or before the first
    /// evaluation.
    pub value: Option<f64>,
    pub status: KpiStatus,
    /// Since when the status holds.
    pub since: Option<DateTime<Utc>>,
    pub evaluated_at: Option<DateTime<Utc>>,
    /// The overall value one window before the latest evaluation, when the series has it.
    pub previous: Option<f64>,
    /// How the value moved since `previous`.
    pub trend: Option<Direction>,
    pub scopes: Vec<ScopeValue>,
}

/// One step of a KPI's series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The start of the step.
    pub at: DateTime<Utc>,
    /// The value in force at the end of the step (the last evaluation within it, else the one
    /// before); empty when there was none yet.
    pub value: Option<f64>,
    pub status: Option<KpiStatus>,
}

/// A KPI's series between two instants.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Series {
    pub name: String,
    /// `""` overall, else `team=ops`.
    pub scope: String,
    pub unit: Unit,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step_seconds: i64,
    pub points: Vec<SeriesPoint>,
}

/// The most steps a series answer holds.
pub const SERIES_MAX_POINTS: i64 = 5_000;

/// A stored custom KPI, with who defined it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoredKpi {
    #[serde(flatten)]
    pub spec: KpiSpec,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// KPIs, reports and AWS cases cover every ticket: not for a role that sees its own only.
pub(crate) fn require_overview(actor: &Actor) -> Result<()> {
    actor.require(opsdesk_domain::Permission::ReadInventory)
}

/// A breach is announced when a KPI enters it, a recovery when it leaves it for ok or warning.
fn event_for(before: KpiStatus, after: KpiStatus) -> Option<NotificationEvent> {
    match (before, after) {
        (b, KpiStatus::Breach) if b != KpiStatus::Breach => Some(NotificationEvent::KpiBreach),
        (KpiStatus::Breach, KpiStatus::Ok | KpiStatus::Warning) => {
            Some(NotificationEvent::KpiRecovered)
        }
        _ => None,
    }
}

/// A value as people read it: `2h 5m`, `93.5%`, `12`, `$1,234`.
pub fn show(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Seconds => {
            let s = value.round() as i64;
            let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
            match (d, h, m) {
                (0, 0, 0) => format!("{sec}s"),
                (0, 0, _) => format!("{m}m {sec}s"),
                (0, _, _) => format!("{h}h {m}m"),
                _ => format!("{d}d {h}h"),
            }
        }
        Unit::Percent => format!("{value:.1}%"),
        Unit::Count => format!("{value:.0}"),
        Unit::Usd => format!("${value:.2}"),
        Unit::PerHour => format!("{value:.2}/h"),
        Unit::PerDay => format!("{value:.2}/day"),
        Unit::PerWeek => format!("{value:.2}/week"),
    }
}

fn kpi_notification(
    kpi: &Kpi,
    scope: &Scope,
    event: NotificationEvent,
    status: KpiStatus,
    value: Option<f64>,
    at: DateTime<Utc>,
    base_url: Option<&str>,
) -> Notification {
    let info = &kpi.info;
    let scoped = match scope.dimension {
        Some(d) => format!(" ({d} {})", scope.value),
        None => String::new(),
    };
    let shown = value.map_or("no value".to_owned(), |v| show(info.unit, v));
    let mut lines = vec![format!("{}{scoped} {}: {shown}", info.title, event.label())];
    if let Some(t) = &info.thresholds {
        lines.push(format!(
            "Target {}, warning at {}, breach at {} ({} is better), over the last {}.",
            show(info.unit, t.target),
            show(info.unit, t.warning),
            show(info.unit, t.breach),
            t.better,
            info.window
        ));
    }
    let of = |d: Dimension| (scope.dimension == Some(d)).then(|| scope.value.clone());
    Notification {
        event,
        ticket_id: None,
        ticket_key: None,
        title: format!("{}{scoped}", info.title),
        severity: of(Dimension::Severity).and_then(|s| Severity::parse(&s)),
        status: Some(status.as_str().to_owned()),
        workload: of(Dimension::Workload),
        environment: None,
        team: of(Dimension::Team),
        summary: lines.join("\n"),
        url: base_url.map(|b| {
            format!(
                "{}/api/v1/kpis/{}/series",
                b.trim_end_matches('/'),
                info.name
            )
        }),
        at,
        recipients: Vec::new(),
        report: None,
    }
}

/// What one evaluation found for one KPI.
struct Evaluation {
    kpi: Kpi,
    values: BTreeMap<Scope, Option<f64>>,
    only_if_due: bool,
}

impl Desk {
    /// Uses these KPI settings instead of the defaults.
    pub fn with_kpi_settings(mut self, settings: KpiSettings) -> Desk {
        self.settings.kpis = Arc::new(settings);
        self
    }

    pub fn kpi_settings(&self) -> &KpiSettings {
        &self.settings.kpis
    }

    /// Every KPI: the built-in ones, those of the configuration file and those defined through
    /// the API.
    pub async fn kpi_catalog(&self) -> Result<Vec<Kpi>> {
        let mut all: Vec<Kpi> = self.settings.kpis.builtins.clone();
        all.extend(self.settings.kpis.custom.iter().cloned());
        for stored in self.db().kpi_definitions().await? {
            match serde_json::from_str::<KpiSpec>(&stored.spec) {
                Ok(spec) if !all.iter().any(|k| k.info.name == spec.name) => {
                    all.push(Kpi::custom(spec, self.settings.kpis.interval));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(kpi = %stored.name, error = %e, "a stored KPI definition is unreadable; it is skipped")
                }
            }
        }
        Ok(all)
    }

    async fn kpi_named(&self, name: &str) -> Result<Kpi> {
        self.kpi_catalog()
            .await?
            .into_iter()
            .find(|k| k.info.name == name)
            .ok_or_else(|| Error::NotFound(format!("KPI {name}")))
    }

    /// Every KPI with its latest value, overall and per breakdown (`by` keeps one dimension's).
    pub async fn kpis(&self, actor: &Actor, by: Option<Dimension>) -> Result<Vec<KpiView>> {
        require_overview(actor)?;
        let catalog = self.kpi_catalog().await?;
        let mut states: HashMap<String, Vec<KpiStateRecord>> = HashMap::new();
        for s in self.db().kpi_states().await? {
            states.entry(s.name.clone()).or_default().push(s);
        }
        let mut out = Vec::with_capacity(catalog.len());
        for kpi in catalog {
            let mine = states.remove(&kpi.info.name).unwrap_or_default();
            let overall = mine.iter().find(|s| s.scope.is_empty());
            let (previous, trend) = match overall {
                Some(s) => {
                    let a_window_before = s
                        .evaluated_at
                        .checked_sub_signed(kpi.info.window.duration());
                    let before = match a_window_before {
                        Some(at) => self
                            .db()
                            .kpi_point_before(&kpi.info.name, "", at)
                            .await?
                            .and_then(|p| p.value),
                        None => None,
                    };
                    let better = kpi.info.thresholds.map_or(Better::Lower, |t| t.better);
                    let trend = match (before, s.value) {
                        (Some(b), Some(v)) => Some(direction(better, b, v)),
                        _ => None,
                    };
                    (before, trend)
                }
                None => (None, None),
            };
            let scopes = mine
                .iter()
                .filter_map(|s| {
                    let scope = Scope::from_key(&s.scope)?;
                    let d = scope.dimension?;
                    if by.is_some_and(|b| b != d) {
                        return None;
                    }
                    Some(ScopeValue {
                        by: d,
                        scope: scope.value,
                        value: s.value,
                        status: KpiStatus::parse(&s.status).unwrap_or(KpiStatus::NoData),
                    })
                })
                .collect();
            out.push(KpiView {
                value: overall.and_then(|s| s.value),
                status: overall
                    .and_then(|s| KpiStatus::parse(&s.status))
                    .unwrap_or(KpiStatus::NoData),
                since: overall.map(|s| s.since),
                evaluated_at: overall.map(|s| s.evaluated_at),
                previous,
                trend,
                scopes,
                info: kpi.info,
            });
        }
        Ok(out)
    }

    /// One KPI with its latest value.
    pub async fn kpi(&self, actor: &Actor, name: &str) -> Result<KpiView> {
        self.kpis(actor, None)
            .await?
            .into_iter()
            .find(|k| k.info.name == name)
            .ok_or_else(|| Error::NotFound(format!("KPI {name}")))
    }

    /// A KPI's series in `scope` (`""` overall, `team=ops`), one value per `step` from `from`
    /// to `to`.
    pub async fn kpi_series(
        &self,
        actor: &Actor,
        name: &str,
        scope: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: Duration,
    ) -> Result<Series> {
        require_overview(actor)?;
        let kpi = self.kpi_named(name).await?;
        self.kpi_series_of(actor, &kpi.info, scope, from, to, step)
            .await
    }

    /// [`Desk::kpi_series`] of a KPI the caller has already looked up (pages that chart every
    /// KPI read the catalog once).
    pub async fn kpi_series_of(
        &self,
        actor: &Actor,
        info: &KpiInfo,
        scope: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: Duration,
    ) -> Result<Series> {
        require_overview(actor)?;
        let name = info.name.as_str();
        if Scope::from_key(scope).is_none() {
            return Err(Error::Invalid(FieldError::new(
                "scope",
                "write a breakdown as dimension=value, e.g. team=ops, or leave it out",
            )));
        }
        let from = check_time("from", from)?;
        let to = check_time("to", to)?;
        if to <= from {
            return Err(Error::Invalid(FieldError::new("to", "must be after from")));
        }
        if step < Duration::minutes(1) {
            return Err(Error::Invalid(FieldError::new(
                "step",
                "must be at least 1m",
            )));
        }
        let steps = (to - from).num_seconds() / step.num_seconds().max(1);
        if steps > SERIES_MAX_POINTS {
            return Err(Error::Invalid(FieldError::new(
                "step",
                format!("gives {steps} points: at most {SERIES_MAX_POINTS}, use a longer step"),
            )));
        }
        let first = self.db().kpi_point_before(name, scope, from).await?;
        // One point per change and at least one an hour: the range holds at most a few
        // points per evaluation interval.
        let stored = self
            .db()
            .kpi_points(name, scope, from, to, 1_000_000)
            .await?;
        let mut points = Vec::with_capacity(usize::try_from(steps + 1).unwrap_or(0));
        let mut current = first;
        let mut it = stored.into_iter().peekable();
        let mut at = from;
        while at < to {
            let end = at.checked_add_signed(step).map_or(to, |end| end.min(to));
            while let Some(p) = it.next_if(|p| p.at < end || (end == to && p.at <= to)) {
                current = Some(p);
            }
            points.push(SeriesPoint {
                at,
                value: current.as_ref().and_then(|p| p.value),
                status: current.as_ref().and_then(|p| KpiStatus::parse(&p.status)),
            });
            at = end;
        }
        Ok(Series {
            name: info.name.clone(),
            scope: scope.to_owned(),
            unit: info.unit,
            from,
            to,
            step_seconds: step.num_seconds(),
            points,
        })
    }

    /// The custom KPIs defined through the API.
    pub async fn stored_kpis(&self, actor: &Actor) -> Result<Vec<StoredKpi>> {
        require_overview(actor)?;
        let mut out = Vec::new();
        for r in self.db().kpi_definitions().await? {
            let spec: KpiSpec = serde_json::from_str(&r.spec).map_err(|e| {
                Error::Store(opsdesk_store::StoreError::Corrupt(format!(
                    "stored KPI {} is unreadable: {e}",
                    r.name
                )))
            })?;
            out.push(StoredKpi {
                spec,
                created_by: r.created_by,
                created_at: r.created_at,
                updated_at: r.updated_at,
            });
        }
        Ok(out)
    }

    /// Defines (or redefines) a custom KPI; admins only. A name the configuration file or the
    /// built-in KPIs use is refused.
    pub async fn save_kpi(&self, actor: &Actor, spec: KpiSpec) -> Result<Kpi> {
        actor.require_admin()?;
        let spec = spec.validate().map_err(Error::Invalid)?;
        if self
            .settings
            .kpis
            .custom
            .iter()
            .any(|k| k.info.name == spec.name)
        {
            return Err(Error::Conflict(format!(
                "KPI {} is defined in the configuration file; change it there",
                spec.name
            )));
        }
        let text = serde_json::to_string(&spec).map_err(|e| {
            Error::Store(opsdesk_store::StoreError::Corrupt(format!(
                "KPI not serialisable: {e}"
            )))
        })?;
        let who = actor.name.clone();
        let name = spec.name.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                tx.save_kpi_definition(&name, &text, &who, now).await?;
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: who.clone(),
                    action: "kpi.defined".into(),
                    ticket_id: None,
                    changes: Changes::from([(
                        "kpi".to_owned(),
                        FieldChange {
                            before: Value::Null,
                            after: json!(
                                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
                            ),
                        },
                    )]),
                })
                .await?;
                Ok(())
            })
        })
        .await?;
        Ok(Kpi::custom(spec, self.settings.kpis.interval))
    }

    /// Deletes a custom KPI defined through the API, with its series; admins only.
    pub async fn delete_kpi(&self, actor: &Actor, name: &str) -> Result<()> {
        actor.require_admin()?;
        if builtins().iter().any(|b| b.name == name)
            || self
                .settings
                .kpis
                .custom
                .iter()
                .any(|k| k.info.name == name)
        {
            return Err(Error::Conflict(format!(
                "KPI {name} is built in or defined in the configuration file"
            )));
        }
        let who = actor.name.clone();
        let name = name.to_owned();
        self.change(move |tx, now| {
            Box::pin(async move {
                if !tx.delete_kpi_definition(&name).await? {
                    return Err(Error::NotFound(format!("KPI {name}")));
                }
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: who,
                    action: "kpi.deleted".into(),
                    ticket_id: None,
                    changes: Changes::from([(
                        "kpi".to_owned(),
                        FieldChange {
                            before: json!(name),
                            after: Value::Null,
                        },
                    )]),
                })
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Evaluates the KPIs whose interval has passed (all of them with `all`), stores their
    /// values and announces changes of status. Returns the names evaluated.
    pub async fn evaluate_kpis(&self, all: bool) -> Result<Vec<String>> {
        let now = self.now();
        let runs: HashMap<String, DateTime<Utc>> =
            self.db().kpi_runs().await?.into_iter().collect();
        let due: Vec<Kpi> = self
            .kpi_catalog()
            .await?
            .into_iter()
            .filter(|k| {
                all || runs.get(&k.info.name).is_none_or(|at| {
                    at.checked_add_signed(k.info.interval.duration())
                        .is_some_and(|next| next <= now)
                })
            })
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut facts: HashMap<Span, Arc<Vec<TicketFacts>>> = HashMap::new();
        let mut evaluations = Vec::with_capacity(due.len());
        for kpi in due {
            let values = self.measure(&kpi, now, &mut facts).await?;
            evaluations.push(Evaluation {
                kpi,
                values,
                only_if_due: !all,
            });
        }
        let routing = self.routing().await?;
        let base_url = self.settings.notify.base_url.clone();
        let retention = self.settings.kpis.retention.duration();
        self.change(move |tx, _| {
            Box::pin(async move {
                let mut done = Vec::with_capacity(evaluations.len());
                for e in evaluations {
                    if store_evaluation(tx, &e, now, &routing, base_url.as_deref()).await? {
                        done.push(e.kpi.info.name.clone());
                    }
                }
                if let Some(oldest) = now.checked_sub_signed(retention) {
                    tx.prune_kpi_points(oldest).await?;
                }
                Ok(done)
            })
        })
        .await
    }

    /// The KPI's value overall and per breakdown, as of `now`.
    async fn measure(
        &self,
        kpi: &Kpi,
        now: DateTime<Utc>,
        facts: &mut HashMap<Span, Arc<Vec<TicketFacts>>>,
    ) -> Result<BTreeMap<Scope, Option<f64>>> {
        let window = kpi.info.window;
        let from = now
            .checked_sub_signed(window.duration())
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let dims = &kpi.info.scope;
        match &kpi.measure {
            Measure::Builtin(b) => match b {
                Builtin::Mtta
                | Builtin::Mttr
                | Builtin::FirstResponseSla
                | Builtin::ResolutionSla
                | Builtin::Backlog
                | Builtin::ReopenRate
                | Builtin::TicketsCreated => {
                    let rows = match facts.get(&window) {
                        Some(rows) => rows.clone(),
                        None => {
                            let rows = Arc::new(self.db().ticket_facts(from, now, now).await?);
                            facts.insert(window, rows.clone());
                            rows
                        }
                    };
                    // A pass over every ticket of the window: beside the request workers.
                    let (b, dims) = (*b, dims.to_vec());
                    tokio::task::spawn_blocking(move || ticket_kpi(b, &rows, &dims))
                        .await
                        .map_err(|e| Error::Internal(format!("evaluating a KPI failed: {e}")))
                }
                Builtin::AwsEscalations | Builtin::AwsCaseFirstResponse => {
                    self.case_kpi(*b, from, now, dims).await
                }
                Builtin::ReadinessRisks
                | Builtin::SinceReview
                | Builtin::ActionItemsOverdue
                | Builtin::IncidentReviewsOnTime => self.readiness_kpi(*b, from, now, dims).await,
                Builtin::HealthOpenProduction => {
                    let mut by = BTreeMap::new();
                    into_scopes(&mut by, dims, &[], Tally::default());
                    for (workload, team, n) in self.db().health_open_production().await? {
                        let tally = Tally {
                            n: 1.0,
                            sum: n as f64,
                        };
                        into_scopes(
                            &mut by,
                            dims,
                            &[
                                (Dimension::Workload, workload.as_deref()),
                                (Dimension::Team, team.as_deref()),
                            ],
                            tally,
                        );
                    }
                    Ok(sums(by))
                }
                Builtin::MaintenanceUpcoming => {
                    let mut by = BTreeMap::new();
                    into_scopes(&mut by, dims, &[], Tally::default());
                    for (workload, n) in self
                        .db()
                        .maintenance_starting(
                            now,
                            now.checked_add_signed(window.duration())
                                .unwrap_or(DateTime::<Utc>::MAX_UTC),
                        )
                        .await?
                    {
                        into_scopes(
                            &mut by,
                            dims,
                            &[(Dimension::Workload, workload.as_deref())],
                            Tally {
                                n: 1.0,
                                sum: n as f64,
                            },
                        );
                    }
                    Ok(sums(by))
                }
                Builtin::TrustedAdvisorFlagged | Builtin::TrustedAdvisorSavings => {
                    let mut by = BTreeMap::new();
                    into_scopes(&mut by, dims, &[], Tally::default());
                    for item in self.db().trusted_advisor_flagged().await? {
                        let sum = if *b == Builtin::TrustedAdvisorSavings {
                            item.savings.unwrap_or(0.0)
                        } else {
                            1.0
                        };
                        into_scopes(
                            &mut by,
                            dims,
                            &[
                                (Dimension::Category, item.category.as_deref()),
                                (Dimension::Status, Some(&item.status)),
                            ],
                            Tally { n: 1.0, sum },
                        );
                    }
                    Ok(sums(by))
                }
            },
            Measure::Custom(spec) => self.custom_kpi(spec, from, now).await,
        }
    }

    async fn case_kpi(
        &self,
        b: Builtin,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        dims: &[Dimension],
    ) -> Result<BTreeMap<Scope, Option<f64>>> {
        let cases = self.db().case_facts(from, now).await?;
        let accounts = self.known_accounts().await?;
        let office = office_hours();
        let mut by = BTreeMap::new();
        if b == Builtin::AwsEscalations {
            into_scopes(&mut by, dims, &[], Tally::default());
        }
        for c in cases {
            let groups = [
                (Dimension::Account, Some(c.account_id.as_str())),
                (Dimension::Severity, Some(c.ticket_severity.as_str())),
            ];
            let tally = match b {
                Builtin::AwsEscalations => Tally { n: 1.0, sum: 1.0 },
                _ => {
                    if !matches!(c.state.as_str(), "opened" | "resolved") {
                        continue;
                    }
                    // The target of the plan the case was decided on; for cases from
                    // before opsdesk kept it, the account's plan now.
                    let plan = c
                        .support_plan
                        .as_deref()
                        .and_then(SupportPlan::parse)
                        .unwrap_or_else(|| {
                            accounts
                                .iter()
                                .find(|a| a.id == c.account_id)
                                .map_or(SupportPlan::Basic, |a| a.support_plan)
                        });
                    let Some(target) = c
                        .severity
                        .as_deref()
                        .and_then(CaseSeverity::parse)
                        .and_then(|s| plan.target(s))
                    else {
                        continue;
                    };
                    let allowed = Duration::minutes(i64::from(target.minutes));
                    let waited = |until: DateTime<Utc>| match (&office, target.business_hours) {
                        (Some(cal), true) => cal.business_between(c.created_at, until),
                        _ => until - c.created_at,
                    };
                    match c.first_reply_at {
                        Some(reply) => Tally {
                            n: 1.0,
                            sum: if waited(reply) <= allowed { 1.0 } else { 0.0 },
                        },
                        None if waited(now) > allowed => Tally { n: 1.0, sum: 0.0 },
                        None => continue,
                    }
                }
            };
            into_scopes(&mut by, dims, &groups, tally);
        }
        Ok(match b {
            Builtin::AwsEscalations => sums(by),
            _ => by.into_iter().map(|(s, t)| (s, t.percent())).collect(),
        })
    }

    async fn custom_kpi(
        &self,
        spec: &KpiSpec,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<BTreeMap<Scope, Option<f64>>> {
        let dims = &spec.scope;
        let query = |filter| KpiQuery {
            over: spec.over,
            filter,
            window_on: spec.window_time(),
            from,
            to,
            dims,
        };
        let grouped = |rows: Vec<(Vec<Option<String>>, i64)>| {
            let mut by = BTreeMap::new();
            into_scopes(&mut by, dims, &[], Tally::default());
            for (values, n) in rows {
                let groups: Vec<(Dimension, Option<&str>)> = dims
                    .iter()
                    .copied()
                    .zip(values.iter().map(|v| v.as_deref()))
                    .collect();
                into_scopes(
                    &mut by,
                    dims,
                    &groups,
                    Tally {
                        n: 1.0,
                        sum: n as f64,
                    },
                );
            }
            by
        };
        match spec.aggregate {
            Aggregate::Count => Ok(sums(grouped(
                self.db().kpi_counts(&query(&spec.filter)).await?,
            ))),
            Aggregate::Rate => {
                let per = spec.per.map_or(Duration::days(1), |p| p.duration());
                let periods =
                    spec.window.duration().num_seconds() as f64 / per.num_seconds() as f64;
                Ok(grouped(self.db().kpi_counts(&query(&spec.filter)).await?)
                    .into_iter()
                    .map(|(s, t)| (s, Some(t.sum / periods)))
                    .collect())
            }
            Aggregate::Ratio => {
                // What is counted above the line is always part of what is below it.
                let denominator = spec
                    .filter
                    .and(spec.denominator.as_ref().unwrap_or(&Default::default()));
                let numerator =
                    denominator.and(spec.numerator.as_ref().unwrap_or(&Default::default()));
                let above = grouped(self.db().kpi_counts(&query(&numerator)).await?);
                let below = grouped(self.db().kpi_counts(&query(&denominator)).await?);
                Ok(below
                    .into_iter()
                    .map(|(s, den)| {
                        let num = above.get(&s).map_or(0.0, |t| t.sum);
                        let v = (den.sum > 0.0).then(|| 100.0 * num / den.sum);
                        (s, v)
                    })
                    .collect())
            }
            Aggregate::Mean | Aggregate::P50 | Aggregate::P90 => {
                let start = spec.from.unwrap_or(TicketTime::CreatedAt);
                let end = spec.to.unwrap_or(TicketTime::ResolvedAt);
                let rows = self
                    .db()
                    .kpi_durations(&query(&spec.filter), start, end)
                    .await?;
                let mut values: BTreeMap<Scope, Vec<f64>> = BTreeMap::new();
                values.insert(Scope::overall(), Vec::new());
                for (groups, seconds) in rows {
                    values.entry(Scope::overall()).or_default().push(seconds);
                    for (d, v) in dims.iter().zip(groups) {
                        if let Some(v) = v {
                            values.entry(Scope::of(*d, v)).or_default().push(seconds);
                        }
                    }
                }
                Ok(values
                    .into_iter()
                    .map(|(s, mut v)| {
                        let value = match spec.aggregate {
                            Aggregate::P50 => percentile(&mut v, 0.5),
                            Aggregate::P90 => percentile(&mut v, 0.9),
                            _ => (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64),
                        };
                        (s, value)
                    })
                    .collect())
            }
        }
    }
}

/// Weekdays 08:00 to 18:00 UTC: the business hours of the Developer plan's targets.
fn office_hours() -> Option<Calendar> {
    let day = vec!["08:00-18:00".to_owned()];
    CalendarSpec {
        name: "aws-business-hours".into(),
        time_zone: "UTC".into(),
        hours: WeeklyHours {
            mon: day.clone(),
            tue: day.clone(),
            wed: day.clone(),
            thu: day.clone(),
            fri: day,
            sat: Vec::new(),
            sun: Vec::new(),
        },
        holidays: Vec::new(),
    }
    .validate()
    .ok()
}

pub(crate) fn into_scopes(
    into: &mut BTreeMap<Scope, Tally>,
    wanted: &[Dimension],
    values: &[(Dimension, Option<&str>)],
    tally: Tally,
) {
    roll_up(into, wanted, values, tally);
}

pub(crate) fn sums(by: BTreeMap<Scope, Tally>) -> BTreeMap<Scope, Option<f64>> {
    by.into_iter().map(|(s, t)| (s, Some(t.sum))).collect()
}

/// A built-in ticket KPI from the grouped facts.
fn ticket_kpi(
    b: Builtin,
    rows: &[TicketFacts],
    dims: &[Dimension],
) -> BTreeMap<Scope, Option<f64>> {
    let mut by: BTreeMap<Scope, Tally> = BTreeMap::new();
    by.insert(Scope::overall(), Tally::default());
    for f in rows {
        let count = |n: i64| n as f64;
        let tally = match b {
            Builtin::Mtta => Tally {
                n: count(f.responded),
                sum: count(f.response_seconds),
            },
            Builtin::Mttr => Tally {
                n: count(f.resolved),
                sum: count(f.resolution_seconds),
            },
            Builtin::FirstResponseSla => Tally {
                n: count(f.response_met + f.response_missed),
                sum: count(f.response_met),
            },
            Builtin::ResolutionSla => Tally {
                n: count(f.resolution_met + f.resolution_missed),
                sum: count(f.resolution_met),
            },
            Builtin::ReopenRate => Tally {
                n: count(f.resolved),
                sum: count(f.reopened),
            },
            Builtin::Backlog => Tally {
                n: count(f.open),
                sum: count(f.open),
            },
            _ => Tally {
                n: count(f.created),
                sum: count(f.created),
            },
        };
        if tally.n == 0.0 {
            continue;
        }
        roll_up(
            &mut by,
            dims,
            &[
                (Dimension::Team, f.team.as_deref()),
                (Dimension::Workload, f.workload.as_deref()),
                (Dimension::Severity, Some(&f.severity)),
                (Dimension::Source, Some(&f.source)),
                (Dimension::Kind, Some(&f.kind)),
                (Dimension::Age, f.age.as_deref()),
            ],
            tally,
        );
    }
    by.into_iter()
        .map(|(s, t)| {
            let v = match b {
                Builtin::Mtta | Builtin::Mttr => t.mean(),
                Builtin::FirstResponseSla | Builtin::ResolutionSla | Builtin::ReopenRate => {
                    t.percent()
                }
                _ => Some(t.sum),
            };
            (s, v)
        })
        .collect()
}

/// Stores one KPI's evaluation: its states, the points of its series, and the events and
/// audit entries of each change of status. False when another node evaluated it meanwhile.
async fn store_evaluation(
    tx: &mut Tx,
    e: &Evaluation,
    now: DateTime<Utc>,
    routing: &crate::outbox::Routing,
    base_url: Option<&str>,
) -> Result<bool> {
    let kpi = &e.kpi;
    let name = &kpi.info.name;
    let last = tx.kpi_run_locked(name).await?;
    let not_yet = |l: DateTime<Utc>| {
        l.checked_add_signed(kpi.info.interval.duration())
            .is_none_or(|next| next > now)
    };
    if last.is_some_and(|l| l >= now || (e.only_if_due && not_yet(l))) {
        return Ok(false);
    }
    let mut old: HashMap<String, KpiStateRecord> = tx
        .kpi_states_of(name)
        .await?
        .into_iter()
        .map(|s| (s.scope.clone(), s))
        .collect();
    let mut values: Vec<(Scope, Option<f64>)> = e.values.clone().into_iter().collect();
    // Breakdowns that had a value before and have none now say so once, then go.
    let mut gone = Vec::new();
    for (key, prev) in &old {
        match Scope::from_key(key) {
            Some(scope) if e.values.contains_key(&scope) => {}
            Some(scope) if prev.status != KpiStatus::NoData.as_str() => values.push((scope, None)),
            _ => gone.push(key.clone()),
        }
    }
    tx.delete_kpi_states(name, &gone).await?;
    let mut states = Vec::with_capacity(values.len());
    let mut points = Vec::new();
    let mut outbox: Vec<NewOutboxItem> = Vec::new();
    for (scope, value) in values {
        let key = scope.key();
        let status = kpi.status(value);
        let prev = old.remove(&key);
        let before = prev
            .as_ref()
            .and_then(|p| KpiStatus::parse(&p.status))
            .unwrap_or(KpiStatus::Ok);
        let changed = prev
            .as_ref()
            .is_none_or(|p| p.value != value || p.status != status.as_str());
        let point = changed
            || prev
                .as_ref()
                .is_some_and(|p| now - p.point_at >= POINT_EVERY);
        if point {
            points.push(KpiPoint {
                name: name.clone(),
                scope: key.clone(),
                at: now,
                value,
                status: status.as_str().to_owned(),
            });
        }
        states.push(KpiStateRecord {
            name: name.clone(),
            scope: key.clone(),
            value,
            status: status.as_str().to_owned(),
            since: match &prev {
                Some(p) if p.status == status.as_str() => p.since,
                _ => now,
            },
            evaluated_at: now,
            point_at: if point {
                now
            } else {
                prev.as_ref().map_or(now, |p| p.point_at)
            },
        });
        let Some(event) = event_for(before, status) else {
            continue;
        };
        tx.append_audit(AuditEntry {
            at: now,
            actor: EVALUATOR.into(),
            action: format!(
                "kpi.{}",
                if event == NotificationEvent::KpiBreach {
                    "breach"
                } else {
                    "recovered"
                }
            ),
            ticket_id: None,
            changes: Changes::from([
                (
                    "kpi".to_owned(),
                    FieldChange {
                        before: json!(name),
                        after: json!(name),
                    },
                ),
                (
                    "scope".to_owned(),
                    FieldChange {
                        before: json!(key),
                        after: json!(key),
                    },
                ),
                (
                    "status".to_owned(),
                    FieldChange {
                        before: json!(before),
                        after: json!(status),
                    },
                ),
                (
                    "value".to_owned(),
                    FieldChange {
                        before: json!(prev.as_ref().and_then(|p| p.value)),
                        after: json!(value),
                    },
                ),
            ]),
        })
        .await?;
        let n = kpi_notification(kpi, &scope, event, status, value, now, base_url);
        outbox.extend(
            routing
                .kpi_items(
                    tx,
                    event,
                    &n,
                    &format!("kpi-{name}-{key}-{}", now.timestamp_micros()),
                )
                .await?,
        );
    }
    tx.save_kpi_states(&states).await?;
    tx.add_kpi_points(&points).await?;
    tx.enqueue(&outbox, now).await?;
    tx.save_kpi_run(name, now).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(team: &str, sev: &str) -> TicketFacts {
        TicketFacts {
            team: Some(team.into()),
            workload: None,
            severity: sev.into(),
            source: "api".into(),
            kind: "incident".into(),
            ..TicketFacts::default()
        }
    }

    #[test]
    fn ticket_kpis_roll_groups_up() {
        let mut a = facts("ops", "SEV1");
        a.responded = 2;
        a.response_seconds = 600;
        a.response_met = 1;
        a.response_missed = 1;
        let mut b = facts("db", "SEV2");
        b.responded = 1;
        b.response_seconds = 900;
        b.response_met = 1;
        let dims = [Dimension::Team, Dimension::Severity];
        let mtta = ticket_kpi(Builtin::Mtta, &[a.clone(), b.clone()], &dims);
        assert_eq!(mtta[&Scope::overall()], Some(500.0));
        assert_eq!(mtta[&Scope::of(Dimension::Team, "ops")], Some(300.0));
        assert_eq!(mtta[&Scope::of(Dimension::Severity, "SEV2")], Some(900.0));
        let sla = ticket_kpi(Builtin::FirstResponseSla, &[a, b], &dims);
        let overall = sla[&Scope::overall()].unwrap();
        assert!((overall - 200.0 / 3.0).abs() < 1e-9);
        let none = ticket_kpi(Builtin::Mttr, &[], &dims);
        assert_eq!(none[&Scope::overall()], None);
    }

    #[test]
    fn only_entering_and_leaving_a_breach_is_announced() {
        use KpiStatus::*;
        assert_eq!(event_for(Ok, Breach), Some(NotificationEvent::KpiBreach));
        assert_eq!(
            event_for(Warning, Breach),
            Some(NotificationEvent::KpiBreach)
        );
        assert_eq!(
            event_for(NoData, Breach),
            Some(NotificationEvent::KpiBreach)
        );
        assert_eq!(event_for(Breach, Breach), None);
        assert_eq!(
            event_for(Breach, Warning),
            Some(NotificationEvent::KpiRecovered)
        );
        assert_eq!(event_for(Breach, Ok), Some(NotificationEvent::KpiRecovered));
        assert_eq!(event_for(Breach, NoData), None);
        assert_eq!(event_for(Ok, Warning), None);
    }

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(show(Unit::Seconds, 7500.0), "2h 5m");
        assert_eq!(show(Unit::Seconds, 42.0), "42s");
        assert_eq!(show(Unit::Seconds, 90_000.0), "1d 1h");
        assert_eq!(show(Unit::Percent, 93.456), "93.5%");
        assert_eq!(show(Unit::Usd, 1234.5), "$1234.50");
    }

    #[test]
    fn overrides_are_checked_with_the_key_named() {
        let mut o = BTreeMap::new();
        o.insert(
            "mtta".to_owned(),
            KpiOverride {
                breach: Some(100.0),
                ..Default::default()
            },
        );
        let e = KpiSettings::new(Span::minutes(5), Span::days(90), &o, Vec::new()).unwrap_err();
        assert_eq!(e.field, "builtin.mtta.breach");
        let mut o = BTreeMap::new();
        o.insert("mtt".to_owned(), KpiOverride::default());
        let e = KpiSettings::new(Span::minutes(5), Span::days(90), &o, Vec::new()).unwrap_err();
        assert_eq!(e.field, "builtin.mtt");
        let mut o = BTreeMap::new();
        o.insert(
            "tickets_created".to_owned(),
            KpiOverride {
                target: Some(1.0),
                ..Default::default()
            },
        );
        let e = KpiSettings::new(Span::minutes(5), Span::days(90), &o, Vec::new()).unwrap_err();
        assert_eq!(e.field, "builtin.tickets_created.target");
        let mut o = BTreeMap::new();
        o.insert(
            "mtta".to_owned(),
            KpiOverride {
                window: Some(Span::days(7)),
                target: Some(60.0),
                ..Default::default()
            },
        );
        let s = KpiSettings::new(Span::minutes(5), Span::days(90), &o, Vec::new()).unwrap();
        let mtta = s.builtins.iter().find(|k| k.info.name == "mtta").unwrap();
        assert_eq!(mtta.info.window, Span::days(7));
        assert_eq!(mtta.info.thresholds.unwrap().target, 60.0);
    }
}
