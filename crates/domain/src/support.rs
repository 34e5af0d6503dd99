//! AWS Support plans: what each plan lets an account do, how a ticket's severity becomes a
//! support case severity on that plan, and which plan an account's workloads call for.
//!
//! The plan table follows AWS's published figures (see [`source`]):
//! - the plan comparison, <https://aws.amazon.com/premiumsupport/plans/>;
//! - "Choosing a severity" in the AWS Support User Guide,
//!   <https://docs.aws.amazon.com/awssupport/latest/user/case-management.html#choosing-severity>;
//! - "About the AWS Support API" in the same guide,
//!   <https://docs.aws.amazon.com/awssupport/latest/user/about-support-api.html>.
//!
//! AWS has announced that Developer, Business and Enterprise On-Ramp end on 1 January 2027
//! (Business Support+, Enterprise and Unified Operations remain); this table covers the five
//! plans accounts can hold today.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::signal::workload::Environment;
use crate::ticket::{named_enum, Severity};
use crate::validation::{FieldError, Validated, NAME_MAX};

/// The AWS Support plan comparison page.
pub const PLANS_URL: &str = "https://aws.amazon.com/premiumsupport/plans/";
/// "Choosing a severity": case severities and their first-response times.
pub const SEVERITY_URL: &str =
    "https://docs.aws.amazon.com/awssupport/latest/user/case-management.html#choosing-severity";
/// Which plans may call the AWS Support API (CreateCase and the rest).
pub const API_URL: &str =
    "https://docs.aws.amazon.com/awssupport/latest/user/about-support-api.html";

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
        title: "AWS Support User Guide: Choosing a severity",
        url: SEVERITY_URL,
    },
    Source {
        title: "AWS Support User Guide: About the AWS Support API",
        url: API_URL,
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
        /// Technical cases by web in business hours, one primary contact, no API.
        Developer => "developer",
        /// Technical cases around the clock, unlimited contacts, AWS Support API.
        Business => "business",
        /// Business plus business-critical cases answered within 30 minutes.
        EnterpriseOnRamp => "enterprise_on_ramp",
        /// Business plus business-critical cases answered within 15 minutes.
        Enterprise => "enterprise",
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

/// A first-response target: within `minutes`, counted around the clock or, when
/// `business_hours`, only in the account's business hours (08:00 to 18:00 in its time zone,
/// weekdays, holidays excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Target {
    pub minutes: u32,
    pub business_hours: bool,
}

impl Target {
    const fn around_the_clock(minutes: u32) -> Target {
        Target {
            minutes,
            business_hours: false,
        }
    }

