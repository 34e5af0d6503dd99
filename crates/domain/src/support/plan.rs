//! The AWS Support plan table: which plans an account can hold on a given day, what each lets
//! it do, and how a ticket's severity becomes a case severity.
//!
//! On 1 January 2027 AWS ends Developer, Business and Enterprise On-Ramp outside AWS GovCloud
//! (US); from then on the plans are Basic, Business Support+, Enterprise and Unified
//! Operations (announced December 2025). The table knows all seven with the days they can be
//! held, so a decision or a piece of advice depends on the day it is made for.
//!
//! The table is what opsdesk assumes when AWS does not say. For an account with the AWS
//! Support API, AWS says: DescribeSeverityLevels names the severities it may open cases
//! with, and that answer wins over the table (see [`cap`]).

use std::fmt;

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ticket::{named_enum, Severity};
use crate::validation::FieldError;

/// The AWS Support plan comparison page.
pub const PLANS_URL: &str = "https://aws.amazon.com/premiumsupport/plans/";
/// The AWS Support pricing page: each plan's minimum monthly charge.
pub const PRICING_URL: &str = "https://aws.amazon.com/premiumsupport/pricing/";
/// "Choosing a severity": case severities and their first-response times.
pub const SEVERITY_URL: &str =
    "https://docs.aws.amazon.com/awssupport/latest/user/case-management.html#choosing-severity";
/// Which plans may call the AWS Support API (CreateCase and the rest).
pub const API_URL: &str =
    "https://docs.aws.amazon.com/awssupport/latest/user/about-support-api.html";
/// DescribeSeverityLevels: the severities an account may open cases with, asked at run time.
pub const SEVERITY_LEVELS_URL: &str =
    "https://docs.aws.amazon.com/awssupport/latest/APIReference/API_DescribeSeverityLevels.html";

/// The day AWS ends Developer, Business and Enterprise On-Ramp outside AWS GovCloud (US).
pub const RETIREMENT: NaiveDate = match NaiveDate::from_ymd_opt(2027, 1, 1) {
    Some(d) => d,
    None => panic!("2027-01-01 is a date"),
};

/// The first day Business Support+ and Unified Operations could be held (announced in
/// December 2025).
pub const NEW_PLANS_FROM: NaiveDate = match NaiveDate::from_ymd_opt(2025, 12, 1) {
    Some(d) => d,
    None => panic!("2025-12-01 is a date"),
};

/// How far ahead plan advice looks: a plan that ends within this many days is not
/// recommended when another plan will carry on.
const ADVICE_HORIZON_DAYS: u64 = 90;

/// One published page the plan table is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Source {
    pub title: &'static str,
    pub url: &'static str,
}

const SOURCES: &[Source] = &[
    Source {
        title: "AWS Support plans: compare plans",
        url: PLANS_URL,
    },
    Source {
        title: "AWS Support pricing",
        url: PRICING_URL,
    },
    Source {
        title: "AWS Support User Guide: Choosing a severity",
        url: SEVERITY_URL,
    },
    Source {
        title: "AWS Support User Guide: About the AWS Support API",
        url: API_URL,
    },
    Source {
        title: "AWS Support API Reference: DescribeSeverityLevels",
        url: SEVERITY_LEVELS_URL,
    },
];

/// The pages the plan table follows, to show next to any figure taken from it.
pub fn source() -> &'static [Source] {
    SOURCES
}

named_enum! {
    /// An AWS account's support plan. The order is the order of the plans, lowest first.
    SupportPlan {
        /// Account and billing help only; no technical cases.
        Basic => "basic",
        /// Technical cases by web in business hours, one primary contact, no API. Ends
        /// 2027-01-01 outside GovCloud.
        Developer => "developer",
        /// Technical cases around the clock, unlimited contacts, AWS Support API. Ends
        /// 2027-01-01 outside GovCloud.
        Business => "business",
        /// Business's successor: around the clock, AWS Support API, faster critical answers.
        BusinessSupportPlus => "business_support_plus",
        /// Business plus business-critical cases answered within 30 minutes. Ends 2027-01-01
        /// outside GovCloud; AWS moves its accounts to Enterprise.
        EnterpriseOnRamp => "enterprise_on_ramp",
        /// Business-critical cases answered within 15 minutes, a technical account manager.
        Enterprise => "enterprise",
        /// Enterprise with business-critical cases answered within 5 minutes by a team that
        /// knows the account.
        UnifiedOperations => "unified_operations",
    }
}

named_enum! {
    /// An AWS Support case severity (`severityCode`), lowest first.
    CaseSeverity {
        /// General guidance.
        Low => "low",
        /// System impaired.
        Normal => "normal",
        /// Production system impaired.
        High => "high",
        /// Production system down.
        Urgent => "urgent",
        /// Business-critical system down.
        Critical => "critical",
    }
}

named_enum! {
    /// How a recommended plan compares with the current one.
    PlanChange {
        Keep => "keep",
        Upgrade => "upgrade",
        Downgrade => "downgrade",
    }
}

named_enum! {
    /// What decided a case's severity.
    CapSource {
        /// AWS's own answer for the account (DescribeSeverityLevels).
        Aws => "aws",
        /// opsdesk's plan table, because AWS did not answer.
        Plan => "plan",
    }
}