    const fn in_business_hours(minutes: u32) -> Target {
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
fn duration(minutes: u32, unit: &str) -> String {
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

impl SupportPlan {
    /// The plan's name as AWS writes it.
    pub fn label(self) -> &'static str {
        match self {
            SupportPlan::Basic => "Basic",
            SupportPlan::Developer => "Developer",
            SupportPlan::Business => "Business",
            SupportPlan::EnterpriseOnRamp => "Enterprise On-Ramp",
            SupportPlan::Enterprise => "Enterprise",
        }
    }

    /// Reads a plan from a form, a file or the command line: `enterprise_on_ramp`,
    /// `Enterprise On-Ramp` and `enterprise-on-ramp` all name the same plan.
    pub fn from_field(s: &str) -> Result<SupportPlan, FieldError> {
        let key: String = s
            .trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
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
        self >= SupportPlan::Business
    }

    /// Who may open technical cases, and how.
    pub fn case_access(self) -> &'static str {
        match self {
            SupportPlan::Basic => "no technical cases; account and billing cases only",
            SupportPlan::Developer => {
                "technical cases by web in business hours, for one primary contact"
            }
            SupportPlan::Business | SupportPlan::EnterpriseOnRamp | SupportPlan::Enterprise => {
                "technical cases around the clock by web, chat and phone, for any number of contacts"
            }
        }
    }

    /// The highest case severity the plan allows; `None` when it allows no technical cases.
    pub fn max_severity(self) -> Option<CaseSeverity> {
        match self {
            SupportPlan::Basic => None,
            SupportPlan::Developer => Some(CaseSeverity::Normal),
            SupportPlan::Business => Some(CaseSeverity::Urgent),
            SupportPlan::EnterpriseOnRamp | SupportPlan::Enterprise => Some(CaseSeverity::Critical),
        }
    }

    /// Whether a case of this severity may be opened on the plan.
    pub fn allows(self, sev: CaseSeverity) -> bool {
        self.max_severity().is_some_and(|max| sev <= max)
    }

    /// The published first-response target for a case of `sev`; `None` when the plan does not
    /// allow that severity.
    pub fn first_response(self, sev: CaseSeverity) -> Option<Target> {
        if !self.allows(sev) {
            return None;
        }
        let target = match (self, sev) {
            (SupportPlan::Developer, CaseSeverity::Low) => Target::in_business_hours(24 * 60),
            (SupportPlan::Developer, _) => Target::in_business_hours(12 * 60),
            (_, CaseSeverity::Low) => Target::around_the_clock(24 * 60),
            (_, CaseSeverity::Normal) => Target::around_the_clock(12 * 60),
            (_, CaseSeverity::High) => Target::around_the_clock(4 * 60),
            (_, CaseSeverity::Urgent) => Target::around_the_clock(60),
            (SupportPlan::EnterpriseOnRamp, CaseSeverity::Critical) => Target::around_the_clock(30),
            (_, CaseSeverity::Critical) => Target::around_the_clock(15),
        };
        Some(target)
    }

    /// The plan's fastest first response: the target of its highest severity.
    pub fn fastest_first_response(self) -> Option<(CaseSeverity, Target)> {
        let sev = self.max_severity()?;
        self.first_response(sev).map(|t| (sev, t))
    }

    /// The lowest plan on which opsdesk can open a case of `sev` through the API.
    pub fn lowest_with_api_for(sev: CaseSeverity) -> SupportPlan {
        SupportPlan::ALL
            .iter()
            .copied()
            .find(|p| p.has_api() && p.allows(sev))
            .unwrap_or(SupportPlan::Enterprise)
    }

    /// The lowest plan that answers some severity within `minutes` around the clock; `None`
    /// when no plan is that fast.
    pub fn lowest_answering_within(minutes: u32) -> Option<SupportPlan> {
        SupportPlan::ALL.iter().copied().find(|p| {
            p.fastest_first_response()
                .is_some_and(|(_, t)| t.within(minutes))
        })
    }
}

/// "Business or higher", "Enterprise On-Ramp or Enterprise", "Enterprise".
fn plan_or_higher(plan: SupportPlan) -> String {
    match plan {
        SupportPlan::EnterpriseOnRamp => "Enterprise On-Ramp or Enterprise".to_owned(),
        SupportPlan::Enterprise => "Enterprise".to_owned(),
        p => format!("{} or higher", p.label()),
    }
}

/// What happens when a ticket of some severity is escalated to AWS Support on a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CaseDecision {
    pub plan: SupportPlan,
    /// The case severity the ticket's severity asks for.
    pub requested: CaseSeverity,
    /// The severity to open the case with; `None` when opsdesk cannot open the case.
    pub granted: Option<CaseSeverity>,
    /// True when the case is opened lower than requested.
    pub capped: bool,
    /// The first-response target of the granted severity.
    pub first_response: Option<Target>,
    /// One sentence for the ticket timeline.
    pub reason: String,
}

/// Decides the case severity for a ticket of `ticket_severity` on `plan`: the ticket's own
/// severity, lowered to the highest the plan allows. Without the AWS Support API (Basic,
/// Developer) opsdesk cannot open the case at all.
pub fn cap(plan: SupportPlan, ticket_severity: Severity) -> CaseDecision {
    let requested = CaseSeverity::from(ticket_severity);
    let needed = plan_or_higher(SupportPlan::lowest_with_api_for(requested));
    let no_case = |reason: String| CaseDecision {
        plan,
        requested,
        granted: None,
        capped: false,
        first_response: None,
        reason,
    };
    let max = match plan.max_severity() {
        None => {
            return no_case(format!(
                "{} plan has no technical cases and no AWS Support API; {needed} is needed to \
                 open a {requested} case from opsdesk",
                plan.label()
            ))
        }
        Some(max) => max,
    };
    if !plan.has_api() {
        return no_case(format!(
            "{} plan has no AWS Support API, so opsdesk cannot open this {requested} case; \
             open it by web in the Support Center (at most {max} on this plan), or move the \
             account to {needed} to open it from opsdesk",
            plan.label()
        ));
    }
    let granted = requested.min(max);
    let first_response = plan.first_response(granted);
    let within = first_response
        .map(|t| format!(" (first response within {t})"))
        .unwrap_or_default();
    let reason = if granted < requested {
        format!(
            "{} plan allows at most {max}; case opened as {granted} instead of \
             {requested}{within}; {requested} needs {needed}",
            plan.label()
        )
    } else {
        format!(
            "{} plan allows {requested}; case opened as {granted}{within}",
            plan.label()
        )
    };
    CaseDecision {
        plan,
        requested,
        granted: Some(granted),
        capped: granted < requested,
        first_response,
        reason,
    }
}