/// A first-response target: within `minutes`, counted around the clock or, when
/// `business_hours`, only in the account's business hours (08:00 to 18:00 in its time zone,
/// weekdays, holidays excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Target {
    pub minutes: u32,
    pub business_hours: bool,
}

impl Target {
    pub(crate) const fn around_the_clock(minutes: u32) -> Target {
        Target {
            minutes,
            business_hours: false,
        }
    }

    pub(crate) const fn in_business_hours(minutes: u32) -> Target {
        Target {
            minutes,
            business_hours: true,
        }
    }

    /// Whether this target guarantees an answer within `minutes` of wall-clock time.
    /// Business-hours targets never do: a case opened on a Friday evening waits for Monday.
    pub fn within(self, minutes: u32) -> bool {
        !self.business_hours && self.minutes <= minutes
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.business_hours { "business " } else { "" };
        f.write_str(&duration(self.minutes, unit))
    }
}

/// "15 minutes", "1 hour", "12 business hours".
pub(crate) fn duration(minutes: u32, unit: &str) -> String {
    if minutes >= 60 && minutes.is_multiple_of(60) {
        let hours = minutes / 60;
        let s = if hours == 1 { "" } else { "s" };
        format!("{hours} {unit}hour{s}")
    } else {
        let s = if minutes == 1 { "" } else { "s" };
        format!("{minutes} {unit}minute{s}")
    }
}

impl CaseSeverity {
    /// The severity's name in the AWS Support Center.
    pub fn label(self) -> &'static str {
        match self {
            CaseSeverity::Low => "general guidance",
            CaseSeverity::Normal => "system impaired",
            CaseSeverity::High => "production system impaired",
            CaseSeverity::Urgent => "production system down",
            CaseSeverity::Critical => "business-critical system down",
        }
    }

    /// The next severity down, if any.
    pub fn lower(self) -> Option<CaseSeverity> {
        let i = CaseSeverity::ALL.iter().position(|s| *s == self)?;
        i.checked_sub(1).map(|i| CaseSeverity::ALL[i])
    }
}

impl From<Severity> for CaseSeverity {
    /// SEV1 critical, SEV2 urgent, SEV3 high, SEV4 normal, SEV5 low, as
    /// [`Severity::aws_support_code`] names them.
    fn from(s: Severity) -> Self {
        match s {
            Severity::Sev1 => CaseSeverity::Critical,
            Severity::Sev2 => CaseSeverity::Urgent,
            Severity::Sev3 => CaseSeverity::High,
            Severity::Sev4 => CaseSeverity::Normal,
            Severity::Sev5 => CaseSeverity::Low,
        }
    }
}

/// One plan's row of the table.
struct Row {
    label: &'static str,
    /// The AWS Support API (CreateCase and the rest) is open to the plan.
    api: bool,
    /// The highest severity the table grants when AWS does not say.
    max: Option<CaseSeverity>,
    /// First-response targets for low, normal, high, urgent, critical.
    targets: [Option<Target>; 5],
    /// The published minimum monthly charge, in US dollars.
    minimum_usd: u32,
    access: &'static str,
    /// Where AWS's own pages disagree about the plan, and what the table assumes.
    disputed: Option<&'static str>,
}

const H: u32 = 60;
const fn clock(minutes: u32) -> Option<Target> {
    Some(Target::around_the_clock(minutes))
}
const fn office(minutes: u32) -> Option<Target> {
    Some(Target::in_business_hours(minutes))
}
/// The targets of a plan with cases around the clock: 24 hours for low down to 1 hour for
/// urgent, and `critical` minutes for critical when the plan has it.
const fn around_the_clock_targets(critical: Option<u32>) -> [Option<Target>; 5] {
    let critical = match critical {
        Some(minutes) => clock(minutes),
        None => None,
    };
    [
        clock(24 * H),
        clock(12 * H),
        clock(4 * H),
        clock(H),
        critical,
    ]
}
const AROUND_THE_CLOCK: &str =
    "technical cases around the clock by web, chat and phone, for any number of contacts";

const fn row(plan: SupportPlan) -> Row {
    match plan {
        SupportPlan::Basic => Row {
            label: "Basic",
            api: false,
            max: None,
            targets: [None; 5],
            minimum_usd: 0,
            access: "no technical cases; account and billing cases only",
            disputed: None,
        },
        SupportPlan::Developer => Row {
            label: "Developer",
            api: false,
            max: Some(CaseSeverity::Normal),
            targets: [office(24 * H), office(12 * H), None, None, None],
            minimum_usd: 29,
            access: "technical cases by web in business hours, for one primary contact",
            disputed: None,
        },
        SupportPlan::Business => Row {
            label: "Business",
            api: true,
            max: Some(CaseSeverity::Urgent),
            targets: around_the_clock_targets(None),
            minimum_usd: 100,
            access: AROUND_THE_CLOCK,
            disputed: None,
        },
        SupportPlan::BusinessSupportPlus => Row {
            label: "Business Support+",
            api: true,
            max: Some(CaseSeverity::Critical),
            targets: around_the_clock_targets(Some(30)),
            minimum_usd: 29,
            access: AROUND_THE_CLOCK,
            disputed: Some(
                "AWS's plan comparison gives Business Support+ business-critical system down \
                 (critical) answered within 30 minutes, while \"Choosing a severity\" in the \
                 Support User Guide lists critical for the Enterprise plans only. opsdesk \
                 assumes critical until AWS answers for the account (DescribeSeverityLevels); \
                 when AWS refuses a critical case, it opens it as urgent.",
            ),
        },
        SupportPlan::EnterpriseOnRamp => Row {
            label: "Enterprise On-Ramp",
            api: true,
            max: Some(CaseSeverity::Critical),
            targets: around_the_clock_targets(Some(30)),
            minimum_usd: 5_500,
            access: AROUND_THE_CLOCK,
            disputed: None,
        },
        SupportPlan::Enterprise => Row {
            label: "Enterprise",
            api: true,
            max: Some(CaseSeverity::Critical),
            targets: around_the_clock_targets(Some(15)),
            minimum_usd: 5_000,
            access: AROUND_THE_CLOCK,
            disputed: None,
        },
        SupportPlan::UnifiedOperations => Row {
            label: "Unified Operations",
            api: true,
            max: Some(CaseSeverity::Critical),
            targets: around_the_clock_targets(Some(5)),
            minimum_usd: 50_000,
            access: AROUND_THE_CLOCK,
            disputed: None,
        },
    }
}

fn severity_index(sev: CaseSeverity) -> usize {
    match sev {
        CaseSeverity::Low => 0,
        CaseSeverity::Normal => 1,
        CaseSeverity::High => 2,
        CaseSeverity::Urgent => 3,
        CaseSeverity::Critical => 4,
    }
}

impl SupportPlan {
    /// The plan's name as AWS writes it.
    pub fn label(self) -> &'static str {
        row(self).label
    }

    /// Reads a plan from a form, a file or the command line: `enterprise_on_ramp`,
    /// `Enterprise On-Ramp` and `enterprise-on-ramp` all name the same plan, as do
    /// `business_support_plus` and `Business Support+`.
    pub fn from_field(s: &str) -> Result<SupportPlan, FieldError> {
        let key: String = s
            .trim()
            .replace('+', "_plus")
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        let key = key.replace("__", "_");
        SupportPlan::parse(&key).ok_or_else(|| {
            FieldError::new(
                "support_plan",
                format!(
                    "`{}` is not an AWS Support plan; use one of: {}",
                    s.trim(),
                    SupportPlan::names()
                ),
            )
        })
    }

    /// Whether technical cases can be opened at all (Basic: account and billing cases only).
    pub fn allows_cases(self) -> bool {
        self != SupportPlan::Basic
    }

    /// Whether the account may call the AWS Support API, which opsdesk needs to open, follow
    /// and resolve cases itself. Basic and Developer get `SubscriptionRequiredException`.
    pub fn has_api(self) -> bool {
        row(self).api
    }

    /// Who may open technical cases, and how.
    pub fn case_access(self) -> &'static str {
        row(self).access
    }

    /// Where AWS's pages disagree about this plan, and what the table assumes.
    pub fn disputed(self) -> Option<&'static str> {
        row(self).disputed
    }

    /// The published minimum monthly charge, in US dollars (AWS charges by usage above it).
    pub fn minimum_monthly_usd(self) -> u32 {
        row(self).minimum_usd
    }

    /// The highest case severity the table gives the plan; `None` when it allows no
    /// technical cases.
    pub fn max_severity(self) -> Option<CaseSeverity> {
        row(self).max
    }

    /// Whether the table lets a case of this severity be opened on the plan.
    pub fn allows(self, sev: CaseSeverity) -> bool {
        self.max_severity().is_some_and(|max| sev <= max)
    }

    /// The published first-response target for a case of `sev`, whether or not the table
    /// allows that severity on the plan (AWS may offer more than the table assumes).
    pub fn target(self, sev: CaseSeverity) -> Option<Target> {
        row(self).targets[severity_index(sev)]
    }

    /// The published first-response target for a case of `sev`; `None` when the table does
    /// not allow that severity on the plan.
    pub fn first_response(self, sev: CaseSeverity) -> Option<Target> {
        self.allows(sev).then(|| self.target(sev)).flatten()
    }

    /// The plan's fastest first response: the target of its highest severity.
    pub fn fastest_first_response(self) -> Option<(CaseSeverity, Target)> {
        let sev = self.max_severity()?;
        self.first_response(sev).map(|t| (sev, t))
    }

    /// The day the plan ends for an account outside (`govcloud` false) or inside AWS GovCloud
    /// (US): the first day it can no longer be held, or `None` while no end is announced.
    pub fn ends_on(self, govcloud: bool) -> Option<NaiveDate> {
        match self {
            SupportPlan::Developer | SupportPlan::Business | SupportPlan::EnterpriseOnRamp
                if !govcloud =>
            {
                Some(RETIREMENT)
            }
            _ => None,
        }
    }

    /// Whether an account can hold the plan on `day`. GovCloud keeps the five plans it had;
    /// Business Support+ and Unified Operations are offered outside it.
    pub fn available_on(self, day: NaiveDate, govcloud: bool) -> bool {
        let started = match self {
            SupportPlan::BusinessSupportPlus | SupportPlan::UnifiedOperations => {
                !govcloud && day >= NEW_PLANS_FROM
            }
            _ => true,
        };
        started && self.ends_on(govcloud).is_none_or(|end| day < end)
    }

    /// What AWS does with accounts on the plan when it ends: the plan it moves them to or
    /// offers, and the verb to say it with.
    pub fn successor(self) -> Option<(SupportPlan, &'static str)> {
        match self {
            SupportPlan::Developer | SupportPlan::Business => {
                Some((SupportPlan::BusinessSupportPlus, "offers"))
            }
            SupportPlan::EnterpriseOnRamp => Some((SupportPlan::Enterprise, "moves it to")),
            _ => None,
        }
    }

    /// The plan whose table applies to an account configured with this plan on `day`: the
    /// plan itself while it can be held, its successor once it has ended.
    pub fn in_effect(self, day: NaiveDate, govcloud: bool) -> SupportPlan {
        if self.available_on(day, govcloud) || day < NEW_PLANS_FROM {
            return self;
        }
        self.successor().map_or(self, |(next, _)| next)
    }

    /// The plans advice chooses from on `day`: those an account can hold then and still hold
    /// [`ADVICE_HORIZON_DAYS`] later, so advice never points at a plan about to end.
    pub fn ladder(day: NaiveDate, govcloud: bool) -> Vec<SupportPlan> {
        let later = day
            .checked_add_days(Days::new(ADVICE_HORIZON_DAYS))
            .unwrap_or(day);
        SupportPlan::ALL
            .iter()
            .copied()
            .filter(|p| p.available_on(day, govcloud) && p.available_on(later, govcloud))
            .collect()
    }

    /// The lowest plan of `ladder` on which opsdesk can open a case of `sev` through the API.
    pub fn lowest_with_api_for(sev: CaseSeverity, ladder: &[SupportPlan]) -> SupportPlan {
        ladder
            .iter()
            .copied()
            .find(|p| p.has_api() && p.allows(sev))
            .unwrap_or(SupportPlan::Enterprise)
    }

    /// The lowest plan of `ladder` that answers some severity within `minutes` around the
    /// clock; `None` when none is that fast.
    pub fn lowest_answering_within(minutes: u32, ladder: &[SupportPlan]) -> Option<SupportPlan> {
        ladder.iter().copied().find(|p| {
            p.fastest_first_response()
                .is_some_and(|(_, t)| t.within(minutes))
        })
    }
}