/// AWS Support's AddCommunicationToCase takes a body of at most 8,000 characters (counted
/// here in UTF-16 units, which is never fewer than AWS counts).
pub const COMMUNICATION_MAX: usize = 8_000;
/// Room kept in each part for its "(part i of n)" heading.
const PART_HEADING_MAX: usize = 24;

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A reply as the messages AWS Support takes: the reply itself when it fits in
/// [`COMMUNICATION_MAX`], otherwise consecutive parts headed "(part i of n)", each cut at a
/// paragraph, line or word break where one falls in its second half, so that nothing of the
/// reply is left out.
pub fn communication_parts(body: &str) -> Vec<String> {
    if utf16_len(body) <= COMMUNICATION_MAX {
        return vec![body.to_owned()];
    }
    let budget = COMMUNICATION_MAX - PART_HEADING_MAX;
    let mut chunks: Vec<&str> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // The longest prefix within budget, on a char boundary.
        let mut units = 0;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            units += c.len_utf16();
            if units > budget {
                end = i;
                break;
            }
        }
        let window = &rest[..end];
        let cut = if end == rest.len() {
            end
        } else {
            ["\n\n", "\n", " "]
                .iter()
                .find_map(|b| {
                    window
                        .rfind(b)
                        .map(|i| i + b.len())
                        .filter(|&i| utf16_len(&window[..i]) > budget / 2)
                })
                .unwrap_or(end)
        };
        let chunk = rest[..cut].trim_end();
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        rest = rest[cut..].trim_start();
    }
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| format!("(part {} of {n})\n\n{c}", i + 1))
        .collect()
}

/// AWS Support's CreateCase and AddCommunicationToCase take at most 10 `ccEmailAddresses`.
pub const EMAILS_MAX: usize = 10;

/// An AWS account opsdesk knows, with its support plan and whom to tell about its cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsAccount {
    /// The 12-digit account id.
    #[schema(pattern = r"^[0-9]{12}$")]
    pub id: String,
    /// A name people recognise, 1 to 200 characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    pub support_plan: SupportPlan,
    /// Addresses of the AWS account team to keep informed of escalations; at most 10, as many
    /// as an AWS Support case can copy.
    #[serde(default)]
    pub account_team_emails: Vec<String>,
    /// An IAM role in this account that opsdesk assumes to open and follow its AWS Support
    /// cases. Without one, cases are opened with opsdesk's own credentials, which must then
    /// belong to this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_role_arn: Option<String>,
}

/// `arn:<partition>:iam::<account>:role/<path/name>` for the given account.
fn role_arn_ok(arn: &str, account: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", "aws" | "aws-cn" | "aws-us-gov", "iam", "", id, resource]
            if *id == account
                && resource.strip_prefix("role/").is_some_and(|name| {
                    !name.is_empty()
                        && name.len() <= 512
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
                })
    )
}

/// A basic shape check: `local@domain.tld`, no spaces, sane lengths. Deliverability is for
/// the mail server to judge.
fn email_ok(e: &str) -> bool {
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local.len() <= 64
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

impl Validated for AwsAccount {
    fn validate(mut self) -> Result<Self, FieldError> {
        self.id = self.id.trim().to_owned();
        if self.id.len() != 12 || !self.id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("id", "must be a 12-digit AWS account id"));
        }
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() || self.name.chars().count() > NAME_MAX {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {NAME_MAX} characters"),
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        if self.account_team_emails.len() > EMAILS_MAX {
            return Err(FieldError::new(
                "account_team_emails",
                format!(
                    "at most {EMAILS_MAX} addresses: an AWS Support case copies no more than \
                     {EMAILS_MAX}"
                ),
            ));
        }
        let mut emails: Vec<String> = Vec::with_capacity(self.account_team_emails.len());
        for (i, e) in self.account_team_emails.into_iter().enumerate() {
            let e = e.trim().to_owned();
            if !email_ok(&e) {
                return Err(FieldError::new(
                    format!("account_team_emails[{i}]"),
                    format!("`{e}` is not an email address"),
                ));
            }
            if !emails.iter().any(|x| x.eq_ignore_ascii_case(&e)) {
                emails.push(e);
            }
        }
        self.account_team_emails = emails;
        if let Some(arn) = &mut self.support_role_arn {
            *arn = arn.trim().to_owned();
            if !role_arn_ok(arn, &self.id) {
                return Err(FieldError::new(
                    "support_role_arn",
                    format!(
                        "must be an IAM role ARN in account {}, such as arn:aws:iam::{}:role/opsdesk-support",
                        self.id, self.id
                    ),
                ));
            }
        }
        Ok(self)
    }
}

/// Technical cases an account opened in the last 90 days, by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseCounts {
    #[serde(default)]
    pub low: u32,
    #[serde(default)]
    pub normal: u32,
    #[serde(default)]
    pub high: u32,
    #[serde(default)]
    pub urgent: u32,
    #[serde(default)]
    pub critical: u32,
}