/// "Business or higher", "Enterprise On-Ramp or Enterprise", "Enterprise": `plan` and what is
/// above it on `ladder`.
pub(crate) fn plan_or_higher(plan: SupportPlan, ladder: &[SupportPlan]) -> String {
    let above: Vec<SupportPlan> = ladder.iter().copied().filter(|p| *p >= plan).collect();
    match above.as_slice() {
        [] | [_] => plan.label().to_owned(),
        [_, next] => format!("{} or {}", plan.label(), next.label()),
        _ => format!("{} or higher", plan.label()),
    }
}

/// What the escalation of one account's case is decided with: the day, where the account
/// lives, and, when AWS has answered, the severities it offers the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseContext {
    pub day: NaiveDate,
    pub govcloud: bool,
    /// DescribeSeverityLevels' answer for the account; `None` when AWS has not answered.
    pub offered: Option<Vec<CaseSeverity>>,
}

/// What happens when a ticket of some severity is escalated to AWS Support on a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CaseDecision {
    /// The plan the account is configured with.
    pub plan: SupportPlan,
    /// The plan whose table applied: the configured one, or its successor once it has ended.
    pub plan_in_effect: SupportPlan,
    /// The case severity the ticket's severity asks for.
    pub requested: CaseSeverity,
    /// The severity to open the case with; `None` when opsdesk cannot open the case.
    pub granted: Option<CaseSeverity>,
    /// True when the case is opened lower than requested.
    pub capped: bool,
    /// Whether AWS's answer or the plan table decided the severity.
    pub capped_by: CapSource,
    /// The first-response target of the granted severity.
    pub first_response: Option<Target>,
    /// One sentence for the ticket timeline.
    pub reason: String,
}

/// Decides the case severity for a ticket of `ticket_severity` on `plan`: the ticket's own
/// severity, lowered to the highest AWS offers the account when AWS has said
/// (`context.offered`), otherwise to the highest the plan table allows. Without the AWS
/// Support API (Basic, Developer while it lasts) opsdesk cannot open the case at all.
pub fn cap(plan: SupportPlan, ticket_severity: Severity, context: &CaseContext) -> CaseDecision {
    cap_severity(plan, CaseSeverity::from(ticket_severity), context)
}

/// [`cap`] for a case severity asked for directly.
pub fn cap_severity(
    plan: SupportPlan,
    requested: CaseSeverity,
    context: &CaseContext,
) -> CaseDecision {
    let ladder = SupportPlan::ladder(context.day, context.govcloud);
    let effective = plan.in_effect(context.day, context.govcloud);
    let needed = plan_or_higher(
        SupportPlan::lowest_with_api_for(requested, &ladder),
        &ladder,
    );
    let name = if effective == plan {
        format!("{} plan", plan.label())
    } else {
        format!(
            "{} plan (configured {}, which ended on {RETIREMENT})",
            effective.label(),
            plan.label()
        )
    };
    let decision =
        |granted: Option<CaseSeverity>, capped_by: CapSource, reason: String| CaseDecision {
            plan,
            plan_in_effect: effective,
            requested,
            granted,
            capped: granted.is_some_and(|g| g < requested),
            capped_by,
            first_response: granted.and_then(|g| effective.target(g)),
            reason,
        };
    if let Some(offered) = context.offered.as_deref().filter(|o| !o.is_empty()) {
        let highest = offered.iter().copied().max().unwrap_or(CaseSeverity::Low);
        let lowest = offered.iter().copied().min().unwrap_or(CaseSeverity::Low);
        // The highest offered not above the ask; AWS offering nothing that low (it always
        // offers low) leaves its lowest.
        let granted = offered
            .iter()
            .copied()
            .filter(|s| *s <= requested)
            .max()
            .unwrap_or(lowest);
        let within = effective
            .target(granted)
            .map(|t| format!(" (first response within {t})"))
            .unwrap_or_default();
        let reason = match granted.cmp(&requested) {
            std::cmp::Ordering::Less => format!(
                "AWS offers this account severities up to {highest} (DescribeSeverityLevels); \
                 case opened as {granted} instead of {requested}{within}; {requested} needs \
                 {needed}"
            ),
            std::cmp::Ordering::Equal => format!(
                "AWS offers this account {requested} (DescribeSeverityLevels); case opened as \
                 {granted}{within}"
            ),
            std::cmp::Ordering::Greater => format!(
                "AWS offers this account nothing as low as {requested} (DescribeSeverityLevels); \
                 case opened as {granted}, the lowest it offers{within}"
            ),
        };
        return decision(Some(granted), CapSource::Aws, reason);
    }
    let Some(max) = effective.max_severity() else {
        return decision(
            None,
            CapSource::Plan,
            format!(
                "{name} has no technical cases and no AWS Support API; {needed} is needed to \
                 open a {requested} case from opsdesk"
            ),
        );
    };
    if !effective.has_api() {
        return decision(
            None,
            CapSource::Plan,
            format!(
                "{name} has no AWS Support API, so opsdesk cannot open this {requested} case; \
                 open it by web in the Support Center (at most {max} on this plan), or move the \
                 account to {needed} to open it from opsdesk"
            ),
        );
    }
    let granted = requested.min(max);
    let within = effective
        .target(granted)
        .map(|t| format!(" (first response within {t})"))
        .unwrap_or_default();
    let reason = if granted < requested {
        format!(
            "{name} allows at most {max}; case opened as {granted} instead of \
             {requested}{within}; {requested} needs {needed}"
        )
    } else {
        format!("{name} allows {requested}; case opened as {granted}{within}")
    };
    decision(Some(granted), CapSource::Plan, reason)
}

/// What an account on `plan` should know on `day` about the plan ending: before the end, that
/// it ends and what AWS does then; after it, that the configuration names a plan that no
/// longer exists. `None` for a plan that carries on.
pub fn plan_notice(plan: SupportPlan, day: NaiveDate, govcloud: bool) -> Option<String> {
    let end = plan.ends_on(govcloud)?;
    let (next, verb) = plan.successor()?;
    if day < end {
        Some(format!(
            "AWS ends the {} plan on {end} outside AWS GovCloud (US), and {verb} {} in its \
             place. opsdesk uses the {} table until then and the {} table after; set \
             support_plan to the plan the account holds once it has changed.",
            plan.label(),
            next.label(),
            plan.label(),
            next.label()
        ))
    } else {
        Some(format!(
            "The {} plan ended on {end} outside AWS GovCloud (US); AWS {verb} {} in its place, \
             but this account is still configured `{plan}`. opsdesk asks AWS which case \
             severities the account has (DescribeSeverityLevels) and otherwise uses the {} \
             table. Set support_plan to the plan the account holds now.",
            plan.label(),
            next.label(),
            next.label()
        ))
    }
}