impl CaseCounts {
    pub fn get(&self, sev: CaseSeverity) -> u32 {
        match sev {
            CaseSeverity::Low => self.low,
            CaseSeverity::Normal => self.normal,
            CaseSeverity::High => self.high,
            CaseSeverity::Urgent => self.urgent,
            CaseSeverity::Critical => self.critical,
        }
    }

    /// Cases at `sev` or above.
    pub fn at_least(&self, sev: CaseSeverity) -> u64 {
        CaseSeverity::ALL
            .iter()
            .filter(|s| **s >= sev)
            .map(|s| u64::from(self.get(*s)))
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.at_least(CaseSeverity::Low)
    }
}

/// The most technical cases in 90 days for which Developer (one contact, business hours) is
/// still advised. An opsdesk rule of thumb, not an AWS figure.
pub const FEW_CASES_90_DAYS: u64 = 10;

/// What plan advice looks at for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdviceInput {
    pub account: AwsAccount,
    /// The environment of each workload running in the account.
    #[serde(default)]
    pub workload_environments: Vec<Environment>,
    /// The fastest first response, in minutes, that the SLA policies of those workloads'
    /// tickets need; `None` when no policy sets one.
    #[serde(default)]
    pub sla_first_response_minutes: Option<u32>,
    #[serde(default)]
    pub cases_90_days: CaseCounts,
}

/// Which support plan an account's workloads call for, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Advice {
    pub account_id: String,
    pub current: SupportPlan,
    pub recommended: SupportPlan,
    pub change: PlanChange,
    /// Plain sentences, one per rule that applied.
    pub reasons: Vec<String>,
    /// Whether the current plan answers within the SLA's first-response need, around the
    /// clock. True when no SLA sets one.
    pub meets_sla: bool,
    /// Why the current plan cannot meet the SLA, when it cannot.
    pub sla_gap: Option<String>,
    /// The current plan's fastest first response.
    pub current_fastest: Option<Target>,
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Why `plan` cannot answer within `need` minutes around the clock.
fn sla_gap(plan: SupportPlan, need: u32) -> Option<String> {
    let need_text = duration(need, "");
    let best = plan.fastest_first_response();
    if best.is_some_and(|(_, t)| t.within(need)) {
        return None;
    }
    let plan_part = match best {
        None => format!("the {} plan cannot open technical cases", plan.label()),
        Some((sev, t)) if t.business_hours => format!(
            "the {} plan answers at best within {t} ({}, {sev}), counted in business hours only",
            plan.label(),
            sev.label()
        ),
        Some((sev, t)) => {
            let mut s = format!(
                "the {} plan answers at best within {t} ({}, {sev})",
                plan.label(),
                sev.label()
            );
            if sev < CaseSeverity::Critical {
                s.push_str(&format!(
                    "; {} ({}) is not available on {}",
                    CaseSeverity::Critical.label(),
                    CaseSeverity::Critical,
                    plan.label()
                ));
            }
            s
        }
    };
    let fix = match SupportPlan::lowest_answering_within(need) {
        Some(p) => format!("{} is needed", plan_or_higher(p)),
        None => "no AWS Support plan answers that fast, so the first response must come from \
                 your own on-call"
            .to_owned(),
    };
    Some(format!(
        "SLA policies need a first response within {need_text}, but {plan_part}; {fix}."
    ))
}