/// Whether what AWS offers an account (DescribeSeverityLevels) fits the plan it is
/// configured with on `day`; when it does not, says so and which plans would fit.
pub fn plan_mismatch(
    plan: SupportPlan,
    offered: &[CaseSeverity],
    day: NaiveDate,
    govcloud: bool,
) -> Option<String> {
    let effective = plan.in_effect(day, govcloud);
    let aws_max = offered.iter().copied().max()?;
    let table_max = effective.max_severity();
    if table_max == Some(aws_max) {
        return None;
    }
    let fitting: Vec<&str> = SupportPlan::ALL
        .iter()
        .copied()
        .filter(|p| {
            p.available_on(day, govcloud) && p.has_api() && p.max_severity() == Some(aws_max)
        })
        .map(SupportPlan::label)
        .collect();
    let table = match table_max {
        Some(max) => format!("which the table gives at most {max}"),
        None => "which has no technical cases".to_owned(),
    };
    let fits = if fitting.is_empty() {
        String::new()
    } else {
        format!(" That fits {}.", fitting.join(" or "))
    };
    let dispute = effective
        .disputed()
        .map(|_| " AWS's pages disagree about this plan; AWS's answer decides.")
        .unwrap_or_default();
    Some(format!(
        "AWS offers this account case severities up to {aws_max}, but it is configured with the \
         {} plan, {table}.{fits}{dispute} Check the plan in the AWS Support Center and set \
         support_plan to match.",
        effective.label()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use CaseSeverity::{Critical, High, Low, Normal, Urgent};
    use SupportPlan::{
        Basic, Business, BusinessSupportPlus, Developer, Enterprise, EnterpriseOnRamp,
        UnifiedOperations,
    };

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn context(on: &str) -> CaseContext {
        CaseContext {
            day: day(on),
            govcloud: false,
            offered: None,
        }
    }

    const BEFORE: &str = "2026-12-31";
    const AFTER: &str = "2027-01-01";

    #[test]
    fn table_matches_the_published_first_response_times() {
        // Columns: low, normal, high, urgent, critical; as the plans page and "Choosing a
        // severity" give them.
        let table: [(SupportPlan, [Option<Target>; 5]); 7] = [
            (Basic, [None, None, None, None, None]),
            (
                Developer,
                [office(24 * H), office(12 * H), None, None, None],
            ),
            (
                Business,
                [clock(24 * H), clock(12 * H), clock(4 * H), clock(H), None],
            ),
            (
                BusinessSupportPlus,
                [
                    clock(24 * H),
                    clock(12 * H),
                    clock(4 * H),
                    clock(H),
                    clock(30),
                ],
            ),
            (
                EnterpriseOnRamp,
                [
                    clock(24 * H),
                    clock(12 * H),
                    clock(4 * H),
                    clock(H),
                    clock(30),
                ],
            ),
            (
                Enterprise,
                [
                    clock(24 * H),
                    clock(12 * H),
                    clock(4 * H),
                    clock(H),
                    clock(15),
                ],
            ),
            (
                UnifiedOperations,
                [
                    clock(24 * H),
                    clock(12 * H),
                    clock(4 * H),
                    clock(H),
                    clock(5),
                ],
            ),
        ];
        assert_eq!(table.len(), SupportPlan::ALL.len());
        for (plan, row) in table {
            for (sev, want) in CaseSeverity::ALL.iter().zip(row) {
                assert_eq!(plan.first_response(*sev), want, "{plan} {sev}");
                assert_eq!(plan.allows(*sev), want.is_some(), "{plan} {sev}");
            }
        }
    }

    #[test]
    fn plans_state_cases_api_highest_severity_and_minimum_price() {
        let facts: Vec<_> = SupportPlan::ALL
            .iter()
            .map(|p| {
                (
                    p.allows_cases(),
                    p.has_api(),
                    p.max_severity(),
                    p.minimum_monthly_usd(),
                )
            })
            .collect();
        assert_eq!(
            facts,
            [
                (false, false, None, 0),
                (true, false, Some(Normal), 29),
                (true, true, Some(Urgent), 100),
                (true, true, Some(Critical), 29),
                (true, true, Some(Critical), 5_500),
                (true, true, Some(Critical), 5_000),
                (true, true, Some(Critical), 50_000),
            ]
        );
        assert!(Basic < Developer && Developer < Business && Business < BusinessSupportPlus);
        assert!(EnterpriseOnRamp < Enterprise && Enterprise < UnifiedOperations);
        assert!(Low < Normal && Normal < High && High < Urgent && Urgent < Critical);
        for url in [
            PLANS_URL,
            PRICING_URL,
            SEVERITY_URL,
            API_URL,
            SEVERITY_LEVELS_URL,
        ] {
            assert!(source().iter().any(|s| s.url == url), "{url}");
        }
        // The one figure AWS's pages disagree on is marked, and only that one.
        let disputed: Vec<_> = SupportPlan::ALL
            .iter()
            .filter(|p| p.disputed().is_some())
            .collect();
        assert_eq!(disputed, [&BusinessSupportPlus]);
    }

    #[test]
    fn which_plans_exist_depends_on_the_day_and_on_govcloud() {
        let on = |d: &str, gov: bool| -> Vec<SupportPlan> {
            SupportPlan::ALL
                .iter()
                .copied()
                .filter(|p| p.available_on(day(d), gov))
                .collect()
        };
        assert_eq!(
            on("2025-06-01", false),
            [Basic, Developer, Business, EnterpriseOnRamp, Enterprise]
        );
        assert_eq!(on(BEFORE, false), SupportPlan::ALL);
        assert_eq!(
            on(AFTER, false),
            [Basic, BusinessSupportPlus, Enterprise, UnifiedOperations]
        );
        let govcloud = [Basic, Developer, Business, EnterpriseOnRamp, Enterprise];
        assert_eq!(on(BEFORE, true), govcloud);
        assert_eq!(on(AFTER, true), govcloud);
        assert_eq!(on("2031-05-05", true), govcloud);
        // Advice looks 90 days ahead: in December 2026 it already leaves out what ends.
        assert_eq!(
            SupportPlan::ladder(day("2026-12-07"), false),
            [Basic, BusinessSupportPlus, Enterprise, UnifiedOperations]
        );
        assert_eq!(
            SupportPlan::ladder(day("2026-06-01"), false),
            SupportPlan::ALL
        );
        assert_eq!(SupportPlan::ladder(day(AFTER), true), govcloud);
    }

    #[test]
    fn ended_plans_give_way_to_what_aws_moves_or_offers() {
        for (plan, next) in [
            (Developer, BusinessSupportPlus),
            (Business, BusinessSupportPlus),
            (EnterpriseOnRamp, Enterprise),
        ] {
            assert_eq!(plan.in_effect(day(BEFORE), false), plan);
            assert_eq!(plan.in_effect(day(AFTER), false), next);
            assert_eq!(
                plan.in_effect(day(AFTER), true),
                plan,
                "GovCloud keeps {plan}"
            );
        }
        for plan in [Basic, BusinessSupportPlus, Enterprise, UnifiedOperations] {
            assert_eq!(plan.in_effect(day(AFTER), false), plan);
            assert_eq!(plan_notice(plan, day(AFTER), false), None);
        }
        let before = plan_notice(EnterpriseOnRamp, day(BEFORE), false).unwrap();
        assert!(
            before.contains("ends the Enterprise On-Ramp plan on 2027-01-01"),
            "{before}"
        );
        assert!(before.contains("moves it to Enterprise"), "{before}");
        let after = plan_notice(Business, day(AFTER), false).unwrap();
        assert!(after.contains("ended on 2027-01-01"), "{after}");
        assert!(after.contains("offers Business Support+"), "{after}");
        assert!(after.contains("still configured `business`"), "{after}");
        assert_eq!(plan_notice(Business, day(AFTER), true), None);
    }

    #[test]
    fn plans_are_read_as_people_write_them() {
        for text in [
            "business_support_plus",
            "Business Support+",
            "business-support+",
            " BUSINESS SUPPORT PLUS ",
        ] {
            assert_eq!(
                SupportPlan::from_field(text).unwrap(),
                BusinessSupportPlus,
                "{text}"
            );
        }
        assert_eq!(
            SupportPlan::from_field("Unified Operations").unwrap(),
            UnifiedOperations
        );
        assert_eq!(
            SupportPlan::from_field("Enterprise On-Ramp").unwrap(),
            EnterpriseOnRamp
        );
        let err = SupportPlan::from_field("gold").unwrap_err();
        assert!(
            err.message.contains("unified_operations"),
            "{}",
            err.message
        );
    }

    #[test]
    fn targets_read_as_people_write_them() {
        assert_eq!(Target::around_the_clock(15).to_string(), "15 minutes");
        assert_eq!(Target::around_the_clock(60).to_string(), "1 hour");
        assert_eq!(Target::around_the_clock(90).to_string(), "90 minutes");
        assert_eq!(
            Target::in_business_hours(12 * H).to_string(),
            "12 business hours"
        );
        assert!(Target::around_the_clock(30).within(30));
        assert!(!Target::around_the_clock(30).within(29));
        assert!(!Target::in_business_hours(60).within(10_000));
    }

    #[test]
    fn ticket_severity_maps_to_the_aws_support_code() {
        for s in Severity::ALL {
            assert_eq!(CaseSeverity::from(*s).as_str(), s.aws_support_code());
        }
        assert_eq!(Critical.lower(), Some(Urgent));
        assert_eq!(Low.lower(), None);
    }

    #[test]
    fn capping_every_plan_and_severity_by_the_table() {
        // Rows: plans; columns: SEV1..SEV5. `None`: opsdesk cannot open the case.
        let all =
            |top: CaseSeverity| [Critical, Urgent, High, Normal, Low].map(|s| Some(s.min(top)));
        let want: [(SupportPlan, [Option<CaseSeverity>; 5]); 7] = [
            (Basic, [None; 5]),
            (Developer, [None; 5]),
            (Business, all(Urgent)),
            (BusinessSupportPlus, all(Critical)),
            (EnterpriseOnRamp, all(Critical)),
            (Enterprise, all(Critical)),
            (UnifiedOperations, all(Critical)),
        ];
        for (plan, row) in want {
            for (sev, granted) in Severity::ALL.iter().zip(row) {
                let d = cap(plan, *sev, &context(BEFORE));
                assert_eq!(d.requested, CaseSeverity::from(*sev));
                assert_eq!(d.granted, granted, "{plan} {sev}");
                assert_eq!(d.capped_by, CapSource::Plan);
                assert_eq!(
                    d.capped,
                    granted.is_some_and(|g| g < d.requested),
                    "{plan} {sev}"
                );
                assert_eq!(
                    d.first_response,
                    granted.and_then(|g| plan.first_response(g))
                );
                assert!(d.reason.starts_with(plan.label()), "{}", d.reason);
            }
        }
    }

    #[test]
    fn capped_case_says_what_it_opened_and_what_is_needed() {
        let d = cap(Business, Severity::Sev1, &context("2026-06-01"));
        assert!(d.capped);
        assert_eq!(
            d.reason,
            "Business plan allows at most urgent; case opened as urgent instead of critical \
             (first response within 1 hour); critical needs Business Support+ or higher"
        );
        let d = cap(UnifiedOperations, Severity::Sev1, &context(AFTER));
        assert!(!d.capped);
        assert_eq!(
            d.reason,
            "Unified Operations plan allows critical; case opened as critical (first response \
             within 5 minutes)"
        );
    }

    #[test]
    fn no_api_names_the_plan_and_what_is_needed() {
        let d = cap(Developer, Severity::Sev4, &context("2026-06-01"));
        assert_eq!(d.granted, None);
        assert!(!d.capped);
        assert!(d.reason.contains("Developer plan has no AWS Support API"));
        assert!(d.reason.contains("at most normal"));
        assert!(d.reason.contains("Business or higher"), "{}", d.reason);
        let d = cap(Basic, Severity::Sev3, &context(AFTER));
        assert!(d.reason.starts_with("Basic plan has no technical cases"));
        assert!(
            d.reason
                .contains("Business Support+ or higher is needed to open a high case"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn on_either_side_of_2027_the_same_configuration_decides_differently() {
        // A Developer account can no longer be one after the end: opsdesk asks AWS and
        // otherwise uses what AWS offers in its place.
        let before = cap(Developer, Severity::Sev2, &context(BEFORE));
        assert_eq!(before.granted, None);
        let after = cap(Developer, Severity::Sev2, &context(AFTER));
        assert_eq!(after.plan_in_effect, BusinessSupportPlus);
        assert_eq!(after.granted, Some(Urgent));
        assert!(
            after.reason.starts_with(
                "Business Support+ plan (configured Developer, which ended on 2027-01-01)"
            ),
            "{}",
            after.reason
        );
        // Enterprise On-Ramp answers critical within 30 minutes; Enterprise within 15.
        let before = cap(EnterpriseOnRamp, Severity::Sev1, &context(BEFORE));
        let after = cap(EnterpriseOnRamp, Severity::Sev1, &context(AFTER));
        assert_eq!(before.first_response, clock(30));
        assert_eq!(after.first_response, clock(15));
        // GovCloud keeps its plans.
        let gov = CaseContext {
            govcloud: true,
            ..context(AFTER)
        };
        assert_eq!(cap(Business, Severity::Sev1, &gov).granted, Some(Urgent));
        assert_eq!(cap(Business, Severity::Sev1, &gov).plan_in_effect, Business);
    }

    #[test]
    fn what_aws_offers_wins_over_the_table() {
        // AWS's DescribeSeverityLevels for a Business Support+ account without critical.
        let offered = CaseContext {
            offered: Some(vec![Low, Normal, High, Urgent]),
            ..context(AFTER)
        };
        let d = cap(BusinessSupportPlus, Severity::Sev1, &offered);
        assert_eq!(d.granted, Some(Urgent));
        assert_eq!(d.capped_by, CapSource::Aws);
        assert!(d.capped);
        assert_eq!(d.first_response, clock(H));
        assert!(d.reason.contains("DescribeSeverityLevels"), "{}", d.reason);
        // And raises it: an account configured Business that AWS offers critical.
        let all = CaseContext {
            offered: Some(CaseSeverity::ALL.to_vec()),
            ..context(BEFORE)
        };
        let d = cap(Business, Severity::Sev1, &all);
        assert_eq!(d.granted, Some(Critical));
        assert_eq!(d.capped_by, CapSource::Aws);
        assert!(!d.capped);
        // An empty answer is no answer.
        let empty = CaseContext {
            offered: Some(Vec::new()),
            ..context(BEFORE)
        };
        assert_eq!(
            cap(Business, Severity::Sev1, &empty).capped_by,
            CapSource::Plan
        );
        // A gap in what AWS offers takes the highest below what is asked.
        let gap = CaseContext {
            offered: Some(vec![Low, Normal, Urgent]),
            ..context(AFTER)
        };
        assert_eq!(cap(Enterprise, Severity::Sev3, &gap).granted, Some(Normal));
        let high_only = CaseContext {
            offered: Some(vec![Urgent, Critical]),
            ..context(AFTER)
        };
        assert_eq!(
            cap(Enterprise, Severity::Sev5, &high_only).granted,
            Some(Urgent)
        );
    }

    #[test]
    fn a_plan_aws_contradicts_is_named_with_the_plans_that_fit() {
        let d = day(AFTER);
        assert_eq!(plan_mismatch(Enterprise, CaseSeverity::ALL, d, false), None);
        let m = plan_mismatch(Enterprise, &[Low, Normal, High, Urgent], d, false).unwrap();
        assert!(m.contains("up to urgent"), "{m}");
        assert!(m.contains("configured with the Enterprise plan"), "{m}");
        let m = plan_mismatch(Business, CaseSeverity::ALL, day("2026-06-01"), false).unwrap();
        assert!(
            m.contains(
                "That fits Business Support+ or Enterprise On-Ramp or Enterprise or Unified Operations."
            ),
            "{m}"
        );
        let m = plan_mismatch(BusinessSupportPlus, &[Low, Normal, High, Urgent], d, false).unwrap();
        assert!(m.contains("AWS's pages disagree"), "{m}");
        assert_eq!(plan_mismatch(Enterprise, &[], d, false), None);
    }
}