/// Recommends a support plan for one account. The recommendation is the highest plan any of
/// these rules asks for:
///
/// 1. No workloads and no technical cases in 90 days: Basic.
/// 2. No production workloads and few technical cases (at most [`FEW_CASES_90_DAYS`], none
///    above normal): Developer. More cases, or any at high or above: Business.
/// 3. Any production workload: Business (AWS Support API, so opsdesk can open cases itself;
///    production system down answered within 1 hour around the clock).
/// 4. An SLA first-response need: the lowest plan whose fastest target meets it around the
///    clock: up to 60 minutes Business, up to 30 Enterprise On-Ramp, up to 15 Enterprise.
///    Below 15 minutes no plan is fast enough; Enterprise is advised and the gap is named.
///
/// Reasons never state prices: AWS prices plans by usage, and a recommendation names what a
/// plan provides, not what it costs.
pub fn advise(input: &AdviceInput) -> Advice {
    let current = input.account.support_plan;
    let workloads = input.workload_environments.len() as u64;
    let production = input
        .workload_environments
        .iter()
        .filter(|e| **e == Environment::Production)
        .count() as u64;
    let cases = input.cases_90_days.total();
    let serious = input.cases_90_days.at_least(CaseSeverity::High);
    let mut recommended = SupportPlan::Basic;
    let mut reasons = Vec::new();

    if workloads == 0 && cases == 0 {
        reasons.push(
            "No workloads and no technical cases in the last 90 days: Basic covers account \
             and billing questions."
                .to_owned(),
        );
    } else if production == 0 {
        let case_text = plural(cases, "technical case", "technical cases");
        if serious > 0 {
            recommended = SupportPlan::Business;
            reasons.push(format!(
                "{} at high severity or above in the last 90 days: Developer allows at most \
                 normal, Business allows up to urgent.",
                plural(serious, "case", "cases")
            ));
        } else if cases > FEW_CASES_90_DAYS {
            recommended = SupportPlan::Business;
            reasons.push(format!(
                "{case_text} in the last 90 days is more than the {FEW_CASES_90_DAYS} Developer \
                 suits (one contact, business hours); Business answers around the clock for \
                 any number of contacts."
            ));
        } else {
            recommended = SupportPlan::Developer;
            reasons.push(format!(
                "No production workloads and {case_text} in the last 90 days: Developer gives \
                 technical cases by web in business hours."
            ));
        }
    }

    if production > 0 {
        recommended = recommended.max(SupportPlan::Business);
        reasons.push(format!(
            "{} in this account: Business is the lowest plan with the AWS Support API, so \
             opsdesk can open and follow cases itself, and it answers production system down \
             within 1 hour around the clock.",
            plural(
                production,
                "production workload runs",
                "production workloads run"
            )
        ));
    }

    if let Some(need) = input.sla_first_response_minutes {
        let need_text = duration(need, "");
        match SupportPlan::lowest_answering_within(need) {
            Some(plan) => {
                recommended = recommended.max(plan);
                if let Some((sev, t)) = plan.fastest_first_response() {
                    reasons.push(format!(
                        "SLA policies need a first response within {need_text}: {} is the \
                         lowest plan that answers that fast around the clock ({} within {t}).",
                        plan.label(),
                        sev.label()
                    ));
                }
            }
            None => {
                recommended = SupportPlan::Enterprise;
                reasons.push(format!(
                    "SLA policies need a first response within {need_text}: no AWS Support \
                     plan answers that fast (Enterprise, the fastest, answers business-critical \
                     system down within 15 minutes), so your own on-call has to give the first \
                     response."
                ));
            }
        }
    }

    let change = match recommended.cmp(&current) {
        std::cmp::Ordering::Equal => PlanChange::Keep,
        std::cmp::Ordering::Greater => PlanChange::Upgrade,
        std::cmp::Ordering::Less => PlanChange::Downgrade,
    };
    reasons.push(match change {
        PlanChange::Keep => format!(
            "The current {} plan matches what these rules ask for.",
            current.label()
        ),
        PlanChange::Upgrade => format!(
            "The current {} plan is below what these rules ask for; move to {}.",
            current.label(),
            recommended.label()
        ),
        PlanChange::Downgrade => format!(
            "The current {} plan provides more than these rules ask for; {} would cover them. \
             Keep {} if you rely on what only it provides, such as its technical account \
             manager or proactive programs.",
            current.label(),
            recommended.label(),
            current.label()
        ),
    });

    let gap = input
        .sla_first_response_minutes
        .and_then(|need| sla_gap(current, need));
    Advice {
        account_id: input.account.id.clone(),
        current,
        recommended,
        change,
        reasons,
        meets_sla: gap.is_none(),
        sla_gap: gap,
        current_fastest: current.fastest_first_response().map(|(_, t)| t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CaseSeverity::{Critical, High, Low, Normal, Urgent};
    use SupportPlan::{Basic, Business, Developer, Enterprise, EnterpriseOnRamp};

    const H: u32 = 60;

    fn clock(minutes: u32) -> Option<Target> {
        Some(Target::around_the_clock(minutes))
    }

    fn office(minutes: u32) -> Option<Target> {
        Some(Target::in_business_hours(minutes))
    }

    #[test]
    fn a_long_reply_is_split_into_parts_aws_takes_and_none_is_lost() {
        assert_eq!(communication_parts("Short."), ["Short."]);
        let exact = "a".repeat(COMMUNICATION_MAX);
        assert_eq!(communication_parts(&exact), vec![exact]);

        let paragraph = format!("{}.", "word ".repeat(300).trim_end());
        let long = vec![paragraph.as_str(); 20].join("\n\n");
        assert!(long.chars().count() > COMMUNICATION_MAX);
        let parts = communication_parts(&long);
        assert_eq!(
            parts.len(),
            4,
            "{:?}",
            parts.iter().map(String::len).collect::<Vec<_>>()
        );
        for (i, p) in parts.iter().enumerate() {
            assert!(p.encode_utf16().count() <= COMMUNICATION_MAX);
            assert!(
                p.starts_with(&format!("(part {} of 4)\n\n", i + 1)),
                "{p:.40}"
            );
            // Cut between paragraphs, not inside one.
            assert!(p.ends_with("word."), "{}", &p[p.len() - 20..]);
        }
        let rejoined: Vec<&str> = parts
            .iter()
            .map(|p| p.split_once("\n\n").unwrap().1)
            .collect();
        assert_eq!(rejoined.join("\n\n"), long);
    }

    proptest::proptest! {
        #[test]
        fn parts_fit_and_keep_every_word(words in proptest::collection::vec("[a-zé😀]{1,40}|\n|\n\n", 0..1200)) {
            let body = words.join(" ");
            let parts = communication_parts(&body);
            let mut kept = String::new();
            for p in &parts {
                proptest::prop_assert!(p.encode_utf16().count() <= COMMUNICATION_MAX);
                let text = if parts.len() > 1 { p.split_once("\n\n").unwrap().1 } else { p.as_str() };
                kept.push_str(text);
                kept.push(' ');
            }
            let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().concat();
            proptest::prop_assert_eq!(squash(&kept), squash(&body));
        }
    }

    proptest::proptest! {
        #[test]
        fn unbroken_text_is_cut_on_char_boundaries(n in 8_000usize..20_000) {
            let body = "é😀".repeat(n / 2);
            let parts = communication_parts(&body);
            let kept: String = parts.iter().map(|p| p.split_once("\n\n").map_or(p.as_str(), |x| x.1)).collect();
            proptest::prop_assert!(parts.iter().all(|p| p.encode_utf16().count() <= COMMUNICATION_MAX));
            proptest::prop_assert_eq!(kept, body);
        }
    }

    #[test]
    fn table_matches_the_published_first_response_times() {
        // Columns: low, normal, high, urgent, critical.
        let table: [(SupportPlan, [Option<Target>; 5]); 5] = [
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
    fn plans_state_cases_api_and_highest_severity() {
        let facts: Vec<_> = SupportPlan::ALL
            .iter()
            .map(|p| (p.allows_cases(), p.has_api(), p.max_severity()))
            .collect();
        assert_eq!(
            facts,
            [
                (false, false, None),
                (true, false, Some(Normal)),
                (true, true, Some(Urgent)),
                (true, true, Some(Critical)),
                (true, true, Some(Critical)),
            ]
        );
        assert!(Basic < Developer && Developer < Business);
        assert!(Business < EnterpriseOnRamp && EnterpriseOnRamp < Enterprise);
        assert!(Low < Normal && Normal < High && High < Urgent && Urgent < Critical);
        assert!(source().iter().any(|s| s.url == PLANS_URL));
        assert!(source().iter().any(|s| s.url == SEVERITY_URL));
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
    }

    #[test]
    fn capping_every_plan_and_severity() {
        // Rows: plans; columns: SEV1..SEV5. `None`: opsdesk cannot open the case.
        let want: [(SupportPlan, [Option<CaseSeverity>; 5]); 5] = [
            (Basic, [None; 5]),
            (Developer, [None; 5]),
            (
                Business,
                [
                    Some(Urgent),
                    Some(Urgent),
                    Some(High),
                    Some(Normal),
                    Some(Low),
                ],
            ),
            (
                EnterpriseOnRamp,
                [
                    Some(Critical),
                    Some(Urgent),
                    Some(High),
                    Some(Normal),
                    Some(Low),
                ],
            ),
            (
                Enterprise,
                [
                    Some(Critical),
                    Some(Urgent),
                    Some(High),
                    Some(Normal),
                    Some(Low),
                ],
            ),
        ];
        for (plan, row) in want {
            for (sev, granted) in Severity::ALL.iter().zip(row) {
                let d = cap(plan, *sev);
                assert_eq!(d.requested, CaseSeverity::from(*sev));
                assert_eq!(d.granted, granted, "{plan} {sev}");
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
        let d = cap(Business, Severity::Sev1);
        assert!(d.capped);
        assert_eq!(
            d.reason,
            "Business plan allows at most urgent; case opened as urgent instead of critical \
             (first response within 1 hour); critical needs Enterprise On-Ramp or Enterprise"
        );
        let d = cap(Enterprise, Severity::Sev1);
        assert!(!d.capped);
        assert_eq!(
            d.reason,
            "Enterprise plan allows critical; case opened as critical (first response within \
             15 minutes)"
        );
    }

    #[test]
    fn no_api_names_the_plan_and_what_is_needed() {
        let d = cap(Developer, Severity::Sev4);
        assert_eq!(d.granted, None);
        assert!(!d.capped);
        assert!(d.reason.contains("Developer plan has no AWS Support API"));
        assert!(d.reason.contains("at most normal"));
        assert!(d.reason.contains("Business or higher"));
        let d = cap(Developer, Severity::Sev1);
        assert!(d.reason.contains("Enterprise On-Ramp or Enterprise"));
        let d = cap(Basic, Severity::Sev3);
        assert!(d.reason.starts_with("Basic plan has no technical cases"));
        assert!(d
            .reason
            .contains("Business or higher is needed to open a high case"));
    }

    fn account() -> AwsAccount {
        AwsAccount {
            id: " 123456789012 ".into(),
            name: " Shop production ".into(),
            support_plan: Business,
            account_team_emails: vec!["tam@example.com".into(), "TAM@example.com".into()],
            support_role_arn: None,
        }
    }

    #[test]
    fn account_validation_names_the_field() {
        let a = account().validate().unwrap();
        assert_eq!(a.id, "123456789012");
        assert_eq!(a.name, "Shop production");
        assert_eq!(a.account_team_emails, ["tam@example.com"]);

        for bad in ["12345678901", "1234567890123", "12345678901x", ""] {
            let mut a = account();
            a.id = bad.into();
            assert_eq!(a.validate().unwrap_err().field, "id", "{bad}");
        }
        let mut a = account();
        a.name = "  ".into();
        assert_eq!(a.validate().unwrap_err().field, "name");
        for bad in [
            "no-at.example.com",
            "a@b",
            "a b@example.com",
            "@example.com",
            "a@@example.com",
            "a@example..com",
            "a@-example.com",
        ] {
            let mut a = account();
            a.account_team_emails = vec!["ok@example.com".into(), bad.into()];
            assert_eq!(
                a.validate().unwrap_err().field,
                "account_team_emails[1]",
                "{bad}"
            );
        }
        let mut a = account();
        a.account_team_emails = (0..10).map(|i| format!("p{i}@example.com")).collect();
        assert_eq!(a.validate().unwrap().account_team_emails.len(), 10);
        let mut a = account();
        a.account_team_emails = (0..11).map(|i| format!("p{i}@example.com")).collect();
        let err = a.validate().unwrap_err();
        assert_eq!(err.field, "account_team_emails");
        assert!(err.message.contains("at most 10"), "{}", err.message);

        let mut a = account();
        a.support_role_arn = Some(" arn:aws:iam::123456789012:role/ops/opsdesk-support ".into());
        assert_eq!(
            a.validate().unwrap().support_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/ops/opsdesk-support")
        );
        for bad in [
            "arn:aws:iam::999999999999:role/opsdesk-support",
            "arn:aws:iam::123456789012:user/opsdesk",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:sts::123456789012:role/x",
            "opsdesk-support",
        ] {
            let mut a = account();
            a.support_role_arn = Some(bad.into());
            assert_eq!(a.validate().unwrap_err().field, "support_role_arn", "{bad}");
        }
    }

    #[test]
    fn support_plan_is_read_from_text_and_named_when_wrong() {
        assert_eq!(
            SupportPlan::from_field("Enterprise On-Ramp"),
            Ok(EnterpriseOnRamp)
        );
        assert_eq!(
            SupportPlan::from_field("enterprise-on-ramp"),
            Ok(EnterpriseOnRamp)
        );
        assert_eq!(SupportPlan::from_field(" business "), Ok(Business));
        let err = SupportPlan::from_field("gold").unwrap_err();
        assert_eq!(err.field, "support_plan");
        assert!(err.message.contains("enterprise_on_ramp"));
    }

    #[test]
    fn account_json_uses_snake_case_plans() {
        let a: AwsAccount = serde_json::from_str(
            r#"{"id":"123456789012","name":"x","support_plan":"enterprise_on_ramp"}"#,
        )
        .unwrap();
        assert_eq!(a.support_plan, EnterpriseOnRamp);
        assert!(a.account_team_emails.is_empty());
        assert!(serde_json::from_str::<AwsAccount>(
            r#"{"id":"123456789012","name":"x","support_plan":"gold"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<AwsAccount>(
            r#"{"id":"123456789012","name":"x","support_plan":"basic","plan":"basic"}"#
        )
        .is_err());
    }

    fn input(
        plan: SupportPlan,
        envs: &[Environment],
        sla: Option<u32>,
        cases: CaseCounts,
    ) -> AdviceInput {
        let mut account = account();
        account.support_plan = plan;
        AdviceInput {
            account,
            workload_environments: envs.to_vec(),
            sla_first_response_minutes: sla,
            cases_90_days: cases,
        }
    }

    use Environment::{Development, Production, Staging};

    #[test]
    fn nothing_running_and_no_cases_advises_basic() {
        let a = advise(&input(Basic, &[], None, CaseCounts::default()));
        assert_eq!(a.recommended, Basic);
        assert_eq!(a.change, PlanChange::Keep);
        assert!(a.meets_sla);
        assert_eq!(a.sla_gap, None);
        assert!(a.reasons[0].starts_with("No workloads and no technical cases"));
    }

    #[test]
    fn non_production_with_few_cases_advises_developer() {
        let cases = CaseCounts {
            low: 3,
            normal: 2,
            ..CaseCounts::default()
        };
        let a = advise(&input(Basic, &[Staging, Development], None, cases));
        assert_eq!(a.recommended, Developer);
        assert_eq!(a.change, PlanChange::Upgrade);
        assert!(
            a.reasons[0].contains("5 technical cases"),
            "{:?}",
            a.reasons
        );

        // Cases without any registered workload still call for technical support.
        let one = CaseCounts {
            low: 1,
            ..CaseCounts::default()
        };
        assert_eq!(advise(&input(Basic, &[], None, one)).recommended, Developer);
    }

    #[test]
    fn many_or_serious_non_production_cases_advise_business() {
        let many = CaseCounts {
            normal: 11,
            ..CaseCounts::default()
        };
        let a = advise(&input(Developer, &[Staging], None, many));
        assert_eq!(a.recommended, Business);
        assert!(a.reasons[0].contains("more than the 10"));

        let serious = CaseCounts {
            high: 1,
            ..CaseCounts::default()
        };
        let a = advise(&input(Developer, &[Development], None, serious));
        assert_eq!(a.recommended, Business);
        assert!(a.reasons[0].starts_with("1 case at high severity"));
    }

    #[test]
    fn production_advises_at_least_business() {
        let a = advise(&input(
            Developer,
            &[Production, Staging],
            None,
            CaseCounts::default(),
        ));
        assert_eq!(a.recommended, Business);
        assert_eq!(a.change, PlanChange::Upgrade);
        assert!(a
            .reasons
            .iter()
            .any(|r| r.starts_with("1 production workload runs")));
        assert!(a.meets_sla, "no SLA need was given");
    }

    #[test]
    fn sla_needs_pick_the_lowest_plan_fast_enough() {
        let cases = CaseCounts::default();
        for (need, plan) in [
            (240, Business),
            (60, Business),
            (59, EnterpriseOnRamp),
            (30, EnterpriseOnRamp),
            (29, Enterprise),
            (15, Enterprise),
        ] {
            let a = advise(&input(Business, &[Production], Some(need), cases));
            assert_eq!(a.recommended, plan, "{need}");
            assert_eq!(a.meets_sla, need >= 60, "{need}");
        }
    }

    #[test]
    fn business_cannot_meet_a_15_minute_sla() {
        let a = advise(&input(
            Business,
            &[Production],
            Some(15),
            CaseCounts::default(),
        ));
        assert!(!a.meets_sla);
        assert_eq!(a.recommended, Enterprise);
        assert_eq!(a.current_fastest, clock(60));
        assert_eq!(
            a.sla_gap.as_deref(),
            Some(
                "SLA policies need a first response within 15 minutes, but the Business plan \
                 answers at best within 1 hour (production system down, urgent); \
                 business-critical system down (critical) is not available on Business; \
                 Enterprise is needed."
            )
        );
    }

    #[test]
    fn business_hours_targets_never_meet_an_sla() {
        let a = advise(&input(
            Developer,
            &[Staging],
            Some(7 * 24 * H),
            CaseCounts::default(),
        ));
        assert!(!a.meets_sla);
        assert_eq!(a.recommended, Business);
        assert!(a.sla_gap.unwrap().contains("business hours only"));
        let a = advise(&input(Basic, &[], Some(60), CaseCounts::default()));
        assert!(a.sla_gap.unwrap().contains("cannot open technical cases"));
    }

    #[test]
    fn faster_than_any_plan_is_named_even_on_enterprise() {
        let a = advise(&input(
            Enterprise,
            &[Production],
            Some(5),
            CaseCounts::default(),
        ));
        assert_eq!(a.recommended, Enterprise);
        assert_eq!(a.change, PlanChange::Keep);
        assert!(!a.meets_sla);
        assert!(a.sla_gap.unwrap().contains("your own on-call"));
    }

    #[test]
    fn more_than_needed_advises_a_lower_plan_without_prices() {
        let a = advise(&input(
            Enterprise,
            &[Development],
            None,
            CaseCounts::default(),
        ));
        assert_eq!(a.recommended, Developer);
        assert_eq!(a.change, PlanChange::Downgrade);
        let text = a.reasons.join(" ");
        assert!(text.contains("Keep Enterprise if you rely on"));
        assert!(!text.contains('$') && !text.to_lowercase().contains("cost"));
    }

    #[test]
    fn advice_serialises_for_the_api() {
        let a = advise(&input(
            Business,
            &[Production],
            Some(60),
            CaseCounts::default(),
        ));
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["recommended"], "business");
        assert_eq!(v["change"], "keep");
        assert_eq!(v["meets_sla"], true);
        assert_eq!(v["current_fastest"]["minutes"], 60);
    }
}
